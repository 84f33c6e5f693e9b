"""The latency parts of the contract (issue 23): ``convzoo machine``, ``report --latency
--machine --plot`` and ``compare --latency --machine``.

Every cell estimates on a shipped profile or is refused: the tests' cache directory
(``tests.helpers.cli_env``) holds no measured profile, so ``--latency`` without ``--machine``
is refused in every run alike; the cells that measure write ``--output out.json`` (timed:
their figures are masked), never to the cache.
"""

from __future__ import annotations

import json

from tests.contract.checks import like_baseline, ok, plotted, refused, shows, that
from tests.contract.matrix import Table, common, old, per_format
from tests.contract.read import FORMATS
from tests.contract.run import Argv, Cell, Result

SHIPPED = ("nvidia-a100", "nvidia-h100", "nvidia-h200")
H100 = ("--latency", "--machine", "nvidia-h100")


def estimated(r: Result, base: Result | None) -> None:
    """A latency table on nvidia-h100, in the cell's format (JSON: a row per layer row)."""
    if r.format == "json":
        data = json.loads(r.stdout)
        assert data["latency"]["machine"] == "nvidia-h100" and data["latency"]["seconds"] > 0
        assert [e["name"] for e in data["latency"]["layers"]] == [
            row["name"] for row in data["layers"]
        ]
    elif r.format == "csv":
        assert r.stdout.startswith("name,type,depth,macs,bytes_moved,intensity,bound,seconds\n")
    else:
        assert "est. time" in r.stdout and "on nvidia-h100 (float32)" in r.stdout, r.stdout


def report_latency_cells(cells: Table, base: Argv) -> None:
    """``--latency``, ``--machine``, ``--plot`` of ``report``."""
    cells["--latency"] += [
        *per_format((*base, *H100), ok(estimated), base, formats=FORMATS),
        Cell((*base, *H100, "--depth", "1"), ok(estimated, shows("encoder"))),
        Cell((*base, *H100, "--top", "2", "--format", "json"), ok(estimated)),
        Cell((*base, "--latency"), refused("convzoo machine", "--machine")),
        Cell((*base, "--latency", "--by-op"), refused("--by-op", "--latency")),
    ]
    halves = that(lambda r, b: "(float16)" in r.stdout, "float16")
    cells["--machine"] += [
        Cell((*base, "--latency", "--machine", "nvidia-a100"), ok(shows("nvidia-a100"))),
        Cell((*base, *H100, "--dtype", "float16"), ok(halves)),
        Cell((*base, "--latency", "--machine", "nvidia-h10"), refused("nvidia-h10", "nvidia-h100")),
        Cell((*base, "--machine", "nvidia-h100"), refused("--machine", "--latency")),
    ]
    plot = (*base, *H100, "--plot", "out.png")
    cells["--plot"] += [
        Cell(plot, ok(plotted("out.png"), stderr=None), (*base, *H100)),
        Cell(
            (*base, *H100, "--plot", "out.svg"), ok(plotted("out.svg"), stderr=None), (*base, *H100)
        ),
        Cell((*base, "--plot", "out.png"), refused("--plot", "--latency")),
        Cell((*base, *H100, "--plot", "out.txt"), refused("out.txt")),
        Cell(plot, refused("out.png", "--force"), setup=old("out.png")),
    ]
    cells["--force"].append(
        Cell((*plot, "--force"), ok(plotted("out.png"), stderr=None), (*base, *H100),
             setup=old("out.png"))
    )  # fmt: skip


def compare_latency_cells(cells: Table, two: Argv) -> None:
    """``--latency``, ``--machine`` of ``compare``: a column, no run."""
    column = that(lambda r, b: all(row["estimated_ms"] > 0 for row in json.loads(r.stdout)), "")
    cells["--latency"] += [
        Cell((*two, *H100), ok(shows("est. ms"))),
        Cell((*two, *H100, "--format", "json"), ok(column)),
        Cell((*two, "--latency"), refused("convzoo machine")),
    ]
    cells["--machine"] += [
        Cell((*two, "--latency", "--machine", "nvidia-a100"), ok(shows("est. ms"))),
        Cell((*two, "--machine", "nvidia-a100"), refused("--machine", "--latency")),
        Cell((*two, "--latency", "--machine", "nope"), refused("nope")),
    ]


def profile_json(r: Result, base: Result | None) -> None:
    data = json.loads(r.file("out.json"))
    assert data["device"] == "cpu" and data["bandwidth"] > 0 and data["overhead"] > 0, data
    assert json.loads(r.stdout) == data


def machine_cells() -> Table:
    base = ("machine", "--list")
    cells = common("machine", base)
    measured = ok(profile_json, stderr=None)
    measure = ("machine", "--threads", "1", "--output", "out.json", "--format", "json")
    cells["--list"] += [
        Cell(base, ok(shows(*SHIPPED, "datasheet"))),
        Cell((*base, "--format", "json"), ok(shows(*SHIPPED, "https://"))),
        Cell((*base, "--show", "nvidia-h100"), refused("--list", "--show")),
        Cell((*base, "--threads", "2"), refused("--list", "--threads")),
    ]
    cells["--show"] += [
        Cell(("machine", "--show", "nvidia-h200"), ok(shows("4.8 TB/s", "https://"))),
        Cell(("machine", "--show", "nvidia-a100", "--format", "json"), ok(shows('"peak"'))),
        Cell(("machine", "--show", "nvidia-a10"), refused("nvidia-a10", "nvidia-a100")),
        Cell(("machine", "--show", "nvidia-h100", "--output", "out.json"), refused("--show")),
    ]
    cells["--threads"] += [
        Cell(measure, measured, timed=True),
        Cell(("machine", "--threads", "0"), refused("--threads")),
    ]
    cells["--output"] += [
        Cell(("machine", "--output", "out.json"), refused("out.json", "--force"),
             setup=old("out.json")),
        Cell(("machine", "--output", "."), refused("'.'")),
    ]  # fmt: skip
    cells["--force"] += [
        Cell((*measure, "--force"), measured, setup=old("out.json"), timed=True),
        Cell(("machine", "--force"), refused("--force", "--output")),
    ]
    cells["--format"] += [
        Cell((*base, "--format", "table"), ok(like_baseline), base),
        Cell(("machine", "--show", "nvidia-h100", "--format", "json"), ok(shows('"bandwidth"'))),
        Cell((*base, "--format", "csv"), refused("--format")),
    ]
    return cells
