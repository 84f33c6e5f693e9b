"""Rules for ops that mix positions: reductions, scans, softmax and transforms, matrix
products (flatten + linear is global; a channels-last linear keeps the field) and ops that
read data-dependent positions."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from functools import partial
from typing import Any

import numpy as np
import torch

from convzoo.analysis.receptive import channels as ch
from convzoo.analysis.receptive.field import Field, Place, remap
from convzoo.analysis.receptive.layout import merge
from convzoo.analysis.receptive.span import EMPTY, Span
from convzoo.analysis.receptive.table import (
    Call,
    Places,
    Result,
    channel_aware,
    keeps_global,
    moving_axes,
    rule,
)

aten = torch.ops.aten


def whole(span: Span, n: int) -> Span:
    """An axis mixed entirely (a linear map or softmax along it): ``n`` units that each see
    the hull of every unit of ``span`` (every unit alike: period 1, stride 0)."""
    lo, hi = int(span.lo.min(initial=EMPTY)), int(span.hi.max(initial=-EMPTY))
    units = np.arange(n, dtype=np.int64)
    return Span(np.full_like(units, lo), np.full_like(units, hi), (lo, hi), 0)


def at(place: Place, _: Place) -> Place:
    """``place``, whatever the axis' place was (a :func:`mixed_axes` ``spot``)."""
    return place


def mixed_axes(
    call: Call, f: Field, places: Places, hit: list[int], spot: Callable[[Place], Place]
) -> tuple[Field, Places, list[str]]:
    """``f`` with the axes ``hit`` mixed entirely (:func:`whole`), each now at
    ``spot(its place)``; every channel segment alike."""
    new = list(places)
    for k in hit:
        new[k] = spot(places[k])

    def mixed(axes: ch.Axes) -> ch.Axes:
        return tuple(
            whole(a, new[k].extent) if k in hit and a is not None else a for k, a in enumerate(axes)
        )

    channels = f.channels
    if channels is not None:
        parts = tuple(None if p is None else mixed(p) for p in channels.parts)
        channels = replace(channels, parts=parts)
    names = ", ".join(str(k) for k in hit)
    note = (
        f"{call.name} mixes all of spatial axis {names} (e.g. a linear layer on the last dim "
        "of a feature map): every unit sees the whole of that axis; the others stay exact"
    )
    field = Field(mixed(f.axes), False, f.layout, f.reason, f.bound, channels)
    return field, tuple(new), [note]


def mixing(
    call: Call, x: torch.Tensor, dims: set[int], keep: bool, cumulative: bool = False
) -> Result:
    """An op mixing every position along ``dims`` (positive) of ``x``: global if that
    includes every spatial axis; a spatial axis alone in a mixed dim sees the whole axis
    (:func:`whole`; an upper bound for cumulative scans); other dims are removed unless
    ``keep``. Channel segments: the union when the channel dims are mixed, else kept."""
    f = call.field_of(x)
    if f is None or f.is_global:
        return f, []
    bound, notes = f.bound, list[str]()
    if f.channels is not None and {x.dim() + d for d in f.channels.dims} & dims:
        f = f.uniform()
    places = f.places(tuple(x.shape))
    hit = [k for k, p in enumerate(places) if p.dim is not None and x.dim() + p.dim in dims]
    if hit:
        present = [k for k, p in enumerate(places) if p.dim is not None]
        if len(hit) == len(present) or any(places[k].inner != 1 for k in hit):
            return Field.global_field(), []

        def spot(p: Place) -> Place:
            extent = call.out.shape[p.dim] if keep and call.out.dim() == x.dim() else 1  # type: ignore[index]
            return Place(p.dim if extent > 1 else None, 1, extent)

        f, places, notes = mixed_axes(call, f, places, hit, spot)
        bound = bound or cumulative
        dims = set() if keep else dims
    n_out = call.out.dim()
    mapping = (
        (lambda p: p) if keep else (lambda p: None if p in dims else p - sum(d < p for d in dims))
    )
    kept = remap(places, x.dim(), n_out, mapping)
    if kept is None:
        return None, [f"{call.name}: a spatial axis was dropped"]
    field = f.with_axes(f.axes, kept, call.out.shape)
    if bound != field.bound:
        field = replace(field, bound=bound)
    if f.channels is None:
        return field, notes
    moved = ch.move(f.channels, x.shape, n_out, mapping)
    if moved is None or not moved.fits(call.out.shape):
        return replace(field.uniform(), bound=True), [*notes, f"{call.name}: {LOST}"]
    return replace(field, channels=moved), notes


LOST = (
    "its channels have different fields and it mixes a dim beside them: each unit's field "
    "is the union over the channels, an upper bound"
)


