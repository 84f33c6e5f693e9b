"""What ``convzoo list`` shows, from package data so that it never imports torch: the
registry's layers and blocks, and (``--configs``) the packaged configs.

``catalogue.json`` holds one row (name, category, description, parameter formula) per
entry of :data:`convzoo.registry.LAYERS`; ``scripts/update_catalogue.py`` writes it from the
live registry and a test refuses a catalogue that differs from it. :func:`registry_table`
renders either source the same way; :func:`configs_table` lists ``convzoo/configs/``.
"""

from __future__ import annotations

import fnmatch
import importlib.util
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Protocol

from convzoo.errors import ConvZooError
from convzoo.registry import LAYERS, Registry, close_matches, matching

PATH = Path(__file__).with_name("catalogue.json")
"""The shipped catalogue (package data)."""
TORCHVISION = Path(__file__).with_name("torchvision_names.json")
"""torchvision's model names (package data), for suggestions that import neither torch nor
torchvision."""


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


def live_torchvision_names() -> list[str]:
    """``torchvision.models.list_models()`` (imports torch and torchvision, 1-2 s); empty
    where torchvision cannot be imported."""
    try:
        import torchvision

        return list(torchvision.models.list_models())
    except Exception:  # pragma: no cover - torchvision missing or broken
        return []


def torchvision_names() -> list[str]:
    """torchvision's model names as shipped (``scripts/update_catalogue.py`` writes them from
    :func:`live_torchvision_names`; a test refuses a stale file), read without importing
    torchvision; none where torchvision is not installed. Only suggestions use them: a
    ``torchvision:NAME`` target is checked against the live list."""
    if importlib.util.find_spec("torchvision") is None:
        return []
    try:
        names = json.loads(TORCHVISION.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # pragma: no cover - a broken install: slower, still right
        return live_torchvision_names()
    return [str(name) for name in names]


def dumps_names(names: list[str]) -> str:
    """``names`` as the text of ``torchvision_names.json``."""
    return json.dumps(names, indent=1) + "\n"


def categories() -> list[str]:
    """The categories :func:`registry_table` shows (and ``list --category`` accepts), in the
    order of the catalogue."""
    return list(dict.fromkeys(row.category for row in shipped().entries()))


CONFIG_FOLDERS = {"": "report, build, rf, init-check", "compare": "compare"}
"""Folders of ``convzoo/configs`` -> the commands that take their configs by name."""


def config_paths(folder: str = "") -> dict[str, Path]:
    """The YAML configs shipped in ``convzoo/configs/FOLDER``, by name (file stem)."""
    root = resources.files("convzoo") / "configs"
    root = root / folder if folder else root
    return {
        Path(entry.name).stem: Path(str(entry))
        for entry in sorted(root.iterdir(), key=lambda e: e.name)
        if entry.name.endswith((".yaml", ".yml"))
    }


def configs_table(pattern: str = "*", fmt: str = "simple", width: int | None = None) -> str:
    """``convzoo list --configs``: each packaged config whose name matches ``pattern``, the
    commands that take it by name, its input size and its ``description``."""
    from convzoo.config import load_config

    rows, names = [], []
    for folder, commands in CONFIG_FOLDERS.items():
        for name, path in config_paths(folder).items():
            names.append(name)
            if fnmatch.fnmatchcase(name, pattern):
                data = load_config(path)
                size = "x".join(str(v) for v in data.get("input") or ()) or "-"
                rows.append((name, commands, size, data.get("description") or ""))
    if not rows:
        hints = close_matches(pattern.strip("*"), names)
        hint = f"; did you mean {', '.join(hints)}?" if hints else ""
        raise ConvZooError(f"no packaged config matches {pattern!r}{hint}")
    return _draw(rows, ["name", "for", "input", "what it is"], fmt, width, (1,))


def _draw(
    rows: Sequence[Sequence[str]],
    headers: list[str],
    fmt: str,
    width: int | None,
    shares: tuple[int, ...],
) -> str:
    """``rows`` as a table; with ``width`` (columns), the last ``len(shares)`` columns wrap
    to split what the others leave free in those proportions."""
    from tabulate import tabulate  # 0.1 s: only where a table is drawn, not for --help

    widths: list[int | None] = [None] * len(headers)
    if width is not None:
        kept = len(headers) - len(shares)
        fixed = sum(max(len(r[i]) for r in rows) for i in range(kept))
        free = max(width - fixed - 2 * (len(headers) - 1) - 8, 30)
        cut = [free * sum(shares[:i]) // sum(shares) for i in range(len(shares) + 1)]
        widths[kept:] = [b - a for a, b in zip(cut, cut[1:], strict=False)]
    return tabulate(rows, headers=headers, tablefmt=fmt, maxcolwidths=widths)


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
    return _draw(rows, ["name", "category", "what it is", "parameters"], fmt, width, (3, 2))
