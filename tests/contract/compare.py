"""``convzoo compare``'s cells: its configs in every format, each option's effect on the
designs' counts (from their formulas), and the options a config refuses."""

from __future__ import annotations

from tests.contract.checks import (
    conv,
    designs,
    like_baseline,
    measured,
    ok,
    plotted,
    refused,
    same_designs,
    scaled_designs,
)
from tests.contract.latency import compare_latency_cells
from tests.contract.matrix import COMPARE, COMPARES, PLOTS, TARGETS, Table, common, old, per_format
from tests.contract.run import Argv, Cell

K, C, S = 7, 4, 8  # the default kernel; the channels (in and out) and size of these cells
DESIGN_OPTIONS = {  # each refused with a compare: config, which names the designs itself
    "--kernel": ("5",),
    "--in-channels": ("8",),
    "--out-channels": ("8",),
    "--size": ("16",),
    "--designs": ("conv",),
    "--padding": ("valid",),
    "--no-bias": (),
    "--upsample": ("2",),
}


def small(**over: int) -> Argv:
    """``compare`` at ``C -> C`` channels on ``S x S``, or what ``over`` says instead."""
    values = {"in_channels": C, "out_channels": C, "size": S, **over}
    flags = ((f"--{key.replace('_', '-')}", str(value)) for key, value in values.items())
    return ("compare", *(word for flag in flags for word in flag))


BASE = small()
TWO = (*BASE, "--designs", "conv,factorized")  # two designs: quick plots and timings


def config_cells(cells: Table) -> None:
    for argv, names in COMPARES.values():
        cells["config"] += per_format(("compare", *argv), ok(designs(*names)))
    for kind in ("config", "user yaml", "torchvision classifier", "timm", "file", "module"):
        target = TARGETS[kind][0][0]  # a model, not designs
        cells["config"].append(Cell(("compare", target), refused(target)))
    for option, value in DESIGN_OPTIONS.items():
        cells[option].append(Cell(("compare", COMPARE, option, *value), refused(option)))


def design_cells(cells: Table) -> None:
    """The conv's counts: ``K*K*C_in*C_out (+ C_out)`` params, ``* H*W`` MACs ("same")."""
    cells["--kernel"] += [
        *per_format((*BASE, "--kernel", "5"), ok(conv(params=25 * C * C + C, receptive_field=5))),
        Cell((*BASE, "--kernel", "2"), refused("--kernel")),
    ]
    cells["--in-channels"] += per_format(small(in_channels=8), ok(conv(params=K * K * 8 * C + C)))
    cells["--out-channels"] += per_format(small(out_channels=8), ok(conv(params=K * K * C * 8 + 8)))
    cells["--size"] += per_format(small(size=16), ok(conv(macs=K * K * C * C * 16 * 16)))
    valid = K * K * C * C * (S - K + 1) ** 2
    cells["--padding"] += [
        *per_format((*BASE, "--padding", "valid"), ok(conv(macs=valid))),
        Cell(
            (*BASE, "--padding", "same"), ok(like_baseline, conv(macs=K * K * C * C * S * S)), BASE
        ),
    ]
    cells["--no-bias"] += per_format((*BASE, "--no-bias"), ok(conv(params=K * K * C * C)))
    twice = ok(scaled_designs("macs", 2, "conv"), scaled_designs("params", 1))
    cells["--batch"] += [
        *per_format((*BASE, "--batch", "2"), twice, BASE),
        *per_format(
            ("compare", COMPARE, "--batch", "2"),
            ok(scaled_designs("macs", 2)),
            ("compare", COMPARE),
            formats=["json"],
        ),
        Cell((*BASE, "--batch", "0"), refused("--batch")),
    ]
    cells["--upsample"] += [
        *per_format(
            (*BASE, "--upsample", "2"), ok(designs("resize_conv", "transposed", "sub_pixel"))
        ),
        Cell((*BASE, "--upsample", "2", "--padding", "valid"), refused("--padding")),
        Cell((*BASE, "--upsample", "1"), refused("--upsample")),
    ]
    sub_pixel = (*BASE, "--upsample", "2", "--designs", "sub_pixel")
    cells["--designs"] += [
        *per_format(TWO, ok(designs("conv", "factorized"))),
        Cell(sub_pixel, ok(designs("resize_conv", "sub_pixel"))),  # the reference first
        Cell((*BASE, "--designs", "nope"), refused("--designs", "nope")),
    ]
    old_name = (*BASE, "--variants", "conv,factorized")
    cells["--variants"].append(Cell(old_name, ok(like_baseline), TWO))


def run_cells(cells: Table) -> None:
    """``--bench``, ``--train``, ``--plot``, ``--force``, ``--format``, ``--max-memory``."""
    cells["--bench"] += [
        Cell((*TWO, "--bench", "--format", "json"), ok(measured("forward_ms")), timed=True),
        Cell((*TWO, "--bench", "--max-memory", "1KiB"), refused("--max-memory")),
    ]
    cells["--train"].append(
        Cell((*TWO, "--train", "--format", "json"), ok(measured("train_ms")), timed=True)
    )
    for ext in PLOTS:
        out = f"out.{ext}"
        cells["--plot"].append(Cell((*TWO, "--plot", out), ok(plotted(out), stderr=None), TWO))
    cells["--plot"] += [
        Cell((*TWO, "--plot", "out.txt"), refused("out.txt")),
        Cell((*TWO, "--plot", "out.png"), refused("out.png", "--force"), setup=old("out.png")),
    ]
    replace = (*TWO, "--plot", "out.png", "--force")
    cells["--force"] += [
        Cell(replace, ok(plotted("out.png"), stderr=None), TWO, setup=old("out.png")),
        Cell((*TWO, "--force"), refused("--force", "--plot")),
    ]
    cells["--format"] += [
        *per_format(TWO, ok(same_designs), TWO, "json"),
        Cell((*TWO, "--format", "table"), ok(like_baseline), TWO),
        Cell((*TWO, "--format", "xml"), refused("--format")),
    ]
    cells["--max-memory"].append(Cell((*TWO, "--max-memory", "1KiB"), ok(like_baseline), TWO))


def compare_cells() -> Table:
    cells = common("compare", BASE)
    for add in (config_cells, design_cells, run_cells):
        add(cells)
    compare_latency_cells(cells, TWO)
    return cells
