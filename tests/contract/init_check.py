"""``convzoo init-check``'s cells: every kind of target, each option's effect on the report
(the batch and input in its shapes, ``--init``'s findings, the mode's words), the plot."""

from __future__ import annotations

import json

from tests.contract.checks import (
    like_baseline,
    ok,
    plotted,
    refused,
    shows,
    that,
    unlike_baseline,
)
from tests.contract.matrix import CONFIG, PLOTS, TARGETS, Table, common, old
from tests.contract.run import Cell, Result

BASE = ("init-check", "usernet.py:Net")  # conv, batch norm, pooling, linear: 3x16x16
TRAIN = "train mode: batch norm normalises"
INITS = {  # --init -> what the report shows (usernet's conv and fc: symmetric at a constant)
    "zeros": "- symmetric:",
    "ones": "- symmetric:",
    "normal": "weights re-initialised: normal",
    "xavier": "weights re-initialised: xavier",
    "kaiming": "weights re-initialised: kaiming",
}


def json_report(r: Result, base: Result | None) -> None:
    """One JSON object: the report's keys, a row per recorded layer."""
    data = json.loads(r.stdout)
    assert {"target", "mode", "init", "findings", "layers", "grad_ratio"} <= set(data), data
    assert data["layers"] and all("variance" in row for row in data["layers"]), data


def target_cells(cells: Table) -> None:
    for kind, (argv, name) in TARGETS.items():
        line = ("init-check", *argv)
        if kind == "torchvision detector":  # needs targets in train mode: one line
            cells["target"].append(Cell(line, refused("model fails")))
        elif kind == "torchvision video":
            continue  # a 3-D network at batch 8: covered by report and rf
        else:
            cells["target"].append(Cell(line, ok(shows(f"{name}: input 8x", TRAIN))))
    cells["target"].append(Cell(("init-check", "nothing_like_it"), refused("nothing_like_it")))
    cells["--kwargs"] += [
        Cell((*BASE, "--kwargs", '{"width": 8}'), ok(shows("8x8x14x14"))),
        Cell(("init-check", CONFIG, "--kwargs", '{"width": 8}'), refused("--kwargs")),
    ]
    cells["--input"] += [
        Cell((*BASE, "--input", "3x32x32"), ok(shows("input 8x3x32x32", "8x4x30x30"))),
        Cell((*BASE, "--input", "3x0x5"), refused("--input")),
    ]
    cells["--batch"] += [
        Cell((*BASE, "--batch", "2"), ok(shows("input 2x3x16x16", "2x4x14x14"))),
        Cell((*BASE, "--batch", "0"), refused("--batch")),
    ]


def option_cells(cells: Table) -> None:
    for init, text in INITS.items():
        cells["--init"].append(
            Cell((*BASE, "--init", init), ok(shows(text), unlike_baseline), BASE)
        )
    cells["--init"].append(Cell((*BASE, "--init", "zero"), refused("--init", "zero")))
    cells["--eval"].append(
        Cell(
            (*BASE, "--eval"),
            ok(shows("eval mode: batch norm uses its running"), unlike_baseline),
            BASE,
        )
    )
    cells["--format"] += [
        Cell((*BASE, "--format", "text"), ok(like_baseline), BASE),
        Cell((*BASE, "--format", "json"), ok(json_report)),
        Cell((*BASE, "--format", "csv"), refused("--format")),
    ]
    plot = (*BASE, "--plot", "out.png")
    for ext in PLOTS:
        out = f"out.{ext}"
        cells["--plot"].append(Cell((*BASE, "--plot", out), ok(plotted(out), stderr=None), BASE))
    cells["--plot"] += [
        Cell((*BASE, "--plot", "out.txt"), refused("out.txt")),
        Cell(plot, refused("out.png", "--force"), setup=old("out.png")),
    ]
    cells["--force"] += [
        Cell((*plot, "--force"), ok(plotted("out.png"), stderr=None), BASE, setup=old("out.png")),
        Cell((*BASE, "--force"), refused("--force", "--plot")),
    ]
    cells["--max-memory"] += [
        Cell((*BASE, "--max-memory", "64GiB"), ok(like_baseline), BASE),
        Cell((*BASE, "--max-memory", "1KiB"), refused("--max-memory")),
    ]
    no_findings = that(lambda r, b: "no findings" in r.stdout, "no findings at its own init")
    cells["target"].append(Cell(BASE, ok(no_findings)))


def init_check_cells() -> Table:
    cells = common("init-check", BASE)
    target_cells(cells)
    option_cells(cells)
    return cells
