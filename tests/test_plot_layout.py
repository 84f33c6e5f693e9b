"""Plots pass a layout check (issue 20): no text outside the canvas, and no title, label or
legend over another one or over an axes' drawing area, measured with matplotlib's own
renderer extents on the very figure each plotting function saves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import convzoo
from convzoo import plots
from convzoo.compare import compare

pytest.importorskip("matplotlib")
ROOT = Path(__file__).resolve().parents[1]


def layout_problems(fig: Any) -> list[str]:
    """What a reader would see as broken: text past the canvas's edges, and overlaps
    between titles, axis labels, legends and the axes' drawing areas."""
    renderer = fig.canvas.get_renderer()
    canvas = fig.bbox
    texts: list[tuple[str, Any]] = []
    if fig._suptitle is not None and fig._suptitle.get_text():
        texts.append(("suptitle", fig._suptitle))
    texts += [(f"legend {i}", legend) for i, legend in enumerate(fig.legends)]
    areas = []
    for i, ax in enumerate(fig.axes):
        areas.append((f"axes {i}", ax.bbox))
        for kind, artist in (("title", ax.title), ("xlabel", ax.xaxis.label),
                             ("ylabel", ax.yaxis.label), ("legend", ax.get_legend())):  # fmt: skip
            if (
                artist is not None
                and artist.get_visible()
                and (kind == "legend" or artist.get_text())
            ):
                texts.append((f"axes {i} {kind}", artist))
    problems = []
    boxes = [(name, artist.get_window_extent(renderer)) for name, artist in texts]
    for name, box in boxes:
        if (
            box.x0 < canvas.x0 - 1
            or box.x1 > canvas.x1 + 1
            or box.y0 < canvas.y0 - 1
            or (box.y1 > canvas.y1 + 1)
        ):
            problems.append(f"{name} leaves the canvas: {box.bounds} in {canvas.bounds}")
    for i, (a, box_a) in enumerate(boxes):
        for b, box_b in boxes[i + 1 :] + areas:
            if box_a.overlaps(box_b):
                problems.append(f"{a} overlaps {b}")
    return problems


@pytest.fixture
def saved(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The layout problems of every figure the plotting functions save (checked as saved)."""
    found: list[list[str]] = []
    real_save = plots.save

    def checking_save(fig: Any, path: str | Path) -> Path:
        fig.canvas.draw()
        found.append(layout_problems(fig))
        return real_save(fig, path)

    monkeypatch.setattr(plots, "save", checking_save)
    return found


def test_the_receptive_field_plot_keeps_its_text_apart(
    saved: list[list[str]], tmp_path: Path
) -> None:
    model = convzoo.build(ROOT / "configs" / "encoder_decoder.yaml")
    remark = "the model's output is not spatial; showing the deepest layer with a spatial " * 2
    plots.plot_receptive_field(
        model, (3, 32, 32), tmp_path / "rf.png", "encoder", 1, "a rather long name " * 3,
        remark=remark,
    )  # fmt: skip
    assert saved == [[]]


def test_the_comparison_plot_keeps_its_text_apart_and_shows_training(
    saved: list[list[str]], tmp_path: Path
) -> None:
    rows = compare(kernel=5, in_channels=4, out_channels=4, size=8, bench=True, train=True,
                   min_run_time=0.001)  # fmt: skip
    plots.plot_comparison(rows, tmp_path / "c.png", "a long title for the comparison " * 6)
    assert saved == [[]]


def test_the_check_finds_broken_layouts() -> None:
    """The check itself can fail: a title past the edge and a legend over the axes."""
    plt = plots._pyplot()
    fig, ax = plt.subplots(figsize=(3, 3))
    ax.plot([0, 1], label="a line")
    ax.legend(loc="center")
    fig.suptitle("a title far too long for a figure three inches wide, running off " * 2)
    fig.canvas.draw()
    problems = layout_problems(fig)
    plt.close(fig)
    assert any("suptitle leaves the canvas" in p for p in problems)
    assert any("axes 0 legend overlaps axes 0" in p for p in problems)
