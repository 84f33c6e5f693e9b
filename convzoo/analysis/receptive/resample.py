"""Rules for resampling and rearranging ops: nearest / linear / cubic upsampling (both
``align_corners``), pixel shuffle and unshuffle, im2col and padding (constant, reflect,
replicate, circular; negative pads crop)."""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction

import numpy as np
import torch

from convzoo.analysis.receptive import channels as ch
from convzoo.analysis.receptive.field import Field, Place
from convzoo.analysis.receptive.intervals import Taps, affine, minimal, union_spans, window
from convzoo.analysis.receptive.span import Span
from convzoo.analysis.receptive.spatial import claimed, conv_span, spatial
from convzoo.analysis.receptive.table import (
    Call,
    Result,
    channel_aware,
    keeps_global,
    per_channel,
    per_dim,
    rule,
)
from convzoo.layers import geometry as G

aten = torch.ops.aten


def resample_taps(ratio: Fraction, taps: int, align: bool, n_in: int) -> Taps:
    """Output ``o`` of a resampling by ``ratio`` (input units per output unit).

    ``taps`` 0: nearest, reads ``floor(o·ratio)``; 1: nearest-exact, ``floor((o+1/2)·ratio)``;
    2 (linear) or 4 (cubic): the ``taps`` units around ``src = (o+1/2)·ratio - 1/2``
    (``o·ratio`` with ``align``), only the one at ``src`` when ``src`` is an integer (the
    others get weight 0). On this input, linear clamps ``src`` at 0 and every read index
    to the input, as PyTorch does; on an unbounded input nothing is clamped.
    """
    p, q = ratio.numerator, ratio.denominator
    offsets = np.arange(taps, dtype=np.int64) - (1 if taps == 4 else 0)

    def read(o: np.ndarray, exact: bool) -> tuple[np.ndarray, np.ndarray]:
        if taps < 2:
            num, den = (2 * o + taps) * p, 2 * q
            first = num // den
            if exact:
                first = np.minimum(first, n_in - 1)
            return first[:, None], np.ones((len(o), 1), dtype=bool)
        num, den = (o * p, q) if align else ((2 * o + 1) * p - q, 2 * q)
        if exact and taps == 2 and not align:
            num = np.maximum(num, 0)
        first, integral = num // den, num % den == 0
        units = first[:, None] + offsets[None, :]
        valid = np.broadcast_to(~integral[:, None] | (offsets == 0)[None, :], units.shape)
        if exact:
            units = np.clip(units, 0, n_in - 1)
        return units, valid

    return read


@rule(aten.upsample_nearest1d, n=1, taps=0)
@rule(aten.upsample_nearest2d, n=2, taps=0)
@rule(aten.upsample_nearest3d, n=3, taps=0)
@rule(aten._upsample_nearest_exact1d, n=1, taps=1)
@rule(aten._upsample_nearest_exact2d, n=2, taps=1)
@rule(aten._upsample_nearest_exact3d, n=3, taps=1)
@rule(aten.upsample_linear1d, n=1, taps=2)
@rule(aten.upsample_bilinear2d, n=2, taps=2)
@rule(aten.upsample_trilinear3d, n=3, taps=2)
@rule(aten.upsample_bicubic2d, n=2, taps=4)
@keeps_global
@per_channel
def resample(call: Call, n: int, taps: int) -> Result:
    """Upsampling and downsampling by interpolation, any ratio (see :func:`resample_taps`)."""
    x, args = call.x(), call.args
    scales = args.get("scale_factors") or [v for k, v in args.items() if k.startswith("scales")]
    align = bool(args.get("align_corners")) and taps >= 2

    def apply(a: Span, k: int, m_out: int) -> Span:
        m_in = x.shape[k - n]
        scale = scales[k] if len(scales) == n and scales[k] else None
        if align:
            ratio = Fraction(m_in - 1, m_out - 1) if m_out > 1 else Fraction(0)
        elif scale:
            ratio = 1 / Fraction(scale).limit_denominator(10**6)
        else:
            ratio = Fraction(m_in, m_out)
        read = resample_taps(ratio, taps, align, m_in)
        return window(a, m_out, read, ratio.denominator, ratio.numerator)

    return spatial(call, n, apply, False)


