"""Contract cells and how they run.

A :class:`Cell` is one command line and what it must give. :func:`run_driver` runs many in
one interpreter (:mod:`tests.contract.driver`: one torch import, each command line as a
fresh process would run it); :func:`run_real` runs each in a process of the installed
``convzoo`` script. Every command line runs in a directory of its own holding
:data:`USER_FILES`; the files it writes are named ``out*`` and come back in
:attr:`Result.files`.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.helpers import ROOT, SCRIPT, cli_env, decode

DRIVER = Path(__file__).with_name("driver.py")

USER_FILES = {
    "usernet.py": """
from torch import nn


class Net(nn.Module):
    input_size = (3, 16, 16)

    def __init__(self, width=4):
        super().__init__()
        self.conv = nn.Conv2d(3, width, 3)
        self.norm = nn.BatchNorm2d(width)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(width, 2)

    def forward(self, x):
        return self.fc(self.pool(self.norm(self.conv(x))).flatten(1))


class Pair(nn.Module):  # two inputs, no default size: Tensor[B, 3, H, W], Tensor[B, 1, H, W]
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 2, 3)
        self.b = nn.Conv2d(1, 2, 3)

    def forward(self, x, y):
        return self.a(x) + self.b(y)
""",
    "user.yaml": """
name: user_net
input: [3, 16, 16]
layers:
  - {type: conv_norm_act, name: stem, out_channels: 4, kernel_size: 3}
  - {type: max_pool, name: pool, kernel_size: 2}
  - {type: conv, name: head, out_channels: 2, kernel_size: 3}
""",
    "user_compare.yaml": """
input: [4, 12, 12]
compare:
  wide: [{type: conv, out_channels: 4, kernel_size: 5, padding: same}]
  stacked:
    - {type: conv, out_channels: 4, kernel_size: 3, padding: same}
    - {type: conv, out_channels: 4, kernel_size: 3, padding: same}
""",
}
"""The user's own files, in every cell's directory: a model file, a config, a compare config."""
USER_FILES["usermod.py"] = USER_FILES["usernet.py"]  # the same, imported as module ``usermod``

Argv = tuple[str, ...]
Setup = tuple[tuple[str, str], ...]  # files written into the cell's directory first
Job = tuple[Argv, Setup]


@dataclass(frozen=True)
class Result:
    """What a command line gave: exit status, stdout, stderr and the ``out*`` files it
    wrote (new, or changed from its setup)."""

    argv: Argv
    code: int
    stdout: str
    stderr: str
    files: tuple[tuple[str, bytes], ...] = ()

    @property
    def format(self) -> str:
        """The ``--format`` it was given (``table`` when none)."""
        argv = self.argv
        return argv[argv.index("--format") + 1] if "--format" in argv else "table"

    def file(self, name: str) -> bytes:
        return dict(self.files)[name]


Expect = Callable[[Result, "Result | None"], None]
"""Asserts on a cell's result, given its baseline's (or None)."""


@dataclass(frozen=True)
class Cell:
    """One command line of the contract and what it must give.

    ``baseline``: the command line whose result the expectation compares with (the same
    one without the flag under test); ``setup``: files written into the cell's directory
    first (an ``out*`` one is what ``--force`` replaces); ``timed``: the output holds
    measured times, so runs are compared with the numbers masked; ``pending``: the option
    lands with another change (the cell is an expected failure while the parser lacks it);
    ``defect``: a known defect of the product (an expected failure, strictly: once fixed,
    the suite fails until the mark goes)."""

    argv: Argv
    expect: Expect
    baseline: Argv | None = None
    setup: Setup = ()
    timed: bool = False
    pending: str = ""
    defect: str = ""

    @property
    def id(self) -> str:
        text = " ".join(self.argv).replace(f"{ROOT}/", "")
        return text + "".join(f" [{name} exists]" for name, _ in self.setup)


def _prepare(jobs: Sequence[Job], root: Path) -> list[Path]:
    dirs = []
    for i, (_, setup) in enumerate(jobs):
        where = root / f"{i:04d}"
        where.mkdir(parents=True)
        for name, text in (*USER_FILES.items(), *setup):
            (where / name).write_text(text)
        dirs.append(where)
    return dirs


def _result(job: Job, where: Path, code: int, stdout: str, stderr: str) -> Result:
    argv, setup = job
    before = {name: text.encode() for name, text in setup}
    found = ((p.name, p.read_bytes()) for p in sorted(where.glob("out*")) if p.is_file())
    files = tuple((name, data) for name, data in found if before.get(name) != data)
    return Result(argv, code, stdout, stderr, files)


def run_driver(jobs: Sequence[Job], seeds: Sequence[str] = ("1", "2")) -> list[list[Result]]:
    """Every job once per hash seed: each seed's jobs in one driver process, the processes
    side by side, every other one in reverse order (so that each job follows other calls);
    ``[seed][job] -> Result``."""
    with tempfile.TemporaryDirectory() as tmp:
        runs = []
        for i, seed in enumerate(seeds):
            order = list(range(len(jobs)))[:: -1 if i % 2 else 1]
            root = Path(tmp) / seed
            dirs = _prepare(jobs, root)
            cells = [{"argv": jobs[j][0], "cwd": str(dirs[j])} for j in order]
            (root / "cells.json").write_text(json.dumps(cells))
            command = [sys.executable, DRIVER, root / "cells.json", root / "results.json"]
            process = subprocess.Popen(command, cwd=root, env=cli_env(PYTHONHASHSEED=seed))
            runs.append((root, dirs, order, process))
        results = []
        for root, dirs, order, process in runs:
            assert process.wait(timeout=1200) == 0, "the contract's driver failed"
            raw = dict(zip(order, json.loads((root / "results.json").read_text()), strict=True))
            results.append(
                [
                    _result(job, dirs[j], raw[j]["code"], raw[j]["stdout"], raw[j]["stderr"])
                    for j, job in enumerate(jobs)
                ]
            )
        return results


def run_real(jobs: Sequence[Job], seed: str = "3") -> list[Result]:
    """Each job in its own process of the installed ``convzoo`` script, side by side."""
    with tempfile.TemporaryDirectory() as tmp:
        dirs = _prepare(jobs, Path(tmp))
        processes = [
            subprocess.Popen(
                [SCRIPT, *argv],
                cwd=d,
                env=cli_env(PYTHONHASHSEED=seed),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            for (argv, _), d in zip(jobs, dirs, strict=True)
        ]
        outputs = [p.communicate(timeout=600) for p in processes]
        return [
            _result(job, d, p.returncode, decode(out), decode(err))
            for job, d, p, (out, err) in zip(jobs, dirs, processes, outputs, strict=True)
        ]


TIMES = re.compile(r"-?\d+\.\d+(e-?\d+)?x?")


def comparable(result: Result, timed: bool) -> tuple[object, ...]:
    """What runs of one command line must agree on: every byte, or for a ``timed`` one the
    text with its decimals masked and its spacing normalized (and no timed plot)."""
    if not timed:
        return result.code, result.stdout, result.stderr, result.files
    return result.code, *(
        " ".join(TIMES.sub("#", t).split()) for t in (result.stdout, result.stderr)
    )
