"""The typed result of :func:`convzoo.init_check`: the signal through depth and the findings,
as a dict (``--format json``) or a text table (the default)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from convzoo.initcheck.findings import Finding

MODES = {
    "train": (
        "train mode: batch norm normalises each channel with the batch's own mean and "
        "variance (and updates its running statistics), dropout drops"
    ),
    "eval": (
        "eval mode: batch norm uses its running statistics (mean 0, variance 1 at "
        "initialisation: it passes the signal on unnormalised), dropout is off"
    ),
}
"""How each mode treats batch norm and dropout (seed 002, question 2)."""


@dataclass(frozen=True)
class LayerSignal:
    """One layer's output on the batch and its weight gradient (first call of the layer).

    ``sq_mean``: the average over channels of the squared channel mean, ``variance``: the
    average channel variance (Brock et al., ICLR 2021; ``timm.utils.model``'s
    ``avg_sq_ch_mean`` and ``avg_ch_var``); a channel is an index along dim 1, its
    statistics taken over every other dim. ``grad_norm``: the L2 norm of the gradient of
    the layer's weight (None: it has none, or none reached it).
    """

    name: str
    type: str
    output_shape: tuple[int, ...]
    sq_mean: float
    variance: float
    grad_norm: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "output_shape": list(self.output_shape),
            "sq_mean": finite(self.sq_mean),
            "variance": finite(self.variance),
            "grad_norm": finite(self.grad_norm),
        }


@dataclass
class InitReport:
    """What one seeded forward and backward at initialisation shows.

    ``grad_ratio`` is the first layer's weight-gradient norm over the last one's, those
    layers named by ``grad_layers``. ``init``: the initialisation the copy was given
    (None: the model's own weights) (None when fewer than two layers have one, or the
    last is 0). ``unchecked``: types of layers with parameters
    that have no units rule, so their symmetry was not checked.
    """

    target: str
    input_shape: list[tuple[int, ...]]
    mode: str
    init: str | None
    seed: int
    layers: list[LayerSignal] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    grad_ratio: float | None = None
    grad_layers: tuple[str, str] | None = None
    unchecked: list[str] = field(default_factory=list)

    def finding(self, kind: str, layer: str | None = None) -> list[Finding]:
        """The findings of ``kind`` (in ``layer`` when given)."""
        return [f for f in self.findings if f.kind == kind and layer in (None, f.layer)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "input_shape": [list(s) for s in self.input_shape],
            "mode": self.mode,
            "init": self.init,
            "seed": self.seed,
            "grad_ratio": finite(self.grad_ratio),
            "grad_layers": None if self.grad_layers is None else list(self.grad_layers),
            "findings": [f.to_dict() for f in self.findings],
            "layers": [row.to_dict() for row in self.layers],
            "unchecked": self.unchecked,
        }

    def to_text(self) -> str:
        """A heading, the layers' signal table, the gradient ratio and one line per finding."""
        from tabulate import tabulate

        shapes = ", ".join("x".join(map(str, s)) for s in self.input_shape)
        lines = [
            f"{self.target}: input {shapes}, seed {self.seed}, "
            + ("weights as built" if self.init is None else f"weights re-initialised: {self.init}"),
            MODES[self.mode],
            "",
        ]
        rows = [
            (
                row.name,
                row.type,
                "x".join(map(str, row.output_shape)),
                _num(row.sq_mean),
                _num(row.variance),
                _num(row.grad_norm),
            )
            for row in self.layers
        ]
        headers = ("layer", "type", "output", "ch mean^2", "ch variance", "grad norm")
        lines.append(tabulate(rows, headers, tablefmt="simple", disable_numparse=True))
        if self.grad_layers is not None:
            first, last = self.grad_layers
            lines.append(
                f"\ngradient norm, first / last layer ({first} / {last}): {_num(self.grad_ratio)}"
            )
        if self.unchecked:
            lines.append(f"symmetry not checked (no units rule): {', '.join(self.unchecked)}")
        lines.append("")
        if not self.findings:
            lines.append("no findings: no symmetric, dead or saturated units, gradients in range")
            return "\n".join(lines)
        lines.append(f"findings ({len(self.findings)}), by kind:")
        for kind in dict.fromkeys(f.kind for f in self.findings):
            found = self.finding(kind)
            lines.append(f"- {kind}: {found[0].verdict}")
            lines += [f"    {f.where()}" for f in found]
        return "\n".join(lines)


def finite(value: float | None) -> float | None:
    """``value`` for JSON: NaN and infinity (a "not finite" finding says so) become None."""
    return value if value is not None and math.isfinite(value) else None


def _num(value: float | None) -> str:
    """``0.0123`` -> ``'0.0123'``, 3 significant digits; None -> ``'-'``."""
    return "-" if value is None else f"{value:.3g}"
