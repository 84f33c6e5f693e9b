"""Strict argument checks shared by every layer and block: one-line ``LayerArgumentError``s.

Booleans are not ints here: ``True`` is refused wherever a count, a size or a channel
number is expected (Python's ``isinstance(True, int)`` would let it through).

>>> positive_int(3, "conv", "groups")
3
>>> positive_int(True, "linear", "in_features")
Traceback (most recent call last):
...
convzoo.errors.LayerArgumentError: linear: in_features must be a positive int, got True
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from convzoo.errors import LayerArgumentError, require

DIMS = (1, 2, 3)


def is_int(value: object) -> bool:
    """An ``int`` that is not a ``bool``."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: object) -> bool:
    """An ``int`` or ``float`` that is not a ``bool``."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def int_at_least(value: object, minimum: int, layer: str, argument: str) -> int:
    """``value`` if it is an int ``>= minimum`` (never a bool), else a clear error."""
    word = "a positive int" if minimum == 1 else f"an int >= {minimum}"
    if not is_int(value) or value < minimum:  # type: ignore[operator]
        raise LayerArgumentError(layer, argument, f"must be {word}, got {value!r}")
    return int(value)  # type: ignore[call-overload]


def positive_int(value: object, layer: str, argument: str) -> int:
    """``value`` if it is a positive int (never a bool), else a clear error."""
    return int_at_least(value, 1, layer, argument)


def optional_positive_int(value: object, layer: str, argument: str) -> int | None:
    """``None`` or a positive int."""
    return None if value is None else positive_int(value, layer, argument)


def boolean(value: object, layer: str, argument: str) -> bool:
    """``value`` if it is a ``bool``, else a clear error."""
    require(isinstance(value, bool), layer, argument, f"must be True or False, got {value!r}")
    return bool(value)


def number_in(
    value: object, low: float, high: float, layer: str, argument: str, closed: bool = False
) -> float:
    """A real number in ``[low, high)`` (``[low, high]`` when ``closed``)."""
    ok = is_number(value) and low <= value and (value <= high if closed else value < high)  # type: ignore[operator]
    bracket = "]" if closed else ")"
    require(ok, layer, argument, f"must be a number in [{low}, {high}{bracket}, got {value!r}")
    return float(value)  # type: ignore[arg-type]


def positive_number(value: object, layer: str, argument: str) -> float:
    """A real number ``> 0``."""
    require(
        is_number(value) and value > 0,  # type: ignore[operator]
        layer,
        argument,
        f"must be a positive number, got {value!r}",
    )
    return float(value)  # type: ignore[arg-type]


def choice(value: Any, options: Sequence[Any], layer: str, argument: str) -> Any:
    """``value`` if it is one of ``options``, else a clear error listing them."""
    listed = ", ".join(repr(o) for o in options)
    if isinstance(value, bool) or value not in options:
        raise LayerArgumentError(layer, argument, f"must be one of {listed}, got {value!r}")
    return value


def dims(value: object, layer: str) -> int:
    """The number of spatial axes: 1 (sequences), 2 (images) or 3 (volumes, video)."""
    if not is_int(value) or value not in DIMS:
        raise LayerArgumentError(layer, "dims", f"must be 1, 2 or 3 (spatial axes), got {value!r}")
    return int(value)


def channels(layer: str, in_channels: object, out_channels: object, groups: object = 1) -> None:
    """Positive channel counts that ``groups`` divides, or a clear error."""
    c_in = positive_int(in_channels, layer, "in_channels")
    c_out = positive_int(out_channels, layer, "out_channels")
    g = positive_int(groups, layer, "groups")
    require(c_in % g == 0, layer, "groups", f"must divide in_channels={c_in}, got groups={g}")
    require(c_out % g == 0, layer, "groups", f"must divide out_channels={c_out}, got groups={g}")


def divides(divisor: int, value: int, layer: str, argument: str, what: str) -> None:
    """Require ``divisor`` to divide ``value`` (``what`` names ``value`` in the message)."""
    require(value % divisor == 0, layer, argument, f"must divide {what}={value}, got {divisor}")
