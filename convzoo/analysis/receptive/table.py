"""What receptive-field rules are written against: :class:`Call` (one op call, arguments by
schema name), the ``@rule`` decorator that registers a rule as the ``field`` aspect of the
op table (:mod:`convzoo.analysis.ops.table`), and helpers shared by the rules."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch

from convzoo.analysis.ops.call import bind_arguments
from convzoo.analysis.ops.table import TABLE
from convzoo.analysis.receptive.field import Field, Place

Result = tuple[Field | None, list[str]]
FieldOf = Callable[[Any], Field | None]
Places = tuple[Place, ...]


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
    return bind_arguments(func, args, kwargs)


def tensors_in(values: Any) -> list[torch.Tensor]:
    """Every tensor in ``values``, looking inside lists (``cat`` takes a list)."""
    found: list[torch.Tensor] = []
    for value in values:
        if isinstance(value, torch.Tensor):
            found.append(value)
        elif isinstance(value, (list, tuple)) and value and type(value[0]) not in _NUMBERS:
            found.extend(tensors_in(value))  # int[] and float[] arguments hold no tensor
    return found


_NUMBERS = (int, float, bool)


def per_dim(value: Any, n: int) -> list[int]:
    """An int or list argument as ``n`` ints (``[3]`` or ``3`` -> ``[3] * n``)."""
    items = [value] if isinstance(value, int) else list(value)
    return items * n if len(items) == 1 else items


FieldRule = Callable[[Call], Result]


def rule(*ops: Any, **options: Any) -> Callable[[Callable[..., Result]], Callable[..., Result]]:
    """Register ``fn`` (with fixed keyword ``options``) as the field rule of op packets,
    overloads or qualified names in the op table; a second field rule for an op is an error."""

    def decorator(fn: Callable[..., Result]) -> Callable[..., Result]:
        for op in ops:
            TABLE.register(op, field=partial(fn, **options) if options else fn)
        return fn

    return decorator


def keeps_global(fn: Callable[..., Result]) -> Callable[..., Result]:
    """Mark a field rule (below its ``@rule``) whose output is global whenever every traced
    operand is global: the tracer then answers such calls itself, without the rule."""
    fn.keeps_global = True  # type: ignore[attr-defined]
    return fn


def moving_axes(fn: Callable[..., Result]) -> Callable[..., Result]:
    """Mark a field rule (below its ``@rule``) whose output, for one traced operand, is
    that operand's field with the same spans and a layout that depends only on the op, the
    operand's position and layout, the arguments' shapes and values and the output's shape
    (views, dim moves, channels-last matrix products): the tracer reuses such layouts."""
    fn.moving_axes = True  # type: ignore[attr-defined]
    return fn


def channel_aware(fn: Callable[..., Result]) -> Callable[..., Result]:
    """Mark a field rule that handles operands with channel segments (``Field.channels``)
    itself; other rules see the union over channels (:func:`~.dispatch.propagate`)."""
    fn.channel_aware = True  # type: ignore[attr-defined]
    return fn


def per_channel(fn: Callable[..., Result]) -> Callable[..., Result]:
    """Mark a field rule whose output channel ``c`` reads only input channel ``c`` (pooling,
    resampling, padding): it runs once per channel segment."""
    fn.per_channel = True  # type: ignore[attr-defined]
    return fn


def mixes_channels(fn: Callable[..., Result]) -> Callable[..., Result]:
    """Mark a field rule whose every output unit reads every input channel: the union over
    channel segments it sees is exact."""
    fn.mixes_channels = True  # type: ignore[attr-defined]
    return fn


def has_mark(fn: Any, mark: str) -> bool:
    """Whether rule ``fn`` (or the function a ``partial`` of it wraps) carries ``mark``
    (``"keeps_global"``, ``"moving_axes"``, ``"channel_aware"``, ``"per_channel"``,
    ``"mixes_channels"``: the decorators above)."""
    return bool(getattr(getattr(fn, "func", fn), mark, False))
