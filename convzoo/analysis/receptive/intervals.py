"""The interval algebra: one integer interval of input pixels per unit, per spatial axis.

A :class:`Span` describes one spatial axis of a tensor of ``n`` units in two ways:

* **exact** (``lo``, ``hi``: ``int64[n]``): unit ``u`` depends on input pixels
  ``lo[u]..hi[u]`` of the real, finite input (the hull of its gradient support with
  positive weights), padding and border clamping as the ops really do them; a unit that
  only sees padding has the empty interval (``lo > hi``, see :data:`EMPTY`);
* **theoretical** (``base``: ``int64[2, P]``, ``shift`` Q): the field the same network has
  on an unbounded input (Araujo, Norris and Sim, Distill 2019: padding counts as pixels
  outside the input). It is periodic: unit ``u + P`` sees ``Q`` pixels further than unit
  ``u``, so units ``0..P-1`` describe them all. ``base`` is None where no period exists
  (a concatenation along the axis), and then the summary falls back on the exact field.

Every op is a :func:`window`: output unit ``o`` reads input units ``taps(o)``; its interval
is the hull of theirs. The rules in :mod:`convzoo.analysis.receptive.spatial` only say
which units each output reads.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from functools import partial

import numpy as np

EMPTY = np.int64(1) << 60  # lo of an empty interval; its hi is -EMPTY
MAX_PERIOD = 4096  # longer theoretical periods are dropped (summary from the exact field)
MAX_LAZY = 64  # a lazy span's chain of unbuilt ancestors is cut (built) at this length
Taps = Callable[[np.ndarray, bool], tuple[np.ndarray, np.ndarray]]
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


def hull(lo: np.ndarray, hi: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the hull of the valid intervals (``[n, k]`` arrays -> ``[n]``); empty rows
    give the empty interval."""
    return np.where(valid, lo, EMPTY).min(axis=1), np.where(valid, hi, -EMPTY).max(axis=1)


def minimal(base: np.ndarray, shift: int) -> tuple[np.ndarray, int]:
    """The shortest period describing the same units (``base`` may repeat itself)."""
    period = base.shape[1]
    for d in range(1, period):
        if period % d or (shift * d) % period:
            continue
        step = shift * d // period
        head, tail = base[:, : period - d], base[:, d:]
        empty = head[0] > head[1]
        if np.array_equal(empty, tail[0] > tail[1]) and np.array_equal(
            np.where(empty, 0, head + step), np.where(empty, 0, tail)
        ):
            return base[:, :d].copy(), step
    return base, shift


def window(span: Span, n_out: int, taps: Taps, period: int, advance: int) -> Span:
    """An op whose output unit ``o`` reads input units ``taps(o)``.

    ``taps(o, exact)`` gives ``(units [len(o), k], valid [len(o), k])``: with ``exact`` the
    units the op really reads on this input (padding invalid, borders clamped), without it
    those it reads on an unbounded input. The op is periodic: ``taps(o + period)`` is
    ``taps(o) + advance``.
    """
    n_in = len(span)
    if isinstance(taps, Affine):  # hashable: reuse the result (h and w often share spans)
        if taps.scale == 1 and taps.offset == 0 and taps.kernel == 1 and n_out == n_in:
            return span  # a 1x1 convolution
        cache = span.__dict__.setdefault("_windows", {})
        key = (taps, n_out, period, advance)
        if key not in cache:
            cache[key] = compute_window(span, n_out, taps, period, advance)
        return cache[key]
    return compute_window(span, n_out, taps, period, advance)


def compute_window(span: Span, n_out: int, taps: Taps, period: int, advance: int) -> Span:
    """See :func:`window`."""
    base, shift = theoretical_window(span, taps, period, advance)
    if isinstance(taps, Affine) and taps.keeps_tidy(span, n_out):
        make = partial(taps.hull_of_monotone, span, n_out)
        return Span.lazy(n_out, make, base, shift, True, (span,))
    n_in = len(span)
    if isinstance(taps, Affine):  # every tap valid: only the input's ends cut
        units = taps.units(np.arange(n_out, dtype=np.int64))
        valid = (units >= 0) & (units < n_in)
    else:
        units, valid = taps(np.arange(n_out, dtype=np.int64), True)
        valid = valid & (units >= 0) & (units < n_in)
    safe = np.minimum(np.maximum(units, 0), max(n_in - 1, 0))
    lo, hi = hull(span.lo[safe], span.hi[safe], valid)
    return Span(lo, hi, base, shift)


