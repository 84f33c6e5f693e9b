"""The product contract (issue 20): the installed ``convzoo`` driven as a user drives it.

Every sub-command x every kind of target x every output format and option the parser
documents: each command line either succeeds with output that
shows every flag given, or exits 2 with one stderr line naming what does not apply, and the
same command line gives the same bytes (stdout, stderr, files written) on every call and in
every process. The matrix comes from the parser: an option without cells fails the suite.
The cells are in ``tests/contract/`` (its ``__init__`` says where each part lives).

Fast tier: the table's completeness, and one cell per command run by the installed
``convzoo`` script in its own process and twice by the in-process driver
(``tests/contract/driver.py``), all three identical. Slow tier: every other cell, in two
driver processes with different hash seeds, the second running the cells in reverse order
(each cell after other calls than in the first), which must agree.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator

import pytest

from convzoo.cli_parser import parser
from tests.contract.cells import FAST, table
from tests.contract.matrix import subparsers
from tests.contract.run import Cell, Job, Result, comparable, run_driver, run_real

TABLE = table()
PENDING: set[tuple[str, str]] = set()  # options another change brings: their cells xfail


def parser_options() -> dict[tuple[str, str], argparse.Action]:
    """Every ``(command, option)`` the parser accepts (``""``: ``convzoo`` itself; an option
    by its longest spelling, a positional argument by its name), hidden ones included."""
    top = parser()
    found = {("", max(a.option_strings, key=len)): a for a in top._actions if a.option_strings}
    for command, sub in subparsers(top).choices.items():
        for action in sub._actions:
            name = max(action.option_strings, key=len) if action.option_strings else action.dest
            found[(command, name)] = action
    return found


OPTIONS = parser_options()


def test_every_option_of_the_parser_has_cells() -> None:
    missing = sorted(set(OPTIONS) - set(TABLE))
    assert not missing, f"options with no contract cells (add them to tests/contract/): {missing}"
    unknown = sorted(set(TABLE) - set(OPTIONS) - PENDING)
    assert not unknown, f"cells for options the parser lacks: {unknown}"
    for (command, option), cells in TABLE.items():
        assert cells, (command, option)
        for cell in cells:  # each cell runs the command, with the option it is filed under
            assert not command or cell.argv[0] == command, cell.id
            assert not option.startswith("-") or option in cell.argv, cell.id


def test_every_choice_of_an_option_has_a_cell() -> None:
    for key, action in OPTIONS.items():
        for choice in action.choices or ():
            if key[1] == "command":
                continue
            assert any(choice in cell.argv for cell in TABLE[key]), f"{key} {choice!r}: no cell"


def test_every_command_has_a_fast_cell() -> None:
    commands = {"", *subparsers(parser()).choices}
    assert set(FAST) == commands
    assert {cell.argv for cell in FAST_CELLS} == set(FAST.values())


ALL = [cell for cells in TABLE.values() for cell in cells]
FAST_CELLS = [cell for cell in ALL if cell.argv in FAST.values() and not cell.setup]
SLOW_CELLS = [cell for cell in ALL if cell not in FAST_CELLS]


def jobs(cells: list[Cell]) -> list[Job]:
    """The cells' command lines and their baselines, each once."""
    found: dict[Job, None] = {}
    for cell in cells:
        found[(cell.argv, cell.setup)] = None
        if cell.baseline is not None:
            found[(cell.baseline, ())] = None
    return list(found)


def judge(cell: Cell, results: dict[Job, Result], others: list[dict[Job, Result]]) -> None:
    """The cell's expectation, then the same result in every other run."""
    result = results[(cell.argv, cell.setup)]
    base = None if cell.baseline is None else results[(cell.baseline, ())]
    cell.expect(result, base)
    for other in others:
        again = other[(cell.argv, cell.setup)]
        assert comparable(again, cell.timed) == comparable(result, cell.timed), (
            f"{cell.id}: not the same output in another call or process"
        )


def test_each_command_as_installed_and_in_the_driver_alike() -> None:
    """Each command's fast cell: the installed ``convzoo`` in a process of its own, and the
    in-process driver twice (across calls), give what the cell expects, and the same bytes."""
    found = jobs(FAST_CELLS)
    (driven,) = run_driver([*found, *found], seeds=("1",))
    first = dict(zip(found, driven[: len(found)], strict=True))
    second = dict(zip(found, driven[len(found) :], strict=True))
    real = dict(zip(found, run_real(found), strict=True))
    for cell in FAST_CELLS:
        judge(cell, real, [first, second])


def marks(cell: Cell) -> list[pytest.MarkDecorator]:
    found = [pytest.mark.slow]
    option = next((k for k, cells in TABLE.items() if cell in cells), None)
    if cell.pending and option not in OPTIONS:
        found.append(pytest.mark.xfail(reason=cell.pending, strict=False))
    if cell.defect:
        found.append(pytest.mark.xfail(reason=f"product defect: {cell.defect}", strict=True))
    return found


@pytest.fixture(scope="module")
def slow_runs(request: pytest.FixtureRequest) -> Iterator[list[dict[Job, Result]]]:
    """The selected slow cells, run in two driver processes (hash seeds 1 and 2, the
    second in reverse order)."""
    chosen = [
        item.callspec.params["cell"]
        for item in request.session.items
        if item.originalname == "test_cell" and hasattr(item, "callspec")
    ]
    found = jobs(chosen)
    yield [dict(zip(found, run, strict=True)) for run in run_driver(found)]


@pytest.mark.parametrize("cell", [pytest.param(c, id=c.id, marks=marks(c)) for c in SLOW_CELLS])
def test_cell(cell: Cell, slow_runs: list[dict[Job, Result]]) -> None:
    first, *others = slow_runs
    judge(cell, first, others)
