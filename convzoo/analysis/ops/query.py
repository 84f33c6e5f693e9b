"""What the tracer asks the op table: :func:`classify` and :func:`fused` once per op
overload, :func:`charge` per op call."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import torch

from convzoo.analysis.ops.call import OpCall
from convzoo.analysis.ops.table import TABLE, op_key

FusedFn = Callable[[Any, tuple, dict, Any], int]


def classify(func: torch._ops.OpOverload) -> str:
    """``"macs"``, ``"elementwise"``, ``"free"`` or ``"uncounted"`` for an op overload."""
    return TABLE.resolve(func).kind


def charge(
    rule: Callable[[OpCall], int] | None,
    func: torch._ops.OpOverload,
    args: tuple,
    kwargs: dict,
    out: Any,
) -> int:
    """MACs or element-wise ops of one call of ``func``, by its cost rule
    (``TABLE.resolve(func).cost``, which the tracer keeps per overload); an element-wise op
    without a rule counts one op per value of its (first) output."""
    if rule is not None:
        return rule(OpCall(func, args, kwargs, out))
    result = out[0] if isinstance(out, (tuple, list)) else out
    return result.numel() if isinstance(result, torch.Tensor) else 0


def fused(func: torch._ops.OpOverload) -> FusedFn | None:
    """``fn(func, args, kwargs, out) -> element-wise ops`` fused into ``func`` (None: none)."""
    rule = TABLE.resolve(func).fused
    return None if rule is None else _called(rule)


def _called(rule: Callable[[OpCall], int]) -> FusedFn:
    return lambda func, args, kwargs, out: rule(OpCall(func, args, kwargs, out))


class FusedRules(Mapping[Any, FusedFn]):
    """The fused element-wise rules by op packet, read-only, as ``fn(func, args, kwargs,
    out)`` (what :mod:`convzoo.analysis.counting` calls); registered in the op table."""

    def __getitem__(self, packet: Any) -> FusedFn:
        entry = TABLE.get(packet)
        if entry is None or entry.fused is None:
            raise KeyError(packet)
        return _called(entry.fused)

    def __iter__(self) -> Iterator[str]:
        return iter([e.name for e in TABLE if e.fused is not None])

    def __len__(self) -> int:
        return sum(e.fused is not None for e in TABLE)

    def __contains__(self, packet: object) -> bool:
        entry = TABLE.get(packet)
        return entry is not None and entry.fused is not None

    def __repr__(self) -> str:
        return f"FusedRules({sorted(self)})"


FUSED_RULES = FusedRules()
"""Element-wise work fused into a MAC kernel (the gates of a fused LSTM step, the softmax
of fused attention): counted as ``elementwise_ops`` so that a fused kernel on real tensors
counts what its decomposition on meta tensors counts."""

__all__ = ["FUSED_RULES", "charge", "classify", "fused", "op_key"]
