"""The keywords of a layer built from a config: accepted by its constructor, completed from
the input shape (:func:`layer_keywords`), and type-strict, checked before any layer sees
them: booleans are booleans (and only where the keyword is a ``bool``), ints are sizes below
:data:`~convzoo.limits.MAX_SIZE`, strings are short, lists and mappings are small and
shallow. So a YAML alias bomb, a huge int or ``bias: "no"`` stops here with one bounded line,
whichever layer it was meant for.
"""

from __future__ import annotations

import inspect
import math
from typing import TYPE_CHECKING, Any

from convzoo.config import ConfigError, child, describe
from convzoo.errors import ConvZooError, render
from convzoo.limits import MAX_NAME_CHARS, MAX_SIZE, check_input, check_int
from convzoo.registry import close_matches

if TYPE_CHECKING:  # pragma: no cover
    from convzoo.registry import Entry

Shape = tuple[int, ...]

MAX_ITEMS = 16
"""Items of a list or mapping keyword value (a pair, a padding spec, ``conv_args``)."""

MAX_NESTING = 2
"""Lists / mappings inside a keyword value: ``[[1, 2], [0, 1]]`` is two."""


MATCH_THE_INPUT = ("in_channels", "in_capsules", "in_dim", "dims")
"""Inferred keywords that a config may give only with the value the input shape implies."""


def inferred(shape: Shape) -> dict[str, Any]:
    """Keyword values implied by an input of ``shape`` (without batch)."""
    values: dict[str, Any] = {"in_features": shape[-1]}
    if 2 <= len(shape) <= 4:  # (C, L), (C, H, W), (C, D, H, W): the rank picks the variant
        values.update(in_channels=shape[0], input_size=tuple(shape[1:]), dims=len(shape) - 1)
    if len(shape) == 2:
        values.update(in_capsules=shape[0], in_dim=shape[1])
    return values


def layer_keywords(entry: Entry, given: dict[Any, Any], shape: Shape, where: str) -> dict[str, Any]:
    """The keywords for ``entry``'s constructor: those ``given`` by the spec at ``where``
    (each accepted and type-checked), plus those :func:`inferred` from the input ``shape``
    that it accepts; a :class:`ConfigError` at the offending key otherwise."""
    accepted = entry.keywords()
    for key in given:
        if key not in accepted:
            hint = close_matches(key, accepted, n=1) if isinstance(key, str) else []
            raise ConfigError(
                f"{entry.name} has no keyword {render(key)}"
                + (f" (did you mean {hint[0]!r}?)" if hint else "")
                + f"; it accepts {', '.join(accepted)}",
                child(where, key),
            )
    kwargs: dict[str, Any] = dict(given)
    for key, value in kwargs.items():
        check_keyword(entry.cls, key, value, child(where, key))
    for key, value in inferred(shape).items():
        if key not in accepted:
            continue
        if key not in kwargs:
            kwargs[key] = value
        elif key in MATCH_THE_INPUT and kwargs[key] != value:
            raise ConfigError(
                f"{entry.name} expects {key}={kwargs[key]} but the previous layer's output "
                f"has shape {shape}, i.e. {key}={value}",
                child(where, key),
            )
    missing = [k for k in entry.required_keywords() if k not in kwargs]
    if missing:
        raise ConfigError(
            f"{entry.name} needs {', '.join(missing)} (input shape here: {shape})", where
        )
    return kwargs


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
        try:
            check_int(value)
        except ConvZooError as exc:
            raise ConfigError(str(exc), where) from None
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
    """Validate ``(C, H, W)`` (or any tuple of positive ints) within the limits of
    :func:`~convzoo.limits.check_input` for ``batch`` inputs; a located ConfigError."""
    if (
        not isinstance(value, (list, tuple))
        or not 1 <= len(value) <= 8
        or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)
    ):
        raise ConfigError(
            f"expected a list of positive ints like [3, 224, 224], found {describe(value)}", where
        )
    try:
        return check_input(tuple(value), batch)
    except ConvZooError as exc:
        raise ConfigError(str(exc), where) from None