@rule(aten.pixel_shuffle, shuffle=True)
@rule(aten.pixel_unshuffle, shuffle=False)
@keeps_global
@channel_aware
def pixel_shuffle(call: Call, shuffle: bool) -> Result:
    """Channels to space (output ``o`` reads unit ``o // r``) and back (an r x r window)."""
    r = call.args.get("upscale_factor") or call.args["downscale_factor"]

    def up(o: np.ndarray, exact: bool) -> tuple[np.ndarray, np.ndarray]:
        return (o // r)[:, None], np.ones((len(o), 1), dtype=bool)

    f = call.field_of(call.x())
    plain = Call(call.func, call.args, call.out, lambda t: None if f is None else f.uniform())
    if shuffle:
        top, notes = spatial(plain, 2, lambda a, k, m: window(a, m, up, r, 1), True)
    else:
        top, notes = spatial(plain, 2, lambda a, k, m: conv_span(a, m, r, r, 0, 1), True)
    if f is None or top is None or top.is_global or not top.known:
        return top, notes
    if shuffle and f.channels is None:
        return top, notes  # every channel alike: each unit reads one input unit (exact)
    standard = f.layout is None and top.layout is None and len(f.axes) == 2 and None not in f.axes
    dims_ok = f.channels is None or (f.channels.dims == (-3,) and f.channels.alone)
    if not (standard and dims_ok and call.x().dim() == 4):
        return replace(top, bound=True), [*notes, f"{call.name}: {SCATTERED}"]
    field = (shuffled if shuffle else unshuffled)(f, top, r, call.out.shape[1])
    if field.bound and not top.bound:
        notes = [*notes, f"{call.name}: {INTERLEAVED}"]
    return field, notes


INTERLEAVED = (
    "the channels it interleaves into one have fields that differ along both axes: each "
    "unit's field is the union per axis over them, an upper bound"
)


SCATTERED = (
    "moves channels to space in a layout not followed: each unit's field is the union over "
    "the channels it draws on, an upper bound"
)


def unshuffled(f: Field, top: Field, r: int, c_out: int) -> Field:
    """``pixel_unshuffle``: output channel ``c·r² + i·r + j`` at ``(y, x)`` is input
    channel ``c`` at ``(y·r + i, x·r + j)``, one input unit (exact)."""
    h, w = top.axes
    assert h is not None and w is not None
    c_in = c_out // (r * r)
    ids_in = f.channels.ids if f.channels is not None else np.zeros(c_in, dtype=np.int64)
    parts_in = f.channels.parts if f.channels is not None else (f.axes,)
    parts: list[ch.Part] = []
    for part in parts_in:
        for i in range(r):
            for j in range(r):
                parts.append(None if part is None else (pick(part[0], i, r, len(h)),
                                                        pick(part[1], j, r, len(w))))  # fmt: skip
    ids = (ids_in[:, None] * r * r + np.arange(r * r)[None, :]).reshape(-1)
    return top.segmented((-3,), ids, parts) or top


def pick(a: Span | None, begin: int, step: int, extent: int) -> Span | None:
    """Units ``begin, begin + step, ...`` of ``a`` (``extent`` of them)."""
    return None if a is None else window(a, extent, affine(step, begin, 1, 1), 1, step)


def shuffled(f: Field, top: Field, r: int, c_out: int) -> Field:
    """``pixel_shuffle`` of channels with different fields: output channel ``c`` at
    ``(y, x)`` is input channel ``c·r² + (y % r)·r + x % r`` at ``(y // r, x // r)``. Exact
    when, per output channel, the rows' spans depend on ``y % r`` only and the columns' on
    ``x % r`` only (e.g. after ``pixel_unshuffle``); else per axis the union over the
    channels read (flagged as an upper bound)."""
    channels = f.channels
    assert channels is not None
    done: dict[tuple[int, ...], int] = {}
    parts: list[ch.Part] = []
    ids = np.empty(c_out, dtype=np.int64)
    bound = top.bound
    for c, row in enumerate(channels.ids.reshape(c_out, r * r).tolist()):
        key = tuple(row)
        if key not in done:
            grid = [[channels.parts[row[i * r + j]] for j in range(r)] for i in range(r)]
            part, exact = interleaved(grid, r)
            bound = bound or not exact
            done[key] = len(parts)
            parts.append(part)
        ids[c] = done[key]
    return top.segmented((-3,), ids, parts, bound) or top


def interleaved(grid: list[list[ch.Part]], r: int) -> tuple[ch.Part, bool]:
    """The spans of one output channel of a pixel shuffle from its ``r x r`` input parts
    (``grid[i][j]``), and whether they are exact (see :func:`shuffled`)."""
    seen = [p for row in grid for p in row if p is not None]
    if not seen:
        return None, True
    exact = len(seen) == r * r
    axes = []
    for k in (0, 1):
        lines = []
        for i in range(r):
            spans = [grid[i][j] if k == 0 else grid[j][i] for j in range(r)]
            present = [s for s in (p[k] for p in spans if p is not None) if s is not None]
            alike = all(ch.same_span(s, present[0]) for s in present)
            exact = exact and len(present) == r and alike
            lines.append(union_spans(present) if present else None)
        if any(s is None for s in lines):
            return ch.union_axes(seen), False
        axes.append(interleave(lines))  # type: ignore[arg-type]
    return tuple(axes), exact


def interleave(spans: list[Span]) -> Span:
    """Unit ``u·r + i`` is unit ``u`` of ``spans[i]`` (``r = len(spans)``)."""
    lo = np.stack([s.lo for s in spans], axis=1).reshape(-1)
    hi = np.stack([s.hi for s in spans], axis=1).reshape(-1)
    pairs = [s.pair for s in spans]
    if all(p is not None for p in pairs) and len({s.shift for s in spans}) == 1:
        base = np.array([[p[0] for p in pairs], [p[1] for p in pairs]], dtype=np.int64)  # type: ignore[index]
        return Span(lo, hi, *minimal(base, spans[0].shift))
    return Span(lo, hi, None, 0)


@rule(aten.im2col)
def im2col(call: Call) -> Result:
    """``F.unfold``: each column holds one window, columns in row-major (h, w) order."""
    x, args = call.x(), call.args
    k, d, p, s = (per_dim(args[a], 2) for a in ("kernel_size", "dilation", "padding", "stride"))
    size = [G.conv_output_size(x.shape[-2 + i], k[i], s[i], d[i], (p[i], p[i])) for i in (0, 1)]
    return spatial(
        call,
        2,
        lambda a, i, m: conv_span(a, m, k[i], s[i], p[i], d[i]),
        True,
        lambda i: Place(-1, size[1] if i == 0 else 1, size[i]),
    )


def pad_taps(before: int, n: int, mode: str) -> Taps:
    """Output ``o`` of a padded axis reads input ``o - before``; on this input reflected,
    replicated or wrapped at the borders (``mode``), or padding (constant)."""

    def read(o: np.ndarray, exact: bool) -> tuple[np.ndarray, np.ndarray]:
        units = o - before
        if exact and mode == "reflect":
            units = np.abs(units)
            units = np.where(units > n - 1, 2 * (n - 1) - units, units)
        elif exact and mode == "replicate":
            units = np.clip(units, 0, n - 1)
        elif exact and mode == "circular":
            units = units % n
        return units[:, None], np.ones((len(o), 1), dtype=bool)

    return read


PAD_MODES = {
    aten.reflection_pad1d: "reflect", aten.reflection_pad2d: "reflect",
    aten.reflection_pad3d: "reflect", aten.replication_pad1d: "replicate",
    aten.replication_pad2d: "replicate", aten.replication_pad3d: "replicate",
    aten._pad_circular: "circular",
}  # fmt: skip


@rule(aten.constant_pad_nd, aten.pad, *PAD_MODES)
@keeps_global
@per_channel
def pad(call: Call) -> Result:
    """Padding (negative: cropping); pad pairs run from the last dim."""
    x = call.x()
    f = call.field_of(x)
    if f is None or f.is_global:
        return f, []
    pads = list(call.args["pad"] if "pad" in call.args else call.args["padding"])
    mode = PAD_MODES.get(call.func.overloadpacket) or call.args.get("mode") or "constant"
    axes, places = list(f.axes), claimed(f, tuple(x.shape), len(pads) // 2)
    for i, p in enumerate(places):
        axis = axes[i]
        if p.dim is None or axis is None or -2 * p.dim > len(pads):
            continue
        before, after = pads[-2 * p.dim - 2], pads[-2 * p.dim - 1]
        extent = call.out.shape[p.dim]
        if p.inner != 1 or p.extent != x.shape[p.dim]:
            if before or after:
                return None, [f"{call.name}: pads a flattened spatial axis; field unknown"]
            continue
        read = pad_taps(before, x.shape[p.dim], mode)
        axes[i], places[i] = window(axis, extent, read, 1, 1), Place(p.dim, 1, extent)
    return f.with_axes(axes, places, call.out.shape), []