@rule(
    aten.sum, aten.mean, aten.amax, aten.amin, aten.max, aten.min, aten.var, aten.std,
    aten.var_mean, aten.std_mean, aten.norm, aten.linalg_vector_norm, aten.prod, aten.logsumexp,
    aten.any, aten.all, aten.argmax, aten.argmin, aten.median, aten.mode, aten.kthvalue,
    aten.nansum, aten.count_nonzero,
)  # fmt: skip
@rule(
    aten._softmax, aten._log_softmax, aten.cumsum, aten.cumprod, aten.cummax, aten.cummin,
    aten.logcumsumexp, aten.sort, aten.topk, aten._fft_r2c, aten._fft_c2r, aten._fft_c2c,
    scan=True,
)  # fmt: skip
@keeps_global
@channel_aware
def reduction(call: Call, scan: bool = False) -> Result:
    """Reductions over ``dim`` (all dims when absent), and scans/softmax/FFT (shape kept)."""
    x = call.x()
    dim = call.args.get("dim")
    dims = [dim] if isinstance(dim, int) else list(dim or range(x.dim()))
    keep = scan or bool(call.args.get("keepdim"))
    cumulative = call.func.overloadpacket in CUMULATIVE
    return mixing(call, x, {d % max(x.dim(), 1) for d in dims}, keep, cumulative)


CUMULATIVE = {aten.cumsum, aten.cumprod, aten.cummax, aten.cummin, aten.logcumsumexp}
"""Scans whose unit ``u`` sees units ``0..u`` only (the whole axis is an upper bound)."""


MIX = None  # marks a contracted dim in CONTRACTIONS
CONTRACTIONS: dict[Any, tuple[tuple[str, dict[int, int | None]], ...]] = {
    aten.mm: (("self", {-1: MIX}), ("mat2", {-2: MIX})),
    aten.bmm: (("self", {-1: MIX}), ("mat2", {-2: MIX})),
    aten.addmm: (("self", {}), ("mat1", {-1: MIX}), ("mat2", {-2: MIX})),
    aten.baddbmm: (("self", {}), ("batch1", {-1: MIX}), ("batch2", {-2: MIX})),
    aten.addbmm: (("self", {}), ("batch1", {-3: MIX, -1: MIX}), ("batch2", {-3: MIX, -2: MIX})),
    aten.mv: (("self", {-2: -1, -1: MIX}), ("vec", {-1: MIX})),
    aten.addmv: (("self", {}), ("mat", {-2: -1, -1: MIX}), ("vec", {-1: MIX})),
    aten.dot: (("self", {-1: MIX}), ("tensor", {-1: MIX})),
}


@rule(*CONTRACTIONS)
@keeps_global
@moving_axes
@channel_aware
def contraction(call: Call) -> Result:
    """Matrix products: spatial axes all in a contracted dim make the output global
    (flatten then linear); one axis alone there sees the whole of that axis, in the
    output's last dim (a linear layer on the last dim of a feature map); elsewhere an axis
    moves to the matching output dim (channels-last linear). Channel segments in a
    contracted dim are merged (exact); elsewhere their union is an upper bound."""
    pairs: list[tuple[Field, Places | None]] = []
    notes: list[str] = []
    bound = False
    kept: list[ch.Channels] = []
    for name, dims in CONTRACTIONS[call.func.overloadpacket]:
        t = call.args[name]
        f = call.field_of(t)
        if f is None or f.is_global:
            pairs += [(f, None)] if f else []
            continue
        places = f.places(tuple(t.shape))
        hit = [k for k, p in enumerate(places) if p.dim is not None and dims.get(p.dim, 0) is MIX]
        if hit:
            present = [p for p in places if p.dim is not None]
            taken = any(p.dim is not None and dims.get(p.dim, p.dim) == -1 for p in places)
            if len(hit) == len(present) or any(places[k].inner != 1 for k in hit) or taken:
                return Field.global_field(), []
            last = Place(-1, 1, call.out.shape[-1]) if call.out.dim() else Place(None)
            f, places, notes = mixed_axes(call, f, places, hit, partial(at, last))
        if f.channels is not None:
            mixed = [dims.get(c, 0) is MIX for c in f.channels.dims]
            if not any(mixed) and len(f.channels.dims) == 1:
                moved = dims.get(f.channels.dims[0], f.channels.dims[0])
                kept.append(replace(f.channels, dims=(moved,)))  # type: ignore[arg-type]
            else:
                bound = bound or not all(mixed)
            f = f.uniform()
        new = tuple(
            p if p.dim is None or k in hit else Place(dims.get(p.dim, p.dim), p.inner, p.extent)
            for k, p in enumerate(places)
        )
        pairs.append((f, new))
    if len({places for _, places in pairs if places}) > 1:
        return Field.global_field(), [
            f"{call.name} of two spatial operands (attention-like): global"
        ]
    field, more = merge(pairs, call.out.shape, call.name)
    local = field is not None and field.known and not field.is_global
    if field is not None and local and len(kept) == 1 and kept[0].fits(call.out.shape):
        field = replace(field, channels=kept[0])
    elif kept:
        bound = True
    if bound and field is not None and field.known and not field.is_global:
        return replace(field, bound=True), [*notes, *more, f"{call.name}: {LOST}"]
    return field, [*notes, *more]


@rule(aten.grid_sampler_2d, aten.grid_sampler_3d, aten.max_unpool2d, aten.fractional_max_pool2d)
def anywhere(call: Call) -> Result:
    """Ops that read or write data-dependent positions: any input pixel may be seen."""
    return Field.global_field(), [f"{call.name} reads data-dependent positions: field is global"]
