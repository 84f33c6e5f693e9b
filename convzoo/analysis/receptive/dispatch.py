"""The entry points the tracer calls for every op: :func:`propagate` (the field of an op's
output) and :func:`propagate_outputs` (one field per output). They look the op up in the
op table (by overload, then element-wise tag, then op packet) and never raise."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from functools import cache
from typing import Any

import torch

from convzoo.analysis.ops.table import TABLE, is_inplace, tagged
from convzoo.analysis.receptive.channels import Part
from convzoo.analysis.receptive.field import Field
from convzoo.analysis.receptive.layout import (
    constant,
    constant_field,
    elementwise,
    same_as_input,
    slicing,
)
from convzoo.analysis.receptive.table import (
    Call,
    FieldOf,
    FieldRule,
    Result,
    bind,
    has_mark,
    tensors_in,
)

aten = torch.ops.aten


@cache
def is_pointwise(func: Any) -> bool:
    """Whether ``func`` (or, for an in-place op, its functional form) is element-wise."""
    if tagged(func, "pointwise"):
        return True
    if not is_inplace(func):
        return False
    functional = getattr(aten, func.overloadpacket.__name__.rstrip("_"), None)
    overload = getattr(functional, func._overloadname, None) if functional else None
    return overload is not None and tagged(overload, "pointwise")


def lookup(func: Any) -> FieldRule | None:
    """The field rule for ``func``: one registered for this overload, then the
    element-wise rule for element-wise ops, then one registered for its op packet."""
    found = TABLE.resolve(func)
    if found.field_exact:
        return found.field
    return elementwise if is_pointwise(func) else found.field


@cache
def passes_through(func: Any) -> bool:
    """Whether ``func``'s rule hands a single traced operand's field on unchanged when the
    output has that operand's shape (element-wise ops, normalisations)."""
    return lookup(func) in (elementwise, same_as_input)


@cache
def keeps_global_field(func: Any) -> bool:
    """Whether ``func``'s output field is global whenever every traced operand's is
    (element-wise ops and the rules marked :func:`~.table.keeps_global`)."""
    found = lookup(func)
    return found is elementwise or has_mark(found, "keeps_global")


@cache
def moves_axes(func: Any) -> bool:
    """Whether ``func``'s rule is marked :func:`~.table.moving_axes`."""
    return has_mark(lookup(func), "moving_axes")


def propagate(
    func: Any, args: Sequence[Any], kwargs: dict[str, Any], out: Any, field_of: FieldOf
) -> Result:
    """The field of ``func``'s (first) output, and notes; never raises.

    ``field_of(tensor)`` gives a tensor argument's field (None for parameters and constants).
    Ops without traced inputs, or whose output is not a tensor, give ``(None, [])``, as do
    ops whose output does not depend on their input's values (``zeros_like``). Where the
    field cannot be followed (no rule, or the rule gives up) the result is
    ``Field.unknown(reason)`` with a note; an unknown input makes the output unknown (no
    new note) unless the output is global. Ops with no rule whose traced inputs are all
    global give the global field.
    """
    try:
        first = out[0] if isinstance(out, (tuple, list)) and out else out
        pairs = [(t, f) for t in tensors_in([*args, *kwargs.values()]) if (f := field_of(t))]
        traced = [f for _, f in pairs]
        if not traced or not isinstance(first, torch.Tensor):
            return None, []
        found = lookup(func)
        if (
            len(pairs) == 1
            and found in (elementwise, same_as_input)
            and pairs[0][0].shape == first.shape
        ):
            return traced[0], []  # one operand, same layout: the field passes through
        if found is None and all(f.is_global for f in traced):
            return Field.global_field(), []
        if found is constant or not any(f.known for f in traced):
            unknown = next((f for f in traced if not f.known), None)
            return (None if found is constant else unknown or Field.unknown()), []
        call = Call(func, bind(func, args, kwargs), first, field_of)
        if found is None:
            field, notes = None, [f"no receptive-field rule for {func}"]
        elif any(f.channels is not None for f in traced):
            field, notes = by_channel(found, call)
        else:
            field, notes = found(call)
    except Exception as exc:  # a rule must never break the analysis
        field, notes = None, [f"receptive-field rule for {func} failed: {exc!r}"]
    known = all(f.known for f in traced)
    if field is None and notes:
        field = Field.unknown(notes[0])
    elif field is not None and not known and not field.is_global:
        field = next(f for f in traced if not f.known)
    return field, notes if known else []


