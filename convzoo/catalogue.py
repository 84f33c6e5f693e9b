"""The registry's listing as package data, so ``convzoo list`` never imports torch.

``catalogue.json`` holds one row (name, category, description, parameter formula) per
entry of :data:`convzoo.registry.LAYERS`; ``scripts/update_catalogue.py`` writes it from the
live registry and a test refuses a catalogue that differs from it. :func:`registry_table`
renders either source the same way.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

from convzoo.errors import ConvZooError
from convzoo.registry import LAYERS, Registry, close_matches, matching

PATH = Path(__file__).with_name("catalogue.json")
"""The shipped catalogue (package data)."""


@dataclass(frozen=True)
class Row:
    """One listed entry, as the registry describes it."""

    name: str
    category: str
    description: str
    params_formula: str


class Described(Protocol):
    """What a listing shows of an entry: a :class:`Row`, or a registry's ``Entry``."""

    @property
    def name(self) -> str: ...

    @property
    def category(self) -> str: ...

    @property
    def description(self) -> str: ...

    @property
    def params_formula(self) -> str: ...


class Source(Protocol):
    """A :class:`~convzoo.registry.Registry`, or the catalogue written from one."""

    def entries(self, pattern: str = "*", category: str | None = None) -> Sequence[Described]: ...


class Catalogue:
    """Rows read back from ``catalogue.json``; lists like :meth:`Registry.entries`."""

    def __init__(self, rows: list[Row]) -> None:
        self.rows = rows

    def entries(self, pattern: str = "*", category: str | None = None) -> list[Row]:
        return matching(self.rows, pattern, category)


def live_rows(registry: Registry = LAYERS) -> list[Row]:
    """The rows of the live registry (imports every layer and block)."""
    return [Row(e.name, e.category, e.description, e.params_formula) for e in registry.entries()]


def dumps(rows: list[Row]) -> str:
    """``rows`` as the text of ``catalogue.json``."""
    return json.dumps([asdict(r) for r in rows], indent=1, ensure_ascii=False) + "\n"


def shipped() -> Source:
    """The shipped catalogue, or the live registry where the file is missing."""
    try:
        text = PATH.read_text(encoding="utf-8")
    except FileNotFoundError:  # pragma: no cover - a broken install: slower, still right
        return LAYERS
    return Catalogue([Row(**row) for row in json.loads(text)])


def registry_table(
    pattern: str = "*",
    category: str | None = None,
    fmt: str = "simple",
    width: int | None = None,
    listing: Source | None = None,
) -> str:
    """The registry as a table: name, category, description, parameter formula; ``width``
    (columns) wraps the description and formula to fit a terminal that wide. ``listing``
    defaults to the shipped catalogue (``LAYERS`` renders the live registry)."""
    from tabulate import tabulate  # 0.1 s: only where a table is drawn, not for --help

    listing = shipped() if listing is None else listing
    found = listing.entries(pattern, category)
    if not found:
        names = [row.name for row in listing.entries("*", category)]
        hints = close_matches(pattern.strip("*"), names)
        hint = f"; did you mean {', '.join(hints)}?" if hints else ""
        where = f" in category {category!r}" if category else ""
        raise ConvZooError(f"no registered layer matches {pattern!r}{where}{hint}")
    code = (lambda text: f"`{text}`") if fmt == "github" else (lambda text: text)
    rows = [(code(r.name), r.category, r.description, code(r.params_formula)) for r in found]
    widths: list[int | None] = [None, None, None, None]
    if width is not None:
        fixed = max(len(r[0]) for r in rows) + max(len(r[1]) for r in rows) + 2 * 3 + 8
        free = max(width - fixed, 30)
        widths = [None, None, free * 3 // 5, free - free * 3 // 5]
    return tabulate(
        rows,
        headers=["name", "category", "what it is", "parameters"],
        tablefmt=fmt,
        maxcolwidths=widths,
    )
