"""The contract's matrix: every ``(command, option)`` of the parser -> its cells.

The command ``""`` is ``convzoo`` itself; a positional argument is named by its ``dest``.
``report``, ``compare`` and ``init-check`` have modules of their own; ``convzoo``, ``list``,
``build`` and ``rf`` are here, with :data:`FAST`, the cell of each command that the fast tier
runs.
"""

from __future__ import annotations

import convzoo
from convzoo.catalogue import CONFIG_FOLDERS, categories, config_paths
from tests.contract import read
from tests.contract.checks import (
    built,
    like_baseline,
    listed,
    ok,
    plotted,
    refused,
    shows,
    that,
    unlike_baseline,
    well_formed,
)
from tests.contract.compare import TWO, compare_cells
from tests.contract.init_check import init_check_cells
from tests.contract.matrix import (
    COMPARE,
    CONFIG,
    CONFIGS,
    PLOTS,
    TARGETS,
    Table,
    common,
    documented,
    old,
    per_format,
)
from tests.contract.report import report_cells
from tests.contract.run import Cell, Expect, Result

LISTS = ("table", "markdown")  # list's formats


def top_cells() -> Table:
    version = f"convzoo {convzoo.__version__}\n"
    base = ("report", CONFIG, "--depth", "0")
    commands = ("list", "build", "report", "compare", "rf", "init-check")
    return {
        "--version": [Cell(("--version",), ok(that(lambda r, b: r.stdout == version, version)))],
        "--debug": [Cell(("--debug", *base), ok(like_baseline), base)],
        "--help": [Cell(("--help",), ok(shows(*commands, *documented(""))))],
    }


def list_cells() -> Table:
    base = ("list", "conv*")
    configs = [name for folder in CONFIG_FOLDERS for name in config_paths(folder)]

    def named(prefix: str) -> Expect:
        return ok(listed("name", lambda name: name.startswith(prefix), f"{prefix}*"))

    def every_config(r: Result, base: Result | None) -> None:
        assert read.names(r.stdout, r.format) == configs, r.stdout

    cells = common("list", base)
    cells["pattern"] += [
        *per_format(("list", "depth*"), named("depth"), formats=LISTS),
        Cell(("list", "zzz"), refused("zzz")),
    ]
    for category in categories():
        only = listed("category", lambda found, c=category: found == c, category)
        cells["--category"].append(Cell(("list", "--category", category), ok(only)))
    cells["--category"] += [
        Cell(("list", "--configs", "--category", "conv"), refused("--category")),
        Cell(("list", "--category", "nope"), refused("--category", "nope")),
    ]
    cells["--configs"] += [
        *per_format(("list", "--configs"), ok(every_config), formats=LISTS),
        Cell(("list", "--configs", "res*"), named("res")),
    ]
    cells["--format"] += [
        *per_format(base, named("conv"), formats=LISTS),
        Cell((*base, "--format", "table"), ok(like_baseline), base),
        Cell(("list", "--format", "json"), refused("--format")),
    ]
    return cells


def build_cells() -> Table:
    base = ("build", "user.yaml")
    cells = common("build", base)
    for kind, (argv, name) in TARGETS.items():
        expect = ok(built(name)) if kind in CONFIGS else refused(argv[0], "convzoo build takes")
        cells["config"].append(Cell(("build", argv[0]), expect))
    cells["config"] += [
        Cell(("build", COMPARE), refused(COMPARE, "compare")),
        Cell(("build", "nothing.yaml"), refused("nothing.yaml")),
    ]
    cells["--input"] += [
        Cell((*base, "--input", "3x32x32"), ok(built("user_net", "(3, 32, 32)")), base),
        Cell((*base, "--input", "3x0x5"), refused("--input")),
    ]
    return cells


def no_none(r: Result, base: Result | None) -> None:
    """Nothing printed as Python's ``None``."""
    assert "None" not in r.stdout, r.stdout


