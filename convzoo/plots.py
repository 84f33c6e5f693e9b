"""Plots (the ``plot`` extra): comparison bars and receptive fields over the input grid."""

from __future__ import annotations

import copy
import math
import sys
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from convzoo.analysis.guard import Guard, rehearse
from convzoo.analysis.isolation import private_copy
from convzoo.errors import ConvZooError, render, user_code
from convzoo.limits import MAX_SAMPLES, check_memory, check_size
from convzoo.outputs import created, writable
from convzoo.real import materialize


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except Exception as exc:
        raise ConvZooError(
            f"plotting needs matplotlib: pip install 'convzoo[plot]' ({exc})"
        ) from None
    return plt


IMAGE_FORMATS = ("png", "svg", "pdf", "jpg", "jpeg")
"""File extensions a plot may be written as (the format follows the extension)."""


def output_path(path: str | Path, force: bool = False, inputs: Sequence[str | Path] = ()) -> Path:
    """``path`` checked before any work: an image extension from :data:`IMAGE_FORMATS`, then
    the rule of every file convzoo writes (:func:`convzoo.outputs.writable`: no directory,
    FIFO or device, never one of ``inputs``, no existing file unless ``force``). The plot
    is then written to exactly this path."""
    extension = Path(path).suffix[1:].lower()
    if extension not in IMAGE_FORMATS:
        raise ConvZooError(
            f"cannot write a plot to {render(str(path))}: the name must end in "
            f"{', '.join('.' + f for f in IMAGE_FORMATS)}"
        )
    return writable(path, force, inputs, "a plot")


UNDATED = {"svg": {"Date": None}, "pdf": {"CreationDate": None}}
"""Metadata that would stamp a file with the time it was written: left out, so the same plot
is the same bytes on every run."""


def save(fig: Any, path: str | Path) -> Path:
    """Write ``fig`` to exactly ``path`` (the format from its extension, an existing file
    replaced): the same bytes for the same figure on every run (no date, SVG ids from a fixed
    salt); one-line errors, and a FIFO or device refused rather than waited on."""
    path = Path(path)
    fmt = path.suffix[1:].lower()
    with (
        _pyplot().rc_context({"svg.hashsalt": "convzoo"}),
        created(path, force=True, binary=True) as file,
    ):
        fig.savefig(file, dpi=110, format=fmt, metadata=UNDATED.get(fmt))
    return path


def save_titled(fig: Any, path: str | Path, title: str, inches: float, fontsize: float) -> Path:
    """Put ``title`` over ``fig`` (wrapped to ``inches``, at ``fontsize`` points), write it
    to ``path`` (:func:`save`) and close it."""
    fig.suptitle(wrap(title, inches), fontsize=fontsize)
    try:
        return save(fig, path)
    finally:
        _pyplot().close(fig)


def wrap(text: str, inches: float, fontsize: float = 9) -> str:
    """``text`` with each line wrapped to fit ``inches`` of width at ``fontsize`` points
    (an average glyph is about 0.6 of the font size wide), so no title leaves the canvas."""
    width = max(20, int(inches * 72 / (0.6 * fontsize)))
    return "\n".join(textwrap.fill(line, width) for line in text.split("\n"))


def plot_comparison(rows: Sequence[Any], path: str | Path, title: str) -> Path:
    """Bars of params, MACs and (when measured) latency per design, labelled with the ratio
    to the first design. ``rows`` are :class:`convzoo.measure.Row`."""
    plt = _pyplot()
    panels = [
        ("parameters", "params", 1e3, "thousands"),
        ("multiply-adds", "macs", 1e6, "millions (MMACs)"),
    ]
    if rows and rows[0].forward_ms is not None:
        panels.append(("measured forward latency", "forward_ms", 1.0, "milliseconds"))
    if rows and rows[0].train_ms is not None:
        panels.append(("measured forward + backward", "train_ms", 1.0, "milliseconds"))
    fig, axes = plt.subplots(
        1, len(panels), figsize=(5 * len(panels), 4.5), squeeze=False, layout="constrained"
    )
    names = [r.design for r in rows]
    for ax, (label, attr, scale, unit) in zip(axes[0], panels, strict=True):
        values = [getattr(r, attr) / scale for r in rows]
        bars = ax.bar(range(len(rows)), values, color=["#555555"] + ["#3b7dd8"] * (len(rows) - 1))
        base = values[0] or 1.0
        for bar, value in zip(bars, values, strict=True):
            ax.annotate(
                f"{value / base:.2f}x",
                (bar.get_x() + bar.get_width() / 2, value),
                ha="center",
                va="bottom",
                fontsize=8,
            )
        ax.set_title(label)
        ax.set_ylabel(unit)
        ax.set_xticks(range(len(rows)), names, rotation=35, ha="right", fontsize=8)
        ax.margins(y=0.15)
    caption = f"{title}\n(labels: ratio to {names[0]})"
    return save_titled(fig, path, caption, 11 * len(panels), fontsize=10)


