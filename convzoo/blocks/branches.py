"""Containers for branching graphs built from configs: a residual sum and parallel branches."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class Residual(nn.Module):
    """``act(body(x) + shortcut(x))``; ``shortcut`` is the identity when ``None``.

    ``Tensor[B, C, H, W] -> Tensor[B, C', H', W']`` where the body's output shape is
    ``[B, C', H', W']`` and the shortcut maps ``x`` to the same shape.
    """

    def __init__(
        self, body: nn.Module, shortcut: nn.Module | None = None, act: nn.Module | None = None
    ) -> None:
        super().__init__()
        self.body = body
        self.shortcut = shortcut
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = x if self.shortcut is None else self.shortcut(x)
        out = self.body(x) + skip
        return out if self.act is None else self.act(out)


class Parallel(nn.Module):
    """Run every branch on the same input and merge: ``concat`` on channels, or ``sum``.

    Branches are children ``branch1``, ``branch2``, ... (Inception-like); concatenation
    needs equal spatial sizes, a sum equal shapes.
    """

    def __init__(self, branches: Sequence[nn.Module], merge: str = "concat") -> None:
        super().__init__()
        if merge not in ("concat", "sum"):
            raise ValueError(f"parallel: merge must be 'concat' or 'sum', got {merge!r}")
        self.merge = merge
        for i, branch in enumerate(branches, 1):
            self.add_module(f"branch{i}", branch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [branch(x) for branch in self.children()]
        if self.merge == "concat":
            return torch.cat(outs, dim=1)
        total = outs[0]
        for out in outs[1:]:
            total = total + out
        return total

    def extra_repr(self) -> str:
        return f"merge={self.merge!r}"
