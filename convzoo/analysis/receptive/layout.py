"""Rules for element-wise ops, merges and layout ops (views, dim moves, slicing, gathers):
they move the axes between tensor dims (:class:`~.field.Place`) and keep or cut their spans."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from functools import partial
from typing import Any

import numpy as np
import torch

from convzoo.analysis.receptive import channels as ch
from convzoo.analysis.receptive.field import (
    Field,
    Place,
    remap,
    standard_places,
    view_groups,
    view_places,
)
from convzoo.analysis.receptive.intervals import affine, collapse, window
from convzoo.analysis.receptive.merging import merge_fields
from convzoo.analysis.receptive.span import Span
from convzoo.analysis.receptive.table import (
    Call,
    Places,
    Result,
    channel_aware,
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


@channel_aware
def elementwise(call: Call) -> Result:
    """Element-wise ops (with broadcasting): the union of every traced operand's field."""
    return merge(traced_pairs(call, tensors_in(call.args.values())), call.out.shape, call.name)


@rule(aten.copy_)
@channel_aware
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
@channel_aware
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


def moved(call: Call, mapping: Callable[[int], int | None]) -> Result:
    """The input's field with its dims renumbered by ``mapping`` (positive in -> out)."""
    x = call.x()
    f = call.field_of(x)
    if f is None or f.is_global:
        return f, []
    places = remap(f.places(tuple(x.shape)), x.dim(), call.out.dim(), mapping)
    if places is None:
        return None, [f"{call.name}: a spatial axis was dropped"]
    field = f.with_axes(f.axes, places, call.out.shape)
    if f.channels is None:
        return field, []
    return with_channels(call, field, ch.move(f.channels, x.shape, call.out.dim(), mapping))


def with_channels(call: Call, field: Field, channels: ch.Channels | None) -> Result:
    """``field`` with its channel segments now ``channels`` (None: lost, so the union over
    channels, flagged as an upper bound)."""
    if channels is not None and channels.fits(call.out.shape):
        return replace(field, channels=channels), []
    return replace(field.uniform(), bound=True), [f"{call.name}: {LOST_MOVE}"]


UNPICKED = (
    "its channels have different fields and which channels it keeps is not followed (an "
    "index tensor on the meta device, or channels merged with another dim): each unit's "
    "field is the union over the channels, an upper bound"
)
LOST_MOVE = (
    "its channels have different fields and this op scatters them over other dims: each "
    "unit's field is the union over the channels, an upper bound"
)


@rule(aten.view, aten._unsafe_view, aten.reshape, aten.view_copy, aten._reshape_alias)
@keeps_global
@moving_axes
@channel_aware
def view(call: Call) -> Result:
    x = call.x()
    f = call.field_of(x)
    if f is None or f.is_global:
        return f, []
    a, b = tuple(x.shape), tuple(call.out.shape)
    places = view_places(f.places(a), a, b)
    if places is None:
        return None, [f"{call.name}: a spatial axis was split across dims; field unknown"]
    field = f.with_axes(f.axes, places, call.out.shape)
    if f.channels is None:
        return field, []
    return with_channels(call, field, view_channels(f.channels, a, b))


def view_channels(
    channels: ch.Channels, a: tuple[int, ...], b: tuple[int, ...]
) -> ch.Channels | None:
    """The channel dims through a view from shape ``a`` to ``b``: one dim of channels moves
    like a spatial axis (:func:`~.field.view_places`: alone again, or merged with other
    dims at a place value); several (a channel shuffle) follow :func:`~.channels.regroup`."""
    if len(channels.dims) == 1:
        place = Place(channels.dims[0], channels.inner, len(channels.ids))
        moved = view_places((place,), a, b)
        if moved is not None and moved[0].dim is not None and moved[0].inner > 0:
            return replace(channels, dims=(moved[0].dim,), inner=moved[0].inner)
    return ch.regroup(channels, view_groups(a, b), len(a), len(b))


@rule(aten.permute)
@keeps_global
@moving_axes
@channel_aware
def permute(call: Call) -> Result:
    return moved(call, [d % call.x().dim() for d in call.args["dims"]].index)


@rule(aten.transpose, aten.t)
@keeps_global
@moving_axes
@channel_aware
def transpose(call: Call) -> Result:
    n = max(call.x().dim(), 1)
    a, b = call.args.get("dim0", 0) % n, call.args.get("dim1", 1) % n
    return moved(call, lambda p: b if p == a else a if p == b else p)


