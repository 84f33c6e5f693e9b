"""Exception types raised by convzoo, all subclasses of ``ValueError``; :func:`render`,
the one way a user's value is shown inside a message; and :class:`user_code`, the one way
what the user's own code raises becomes such an error."""

from __future__ import annotations

from types import TracebackType
from typing import Any

RENDER_CHARS = 60
"""Characters of a value shown in a message (an ellipsis marks a cut)."""

RENDER_DEPTH = 3
"""Nested lists / mappings shown in a message; deeper ones are shown as ``[...]``."""

_BIG_INT_BITS = 256  # ints wider than this are described, not written out


class ConvZooError(ValueError):
    """Base class for every error convzoo raises on purpose."""


class MemoryBudgetError(ConvZooError):
    """Real tensors would cross the memory budget (raised before they are allocated)."""


class LayerArgumentError(ConvZooError):
    """A layer was given an argument it cannot work with.

    The message always starts with the registered layer name and the argument,
    e.g. ``conv: kernel_size must be positive, got (0, 3)``.
    """

    def __init__(self, layer: str, argument: str, message: str) -> None:
        self.layer = layer
        self.argument = argument
        super().__init__(f"{layer}: {argument} {message}")


def require(condition: bool, layer: str, argument: str, message: str) -> None:
    """Raise :class:`LayerArgumentError` unless ``condition`` holds."""
    if not condition:
        raise LayerArgumentError(layer, argument, message)


class _Full(Exception):
    """The rendering budget is spent."""


class _Writer:
    """Pieces of a rendering, refusing more once ``limit`` characters are written."""

    def __init__(self, limit: int) -> None:
        self.parts: list[str] = []
        self.left = limit

    def put(self, text: str) -> None:
        self.parts.append(text[: self.left + 1])
        self.left -= len(text)
        if self.left < 0:
            raise _Full

    def value(self, value: Any, depth: int) -> None:
        if isinstance(value, str):
            self.put(repr(value[: self.left + 2]))  # repr escapes newlines and escapes
        elif isinstance(value, bool) or value is None or isinstance(value, float):
            self.put(repr(value))
        elif isinstance(value, int):
            bits = value.bit_length()
            digits = int(bits * 0.30102999566) + 1  # an upper bound, often exact
            self.put(repr(value) if bits <= _BIG_INT_BITS else f"<int of ~{digits:,} digits>")
        elif isinstance(value, (list, tuple, dict)):
            self.container(value, depth)
        else:
            self.put(f"<{type(value).__name__}>")

    def container(self, value: list | tuple | dict, depth: int) -> None:
        opening, closing = ("{", "}") if isinstance(value, dict) else ("[", "]")
        if isinstance(value, tuple):
            opening, closing = "(", ")"
        if depth <= 0 and value:
            self.put(f"{opening}...{closing}")
            return
        self.put(opening)
        items = value.items() if isinstance(value, dict) else ((None, v) for v in value)
        for i, (key, item) in enumerate(items):
            if i:
                self.put(", ")
            if isinstance(value, dict):
                self.value(key, depth - 1)
                self.put(": ")
            self.value(item, depth - 1)
        self.put(closing)


def render(value: Any, limit: int = RENDER_CHARS, depth: int = RENDER_DEPTH) -> str:
    """``repr``-like text of any user value, at most ``limit`` characters and ``depth``
    nested containers, computed without rendering the whole value: a YAML alias bomb, a
    huge int or a megabyte string costs microseconds. Strings are quoted with control
    characters escaped, so the result is always one printable line."""
    writer = _Writer(limit)
    try:
        writer.value(value, depth)
    except _Full:
        return "".join(writer.parts)[: max(limit - 3, 0)] + "..."
    except RecursionError:  # pragma: no cover - depth is capped well below the stack
        return f"<{type(value).__name__}>"
    return "".join(writer.parts)


def first_line(exc: BaseException, limit: int = 300) -> str:
    """The first line of ``str(exc)``, at most ``limit`` characters (or the exception's
    type name when it has no text): C++ frames and long dumps never reach a message."""
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return line if len(line) <= limit else line[: limit - 3] + "..."


def why(exc: BaseException) -> str:
    """``Type: first line`` of an exception raised by the user's code (``SystemExit: 3``);
    the type alone when it has no text (``sys.exit()``)."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {first_line(exc)}" if text else type(exc).__name__


class UserCodeError(ConvZooError):
    """The user's code (their module, class, factory or forward) raised something that
    would otherwise end the program: ``SystemExit`` (``sys.exit``), ``GeneratorExit`` or
    another ``BaseException`` subclass; with ``user_code(what, everything=True)``, any
    exception. The message is ``what: Type: first line``."""


class user_code:  # noqa: N801 - a context manager named for what it surrounds, as contextlib's
    """``with user_code(what):`` around code of the user's: importing their module, calling
    their class or factory, their model's forward (hooks included).

    ``SystemExit``, ``GeneratorExit`` and every other ``BaseException`` that is not an
    ``Exception`` become one :class:`UserCodeError` ``what: Type: first line``, so that
    ``sys.exit(0)`` in a model's forward cannot end the program silently (or with its own
    status), and a custom ``BaseException`` prints no traceback. ``KeyboardInterrupt``
    always passes (Ctrl-C stops the work; the CLI exits 130). Ordinary exceptions pass
    unchanged for the caller to word (the analyzer falls back to real tensors on them),
    unless ``everything=True``, which converts them too. No ``yield`` runs inside, so the
    ``GeneratorExit`` converted is always the user's own, never a generator being closed.
    """

    def __init__(self, what: str = "", *, everything: bool = False) -> None:
        self.what = what
        self.everything = everything

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        trace: TracebackType | None,
    ) -> None:  # never swallows: passes the exception on, or raises the one-line error
        if exc is None or isinstance(exc, KeyboardInterrupt):
            return
        if isinstance(exc, Exception) and not self.everything:
            return
        raise UserCodeError(f"{self.what}: {why(exc)}" if self.what else why(exc)) from None
