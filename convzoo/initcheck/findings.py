"""What ``init_check`` flags, the thresholds it flags at, and the verdict of each finding.

* **symmetric**: output units of one layer that read the same inputs with identical weights
  and bias (exact equality) and got identical gradients in the check's backward (within
  :data:`GRAD_TOLERANCE` of the layer's largest gradient): every gradient step keeps them
  identical, so they learn one feature between them. **separated**: identical weights, but
  the next layer treats them differently, so their gradients differ and the first step
  separates them (only a waste of the first step).
* **dead**: a ReLU-family unit (``relu``, ``relu_``) whose output is 0 for the whole batch
  (every sample, every position): it passes no gradient back. **saturated**: a sigmoid
  or tanh unit within :data:`SATURATION` of its bounds for the whole batch (its local
  gradient is then at most 4% (sigmoid) or 2% (tanh) of its largest), or a hard
  sigmoid/tanh (and ReLU6) unit at its bounds, where its gradient is 0. A unit is an index
  along dim 1 (a channel of ``Tensor[B, C, H, W]``, a neuron of ``Tensor[B, F]``).
  Activations are found by operator, so ``nn.ReLU``, ``F.relu`` and in-place ones all count.
* **vanishing** / **exploding**: the first layer's weight-gradient norm divided by the last
  one's is below :data:`VANISHING` or above :data:`EXPLODING`.
* **not finite**: an output or gradient of a layer holds NaN or infinity.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch

SATURATION = 0.01
"""A sigmoid output below 0.01 or above 0.99, a tanh output beyond +-0.99, is saturated."""
GRAD_TOLERANCE = 1e-6
"""Gradients of two units are identical when they differ by at most this share of the
largest gradient of their layer (float rounding; the weights are compared exactly)."""
STUCK_SHARE = 0.9
"""A layer is flagged dead or saturated when at least this share of its units are: some
units silent on a small random batch are normal at any initialisation (after global
pooling every sample looks alike, so about half the ReLUs of a squeeze-excite block can be
zero for all of them)."""
VANISHING = 1e-4
EXPLODING = 1e4
"""First/last weight-gradient-norm ratios outside these are flagged."""

VERDICTS = {
    "symmetric": (
        "identical weights get identical gradients, so these units stay identical and learn "
        "one feature between them (seed 001 Q1: zero or constant init; a random mean-zero "
        "init breaks the symmetry, Q2)"
    ),
    "separated": (
        "identical now, but the next layer weighs them differently, so the first gradient "
        "step separates them"
    ),
    "dead": (
        "a ReLU that outputs zero passes no gradient back, so the weights feeding these "
        "units do not learn (seed 001 Q2: dead neurons)"
    ),
    "saturated": (
        "pinned at the flat ends of the activation: its gradient is nearly zero, so learning "
        "stalls (seed 004 DL0002: activation saturation)"
    ),
    "vanishing": (
        "the first layers get almost no gradient and barely learn (each layer on the way back "
        "shrinks it); residual connections give the gradient a direct path back (seed 004 "
        "DL0001)"
    ),
    "exploding": (
        "the first layers get far larger gradients than the last: training diverges unless "
        "the init is rescaled or normalisation is added"
    ),
    "not finite": "NaN or infinity: the forward or backward overflowed",
}
"""Finding kind -> its explanation in plain words (after the seeds)."""


@dataclass(frozen=True)
class Finding:
    """One finding: ``kind`` (a key of :data:`VERDICTS`) in ``layer`` (``""``: the model),
    ``units`` of its ``total`` units concerned, what was seen (``detail``) and why it
    matters (``verdict``)."""

    kind: str
    layer: str
    units: int
    total: int
    detail: str
    verdict: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def where(self) -> str:
        """``conv1: 16 of 16 channels in 1 group of identical weights (16)``."""
        count = f"{self.units:,} of {self.total:,} " if self.total else ""
        return f"{self.layer or '(model)'}: {count}{self.detail}"

    def line(self) -> str:
        """:meth:`where`, the kind and the verdict on one line."""
        return f"{self.kind}: {self.where()}: {self.verdict}"


def finding(kind: str, layer: str, units: int, total: int, detail: str) -> Finding:
    return Finding(kind, layer, units, total, detail, VERDICTS[kind])


# -- symmetry ---------------------------------------------------------------------------


def identical_groups(rows: torch.Tensor, groups: tuple[tuple[int, int], ...]) -> list[list[int]]:
    """Sets of at least two units (rows of ``Tensor[U, P]``) with exactly equal rows, each
    within one of ``groups`` (units reading the same inputs); sorted by first unit."""
    found = []
    for lo, hi in groups:
        if hi - lo < 2:
            continue
        _, inverse = torch.unique(rows[lo:hi], dim=0, return_inverse=True)
        classes: dict[int, list[int]] = {}
        for i, c in enumerate(inverse.tolist()):
            classes.setdefault(c, []).append(lo + i)
        found += [members for members in classes.values() if len(members) > 1]
    return sorted(found)


def same_gradients(grads: torch.Tensor, members: list[int]) -> bool:
    """Whether the gradient rows of ``members`` agree within :data:`GRAD_TOLERANCE`."""
    scale = float(grads.abs().max()) if grads.numel() else 0.0
    picked = grads[members]
    return float((picked - picked[0]).abs().max()) <= GRAD_TOLERANCE * scale


def symmetry_findings(
    layer: str, word: str, total: int, groups: list[list[int]], grads: torch.Tensor
) -> list[Finding]:
    """``symmetric`` and ``separated`` findings of one layer's identical ``groups``."""
    kept = [g for g in groups if same_gradients(grads, g)]
    split = [g for g in groups if g not in kept]
    found = []
    for kind, chosen in (("symmetric", kept), ("separated", split)):
        if chosen:
            sizes = sorted((len(g) for g in chosen), reverse=True)
            shown = ", ".join(map(str, sizes[:8])) + (", ..." if len(sizes) > 8 else "")
            plural = "s" if len(chosen) > 1 else ""
            detail = f"{word} in {len(chosen)} group{plural} of identical weights ({shown})"
            found.append(finding(kind, layer, sum(sizes), total, detail))
    return found


