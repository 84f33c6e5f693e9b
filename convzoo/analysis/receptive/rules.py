"""Receptive-field rules: how each aten op, and the zoo modules whose internals are not plain
convolutions, change the :class:`~convzoo.analysis.receptive.Field` of a tensor.

:func:`propagate` is called for every op on traced tensors: the op is looked up in ``RULES``
(by overload, then by ``pointwise`` tag, then by op packet) and it never raises.
:func:`module_field` is called when a module returns and looks its class up in
``MODULE_RULES``. Rules follow h and w through views, permutes and matmuls with
:class:`~convzoo.analysis.receptive.Place`, so flatten + linear, channels-last linears and
capsule layers come out right without special cases.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache, partial
from typing import Any

import torch

from convzoo.analysis.receptive import (
    ABSENT,
    Axis,
    Field,
    Place,
    conv_axis,
    remap,
    shift_axis,
    union,
    view_places,
)

aten = torch.ops.aten
Result = tuple[Field | None, list[str]]
FieldOf = Callable[[Any], Field | None]
Places = tuple[Place, Place]

DEFORMABLE_NOTE = (
    "deformable: the field shown is the nominal one of its kernel; learned offsets can move "
    "every sampling point, so the true field can be larger and shifted"
)


@dataclass
class Call:
    """One op call: its schema-bound arguments, its (first) output and the field lookup."""

    func: Any
    args: dict[str, Any]
    out: torch.Tensor
    field_of: FieldOf
    offset: int = 0  # where this output starts along a split dim (see propagate_outputs)

    @property
    def name(self) -> str:
        return str(self.func.overloadpacket.__name__)

    def x(self) -> torch.Tensor:
        """The main input (ops call it ``self`` or ``input``)."""
        value = self.args.get("self", self.args.get("input"))
        return value if isinstance(value, torch.Tensor) else next(iter(self.args.values()))


def bind(func: Any, args: Sequence[Any], kwargs: dict[str, Any]) -> dict[str, Any]:
    """``{argument name: value}`` for every argument of ``func``'s schema, defaults filled in."""
    bound: dict[str, Any] = {}
    for i, arg in enumerate(func._schema.arguments):
        if i < len(args) and not arg.kwarg_only:
            bound[arg.name] = args[i]
        elif arg.name in kwargs:
            bound[arg.name] = kwargs[arg.name]
        else:
            bound[arg.name] = arg.default_value if arg.has_default_value() else None
    return bound


def tensors_in(values: Any) -> list[torch.Tensor]:
    """Every tensor in ``values``, looking inside lists (``cat`` takes a list)."""
    found: list[torch.Tensor] = []
    for value in values:
        if isinstance(value, torch.Tensor):
            found.append(value)
        elif isinstance(value, (list, tuple)):
            found.extend(tensors_in(value))
    return found


def per_dim(value: Any, n: int) -> list[int]:
    """An int or list argument as ``n`` ints (``[3]`` or ``3`` -> ``[3] * n``)."""
    items = [value] if isinstance(value, int) else list(value)
    return items * n if len(items) == 1 else items


# -- the op table and the entry point -----------------------------------------------------

RULES: dict[Any, Callable[[Call], Result]] = {}


def rule(*ops: Any, **options: Any) -> Callable[[Callable[..., Result]], Callable[..., Result]]:
    """Register a rule for op packets or overloads, with fixed keyword ``options``."""

    def decorator(fn: Callable[..., Result]) -> Callable[..., Result]:
        for op in ops:
            RULES[op] = partial(fn, **options) if options else fn
        return fn

    return decorator


def is_pointwise(func: Any) -> bool:
    """Whether ``func`` (or, for an in-place op, its functional form) is element-wise."""
    if torch.Tag.pointwise in func.tags:
        return True
    if torch.Tag.inplace not in func.tags:
        return False
    functional = getattr(aten, func.overloadpacket.__name__.rstrip("_"), None)
    overload = getattr(functional, func._overloadname, None) if functional else None
    return overload is not None and torch.Tag.pointwise in overload.tags


@cache
def lookup(func: Any) -> Callable[[Call], Result] | None:
    """The rule for ``func``: by overload, then element-wise tag, then op packet."""
    if func in RULES:
        return RULES[func]
    if is_pointwise(func):
        return elementwise
    if func.overloadpacket not in RULES and func.namespace == "torchvision":
        from convzoo.analysis.receptive_spatial import register_torchvision

        register_torchvision()
    return RULES.get(func.overloadpacket)


def propagate(
    func: Any, args: Sequence[Any], kwargs: dict[str, Any], out: Any, field_of: FieldOf
) -> Result:
    """The field of ``func``'s (first) output, and notes; never raises.

    ``field_of(tensor)`` gives a tensor argument's field (None for parameters and constants).
    Ops without traced inputs, or whose output is not a tensor, give ``(None, [])``, as do
    ops whose output does not depend on their input's values (``zeros_like``). Where the
    field cannot be followed (no rule, or the rule gives up) the result is
    ``Field.unknown()`` with a note; an unknown input makes the output unknown (no new note)
    unless the output is global. Ops with no rule whose traced inputs are all global give
    the global field.
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
            return (None if found is constant else Field.unknown()), []
        call = Call(func, bind(func, args, kwargs), first, field_of)
        field, notes = found(call) if found else (None, [f"no receptive-field rule for {func}"])
    except Exception as exc:  # a rule must never break the analysis
        field, notes = None, [f"receptive-field rule for {func} failed: {exc!r}"]
    known = all(f.known for f in traced)
    if (field is None and notes) or (field is not None and not known and not field.is_global):
        field = Field.unknown()
    return field, notes if known else []


def propagate_outputs(
    func: Any, args: Sequence[Any], kwargs: dict[str, Any], out: Any, field_of: FieldOf
) -> tuple[list[Field | None], list[str]]:
    """Like :func:`propagate`, with one field per output tensor (``out`` flattened).

    Every piece of ``split``/``chunk``/``unbind`` gets its own field (a piece further along
    a spatial axis starts further along); other ops' extra outputs (indices, statistics)
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


