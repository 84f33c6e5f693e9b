"""argparse for ``convzoo``: one-line usage errors, mistyped commands, the version."""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Sequence
from typing import NoReturn


class Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors: ``convzoo: error: ...`` and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def version() -> str:
    """``convzoo.__version__``: the version of the code that runs (installed or checkout)."""
    from convzoo import __version__

    return __version__


def check_command(argv: Sequence[str], commands: list[str]) -> None:
    """A mistyped sub-command: one line naming the closest ones (``reprot`` -> ``report``)."""
    word = next((a for a in argv if not a.startswith("-")), None)
    if word is None or word in commands:
        return
    hints = difflib.get_close_matches(word, commands, n=2, cutoff=0.5)
    hint = f"; did you mean {' or '.join(hints)}?" if hints else ""
    print(
        f"convzoo: error: unknown command {word!r}{hint} (commands: {', '.join(commands)})",
        file=sys.stderr,
    )
    raise SystemExit(2)
