"""Rules for element-wise ops, merges and layout ops (views, dim moves, slicing, gathers):
they move the axes between tensor dims (:class:`~.field.Place`) and keep or cut their spans."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from convzoo.analysis.receptive.field import (
    Field,
    Place,
    merge_fields,
    remap,
    standard_places,
    view_places,
)
from convzoo.analysis.receptive.intervals import affine, collapse, concat, union_spans, window
from convzoo.analysis.receptive.span import Span
from convzoo.analysis.receptive.table import (
    Call,
    Places,
    Result,
    keeps_global,
    moving_axes,
    rule,
    tensors_in,
)

aten = torch.ops.aten


def merge(pairs: list[tuple[Field, Places | None]], shape: torch.Size, what: str) -> Result:
    """Union of fields whose places are already those of the output (None: lost)."""
    if any(f.is_global for f, _ in pairs):
        return Field.global_field(), []
    if any(places is None for _, places in pairs):
        return None, [f"{what}: a spatial axis could not be followed through this op"]
    if len({places for _, places in pairs}) > 1:
        return None, [
            f"{what}: operands hold their spatial axes differently (e.g. a 1x1 map broadcast "
            "over a larger one); the field is unknown"
        ]
    fields = [
        f if f.layout is None and places == standard_places(shape, len(f.axes)) else
        f.with_axes(f.axes, places, shape)  # type: ignore[arg-type]
        for f, places in pairs
    ]  # fmt: skip
    field, notes = merge_fields(fields)
    return field, [f"{what}: {n}" for n in notes]


def traced_pairs(call: Call, tensors: list[torch.Tensor]) -> list[tuple[Field, Places | None]]:
    fields = [(t, call.field_of(t)) for t in tensors]
    return [(f, None if f.is_global else f.places(tuple(t.shape))) for t, f in fields if f]


def elementwise(call: Call) -> Result:
    """Element-wise ops (with broadcasting): the union of every traced operand's field."""
    return merge(traced_pairs(call, tensors_in(call.args.values())), call.out.shape, call.name)


@rule(aten.copy_)
def copy(call: Call) -> Result:
    """``self.copy_(src)``: self now holds ``src`` (broadcast), whatever it held before."""
    pairs = traced_pairs(call, [call.args["src"]])
    return merge(pairs, call.out.shape, "copy_") if pairs else (None, [])


@rule(
    aten.detach, aten.alias, aten.lift_fresh, aten._to_copy, aten.native_dropout,
    aten.native_batch_norm, aten._native_batch_norm_legit, aten.native_layer_norm,
    aten._native_batch_norm_legit_functional, aten._native_batch_norm_legit_no_training,
    aten.native_group_norm, aten.cudnn_batch_norm, aten.hardswish, aten.hardswish_,
)  # fmt: skip
def same_as_input(call: Call) -> Result:
    """Layout-preserving ops and normalisations (their statistics count as constants)."""
    return call.field_of(call.x()), []


@rule(
    aten.fill_, aten.zero_, aten.bernoulli_, aten.bernoulli, aten.normal_, aten.uniform_,
    aten.empty_like, aten.zeros_like, aten.ones_like, aten.full_like, aten.rand_like,
    aten.randn_like, aten.new_zeros, aten.new_ones, aten.new_empty, aten.new_full,
    aten.new_empty_strided,
)  # fmt: skip
def constant(call: Call) -> Result:
    """Ops whose output does not depend on the traced input's values."""
    return None, []


@rule(aten.cat, aten.stack)
def cat(call: Call) -> Result:
    """Concatenation: off the spatial axes the union over the parts (like a merge); along a
    spatial axis held alone in that dim, the parts' spans laid end to end (exact)."""
    stacking = call.func.overloadpacket is aten.stack
    d = call.args.get("dim", 0) % call.out.dim()
    pairs: list[tuple[Field, Places | None]] = []
    along_axis: list[int] = []
    for t in call.args["tensors"]:
        f = call.field_of(t)
        if f is None or f.is_global:
            pairs += [(f, None)] if f else []
            continue
        places = f.places(tuple(t.shape))
        on_d = [p.dim is not None and t.dim() + p.dim == d and not stacking for p in places]
        alone = [k for k, p in enumerate(places) if on_d[k] and p.inner == 1]
        along_axis += alone
        lost = Place(d - t.dim(), 0, call.out.shape[d])  # merged there: order lost
        places = tuple(lost if on_d[k] else p for k, p in enumerate(places))
        move = (lambda p: p + (p >= d)) if stacking else (lambda p: p)
        pairs.append((f, remap(places, t.dim(), call.out.dim(), move)))
    if along_axis and len(set(along_axis)) == 1 and len(along_axis) == len(call.args["tensors"]):
        return spatial_cat(call, along_axis[0], d)
    return merge(pairs, call.out.shape, call.name)


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


def moved(call: Call, mapping: Callable[[int], int | None]) -> Result:
    """The input's field with its dims renumbered by ``mapping`` (positive in -> out)."""
    x = call.x()
    f = call.field_of(x)
    if f is None or f.is_global:
        return f, []
    places = remap(f.places(tuple(x.shape)), x.dim(), call.out.dim(), mapping)
    if places is None:
        return None, [f"{call.name}: a spatial axis was dropped"]
    return f.with_axes(f.axes, places, call.out.shape), []


@rule(aten.view, aten._unsafe_view, aten.reshape, aten.view_copy, aten._reshape_alias)
@keeps_global
@moving_axes
def view(call: Call) -> Result:
    x = call.x()
    f = call.field_of(x)
    if f is None or f.is_global:
        return f, []
    places = view_places(f.places(tuple(x.shape)), tuple(x.shape), tuple(call.out.shape))
    if places is None:
        return None, [f"{call.name}: a spatial axis was split across dims; field unknown"]
    return f.with_axes(f.axes, places, call.out.shape), []