# -- element-wise ops and merges ----------------------------------------------------------


def merge(pairs: list[tuple[Field, Places | None]], shape: Any, what: str) -> Result:
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
    field, notes = union([f.with_axes(f.axes, places, shape) for f, places in pairs])
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
def concat(call: Call) -> Result:
    """Concatenation off the spatial axes: the union over the parts (like a merge)."""
    stacking = call.func.overloadpacket is aten.stack
    d = call.args.get("dim", 0) % call.out.dim()
    pairs: list[tuple[Field, Places | None]] = []
    for t in call.args["tensors"]:
        f = call.field_of(t)
        if f is None or f.is_global:
            pairs += [(f, None)] if f else []
            continue
        places = f.places(tuple(t.shape))
        on_d = [p.dim is not None and t.dim() + p.dim == d and not stacking for p in places]
        if any(
            hit and p.inner == 1 and p.extent == t.shape[d]
            for hit, p in zip(on_d, places, strict=True)
        ):
            return None, ["cat along a spatial axis: the parts' fields differ; field unknown"]
        lost = Place(d - t.dim(), 0, call.out.shape[d])  # merged there: order lost
        places = (lost if on_d[0] else places[0], lost if on_d[1] else places[1])
        move = (lambda p: p + (p >= d)) if stacking else (lambda p: p)
        pairs.append((f, remap(places, t.dim(), call.out.dim(), move)))
    return merge(pairs, call.out.shape, call.name)


# -- layout ops: views, dim moves, indexing -----------------------------------------------


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
def permute(call: Call) -> Result:
    return moved(call, [d % call.x().dim() for d in call.args["dims"]].index)


@rule(aten.transpose, aten.t)
def transpose(call: Call) -> Result:
    n = max(call.x().dim(), 1)
    a, b = call.args.get("dim0", 0) % n, call.args.get("dim1", 1) % n
    return moved(call, lambda p: b if p == a else a if p == b else p)


@rule(aten.unsqueeze)
def unsqueeze(call: Call) -> Result:
    d = call.args["dim"] % call.out.dim()
    return moved(call, lambda p: p + (p >= d))


@rule(aten.expand)
def expand(call: Call) -> Result:
    return moved(call, lambda p: p + call.out.dim() - call.x().dim())


@rule(aten.squeeze)
def squeeze(call: Call) -> Result:
    x = call.x()
    dims = call.args.get("dim")
    dims = range(x.dim()) if dims is None else [dims] if isinstance(dims, int) else dims
    gone = {d % x.dim() for d in dims if x.shape[d] == 1} if x.dim() else set()
    return moved(call, lambda p: None if p in gone else p - sum(g < p for g in gone))


def along(call: Call, d: int, exact: Callable[[Axis, Place], tuple[Axis, Place]]) -> Result:
    """An op on dim ``d`` of the input: ``exact`` rewrites an axis alone in that dim; an
    axis merged with others there loses its order; other dims are renumbered if dropped."""
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
            places[i] = Place(None if drop else p.dim, 0, 1 if drop else call.out.shape[d])
    mapping = (lambda p: p - (p > d)) if drop else (lambda p: p)
    kept = remap((places[0], places[1]), x.dim(), call.out.dim(), mapping)
    return f.with_axes((axes[0], axes[1]), kept, call.out.shape), []


def take(a: Axis, p: Place, begin: int, step: int, extent: int) -> tuple[Axis, Place]:
    """Keep positions ``begin, begin + step, ...`` (``extent`` of them)."""
    return Axis(a.size, a.stride * step, a.start + begin * a.stride), Place(p.dim, 1, extent)


@rule(aten.slice, aten.narrow, aten.select, aten.split, aten.split_with_sizes, aten.unbind)
def slicing(call: Call) -> Result:
    """Slices, ``select`` (the axis loses its dim) and pieces of splits (``call.offset``)."""
    x = call.x()
    d = call.args.get("dim", 0) % x.dim()
    begin = call.args.get("start", call.args.get("index")) or call.offset
    begin, step = slice(begin, None).indices(x.shape[d])[0], call.args.get("step") or 1
    if call.out.dim() < x.dim():
        return along(call, d, lambda a, p: (shift_axis(a, begin), ABSENT))
    return along(call, d, lambda a, p: take(a, p, begin, step, call.out.shape[d]))


@rule(aten.index_select, aten.gather)
def gather(call: Call) -> Result:
    """Positions picked by an index tensor: an axis in ``dim`` keeps its field, not its order."""
    x, d = call.x(), call.args["dim"] % max(call.x().dim(), 1)
    if call.out.dim() != x.dim():
        return None, [f"{call.name}: unexpected output rank; field unknown"]
    return along(call, d, lambda a, p: (a, Place(p.dim, 0, call.out.shape[d])))


@rule(aten.unfold)
def unfold(call: Call) -> Result:
    """``Tensor.unfold(dim, size, step)``: windows along ``dim`` (each sees ``size`` units)."""
    d, size, step = call.args["dimension"] % call.x().dim(), call.args["size"], call.args["step"]
    n_out = call.out.shape[d]
    return along(call, d, lambda a, p: (conv_axis(a, size, step, 0, 1), Place(p.dim, 1, n_out)))


# The rule tables are filled by the decorators of these modules (they import this one).
from convzoo.analysis import receptive_modules, receptive_spatial  # noqa: E402, F401
