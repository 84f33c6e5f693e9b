"""Writes into part of a tensor: ``out[..., 1:-1, 1:-1] = x`` on a fresh tensor (a manual
pad), the border copies of circular padding, ``slice_scatter``. The written tensor's field
becomes, unit by unit, the written values' field inside the region and what it held outside
(nothing, for a fresh tensor).

A :data:`Region` gives per dim of the written tensor ``(start, step, count)``, and which of
its dims each dim of the written values fills. Per axis that is exact when the region is
partial along one dim only, or when the tensor held nothing before (units outside the
region then see nothing along some axis); otherwise each unit gets the union of what it
held and what was written, flagged as an upper bound.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch

from convzoo.analysis.receptive import channels as ch
from convzoo.analysis.receptive.field import Field, standard_places
from convzoo.analysis.receptive.intervals import window
from convzoo.analysis.receptive.span import EMPTY, Span
from convzoo.analysis.receptive.table import Call, Result, channel_aware, rule

aten = torch.ops.aten
UNION = (
    "a write into part of a tensor: what it held and what was written differ along more "
    "than one axis, so each unit's field is the union of both, an upper bound"
)


@dataclass(frozen=True)
class Region:
    """Where values of ``shape`` land in a tensor: per dim of that tensor ``(start, step,
    count)``; ``dims[i]``: the tensor dim that dim ``i`` of the values fills (None for a
    dim of size 1 that fills none)."""

    spans: tuple[tuple[int, int, int], ...]
    dims: tuple[int | None, ...]
    shape: tuple[int, ...]

    def partial(self, sizes: Sequence[int]) -> list[int]:
        """The tensor dims the region does not fill entirely."""
        return [d for d, (b, s, n) in enumerate(self.spans) if n != sizes[d] or b or s != 1]


def region_of(base: torch.Tensor, view: torch.Tensor) -> Region | None:
    """The region of ``base`` that ``view`` (a view of it) covers, from their strides and
    storage offsets; None when it is not a strided block of ``base`` (e.g. a diagonal)."""
    sizes, strides = list(base.shape), list(base.stride())
    offset = int(view.storage_offset()) - int(base.storage_offset())
    order = sorted((d for d in range(base.dim()) if sizes[d] > 1), key=lambda d: -strides[d])
    start = [0] * base.dim()
    for d in order:
        start[d], offset = divmod(offset, strides[d])
        if start[d] >= sizes[d]:
            return None
    if offset:
        return None
    spans = [(s, 1, 1) for s in start]
    dims: list[int | None] = []
    for n, stride in zip(view.shape, view.stride(), strict=True):
        if n == 1:
            dims.append(None)
            continue
        fits = [
            d for d in order
            if stride % strides[d] == 0 and d not in dims
            and start[d] + (n - 1) * (stride // strides[d]) < sizes[d]
        ]  # fmt: skip
        if not fits:
            return None
        d = fits[0]  # the largest stride: slicing keeps a dim's stride or multiplies it
        spans[d] = (start[d], stride // strides[d], n)
        dims.append(d)
    return Region(tuple(spans), tuple(dims), tuple(view.shape))


def write_taps(start: int, step: int, count: int, spread: bool):  # noqa: ANN201
    """Unit ``o`` of the written axis reads unit ``(o - start) / step`` of the values (unit 0
    when ``spread``: one value broadcast over the region); outside the region nothing (on an
    unbounded input the region is unbounded too)."""

    def taps(o: np.ndarray, exact: bool) -> tuple[np.ndarray, np.ndarray]:
        t = o - start
        hit = t % step == 0
        if exact:
            hit &= (t >= 0) & (t // step < count)
        units = np.zeros_like(t) if spread else t // step
        return units[:, None], hit[:, None]

    return taps


Item = tuple[Span | None, bool]  # the values' span of an axis, and whether it is spread


def write(
    shape: tuple[int, ...], held: Field | None, region: Region, value: Field | None
) -> Result:
    """The field of a tensor of ``shape`` that held ``held`` after values with field
    ``value`` are written into ``region`` (see the module docstring)."""
    if (held is not None and held.is_global) or (value is not None and value.is_global):
        return Field.global_field(), []
    for f in (held, value):
        if f is not None and not f.known:
            return f, []
    split = by_segment(shape, held, region, value)
    if split is not None:
        return split
    n = len((held or value).axes)  # type: ignore[union-attr]
    places = held.places(shape) if held is not None else standard_places(shape, n)
    dims = [None if p.dim is None else len(shape) + p.dim for p in places]
    flat = any(p.inner != 1 for p in places if p.dim is not None)
    items = None if flat else valued(region, value, dims)
    if items is None:
        note = "a write into a tensor whose spatial axes share a dim, or hold them elsewhere"
        return Field.unknown(note), [f"{note}, is not followed; field unknown"]
    new = tuple(scattered(shape, region, item, d) for item, d in zip(items, dims, strict=True))
    template = held or Field((None,) * n).with_axes((None,) * n, places, shape)
    if value is not None and value.bound and not template.bound:
        template = replace(template, bound=True)  # an upper bound written stays one
    partial = region.partial(shape)
    others = [d for d in partial if d not in dims]
    if (value is not None and value.channels is not None) or len(others) > 1:
        return union(held, new, template)
    if others and partial == others:  # some channels, whole spatial axes
        return by_channel(shape, region, others[0], template, held, new)
    if held is not None and held.channels is not None:
        return union(held, new, template)
    if held is None or not partial:
        if not others:
            return Field(new, False, template.layout, template.reason, template.bound), []
        return by_channel(shape, region, others[0], template, None, new)
    if len(partial) == 1:
        k = dims.index(partial[0])
        pairs = enumerate(zip(new, held.axes, strict=True))
        if value is None or all(ch.same_span(a, b) for m, (a, b) in pairs if m != k):
            axes = list(held.axes)
            axes[k] = overlaid(held.axes[k], new[k], region.spans[partial[0]])
            return Field(tuple(axes), False, held.layout, held.reason, template.bound), []
    return union(held, new, template)


def by_segment(
    shape: tuple[int, ...], held: Field | None, region: Region, value: Field | None
) -> Result | None:
    """A write that fills every channel of segments both sides share (the border copies of
    circular padding), or where one side has one field for all channels: :func:`write`
    segment by segment. None when that does not apply."""
    kept = held.channels if held is not None else None
    given = value.channels if value is not None else None
    if kept is None and given is None:
        return None
    if any(c is not None and not c.alone for c in (kept, given)):
        return None
    dims = kept.dims if kept is not None else ()
    if given is not None:
        ours = [region.dims[len(region.shape) + d] for d in given.dims]
        if None in ours:
            return None
        mapped = tuple(d - len(shape) for d in ours)  # type: ignore[operator]
        if kept is not None and (mapped != dims or not np.array_equal(kept.ids, given.ids)):
            return None
        dims = mapped
    if any(len(shape) + d in region.partial(shape) for d in dims):
        return None
    channels = kept or given
    assert channels is not None
    parts: list[ch.Part] = []
    notes: list[str] = []
    template: Field | None = None
    for k in range(len(channels.parts)):
        h = held.part(kept.parts[k]) if held is not None and kept is not None else held
        v = value.part(given.parts[k]) if value is not None and given is not None else value
        got, more = write(shape, h, region, v)
        if got is not None and (got.is_global or not got.known):
            return None
        if got is not None and template is not None and got.layout != template.layout:
            return None
        template = template or got
        parts.append(None if got is None else got.axes)
        notes += [n for n in more if n not in notes]
    if template is None:
        return None, notes
    bound = template.bound or bool(notes)
    return template.segmented(dims, channels.ids, parts, bound), notes


def valued(region: Region, value: Field | None, dims: list[int | None]) -> list[Item] | None:
    """Per axis the values' span, spread over the region when the values have no dim for
    it; None when the values hold an axis in a dim that fills another axis' dim."""
    if value is None:
        return [(None, False)] * len(dims)
    items: list[Item] = []
    for span, p, d in zip(value.axes, value.places(region.shape), dims, strict=True):
        if p.dim is None:
            items.append((span, True))
        elif p.inner != 1 or region.dims[len(region.shape) + p.dim] != d:
            return None
        else:
            items.append((span, False))
    return items


