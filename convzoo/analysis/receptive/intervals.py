"""The interval algebra on :class:`~.span.Span` s (one integer interval of input pixels
per unit, per spatial axis; see :mod:`convzoo.analysis.receptive.span`).

Every op is a :func:`window`: output unit ``o`` reads input units ``taps(o)``; its interval
is the hull of theirs. The rules in :mod:`convzoo.analysis.receptive.spatial` only say
which units each output reads. Merges are :func:`union_spans`; concatenation, gathers and
reductions :func:`concat`, :func:`select` and :func:`collapse`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from functools import partial

import numpy as np

from convzoo.analysis.receptive.span import EMPTY, Base, Span, monotone

MAX_PERIOD = 4096  # longer theoretical periods are dropped (summary from the exact field)
Taps = Callable[[np.ndarray, bool], tuple[np.ndarray, np.ndarray]]


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
        ``span`` where every output has a tap inside the input (:meth:`keeps_tidy`): the
        hull of those taps is the lowest tap's ``lo`` and the highest tap's ``hi``, so no
        ``[n_out, kernel]`` array is needed."""
        n_in, d = len(span), self.dilation
        start = np.arange(n_out, dtype=np.int64) * self.scale + self.offset  # tap 0
        first = np.maximum(-(start // d), 0)  # lowest tap index at or after unit 0
        last = np.minimum((n_in - 1 - start) // d, self.kernel - 1)  # highest before n_in
        return span.lo[start + first * d], span.hi[start + last * d]


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