def rf_cells() -> Table:
    base = ("rf", CONFIG)
    plot = (*base, "--plot", "out.png")
    cells = common("rf", base)
    for argv, name in TARGETS.values():
        cells["target"].append(Cell(("rf", *argv), ok(shows(f"{name} / "), no_none)))
        line = ("rf", *argv, "--format", "json")
        cells["--format"].append(Cell(line, ok(well_formed)))
    cells["target"].append(Cell(("rf", "nothing_like_it"), refused("nothing_like_it")))
    cells["--format"] += [
        Cell((*base, "--format", "text"), ok(like_baseline), base),
        Cell((*base, "--format", "xml"), refused("--format")),
    ]
    cells["--kwargs"] += [
        Cell(("rf", "usernet.py:Net", "--kwargs", '{"width": 8}'), ok(shows("1x8x14x14"))),
        Cell((*base, "--kwargs", '{"width": 8}'), refused("--kwargs")),
    ]
    cells["--input"] += [
        Cell((*base, "--input", "3x32x32"), ok(shows("1x5x32x32"))),
        Cell((*base, "--input", "3x0x5"), refused("--input")),
    ]
    cells["--layer"] += [
        Cell((*base, "--layer", "encoder.conv2"), ok(shows("/ encoder.conv2:", "8x8"))),
        Cell((*base, "--layer", "encodr"), refused("encodr")),
    ]
    valid3x3 = "unit (1, 1): input h 1..3, w 1..3"  # usernet's first layer: a valid 3x3 conv
    cells["--unit"] += [
        Cell(("rf", "usernet.py:Net", "--unit", "1,1"), ok(shows(valid3x3))),
        Cell((*base, "--unit", "999,999"), refused("999")),
        Cell((*base, "--unit", "x"), refused("--unit")),
    ]
    effective = shows("effective field of unit")
    for ext in PLOTS:
        out = f"out.{ext}"
        cells["--plot"].append(
            Cell((*base, "--plot", out), ok(plotted(out, effective), stderr=None))
        )
    video = ("rf", *TARGETS["torchvision video"][0], "--plot", "out.png")
    cells["--plot"] += [
        Cell(video, refused("--plot")),
        Cell((*base, "--plot", "out.txt"), refused("out.txt")),
        Cell(plot, refused("out.png", "--force"), setup=old("out.png")),
    ]
    fewer = ok(plotted("out.png", effective), unlike_baseline, stderr=None)
    cells["--samples"] += [
        Cell((*plot, "--samples", "2"), fewer, plot),
        Cell((*base, "--samples", "2"), refused("--samples", "--plot")),
        Cell((*plot, "--samples", "0"), refused("--samples")),
    ]
    replaced = ok(plotted("out.png", effective), stderr=None)
    cells["--force"] += [
        Cell((*plot, "--force"), replaced, setup=old("out.png")),
        Cell((*base, "--force"), refused("--force", "--plot")),
    ]
    cells["--max-memory"] += [
        Cell((*base, "--max-memory", "64GiB"), ok(like_baseline), base),
        Cell((*plot, "--max-memory", "1KiB"), refused("--max-memory")),
    ]
    return cells


COMMANDS = {
    "": top_cells,
    "list": list_cells,
    "build": build_cells,
    "report": report_cells,
    "compare": compare_cells,
    "rf": rf_cells,
    "init-check": init_check_cells,
}


def table() -> dict[tuple[str, str], list[Cell]]:
    """Every cell, by ``(command, option)``."""
    return {
        (command, option): cells
        for command, make in COMMANDS.items()
        for option, cells in make().items()
    }


FAST = {  # each command's cell in the fast tier, where the installed command runs it
    "": ("--version",),
    "list": ("list", "--configs", "--format", "markdown"),
    "build": ("build", "user.yaml", "--input", "3x32x32"),
    "report": ("report", CONFIG, "--depth", "1", "--format", "csv"),
    "compare": (*TWO, "--format", "json"),
    "rf": ("rf", "usernet.py:Net", "--unit", "1,1"),
    "init-check": ("init-check", "usernet.py:Net", "--init", "zeros"),
}