@rule(aten.unsqueeze)
@keeps_global
@moving_axes
@channel_aware
def unsqueeze(call: Call) -> Result:
    d = call.args["dim"] % call.out.dim()
    return moved(call, lambda p: p + (p >= d))


@rule(aten.expand)
@keeps_global
@moving_axes
@channel_aware
def expand(call: Call) -> Result:
    return moved(call, lambda p: p + call.out.dim() - call.x().dim())


@rule(aten.squeeze)
@keeps_global
@moving_axes
@channel_aware
def squeeze(call: Call) -> Result:
    x = call.x()
    dims = call.args.get("dim")
    dims = range(x.dim()) if dims is None else [dims] if isinstance(dims, int) else dims
    gone = {d % x.dim() for d in dims if x.shape[d] == 1} if x.dim() else set()
    return moved(call, lambda p: None if p in gone else p - sum(g < p for g in gone))


Exact = Callable[[Span, Place], tuple[Span, Place]]
ChannelOp = Callable[[ch.Channels, tuple[int, ...]], tuple[np.ndarray, tuple[int, ...]] | None]


def along(call: Call, d: int, exact: Exact, channel_op: ChannelOp | None = None) -> Result:
    """An op on dim ``d`` of the input: ``exact`` rewrites an axis alone in that dim; an
    axis merged with others there loses its order (its span becomes one hull); other dims
    are renumbered if ``d`` is dropped. Channel segments follow: ``channel_op(channels,
    shape)`` gives the kept channels' ids and dims when ``d`` is a channel dim (None, or
    no ``channel_op``: the union over channels, flagged as an upper bound)."""
    x = call.x()
    f = call.field_of(x)
    if f is None or f.is_global:
        return f, []
    shape = tuple(x.shape)
    places = list(f.places(shape))
    drop = call.out.dim() < x.dim()
    rewrite: dict[int, Callable[[Span], Span]] = {}
    for i, p in enumerate(places):
        axis = f.axes[i]
        if p.dim is None or x.dim() + p.dim != d or axis is None:
            continue
        if p.inner == 1 and p.extent == x.shape[d]:
            places[i] = exact(axis, p)[1]
            rewrite[i] = partial(first_of_exact, exact, p)
        else:
            places[i] = Place(None if drop else p.dim, 0, 1 if drop else call.out.shape[d])
            rewrite[i] = collapse
    mapping = (lambda p: p - (p > d)) if drop else (lambda p: p)
    kept = remap(tuple(places), x.dim(), call.out.dim(), mapping)

    def new_axes(axes: ch.Axes) -> ch.Axes:
        return tuple(
            rewrite[i](a) if i in rewrite and a is not None else a for i, a in enumerate(axes)
        )

    field = f.with_axes(new_axes(f.axes), kept, call.out.shape)  # type: ignore[arg-type]
    if f.channels is None:
        return field, []
    channels = f.channels
    if d - x.dim() in channels.dims:
        picked = channel_op(channels, shape) if channel_op and channels.alone else None
        if picked is None:
            return replace(field.uniform(), bound=True), [f"{call.name}: {UNPICKED}"]
        ids, dims = picked
    else:
        n_out = call.out.dim()
        ids, dims = channels.ids, tuple(mapping(x.dim() + c) - n_out for c in channels.dims)
    if not dims:  # a single channel is left
        part = channels.parts[int(ids[0])]
        return (None if part is None else replace(field.uniform(), axes=new_axes(part))), []
    parts = [None if p is None else new_axes(p) for p in channels.parts]
    return field.segmented(dims, ids, parts, None, channels.inner), []


def first_of_exact(exact: Exact, p: Place, a: Span) -> Span:
    return exact(a, p)[0]


def take(a: Span, p: Place, begin: int, step: int, extent: int) -> tuple[Span, Place]:
    """Keep units ``begin, begin + step, ...`` (``extent`` of them)."""
    return window(a, extent, affine(step, begin, 1, 1), 1, step), Place(p.dim, 1, extent)