@rule(aten.permute)
@keeps_global
@moving_axes
def permute(call: Call) -> Result:
    return moved(call, [d % call.x().dim() for d in call.args["dims"]].index)


@rule(aten.transpose, aten.t)
@keeps_global
@moving_axes
def transpose(call: Call) -> Result:
    n = max(call.x().dim(), 1)
    a, b = call.args.get("dim0", 0) % n, call.args.get("dim1", 1) % n
    return moved(call, lambda p: b if p == a else a if p == b else p)


@rule(aten.unsqueeze)
@keeps_global
@moving_axes
def unsqueeze(call: Call) -> Result:
    d = call.args["dim"] % call.out.dim()
    return moved(call, lambda p: p + (p >= d))


@rule(aten.expand)
@keeps_global
@moving_axes
def expand(call: Call) -> Result:
    return moved(call, lambda p: p + call.out.dim() - call.x().dim())


@rule(aten.squeeze)
@keeps_global
@moving_axes
def squeeze(call: Call) -> Result:
    x = call.x()
    dims = call.args.get("dim")
    dims = range(x.dim()) if dims is None else [dims] if isinstance(dims, int) else dims
    gone = {d % x.dim() for d in dims if x.shape[d] == 1} if x.dim() else set()
    return moved(call, lambda p: None if p in gone else p - sum(g < p for g in gone))


Exact = Callable[[Span, Place], tuple[Span, Place]]


def along(call: Call, d: int, exact: Exact) -> Result:
    """An op on dim ``d`` of the input: ``exact`` rewrites an axis alone in that dim; an
    axis merged with others there loses its order (its span becomes one hull); other dims
    are renumbered if ``d`` is dropped."""
    x = call.x()
    f = call.field_of(x)
    if f is None or f.is_global:
        return f, []
    axes, places = list(f.axes), list(f.places(tuple(x.shape)))
    drop = call.out.dim() < x.dim()
    for i, p in enumerate(places):
        axis = axes[i]
        if p.dim is None or x.dim() + p.dim != d or axis is None:
            continue
        if p.inner == 1 and p.extent == x.shape[d]:
            axes[i], places[i] = exact(axis, p)
        else:
            axes[i] = collapse(axis)
            places[i] = Place(None if drop else p.dim, 0, 1 if drop else call.out.shape[d])
    mapping = (lambda p: p - (p > d)) if drop else (lambda p: p)
    kept = remap(tuple(places), x.dim(), call.out.dim(), mapping)
    return f.with_axes(axes, kept, call.out.shape), []  # type: ignore[arg-type]


def take(a: Span, p: Place, begin: int, step: int, extent: int) -> tuple[Span, Place]:
    """Keep units ``begin, begin + step, ...`` (``extent`` of them)."""
    return window(a, extent, affine(step, begin, 1, 1), 1, step), Place(p.dim, 1, extent)


@rule(aten.slice, aten.narrow, aten.select, aten.split, aten.split_with_sizes, aten.unbind)
@keeps_global
def slicing(call: Call) -> Result:
    """Slices, ``select`` (the axis loses its dim) and pieces of splits (``call.offset``)."""
    x = call.x()
    d = call.args.get("dim", 0) % x.dim()
    begin = call.args.get("start", call.args.get("index")) or call.offset
    begin, step = slice(begin, None).indices(x.shape[d])[0], call.args.get("step") or 1
    if call.out.dim() < x.dim():
        return along(call, d, lambda a, p: (take(a, p, begin, 1, 1)[0], Place(None)))
    return along(call, d, lambda a, p: take(a, p, begin, step, call.out.shape[d]))


@rule(aten.index_select, aten.gather)
def gather(call: Call) -> Result:
    """Positions picked by an index tensor: an axis in ``dim`` loses its order (one hull)."""
    x, d = call.x(), call.args["dim"] % max(call.x().dim(), 1)
    if call.out.dim() != x.dim():
        return None, [f"{call.name}: unexpected output rank; field unknown"]
    return along(call, d, lambda a, p: (collapse(a), Place(p.dim, 0, call.out.shape[d])))


@rule(aten.flip)
@keeps_global
def flip(call: Call) -> Result:
    """Reversed dims: an axis there keeps every unit's field, in reverse order."""
    field: Result = (call.field_of(call.x()), [])
    for dim in call.args["dims"]:
        step = Call(call.func, call.args, call.out, constant_field(field[0]))
        field = along(step, dim % call.x().dim(), lambda a, p: (reverse(a), p))
    return field


def constant_field(field: Field | None) -> Callable[[Any], Field | None]:
    """A ``field_of`` that answers ``field`` for any tensor."""
    return lambda t: field


def reverse(a: Span) -> Span:
    """The units of ``a`` in reverse order (no period kept)."""
    units = np.arange(len(a))[::-1]
    return Span(a.lo[units], a.hi[units], None, 0)


@rule(aten.unfold)
@keeps_global
def unfold(call: Call) -> Result:
    """``Tensor.unfold(dim, size, step)``: windows along ``dim`` (each sees ``size`` units)."""
    d, size, step = call.args["dimension"] % call.x().dim(), call.args["size"], call.args["step"]
    n_out = call.out.shape[d]

    def exact(a: Span, p: Place) -> tuple[Span, Place]:
        return window(a, n_out, affine(step, 0, size, 1), 1, step), Place(p.dim, 1, n_out)

    return along(call, d, exact)
