"""A :class:`Span`: one spatial axis of a tensor, as one integer interval of input pixels
per unit (the data of :mod:`convzoo.analysis.receptive.intervals`).

* **exact** (``lo``, ``hi``: ``int64[n]``): unit ``u`` depends on input pixels
  ``lo[u]..hi[u]`` of the real, finite input (the hull of its gradient support with
  positive weights), padding and border clamping as the ops really do them; a unit that
  only sees padding has the empty interval (``lo > hi``, see :data:`EMPTY`);
* **theoretical** (``base``: ``int64[2, P]``, ``shift`` Q): the field the same network has
  on an unbounded input (Araujo, Norris and Sim, Distill 2019: padding counts as pixels
  outside the input). It is periodic: unit ``u + P`` sees ``Q`` pixels further than unit
  ``u``, so units ``0..P-1`` describe them all. ``base`` is None where no period exists
  (a concatenation along the axis), and then the summary falls back on the exact field.

:func:`summary` says what holds for every unit of a span.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

EMPTY = np.int64(1) << 60  # lo of an empty interval; its hi is -EMPTY
MAX_LAZY = 64  # a lazy span's chain of unbuilt ancestors is cut (built) at this length
Exact = Callable[[], tuple[np.ndarray, np.ndarray]]  # makes a lazy span's lo and hi
Base = np.ndarray | tuple[int, int] | None  # a period-1 base may be given as (lo, hi)


class Span:
    """One axis: exact ``lo``/``hi`` per unit and the theoretical periodic ``base``/``shift``.

    The exact arrays of a span made by :meth:`lazy` are computed on first use: a chain of
    convolutions, pools and merges whose units all see some input (the common case) never
    builds them unless a unit is asked for, since its summary needs ``base`` only.
    """

    _lo: np.ndarray | None
    _hi: np.ndarray | None
    _make: Exact | None
    _pending: int
    _base: np.ndarray | None
    _pair: tuple[int, int] | None

    def __init__(self, lo: np.ndarray, hi: np.ndarray, base: Base, shift: int) -> None:
        self._lo, self._hi, self._n, self._make = lo, hi, len(lo), None
        self._set_base(base, shift)

    @classmethod
    def lazy(
        cls, n: int, make: Exact, base: Base, shift: int, tidy: bool, parents: tuple[Span, ...]
    ) -> Span:
        """A span of ``n`` units whose ``make() -> (lo, hi)`` (reading ``parents``) runs on
        first use; ``tidy``: known to be :func:`monotone` (so no unit is empty) without
        computing it. Parents more than :data:`MAX_LAZY` unbuilt spans deep are built now,
        so that building a span never recurses deeper than that."""
        depth = 1 + max((p.pending for p in parents), default=0)
        if depth > MAX_LAZY:
            for p in parents:
                p._exact()
            depth = 1
        span = cls.__new__(cls)
        span._lo = span._hi = None
        span._n, span._make, span._pending = n, make, depth
        span._set_base(base, shift)
        if tidy:
            span.__dict__["_monotone"] = True
        return span

    def _set_base(self, base: Base, shift: int) -> None:
        """``base`` as given: an array, None, or ``(lo, hi)`` integers for period 1 (kept
        as integers until an array is asked for: numpy calls are the slow part here)."""
        if isinstance(base, tuple):
            self._base, self._pair = None, base
        else:
            self._base, self._pair = base, None
        self.shift = shift

    @property
    def base(self) -> np.ndarray | None:
        """``int64[2, P]``: the theoretical field of units ``0..P-1`` (None: no period)."""
        if self._base is None and self._pair is not None:
            self._base = np.array([[self._pair[0]], [self._pair[1]]], dtype=np.int64)
        return self._base

    @property
    def pair(self) -> tuple[int, int] | None:
        """``(lo, hi)`` of unit 0's theoretical field when the period is 1, else None."""
        if self._pair is None and self._base is not None and self._base.shape[1] == 1:
            self._pair = (int(self._base[0, 0]), int(self._base[1, 0]))
        return self._pair

    @property
    def periodic(self) -> bool:
        """Whether the theoretical field is known (``base`` is not None)."""
        return self._pair is not None or self._base is not None

    @property
    def pending(self) -> int:
        """How many unbuilt spans deep this one's exact arrays are (0: built)."""
        return 0 if self._lo is not None else self._pending

    def _exact(self) -> tuple[np.ndarray, np.ndarray]:
        if self._lo is None or self._hi is None:
            assert self._make is not None
            self._lo, self._hi = self._make()
            self._make = None
        return self._lo, self._hi

    @property
    def lo(self) -> np.ndarray:
        return self._exact()[0]

    @property
    def hi(self) -> np.ndarray:
        return self._exact()[1]

    @staticmethod
    def identity(n: int) -> Span:
        """The input itself: unit ``u`` sees pixel ``u``; period 1, shift 1."""
        units = np.arange(n, dtype=np.int64)
        span = Span(units, units, (0, 0), 1)
        span.__dict__["_monotone"] = True
        return span

    def __len__(self) -> int:
        return self._n

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Span):
            return NotImplemented
        same_base = (self.base is None and other.base is None) or (
            self.base is not None
            and other.base is not None
            and np.array_equal(self.base, other.base)
            and self.shift == other.shift
        )
        return same_base and np.array_equal(self.lo, other.lo) and np.array_equal(self.hi, other.hi)

    __hash__ = object.__hash__

    def unit(self, u: int) -> tuple[int, int] | None:
        """The exact input pixels ``(first, last)`` unit ``u`` depends on; None: none."""
        lo, hi = int(self.lo[u]), int(self.hi[u])
        return (lo, hi) if lo <= hi else None

    def theoretical(self, units: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Unclipped ``lo``, ``hi`` of any (even negative) unit indices; None-free only
        when ``base`` is known."""
        assert self.base is not None
        period = self.base.shape[1]
        q, r = np.divmod(units, period)
        lo, hi = self.base[0][r], self.base[1][r]
        empty = lo > hi
        return np.where(empty, EMPTY, lo + q * self.shift), np.where(
            empty, -EMPTY, hi + q * self.shift
        )


def empty_units(span: Span) -> bytes:
    """Which units see nothing (``lo > hi``) as a byte mask, ``b""`` when none does
    (computed once per span)."""
    cached = span.__dict__.get("_empty")
    if cached is None and span.__dict__.get("_monotone"):
        cached = span.__dict__["_empty"] = b""  # monotone spans have no empty unit
    if cached is None:
        mask = span.lo > span.hi
        cached = span.__dict__["_empty"] = mask.tobytes() if mask.any() else b""
    return cached


def monotone(span: Span) -> bool:
    """Whether no unit of ``span`` is empty and ``lo`` and ``hi`` never decrease from one
    unit to the next (true of every span an affine chain of windows makes; computed once
    per span)."""
    cached = span.__dict__.get("_monotone")
    if cached is None:
        lo, hi = span.lo, span.hi
        cached = span.__dict__["_monotone"] = bool(
            (lo <= hi).all() and (lo[1:] >= lo[:-1]).all() and (hi[1:] >= hi[:-1]).all()
        )
    return cached


@dataclass(frozen=True)
class Summary:
    """What holds for every unit of one axis.

    ``size``: the largest theoretical (unclipped) field; ``stride``: the average distance
    between the fields of adjacent units (``Q / P``); ``start``: the centre of unit 0's
    theoretical field (None when unit 0 sees nothing); ``period``: the units repeat every
    ``period`` units (1: evenly spaced, all alike). Without a theoretical period
    (``period`` None) the size is that of the largest field clipped to the input, and
    stride and start are None.
    """

    size: int
    stride: Fraction | None
    start: Fraction | None
    period: int | None


def summary(span: Span) -> Summary:
    """The :class:`Summary` of ``span`` (computed once per span)."""
    cached = span.__dict__.get("_summary")
    if cached is None:
        cached = span.__dict__["_summary"] = compute_summary(span)
    return cached


def compute_summary(span: Span) -> Summary:
    """See :func:`summary`."""
    if not span.periodic:
        sizes = span.hi - span.lo + 1
        exact = max(int(sizes.max(initial=0)), 0) if len(sizes) else 0
        return Summary(exact, None, None, None)
    pair = span.pair
    if pair is not None:  # the common case, without numpy
        lo, hi = pair
        seen = lo <= hi
        size, start = (hi - lo + 1, Fraction(lo + hi, 2)) if seen else (0, None)
        return Summary(size, Fraction(span.shift), start, 1)
    period = span.base.shape[1]  # type: ignore[union-attr]
    lo, hi = span.base  # type: ignore[misc]
    seen = lo <= hi
    size = int((hi - lo + 1)[seen].max(initial=0))
    start = Fraction(int(lo[0] + hi[0]), 2) if seen[0] else None
    return Summary(size, Fraction(span.shift, period), start, period)
