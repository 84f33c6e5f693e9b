"""Rules for concatenation and channel shuffles: along channels each part keeps its own
field (:class:`~.channels.Channels`), along a spatial axis the parts' spans lie end to end."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from convzoo.analysis.receptive import channels as ch
from convzoo.analysis.receptive.field import Field, Place, remap
from convzoo.analysis.receptive.intervals import concat, union_spans
from convzoo.analysis.receptive.layout import merge
from convzoo.analysis.receptive.table import (
    Call,
    Places,
    Result,
    channel_aware,
    keeps_global,
    rule,
)

aten = torch.ops.aten


@rule(aten.cat, aten.stack)
@channel_aware
def cat(call: Call) -> Result:
    """Concatenation. Along a dim that holds no spatial axis (channels), each part's
    channels keep their own field (:func:`channel_cat`); along a spatial axis held alone
    in that dim, the parts' spans laid end to end (exact); otherwise the union over the
    parts (like a merge)."""
    stacking = call.func.overloadpacket is aten.stack
    d = call.args.get("dim", 0) % call.out.dim()
    pairs: list[tuple[Field, Places | None]] = []
    along_axis: list[int] = []
    spatial_on_d = False
    for t in call.args["tensors"]:
        f = call.field_of(t)
        if f is None or f.is_global:
            pairs += [(f, None)] if f else []
            continue
        places = f.places(tuple(t.shape))
        on_d = [p.dim is not None and t.dim() + p.dim == d and not stacking for p in places]
        spatial_on_d = spatial_on_d or any(on_d)
        alone = [k for k, p in enumerate(places) if on_d[k] and p.inner == 1]
        along_axis += alone
        lost = Place(d - t.dim(), 0, call.out.shape[d])  # merged there: order lost
        places = tuple(lost if on_d[k] else p for k, p in enumerate(places))
        move = (lambda p: p + (p >= d)) if stacking else (lambda p: p)
        pairs.append((f, remap(places, t.dim(), call.out.dim(), move)))
    segmented = any(f.channels is not None for f, _ in pairs)
    if along_axis and len(set(along_axis)) == 1 and len(along_axis) == len(call.args["tensors"]):
        if not segmented:
            return spatial_cat(call, along_axis[0], d)
    elif not stacking and not spatial_on_d and pairs:
        return channel_cat(call, d, pairs)
    if segmented:
        uniform = [(f.uniform(), places) for f, places in pairs]
        field, notes = merge(uniform, call.out.shape, call.name)
        if field is None or field.is_global or not field.known:
            return field, notes
        return replace(field, bound=True), [*notes, f"{call.name}: {LOST}"]
    return merge(pairs, call.out.shape, call.name)


LOST = (
    "its parts have channels with different fields and it is not along them: each unit's "
    "field is the union over the channels, an upper bound"
)


def channel_cat(call: Call, d: int, pairs: list[tuple[Field, Places | None]]) -> Result:
    """Concatenation along dim ``d``, which holds no spatial axis: channel by channel, each
    part's own field (a part without a field sees nothing); the union when a part is global
    or holds the spatial axes elsewhere."""
    if any(f.is_global for f, _ in pairs) or len({p for _, p in pairs}) > 1:
        return merge(pairs, call.out.shape, call.name)
    dim = d - call.out.dim()
    ids: list[np.ndarray] = []
    parts: list[ch.Part] = []
    for t in call.args["tensors"]:
        f, count = call.field_of(t), t.shape[d]
        if f is not None and f.channels is not None:
            if f.channels.dims != (dim,) or not f.channels.alone:
                return merge([(g.uniform(), p) for g, p in pairs], call.out.shape, call.name)
            ids.append(f.channels.ids + len(parts))
            parts.extend(f.channels.parts)
            continue
        ids.append(np.full(count, len(parts), dtype=np.int64))
        parts.append(None if f is None else f.axes)
    first, places = pairs[0]
    template = first.with_axes(first.axes, places, call.out.shape)  # type: ignore[arg-type]
    bound = any(f.bound for f, _ in pairs)
    return template.segmented((dim,), np.concatenate(ids), parts, bound), []


def spatial_cat(call: Call, k: int, d: int) -> Result:
    """Every part holds axis ``k`` alone in dim ``d``: its spans end to end, the rest merged."""
    fields = [call.field_of(t) for t in call.args["tensors"]]
    parts = [f.axes[k] for f in fields if f is not None]
    if any(p is None for p in parts):
        return None, [f"{call.name}: a part has no field along the concatenated axis"]
    first = fields[0]
    assert first is not None
    axes = list(first.axes)
    for j in range(len(axes)):
        spans = [f.axes[j] for f in fields if f is not None]
        if j == k:
            axes[j] = concat(spans)  # type: ignore[arg-type]
        elif all(s is not None for s in spans):
            axes[j] = union_spans(spans)  # type: ignore[arg-type]
    places = list(first.places(tuple(call.args["tensors"][0].shape)))
    places[k] = Place(d - call.out.dim(), 1, call.out.shape[d])
    return first.with_axes(axes, places, call.out.shape), []


@rule(aten.channel_shuffle, aten.native_channel_shuffle)
@keeps_global
@channel_aware
def channel_shuffle(call: Call) -> Result:
    """``(N, C, ...)`` viewed as ``(N, g, C/g, ...)``, the two swapped and flattened back:
    output channel ``b·g + a`` is input channel ``a·C/g + b``."""
    x = call.x()
    f = call.field_of(x)
    if f is None or f.is_global or f.channels is None:
        return f, []
    g = int(call.args["groups"])
    if f.channels.dims != (1 - x.dim(),) or not f.channels.alone:
        return replace(f.uniform(), bound=True), [f"{call.name}: {LOST}"]
    ids = f.channels.ids.reshape(g, -1).T.reshape(-1)
    return replace(f, channels=ch.Channels(f.channels.dims, ids, f.channels.parts)), []