FIELD_WORK = "the effective field (a float64 forward and backward)"


def effective_field(
    model: nn.Module,
    input_size: tuple[int, int, int],
    layer: str = "",
    samples: int = 8,
    seed: int = 0,
    unit: tuple[int, ...] | None = None,
    max_memory: int | None = None,
) -> tuple[torch.Tensor, tuple[int, int]]:
    """Luo et al. 2016: mean |d unit / d input| over random inputs, ``Tensor[H, W]``.

    The unit is ``unit`` (row, col) of ``layer``'s output, by default its centre (all
    channels summed); returns the map and the unit's (row, col). The model is run on a
    deep copy in eval mode (a model built on meta from a config on its real twin with
    seeded weights, :func:`convzoo.real.materialize`); ``samples`` is at most
    :data:`~convzoo.limits.MAX_SAMPLES`, with a progress bar on a terminal. Its real
    tensors are held to ``max_memory`` bytes (None: the default budget): rehearsed on meta
    tensors first (:func:`check_effective_field`), then every op checked before it
    allocates (:mod:`convzoo.analysis.guard`).
    """
    check_size(samples, "samples", MAX_SAMPLES)
    check_effective_field(model, input_size, layer, max_memory)
    generator = torch.Generator().manual_seed(seed)

    def draw() -> torch.Tensor:
        return torch.randn((1, *input_size), generator=generator, dtype=torch.float64)

    with Guard(max_memory, FIELD_WORK):
        model = materialize(model)  # a config's real twin: built under the budget too
        return _field(model, input_size, layer, samples, unit, draw, sys.stderr.isatty())


def _field(
    model: nn.Module,
    input_size: tuple[int, ...],
    layer: str,
    samples: int,
    want: tuple[int, ...] | None,
    draw: Callable[[], torch.Tensor],
    bar: bool = False,
) -> tuple[torch.Tensor, tuple[int, int]]:
    """:func:`effective_field` on inputs from ``draw()`` (``Tensor[1, C, H, W]`` float64,
    real or meta), without the checks around it."""
    model = copy.deepcopy(model).eval().double()
    target = dict(model.named_modules()).get(layer)
    if target is None:
        raise ConvZooError(f"no layer named {render(layer)}")
    captured: dict[str, torch.Tensor] = {}
    handle = target.register_forward_hook(lambda m, i, o: captured.__setitem__("out", o))
    total: torch.Tensor | None = None
    unit = (0, 0)
    try:
        for _ in progress(range(samples), "effective field", "input") if bar else range(samples):
            x = draw().requires_grad_(True)
            with user_code("the model's forward (effective field)"):
                model(x)
            out = captured["out"]
            if out.dim() != 4:
                raise ConvZooError(
                    f"layer {render(layer)} has no spatial output ({list(out.shape)})"
                )
            unit = (out.shape[2] // 2, out.shape[3] // 2) if want is None else (want[0], want[1])
            (grad,) = torch.autograd.grad(out[0, :, unit[0], unit[1]].sum(), x)
            field = grad.abs().sum((0, 1))
            total = field if total is None else total + field
            del out, grad, x, field  # the next sample starts from the running sum alone
            captured.clear()
    finally:
        handle.remove()
    assert total is not None  # samples >= 1
    return total / samples, unit


Interval = tuple[int, int]


def support(erf: torch.Tensor) -> tuple[Interval, Interval] | None:
    """``((row_lo, row_hi), (col_lo, col_hi))``: the smallest box holding every nonzero
    pixel of an effective field ``Tensor[H, W]`` (None when it is zero everywhere)."""
    rows, cols = erf.nonzero(as_tuple=True)
    if rows.numel() == 0:
        return None
    return (int(rows.min()), int(rows.max())), (int(cols.min()), int(cols.max()))


@dataclass(frozen=True)
class FieldPlot:
    """What :func:`plot_receptive_field` drew: the file, the unit (row, col) and the box
    of input pixels where the unit's effective field is nonzero (None: nowhere)."""

    path: Path
    unit: tuple[int, int]
    support: tuple[Interval, Interval] | None

    def support_text(self) -> str:
        """``effective field of unit (30, 30): nonzero on input rows 30..34, cols 30..34``."""
        if self.support is None:
            return f"effective field of unit {self.unit}: zero everywhere"
        (r0, r1), (c0, c1) = self.support
        where = f"input rows {r0}..{r1}, cols {c0}..{c1}"
        return f"effective field of unit {self.unit}: nonzero on {where}"

    def to_dict(self) -> dict[str, Any]:
        """``{"unit": [30, 30], "rows": [30, 34], "cols": [30, 34]}`` (rows and cols null
        when the effective field is zero everywhere)."""
        rows, cols = self.support if self.support is not None else (None, None)
        return {
            "unit": list(self.unit),
            "rows": None if rows is None else list(rows),
            "cols": None if cols is None else list(cols),
        }


def check_effective_field(
    model: nn.Module,
    input_size: tuple[int, ...],
    layer: str = "",
    max_memory: int | None = None,
    what: str = FIELD_WORK,
) -> int:
    """Refuse :func:`effective_field` above ``max_memory`` before any real tensor exists;
    returns the bytes it needs.

    Rehearsed on a meta copy of ``model`` (the float64 copy, two samples' forward and
    backward, kernel workspaces; ``model`` may be on the meta device); a model that cannot
    run on meta tensors is estimated from its analysis instead: its weights three times
    (the copy and its float64 cast) and float64 activations kept for backward and their
    gradients (four times its float32 activation bytes).
    """
    meta = private_copy(model, meta=True)

    def draw() -> torch.Tensor:
        return torch.empty((1, *input_size), dtype=torch.float64, device="meta")

    def rehearsal() -> None:  # two samples: the second starts with the first's map alive
        _field(meta, input_size, layer, 2, None, draw)

    needed = rehearse(rehearsal, max_memory, what)
    if needed is not None:
        return needed
    from convzoo.analysis.analyzer import analyze

    totals = analyze(model, input_size, receptive_fields=False, max_memory=max_memory).totals
    needed = 3 * totals.param_bytes + 4 * totals.activation_bytes + 16 * math.prod(input_size)
    check_memory(needed, max_memory, what)
    return needed


def progress(items: Sequence[Any], desc: str, unit: str) -> Any:
    """``items`` with a tqdm progress bar on stderr when it is a terminal."""
    if not sys.stderr.isatty():
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit=unit, leave=False)


