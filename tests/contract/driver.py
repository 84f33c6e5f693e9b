"""Many ``convzoo`` command lines in one interpreter, each run as a fresh process would run it.

``python tests/contract/driver.py CELLS.json RESULTS.json``: ``CELLS.json`` is a list of
``{"argv": [...], "cwd": "..."}``; ``RESULTS.json`` gets, in the same order, ``{"code": int,
"stdout": str, "stderr": str}``. Each command line gets a fresh ``sys.argv``, its own working
directory and ``sys.path``, file descriptors 1 and 2 redirected to files (so whatever writes
to them, Python or C, is captured), warnings shown again as in a new process, the modules
its target imported forgotten afterwards, and ``SystemExit`` (``--help``, ``--version``) read
as the exit status: what ``python -m convzoo ARGV`` does, without paying torch's import (about
2-3 s) per command line. The contract suite (``tests/test_contract.py``) checks in the fast
tier that it prints exactly what the installed command prints.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator
from typing import Any

from convzoo.cli import main


@contextlib.contextmanager
def captured() -> Iterator[dict[str, Any]]:
    """File descriptors 1 and 2 (and ``sys.stdout``/``sys.stderr``) into two temporary files;
    on exit, their decoded bytes in the yielded dict's ``stdout`` and ``stderr``."""
    found: dict[str, Any] = {}
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        sys.stdout.flush()
        sys.stderr.flush()
        saved = os.dup(1), os.dup(2)
        os.dup2(out.fileno(), 1)
        os.dup2(err.fileno(), 2)
        try:
            yield found
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
        for name, file in (("stdout", out), ("stderr", err)):
            file.seek(0)
            found[name] = file.read().decode("utf-8", "surrogateescape")


PACKAGE = os.path.dirname(os.path.abspath(main.__code__.co_filename))


def own_module(name: str, cwd: str) -> bool:
    """Whether the module ``name`` is the target's: a ``file.py`` loaded by path, or a
    module under the working directory (never convzoo's own, which registers once)."""
    if name.startswith("convzoo_target_"):
        return True
    file = getattr(sys.modules[name], "__file__", None)
    if not isinstance(file, str):
        return False
    file = os.path.abspath(file)
    return file.startswith(os.path.abspath(cwd) + os.sep) and not file.startswith(PACKAGE + os.sep)


def run(argv: list[str], cwd: str) -> dict[str, Any]:
    """``python -m convzoo *argv`` run in ``cwd``, in this interpreter."""
    state = os.getcwd(), list(sys.argv), list(sys.path), set(sys.modules)
    os.chdir(cwd)
    sys.argv = ["convzoo", *argv]
    try:
        with captured() as found, warnings.catch_warnings():
            try:
                code: Any = main(argv)
            except SystemExit as exc:  # --help, --version: what sys.exit would make of it
                code = exc.code
        if code is None:
            code = 0
        elif not isinstance(code, int):  # sys.exit("text") prints it and exits 1
            found["stderr"] += f"{code}\n"
            code = 1
    finally:
        os.chdir(state[0])
        sys.argv, sys.path[:] = state[1], state[2]
        for name in set(sys.modules) - state[3]:  # the target's own modules, as if never run
            if own_module(name, cwd):
                del sys.modules[name]
    return {"code": code, **found}


def driver(cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [run(list(cell["argv"]), cell["cwd"]) for cell in cells]


if __name__ == "__main__":
    with open(sys.argv[1], encoding="utf-8") as file:
        cells = json.load(file)
    results = driver(cells)
    with open(sys.argv[2], "w", encoding="utf-8") as file:
        json.dump(results, file)