def scattered(shape: tuple[int, ...], region: Region, item: Item, d: int | None) -> Span | None:
    """The values' span of one axis laid into tensor dim ``d``: units outside the region
    see nothing."""
    span, spread = item
    if d is None:
        return span
    start, step, count = region.spans[d]
    if span is None:
        return Span(np.full(shape[d], EMPTY), np.full(shape[d], -EMPTY), None, 0)
    if (start, step, count) == (0, 1, shape[d]) and not spread:
        return span  # the whole axis
    taps = write_taps(start, step, count, spread)
    return window(span, shape[d], taps, 1 if spread else step, 0 if spread else 1)


def overlaid(held: Span | None, new: Span | None, where: tuple[int, int, int]) -> Span | None:
    """``new`` inside the region ``where`` (start, step, count) of one axis, ``held``
    outside; the theoretical field stays ``held``'s (what an unbounded input gives)."""
    if held is None or new is None:
        return new if held is None else held
    start, step, count = where
    units = np.arange(len(held))
    t = units - start
    inside = (t >= 0) & (t % step == 0) & (t // step < count)
    lo, hi = np.where(inside, new.lo, held.lo), np.where(inside, new.hi, held.hi)
    return Span(lo, hi, held.base, held.shift)


def by_channel(
    shape: tuple[int, ...],
    region: Region,
    d: int,
    template: Field,
    held: Field | None,
    new: ch.Axes,
) -> Result:
    """A write into some positions of dim ``d``, which holds no spatial axis, filling the
    spatial axes: channel segments along it, ``new`` inside the region and what ``held``
    had (None: nothing) outside."""
    dim = d - len(shape)
    start, step, count = region.spans[d]
    if held is not None and held.channels is not None:
        if held.channels.dims != (dim,) or not held.channels.alone:
            return union(held, new, template)
        ids, parts = held.channels.ids.copy(), list(held.channels.parts)
    else:
        ids = np.zeros(shape[d], dtype=np.int64)
        parts = [None if held is None else held.axes]
    ids[start : start + step * count : step] = len(parts)
    return template.segmented((dim,), ids, [*parts, new]), []


def union(held: Field | None, new: ch.Axes, template: Field) -> Result:
    """Per axis, unit by unit, the union of what was held and what was written (an upper
    bound); the theoretical field stays the held one's."""
    axes: list[Span | None] = []
    for a, b in zip(held.axes if held is not None else new, new, strict=True):
        if a is None or b is None or a is b:
            axes.append(b if a is None else a)
            continue
        lo, hi = np.minimum(a.lo, b.lo), np.maximum(a.hi, b.hi)
        axes.append(Span(lo, hi, a.base, a.shift) if held is not None else Span(lo, hi, None, 0))
    if all(a is None for a in axes):
        return None, []
    return Field(tuple(axes), False, template.layout, template.reason, True), [UNION]


def into_view(
    base: torch.Tensor, held: Field | None, view: torch.Tensor, value: Field | None
) -> Result:
    """The field of ``base`` (which held ``held``) after ``view``, a view of it, was
    written with values whose field is ``value``."""
    if held is None and value is None:
        return None, []
    region = region_of(base, view)
    if region is None:
        note = "a write into a view that is not a strided block of its tensor"
        return Field.unknown(note), [f"{note} is not followed; field unknown"]
    return write(tuple(base.shape), held, region, value)


@rule(aten.slice_scatter, aten.select_scatter)
@channel_aware
def scatter(call: Call) -> Result:
    """``slice_scatter`` / ``select_scatter``: ``self`` with ``src`` written into a slice
    of dim ``dim`` (a single position for ``select_scatter``)."""
    x, src = call.x(), call.args["src"]
    d = call.args.get("dim", 0) % x.dim()
    spans = [(0, 1, n) for n in x.shape]
    dims: list[int | None] = [k for k in range(x.dim()) if k != d]
    if call.func.overloadpacket is aten.select_scatter:
        spans[d] = (call.args["index"] % x.shape[d], 1, 1)
    else:
        start, step = call.args.get("start") or 0, call.args.get("step") or 1
        spans[d] = (slice(start, None).indices(x.shape[d])[0], step, src.shape[d])
        dims = list(range(x.dim()))
    dims = [k if src.shape[i] > 1 else None for i, k in enumerate(dims)]
    region = Region(tuple(spans), tuple(dims), tuple(src.shape))
    return write(tuple(x.shape), call.field_of(x), region, call.field_of(src))
