"""Rules for ops that mix positions: reductions, scans, softmax and transforms, matrix
products (flatten + linear is global; a channels-last linear keeps the field) and ops that
read data-dependent positions."""

from __future__ import annotations

from typing import Any

import torch

from convzoo.analysis.receptive.field import Field, Place, remap
from convzoo.analysis.receptive.layout import merge
from convzoo.analysis.receptive.table import Call, Places, Result, keeps_global, moving_axes, rule

aten = torch.ops.aten


def mixing(call: Call, x: torch.Tensor, dims: set[int], keep: bool) -> Result:
    """An op mixing every position along ``dims`` (positive) of ``x``: global if that
    includes a spatial axis, else the field with those dims removed unless ``keep``."""
    f = call.field_of(x)
    if f is None or f.is_global:
        return f, []
    places = f.places(tuple(x.shape))
    hit = [p.dim is not None and x.dim() + p.dim in dims for p in places]
    if any(hit):
        partial_hit = not all(hit) and any(p.dim is not None for p in places)
        note = f"{call.name} mixes one spatial axis only; reported as global"
        return Field.global_field(), [note] if partial_hit else []
    n_out = call.out.dim()
    mapping = (
        (lambda p: p) if keep else (lambda p: None if p in dims else p - sum(d < p for d in dims))
    )
    kept = remap(places, x.dim(), n_out, mapping)
    if kept is None:
        return None, [f"{call.name}: a spatial axis was dropped"]
    return f.with_axes(f.axes, kept, call.out.shape), []


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
def reduction(call: Call, scan: bool = False) -> Result:
    """Reductions over ``dim`` (all dims when absent), and scans/softmax/FFT (shape kept)."""
    x = call.x()
    dim = call.args.get("dim")
    dims = [dim] if isinstance(dim, int) else list(dim or range(x.dim()))
    keep = scan or bool(call.args.get("keepdim"))
    return mixing(call, x, {d % max(x.dim(), 1) for d in dims}, keep)


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
def contraction(call: Call) -> Result:
    """Matrix products: a spatial axis in a contracted dim makes the output global (flatten
    then linear); elsewhere it moves to the matching output dim (channels-last linear)."""
    pairs: list[tuple[Field, Places | None]] = []
    for name, dims in CONTRACTIONS[call.func.overloadpacket]:
        t = call.args[name]
        f = call.field_of(t)
        if f is None or f.is_global:
            pairs += [(f, None)] if f else []
            continue
        places = f.places(tuple(t.shape))
        if any(p.dim is not None and dims.get(p.dim, 0) is MIX for p in places):
            return Field.global_field(), []
        new = tuple(
            p if p.dim is None else Place(dims.get(p.dim, p.dim), p.inner, p.extent) for p in places
        )
        pairs.append((f, new))
    if len({places for _, places in pairs if places}) > 1:
        return Field.global_field(), [
            f"{call.name} of two spatial operands (attention-like): global"
        ]
    return merge(pairs, call.out.shape, call.name)


@rule(aten.grid_sampler_2d, aten.grid_sampler_3d, aten.max_unpool2d, aten.fractional_max_pool2d)
def anywhere(call: Call) -> Result:
    """Ops that read or write data-dependent positions: any input pixel may be seen."""
    return Field.global_field(), [f"{call.name} reads data-dependent positions: field is global"]