def theoretical_window(span: Span, taps: Taps, period: int, advance: int) -> tuple[Base, int]:
    """The ``base``, ``shift`` of :func:`window`'s output (None, 0: no period)."""
    if not span.periodic:
        return None, 0
    pair = span.pair
    if isinstance(taps, Affine) and pair is not None and pair[0] <= pair[1] and period == 1:
        q = span.shift  # >= 0: the first tap has the lowest field, the last the highest
        first, last = taps.offset, taps.offset + (taps.kernel - 1) * taps.dilation
        return (pair[0] + first * q, pair[1] + last * q), q * taps.scale
    p_in = 1 if pair is not None else span.base.shape[1]  # type: ignore[union-attr]
    repeat = p_in // math.gcd(advance, p_in) if advance else 1
    p_out = period * repeat
    if p_out > MAX_PERIOD:
        return None, 0
    units, valid = taps(np.arange(p_out, dtype=np.int64), False)
    t_lo, t_hi = span.theoretical(units)
    base = np.stack(hull(t_lo, t_hi, valid))
    return minimal(base, (repeat * advance // p_in) * span.shift)


@dataclass(frozen=True)
class Affine:
    """Taps ``o·scale + offset + j·dilation`` for ``j < kernel`` (convolution, pooling,
    slicing): the same on a bounded and an unbounded input (a :data:`Taps`)."""

    scale: int
    offset: int
    kernel: int
    dilation: int

    def units(self, o: np.ndarray) -> np.ndarray:
        """The input units ``[len(o), kernel]`` that outputs ``o`` read."""
        steps = np.arange(self.kernel, dtype=np.int64) * self.dilation
        return o[:, None] * self.scale + (self.offset + steps)[None, :]

    def __call__(self, o: np.ndarray, exact: bool) -> tuple[np.ndarray, np.ndarray]:
        units = self.units(o)
        return units, np.ones(units.shape, dtype=bool)

    def keeps_tidy(self, span: Span, n_out: int) -> bool:
        """Whether the window of a :func:`monotone` ``span`` is monotone too: every output
        has a tap inside the input (outputs 0 and ``n_out - 1`` do, and between them the
        taps are contiguous), and the lowest and highest such taps never move back (true
        of contiguous taps; dilated taps qualify only when the input's ends cut none)."""
        n_in, d, k = len(span), self.dilation, self.kernel
        last = (n_out - 1) * self.scale + self.offset  # tap 0 of the last output
        if d != 1 and (self.offset < 0 or last + (k - 1) * d > n_in - 1):
            return False
        return (
            n_out >= 1
            and self.scale >= 1
            and d >= 1
            and self.offset + (k - 1) * d >= 0
            and last <= n_in - 1
            and monotone(span)
        )

    def hull_of_monotone(self, span: Span, n_out: int) -> tuple[np.ndarray, np.ndarray]:
        """The exact ``lo``, ``hi`` of outputs ``0..n_out-1`` over a :func:`monotone`
        ``span`` (``scale``, ``dilation`` >= 1): the hull of the taps inside the input is
        the lowest tap's ``lo`` and the highest tap's ``hi``, so no ``[n_out, kernel]``
        array is needed. Outputs with no tap inside the input are empty."""
        n_in, d = len(span), self.dilation
        start = np.arange(n_out, dtype=np.int64) * self.scale + self.offset  # tap 0
        first = np.maximum(-(start // d), 0)  # lowest tap index at or after unit 0
        last = np.minimum((n_in - 1 - start) // d, self.kernel - 1)  # highest before n_in
        empty = first > last
        low = np.minimum(start + first * d, n_in - 1)
        high = np.maximum(start + last * d, 0)
        lo, hi = span.lo[low], span.hi[high]
        if empty.any():
            return np.where(empty, EMPTY, lo), np.where(empty, -EMPTY, hi)
        return lo, hi


affine = Affine


def union_spans(spans: list[Span]) -> Span:
    """Unit by unit, the hull of several spans of the same length (a merge); its exact
    arrays are made on first use."""
    first = spans[0]
    if all(s is first for s in spans):
        return first
    base, shift = theoretical_union(spans)
    tidy = all(monotone(s) for s in spans)  # the hull of monotone spans is monotone
    parts = tuple(spans)
    return Span.lazy(len(first), partial(_exact_union, parts), base, shift, tidy, parts)


def _exact_union(spans: tuple[Span, ...]) -> tuple[np.ndarray, np.ndarray]:
    return np.minimum.reduce([s.lo for s in spans]), np.maximum.reduce([s.hi for s in spans])


def theoretical_union(spans: list[Span]) -> tuple[Base, int]:
    """The ``base``, ``shift`` of :func:`union_spans` (None, 0: no common period)."""
    if not all(s.periodic for s in spans):
        return None, 0
    pairs = [s.pair for s in spans]
    if all(p is not None for p in pairs):  # closed form, in Python integers
        shifts = {s.shift for s in spans}
        if len(shifts) > 1:
            return None, 0
        low, high = min(p[0] for p in pairs), max(p[1] for p in pairs)  # type: ignore[index]
        return (low, high), shifts.pop()
    bases = [s.base for s in spans if s.base is not None]
    period = math.lcm(*(b.shape[1] for b in bases))
    strides = {Fraction(s.shift, s.base.shape[1]) for s in spans if s.base is not None}
    if len(strides) > 1:  # units drift apart: no common period
        return None, 0
    units = np.arange(period, dtype=np.int64)
    parts = [s.theoretical(units) for s in spans]
    base = np.stack(
        [np.minimum.reduce([p[0] for p in parts]), np.maximum.reduce([p[1] for p in parts])]
    )
    return minimal(base, int(next(iter(strides)) * period))


def concat(spans: list[Span]) -> Span:
    """Spans laid end to end (``cat`` along the axis): exact, with no theoretical period."""
    return Span(
        np.concatenate([s.lo for s in spans]), np.concatenate([s.hi for s in spans]), None, 0
    )


def select(span: Span, units: np.ndarray) -> Span:
    """The units ``units`` of ``span`` in that order (gather, flip); no period kept."""
    return Span(span.lo[units], span.hi[units], None, 0)


def collapse(span: Span) -> Span:
    """One unit holding the hull of all (the axis was reduced into a single position)."""
    lo, hi = span.lo.min(keepdims=True), span.hi.max(keepdims=True)
    return Span(lo, hi, None, 0)


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