@rule(aten.slice, aten.narrow, aten.select, aten.split, aten.split_with_sizes, aten.unbind)
@keeps_global
@channel_aware
def slicing(call: Call) -> Result:
    """Slices, ``select`` (the axis loses its dim) and pieces of splits (``call.offset``)."""
    x = call.x()
    d = call.args.get("dim", 0) % x.dim()
    begin = call.args.get("start", call.args.get("index")) or call.offset
    begin, step = slice(begin, None).indices(x.shape[d])[0], call.args.get("step") or 1
    dim, count = d - x.dim(), call.out.shape[d] if call.out.dim() == x.dim() else 1

    def channel_op(channels: ch.Channels, shape: tuple[int, ...]) -> tuple[np.ndarray, tuple]:
        if call.out.dim() < x.dim():
            return ch.pick(channels, shape, dim, begin, True)  # type: ignore[arg-type]
        return ch.pick(channels, shape, dim, slice(begin, begin + step * count, step), False)

    if call.out.dim() < x.dim():
        return along(call, d, lambda a, p: (take(a, p, begin, 1, 1)[0], Place(None)), channel_op)
    return along(call, d, lambda a, p: take(a, p, begin, step, count), channel_op)


@rule(aten.index_select, aten.gather)
@channel_aware
def gather(call: Call) -> Result:
    """Positions picked by an index tensor: an axis in ``dim`` loses its order (one hull)."""
    return picked(call, call.args["dim"] % max(call.x().dim(), 1), call.args["index"])


@rule(aten.index)
@channel_aware
def index(call: Call) -> Result:
    """``x[..., idx]`` with one 1-D integer index tensor: :func:`gather` along its dim."""
    given = [(d, t) for d, t in enumerate(call.args["indices"]) if t is not None]
    if len(given) != 1 or given[0][1].dim() != 1 or given[0][1].dtype == torch.bool:
        return None, [f"{call.name}: several, boolean or multi-dim index tensors; field unknown"]
    return picked(call, *given[0])


def picked(call: Call, d: int, index: torch.Tensor) -> Result:
    """Positions ``index`` taken along dim ``d``: an axis there loses its order (one hull);
    channels keep their own fields when the index values are known (not meta)."""
    x = call.x()
    if call.out.dim() != x.dim():
        return None, [f"{call.name}: unexpected output rank; field unknown"]

    def channel_op(channels: ch.Channels, shape: tuple[int, ...]) -> tuple | None:
        if call.func.overloadpacket is aten.gather or index.device.type == "meta":
            return None  # positions unknown on meta tensors
        picked = index.detach().cpu().reshape(-1).long().numpy() % shape[d]
        return ch.pick(channels, shape, d - x.dim(), picked, False)

    return along(
        call, d, lambda a, p: (collapse(a), Place(p.dim, 0, call.out.shape[d])), channel_op
    )


@rule(aten.flip)
@keeps_global
@channel_aware
def flip(call: Call) -> Result:
    """Reversed dims: an axis there keeps every unit's field, in reverse order."""
    field, notes = call.field_of(call.x()), []
    backwards = slice(None, None, -1)
    for dim in call.args["dims"]:
        d = dim % call.x().dim()

        def channel_op(channels: ch.Channels, shape: tuple[int, ...], d: int = d) -> tuple:
            return ch.pick(channels, shape, d - len(shape), backwards, False)

        step = Call(call.func, call.args, call.out, constant_field(field))
        field, more = along(step, d, lambda a, p: (reverse(a), p), channel_op)
        notes += more
    return field, notes


def constant_field(field: Field | None) -> Callable[[Any], Field | None]:
    """A ``field_of`` that answers ``field`` for any tensor."""
    return lambda t: field


def reverse(a: Span) -> Span:
    """The units of ``a`` in reverse order (no period kept)."""
    units = np.arange(len(a))[::-1]
    return Span(a.lo[units], a.hi[units], None, 0)


@rule(aten.unfold)
@keeps_global
@channel_aware
def unfold(call: Call) -> Result:
    """``Tensor.unfold(dim, size, step)``: windows along ``dim`` (each sees ``size`` units)."""
    d, size, step = call.args["dimension"] % call.x().dim(), call.args["size"], call.args["step"]
    n_out = call.out.shape[d]

    def exact(a: Span, p: Place) -> tuple[Span, Place]:
        return window(a, n_out, affine(step, 0, size, 1), 1, step), Place(p.dim, 1, n_out)

    return along(call, d, exact)
