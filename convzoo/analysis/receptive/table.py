"""The op table of receptive-field rules: :class:`Call` (one op call, arguments by schema
name), the ``RULES`` registry and its ``@rule`` decorator, and helpers shared by the rules."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache, partial
from typing import Any

import torch

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


@cache
def _parameters(func: Any) -> tuple[tuple[str, bool, Any], ...]:
    """``(name, kwarg_only, default)`` of every argument of ``func``'s schema (reading
    ``func._schema`` builds Python objects each time, so once per op)."""
    return tuple(
        (a.name, a.kwarg_only, a.default_value if a.has_default_value() else None)
        for a in func._schema.arguments
    )


def bind(func: Any, args: Sequence[Any], kwargs: dict[str, Any]) -> dict[str, Any]:
    """``{argument name: value}`` for every argument of ``func``'s schema, defaults filled in."""
    bound: dict[str, Any] = {}
    n = len(args)
    for i, (name, kwarg_only, default) in enumerate(_parameters(func)):
        if i < n and not kwarg_only:
            bound[name] = args[i]
        elif name in kwargs:
            bound[name] = kwargs[name]
        else:
            bound[name] = list(default) if type(default) is list else default  # a fresh list
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


RULES: dict[Any, Callable[[Call], Result]] = {}


def rule(*ops: Any, **options: Any) -> Callable[[Callable[..., Result]], Callable[..., Result]]:
    """Register a rule for op packets or overloads, with fixed keyword ``options``;
    registering an op twice is an error."""

    def decorator(fn: Callable[..., Result]) -> Callable[..., Result]:
        for op in ops:
            if op in RULES:
                raise ValueError(f"receptive-field rule for {op} registered twice")
            RULES[op] = partial(fn, **options) if options else fn
        return fn

    return decorator
