"""``init-check --plot``: the signal and the gradient through depth, in the style of the
signal-propagation plots of Brock et al. (ICLR 2021): one point per layer, in forward order."""

from __future__ import annotations

import math
from pathlib import Path

from convzoo.initcheck.report import InitReport
from convzoo.plots import _pyplot, save_titled

PANELS = (
    ("sq_mean", "average squared channel mean"),
    ("variance", "average channel variance"),
    ("grad_norm", "weight-gradient norm"),
)
"""(:class:`~convzoo.initcheck.report.LayerSignal` field, panel title), left to right."""


def plot_signal(report: InitReport, path: str | Path) -> Path:
    """Three panels of ``report``'s layers (x: layer index in forward order); a panel is on
    a log scale when all its values are positive. Returns the written path."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(PANELS), figsize=(13, 4), squeeze=False, layout="constrained")
    for ax, (key, title) in zip(axes[0], PANELS, strict=True):
        points = [
            (i, value)
            for i, row in enumerate(report.layers)
            if (value := getattr(row, key)) is not None and math.isfinite(value)
        ]
        if points:
            xs, ys = zip(*points, strict=True)
            ax.plot(xs, ys, marker="o", markersize=3, color="#3b7dd8")
            if all(y > 0 for y in ys):
                ax.set_yscale("log")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("layer (forward order)")
        ax.grid(True, alpha=0.3)
    kinds = sorted({f.kind for f in report.findings})
    found = f"findings: {', '.join(kinds)}" if kinds else "no findings"
    weights = "weights as built" if report.init is None else f"init {report.init}"
    batch = report.input_shape[0][0] if report.input_shape else "?"
    title = f"{report.target}: {weights}, {report.mode} mode, batch {batch}; {found}"
    return save_titled(fig, path, title, 13, fontsize=10)
