"""Type-strict keyword values for layers built from configs, checked before any layer sees
them: booleans are booleans (and only where the keyword is a ``bool``), ints are sizes below
:data:`~convzoo.limits.MAX_SIZE`, strings are short, lists and mappings are small and
shallow. So a YAML alias bomb, a huge int or ``bias: "no"`` stops here with one bounded line,
whichever layer it was meant for.
"""

from __future__ import annotations

import inspect
import math
from typing import Any

from convzoo.config import ConfigError, child, describe
from convzoo.limits import MAX_INPUT_ELEMENTS, MAX_NAME_CHARS, MAX_SIZE

Shape = tuple[int, ...]

MAX_ITEMS = 16
"""Items of a list or mapping keyword value (a pair, a padding spec, ``conv_args``)."""

MAX_NESTING = 2
"""Lists / mappings inside a keyword value: ``[[1, 2], [0, 1]]`` is two."""


_BOOLS: dict[type[Any], dict[str, bool]] = {}


def bool_keywords(cls: type[Any]) -> dict[str, bool]:
    """keyword -> True when it takes only a bool, False when a bool is one of its types;
    keywords not listed take no bool. Read from the annotations of ``cls`` (cached)."""
    if cls not in _BOOLS:
        found = {}
        for name, param in inspect.signature(cls).parameters.items():
            text = str(param.annotation)
            parts = {p.strip() for p in text.split("|")}
            if "bool" in parts or "Any" in parts:
                found[name] = parts <= {"bool", "None"}
        _BOOLS[cls] = found
    return _BOOLS[cls]


def check_keyword(cls: type[Any], key: str, value: Any, where: str) -> None:
    """Refuse a keyword value of the wrong kind for ``cls`` (a located ConfigError)."""
    flags = bool_keywords(cls)
    if flags.get(key) and value is not None and not isinstance(value, bool):
        raise ConfigError(f"expected true or false, found {describe(value)}", where)
    check_value(value, where, 0, key in flags)


def check_value(value: Any, where: str, depth: int, bools: bool) -> None:
    """Scalars: None, bool (when ``bools``), int and float within ``MAX_SIZE``, short str;
    containers: at most ``MAX_ITEMS`` items and ``MAX_NESTING`` levels, str keys."""
    if value is None or isinstance(value, str) and len(value) <= MAX_NAME_CHARS:
        return
    if isinstance(value, bool):
        if not bools:
            raise ConfigError(f"expected a number or a name, found {describe(value)}", where)
        return
    if isinstance(value, int):
        if not -MAX_SIZE <= value <= MAX_SIZE:
            raise ConfigError(
                f"expected an int of at most {MAX_SIZE:,} (the size limit), found "
                f"{describe(value)}",
                where,
            )
        return
    if isinstance(value, float):
        if not (math.isfinite(value) and abs(value) <= MAX_SIZE):
            raise ConfigError(f"expected a finite number, found {describe(value)}", where)
        return
    if isinstance(value, (list, tuple, dict)):
        if depth >= MAX_NESTING or len(value) > MAX_ITEMS:
            raise ConfigError(
                f"expected a value of at most {MAX_ITEMS} items and {MAX_NESTING} levels, "
                f"found {describe(value)}",
                where,
            )
        if isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(key, str) or len(key) > MAX_NAME_CHARS:
                    raise ConfigError(f"expected a keyword name, found {describe(key)}", where)
                check_value(item, child(where, key), depth + 1, True)
        else:
            for i, item in enumerate(value):
                check_value(item, child(where, i), depth + 1, bools)
        return
    what = "a text" if isinstance(value, str) else "a number, a name or a short list"
    limit = f" of at most {MAX_NAME_CHARS} characters" if isinstance(value, str) else ""
    raise ConfigError(f"expected {what}{limit}, found {describe(value)}", where)


def input_shape(value: Any, where: str = "input", batch: int = 1) -> Shape:
    """Validate ``(C, H, W)`` (or any tuple of positive ints up to :data:`MAX_SIZE`, with
    at most :data:`MAX_INPUT_ELEMENTS` elements for ``batch`` inputs)."""
    if (
        not isinstance(value, (list, tuple))
        or not 1 <= len(value) <= 8
        or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)
    ):
        raise ConfigError(
            f"expected a list of positive ints like [3, 224, 224], found {describe(value)}", where
        )
    if max(value) > MAX_SIZE:
        raise ConfigError(
            f"expected sizes of at most {MAX_SIZE:,} (the size limit), found {describe(value)}",
            where,
        )
    if batch * math.prod(value) > MAX_INPUT_ELEMENTS:
        raise ConfigError(
            f"an input of {batch:,}x{'x'.join(map(str, value))} has "
            f"{batch * math.prod(value):,} elements, over the limit of {MAX_INPUT_ELEMENTS:,}",
            where,
        )
    return tuple(value)
