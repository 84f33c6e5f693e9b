"""Command-line argument types: one-line usage errors, sizes, counts and memory amounts,
each bounded by :mod:`convzoo.limits` and each showing a user's value through
:func:`convzoo.errors.render`."""

from __future__ import annotations

import argparse
import difflib
import re
from collections.abc import Sequence
from typing import Any, NoReturn

from convzoo.errors import ConvZooError, render
from convzoo.limits import MAX_SIZE, check_input, parse_bytes


class UsageError(ConvZooError):
    """A malformed command line (argparse's complaint, on one line)."""


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (user values bounded), raised instead of exiting; an
    unknown argument is named with its sub-command and the closest option."""

    def error(self, message: str) -> NoReturn:
        message = " ".join(message.split())
        if len(message) > 300:
            message = message[:297] + "..."
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")

    def parse_args(self, args: Any = None, namespace: Any = None) -> Any:
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            unrecognized(self.command_parser(parsed), extras)
        return parsed

    def command_parser(self, parsed: argparse.Namespace) -> argparse.ArgumentParser:
        """The sub-command's parser that ``parsed`` went through (this one when none)."""
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                found = action.choices.get(getattr(parsed, action.dest, None) or "")
                return found if found is not None else self
        return self


def unrecognized(parser: argparse.ArgumentParser, extras: list[str]) -> NoReturn:
    """``convzoo report: unrecognized argument '--fromat'; did you mean --format?``"""
    words = [w.split("=", 1)[0] for w in extras if w.startswith("-")] or extras
    options = [o for a in parser._actions if a.help != argparse.SUPPRESS for o in a.option_strings]
    hints = difflib.get_close_matches(words[0], options, n=2, cutoff=0.6)
    shown = ", ".join(render(w) for w in words[:4]) + (", ..." if len(words) > 4 else "")
    plural = "s" if len(words) > 1 else ""
    hint = f"; did you mean {' or '.join(hints)}?" if hints else f" (see {parser.prog} --help)"
    raise UsageError(f"{parser.prog}: unrecognized argument{plural} {shown}{hint}")


SIZE = re.compile(r"[0-9]{1,16}(?:x[0-9]{1,16}){0,7}")


def parse_size(text: str) -> tuple[int, ...]:
    """``"3x224x224"`` -> ``(3, 224, 224)`` within the limits of
    :func:`~convzoo.limits.check_input` (the batch is checked with it where it is known);
    a clear one-line error otherwise."""
    size = tuple(int(p) for p in text.lower().split("x")) if SIZE.fullmatch(text.lower()) else ()
    if not size or any(v < 1 for v in size):
        raise ConvZooError(
            f"--input must look like 3x224x224 (positive ints joined by x), got {render(text)}"
        )
    try:
        return check_input(size)
    except ConvZooError as exc:
        raise ConvZooError(f"--input {render(text)} is over the limits: {exc}") from None


INPUT_DTYPES = ("int64", "int32", "int16", "int8", "uint8", "bool")
"""The dtypes an ``--input`` may name (``16:int64``); floating inputs follow ``--dtype``."""


def parse_input(text: str) -> tuple[tuple[int, ...], str | None]:
    """``"3x224x224"`` -> ``((3, 224, 224), None)``; ``"16:int64"`` -> ``((16,), "int64")``
    (token ids for an embedding, a mask): a size, then optionally one of :data:`INPUT_DTYPES`."""
    size, colon, dtype = text.partition(":")
    if colon and dtype not in INPUT_DTYPES:
        raise ConvZooError(
            f"--input {render(text)}: the dtype after ':' must be one of "
            f"{', '.join(INPUT_DTYPES)} (floating inputs follow --dtype)"
        )
    return parse_size(size), dtype or None


def names(text: str) -> list[str]:
    """``"conv, factorized"`` -> ``["conv", "factorized"]``; an empty list or name is refused."""
    found = [name.strip() for name in text.split(",")]
    if not all(found):
        raise argparse.ArgumentTypeError(
            f"expected comma-separated names like conv,factorized, got {render(text)}"
        )
    return found


def count(text: str, minimum: int, maximum: int = MAX_SIZE) -> int:
    """An int from ``minimum`` to ``maximum`` for argparse; its error exits with status 2."""
    value = int(text) if re.fullmatch(r"[+-]?[0-9]{1,20}", text.strip()) else minimum - 1
    if not minimum <= value <= maximum:
        raise argparse.ArgumentTypeError(
            f"must be an int from {minimum:,} to {maximum:,}, got {render(text)}"
        )
    return value


def memory(text: str) -> int:
    """``--max-memory``: an amount like ``8GiB``, ``512MiB`` or plain bytes."""
    try:
        return parse_bytes(text)
    except ConvZooError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def given(args: argparse.Namespace, flags: dict[str, str]) -> list[str]:
    """The ``flags`` (``{"--kernel": "kernel"}``: flag -> destination) the user set."""
    return [flag for flag, dest in flags.items() if getattr(args, dest) not in (None, False)]


def check_needs(args: argparse.Namespace, needs: dict[tuple[str, str], tuple[str, str]]) -> None:
    """Refuse an option given without the option it needs (``needs``: ``(command, option) ->
    (needed option, what the first does)``, ``"--output/--plot"`` for either of two):
    ``--force overwrites the --plot file: it needs --plot``."""
    for (command, flag), (needed, what) in needs.items():
        if args.command != command or not given(args, {flag: _dest(flag)}):
            continue
        options = needed.split("/")  # "--output/--plot": either will do
        if not given(args, {option: _dest(option) for option in options}):
            raise ConvZooError(f"{what}: it needs {' or '.join(options)}")


def _dest(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_")


def budget(args: argparse.Namespace) -> dict[str, Any]:
    """``max_memory=`` for :func:`~convzoo.analysis.analyzer.analyze` when the user set one
    (its real-tensor fallback is bounded by it)."""
    value = getattr(args, "max_memory", None)
    return {} if value is None else {"max_memory": value}


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
    raise UsageError(f"unknown command {render(word)}{hint} (commands: {', '.join(commands)})")