def plot_receptive_field(
    model: nn.Module,
    input_size: tuple[int, int, int],
    path: str | Path,
    layer: str = "",
    samples: int = 8,
    name: str | None = None,
    unit: tuple[int, ...] | None = None,
    remark: str = "",
    max_memory: int | None = None,
) -> FieldPlot:
    """The exact receptive field of one unit of ``layer`` (default: its centre) drawn as a
    box over the effective field heatmap of the same unit.

    The box covers exactly the input pixels the unit depends on (the hull of its gradient
    support when every weight is positive), clipped to the input; the title gives the
    layer's summary (largest unclipped size, stride). ``remark`` is printed under it.
    Returns the written path, the unit and where its effective field is nonzero.
    """
    from matplotlib.patches import Rectangle

    from convzoo.analysis.analyzer import analyze
    from convzoo.analysis.receptive.describe import centre_unit, gridded
    from convzoo.analysis.render import field_text

    plt = _pyplot()
    report = analyze(model, input_size, max_memory=max_memory)
    row = report.layer(layer)
    rf = row.receptive_field
    if gridded(row) and rf is not None:
        unit = centre_unit(row) if unit is None else unit
        rf.unit(*unit)  # a clear error for a unit out of range
    erf, shown = effective_field(
        model, input_size, layer, samples, unit=unit, max_memory=max_memory
    )
    fig, ax = plt.subplots(figsize=(6, 5.5), layout="constrained")
    image = ax.imshow(erf.numpy(), cmap="viridis", origin="upper")
    fig.colorbar(image, ax=ax, label="mean |gradient| (effective receptive field)")
    height, width = input_size[1], input_size[2]
    ax.add_patch(
        Rectangle(
            (-0.5, -0.5), width, height, fill=False, color="0.6", lw=1, ls="--",
            label=f"input {height}x{width}",
        )
    )  # fmt: skip
    if gridded(row) and rf is not None:
        (rows, cols) = rf.unit(*shown)
        if rows is not None and cols is not None:
            label = f"exact field: rows {rows[0]}..{rows[1]}, cols {cols[0]}..{cols[1]}"
            box = Rectangle(
                (cols[0] - 0.5, rows[0] - 0.5), cols[1] - cols[0] + 1, rows[1] - rows[0] + 1,
                fill=False, color="red", lw=2, label=label,
            )  # fmt: skip
            ax.add_patch(box)
        field = f"box: the unit's exact field; all units of the layer: {field_text(rf)}"
        fig.legend(loc="outside lower center", fontsize=8, frameon=False)  # off the image
    else:
        field = "field: global" if rf is not None and rf.is_global else "no field"
    ax.set_xlim(-1.5, width + 0.5)
    ax.set_ylim(height + 0.5, -1.5)
    ax.set_xlabel("input column (pixels)")
    ax.set_ylabel("input row (pixels)")
    title = f"{name or report.target} / {layer or 'output'}: unit {shown}\n{field}"
    ax.set_title(wrap(title + (f"\n{remark}" if remark else ""), 4.4), fontsize=9)
    try:
        return FieldPlot(save(fig, path), shown, support(erf))
    finally:
        plt.close(fig)