# -- dead and saturated units -----------------------------------------------------------


@dataclass(frozen=True)
class Stuck:
    """An activation operator: ``kind`` of finding, ``what`` it is, and ``mask(out, args)``
    -> where its output is stuck (``Tensor[...]`` of bools, the output's shape)."""

    kind: str
    what: str
    mask: Callable[[torch.Tensor, tuple], torch.Tensor]


def _hard_bounds(out: torch.Tensor, args: tuple) -> torch.Tensor:
    low = args[1] if len(args) > 1 else -1.0
    high = args[2] if len(args) > 2 else 1.0
    return (out <= low) | (out >= high)


_RELU = Stuck("dead", "ReLU", lambda out, args: out <= 0)
_SIGMOID = Stuck(
    "saturated", "sigmoid", lambda out, args: (out < SATURATION) | (out > 1 - SATURATION)
)
_TANH = Stuck("saturated", "tanh", lambda out, args: out.abs() > 1 - SATURATION)
_HARDTANH = Stuck("saturated", "hardtanh/ReLU6", _hard_bounds)
_HARDSIGMOID = Stuck("saturated", "hardsigmoid", lambda out, args: (out <= 0) | (out >= 1))
STUCK: dict[str, Stuck] = {
    **{f"aten::{name}": _RELU for name in ("relu", "relu_")},
    **{f"aten::{name}": _SIGMOID for name in ("sigmoid", "sigmoid_")},
    **{f"aten::{name}": _TANH for name in ("tanh", "tanh_")},
    **{f"aten::{name}": _HARDTANH for name in ("hardtanh", "hardtanh_")},
    **{f"aten::{name}": _HARDSIGMOID for name in ("hardsigmoid", "hardsigmoid_")},
}
"""Operator name (its schema's) -> its :class:`Stuck` rule."""


def stuck_units(out: torch.Tensor, args: tuple, rule: Stuck) -> tuple[int, int]:
    """``(units stuck for the whole batch, units)``; a unit is an index along dim 1."""
    if out.dim() < 2 or out.numel() == 0:
        return 0, 0
    stuck = rule.mask(out.detach(), args).transpose(0, 1).reshape(out.shape[1], -1).all(1)
    return int(stuck.sum()), out.shape[1]


def stuck_finding(layer: str, rule: Stuck, stuck: int, total: int) -> Finding | None:
    """A ``dead`` or ``saturated`` finding when at least :data:`STUCK_SHARE` of the units
    are stuck (None otherwise)."""
    if not total or stuck < STUCK_SHARE * total:
        return None
    word = "zero" if rule.kind == "dead" else "saturated"
    return finding(rule.kind, layer, stuck, total, f"{rule.what} units {word} on the whole batch")


# -- gradients through depth ------------------------------------------------------------


def gradient_finding(first: str, last: str, ratio: float | None) -> Finding | None:
    """``vanishing`` or ``exploding`` when the first/last gradient-norm ``ratio`` is out of
    :data:`VANISHING` .. :data:`EXPLODING` (None: no finding)."""
    if ratio is None or VANISHING <= ratio <= EXPLODING:
        return None
    kind = "vanishing" if ratio < VANISHING else "exploding"
    detail = f"weight-gradient norm of the first layer ({first}) / the last ({last}) = {ratio:.3g}"
    return finding(kind, "", 0, 0, detail)