def by_channel(found: FieldRule, call: Call) -> Result:
    """``found`` applied to operands some of which have channel segments: rules marked
    ``channel_aware`` handle them, ``per_channel`` rules run once per segment, and the
    others see the union over channels, exact for rules that mix channels and otherwise
    flagged as an upper bound."""
    if has_mark(found, "channel_aware"):
        field, notes = found(call)
        if field is None or field.channels is None or field.channels.fits(call.out.shape):
            return field, notes
        return replace(field.uniform(), bound=True), [*notes, f"{call.name}: {LOST}"]
    if has_mark(found, "per_channel"):
        lifted = per_segment(found, call)
        if lifted is not None:
            return lifted
    field_of = call.field_of

    def uniform(t: Any) -> Field | None:
        f = field_of(t)
        return f.uniform() if f is not None else None

    field, notes = found(Call(call.func, call.args, call.out, uniform, call.offset))
    if has_mark(found, "mixes_channels") or field is None or field.is_global or not field.known:
        return field, notes
    return replace(field, bound=True), [*notes, f"{call.name}: {LOST}"]


LOST = (
    "its channels have different fields and this op's channel layout is not followed: "
    "each unit's field is the union over the channels, an upper bound"
)


def per_segment(found: FieldRule, call: Call) -> Result | None:
    """A rule whose output channel ``c`` reads input channel ``c`` only, on one traced
    operand with channel segments: run on the union and on every segment (None: the call
    does not fit, e.g. it changes the channel dims)."""
    traced = [t for t in tensors_in(call.args.values()) if call.field_of(t) is not None]
    x = traced[0] if len(traced) == 1 else None
    f = call.field_of(x) if x is not None else None
    if f is None or f.channels is None or x is None or x.dim() != call.out.dim():
        return None
    channels = f.channels
    if not channels.fits(call.out.shape) or not channels.fits(x.shape):
        return None
    if any(x.shape[d] != call.out.shape[d] for d in channels.dims):
        return None
    whole = constant_field(f.uniform())
    top, notes = found(Call(call.func, call.args, call.out, whole, call.offset))
    if top is None or top.is_global or not top.known:
        return top, notes
    parts: list[Part] = []
    for axes in channels.parts:
        one = f.part(axes)
        if one is None:
            parts.append(None)
            continue
        got, _ = found(Call(call.func, call.args, call.out, constant_field(one), call.offset))
        if got is None or got.is_global or got.layout != top.layout:
            return None
        parts.append(got.axes)
    out = top.segmented(channels.dims, channels.ids, parts, None, channels.inner)
    return out, notes


def propagate_outputs(
    func: Any, args: Sequence[Any], kwargs: dict[str, Any], out: Any, field_of: FieldOf
) -> tuple[list[Field | None], list[str]]:
    """Like :func:`propagate`, with one field per output tensor (``out`` flattened).

    Every piece of ``split``/``chunk``/``unbind`` gets its own field (a piece further along
    a spatial axis sees further along); other ops' extra outputs (indices, statistics)
    get None.
    """
    outs = tensors_in(out) if isinstance(out, (tuple, list)) else [out]
    first, notes = propagate(func, args, kwargs, out, field_of)
    fields: list[Field | None] = [first] + [None] * (len(outs) - 1)
    if func.overloadpacket not in (aten.split, aten.split_with_sizes, aten.unbind) or not first:
        return fields, notes
    try:
        bound = bind(func, args, kwargs)
        d = bound.get("dim", 0) % bound["self"].dim()
        offset = 0
        for i, piece in enumerate(outs):
            fields[i] = slicing(Call(func, bound, piece, field_of, offset))[0]
            offset += 1 if func.overloadpacket is aten.unbind else piece.shape[d]
    except Exception as exc:
        notes = [*notes, f"receptive-field rule for {func} failed on a piece: {exc}"]
    return fields, notes
