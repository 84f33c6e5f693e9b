"""One op call as a cost rule sees it: :class:`OpCall`, arguments read by schema name."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

import torch


@cache
def schema_positions(func: Any) -> dict[str, tuple[int | None, Any]]:
    """``{argument name: (position or None if keyword-only, schema default or None)}``."""
    return {
        a.name: (
            None if a.kwarg_only else i,
            a.default_value if a.has_default_value() else None,
        )
        for i, a in enumerate(func._schema.arguments)
    }


def argument(
    func: Any, args: Sequence[Any], kwargs: dict[str, Any], name: str, default: Any = None
) -> Any:
    """The argument called ``name`` in ``func``'s schema as passed (positionally or by
    keyword), else the schema's default, else ``default`` (also when the schema has no
    argument of that name: the overloads of one op name theirs differently)."""
    if name in kwargs:
        return kwargs[name]
    found = schema_positions(func).get(name)
    if found is None:
        return default
    position, schema_default = found
    if position is not None and position < len(args):
        return args[position]
    return default if schema_default is None else schema_default


@cache
def _parameters(func: Any) -> tuple[tuple[str, bool, Any], ...]:
    """``(name, kwarg_only, default)`` of every argument of ``func``'s schema (reading
    ``func._schema`` builds Python objects each time, so once per op)."""
    return tuple(
        (a.name, a.kwarg_only, a.default_value if a.has_default_value() else None)
        for a in func._schema.arguments
    )


def bind_arguments(func: Any, args: Sequence[Any], kwargs: dict[str, Any]) -> dict[str, Any]:
    """``{argument name: value}`` for every argument of ``func``'s schema, as
    :func:`argument` reads each one (schema defaults filled in), in one pass."""
    bound: dict[str, Any] = {}
    n = len(args)
    for i, (name, kwarg_only, default) in enumerate(_parameters(func)):
        if name in kwargs:
            bound[name] = kwargs[name]
        elif i < n and not kwarg_only:
            bound[name] = args[i]
        else:
            bound[name] = list(default) if type(default) is list else default  # a fresh list
    return bound


def first(out: Any) -> Any:
    """The first output of an op (ops returning a tuple: its first element)."""
    return out[0] if isinstance(out, (tuple, list)) else out


class OpCall:
    """One call of an op overload, what every cost rule receives.

    ``func`` is the ``OpOverload`` (``torch.ops.aten.convolution.default``), ``args`` and
    ``kwargs`` what it was called with, ``out`` what it returned. Rules read arguments by
    the names of the op's schema (``call.arg("weight")``), never by position.
    """

    __slots__ = ("args", "func", "kwargs", "out")

    def __init__(self, func: Any, args: tuple, kwargs: dict, out: Any) -> None:
        self.func, self.args, self.kwargs, self.out = func, args, kwargs, out

    def arg(self, name: str, default: Any = None) -> Any:
        """The argument called ``name`` (see :func:`argument`)."""
        return argument(self.func, self.args, self.kwargs, name, default)

    def shape(self, name: str) -> list[int]:
        """The shape of the tensor argument called ``name``."""
        return list(self.arg(name).shape)

    @property
    def result(self) -> Any:
        """The first output (ops returning a tuple: its first element)."""
        return first(self.out)

    def output_numel(self) -> int:
        """Values in the first output (0 when it is not a tensor)."""
        result = first(self.out)
        return result.numel() if isinstance(result, torch.Tensor) else 0

    def __repr__(self) -> str:
        return f"OpCall({self.func})"
