"""Rules for resampling and rearranging ops: nearest / linear / cubic upsampling (both
``align_corners``), pixel shuffle and unshuffle, im2col and padding (constant, reflect,
replicate, circular; negative pads crop)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import torch

from convzoo.analysis.receptive.field import Place
from convzoo.analysis.receptive.intervals import Taps, window
from convzoo.analysis.receptive.span import Span
from convzoo.analysis.receptive.spatial import claimed, conv_span, spatial
from convzoo.analysis.receptive.table import Call, Result, keeps_global, per_dim, rule
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
def pixel_shuffle(call: Call, shuffle: bool) -> Result:
    """Channels to space (output ``o`` reads unit ``o // r``) and back (an r x r window)."""
    r = call.args.get("upscale_factor") or call.args["downscale_factor"]

    def up(o: np.ndarray, exact: bool) -> tuple[np.ndarray, np.ndarray]:
        return (o // r)[:, None], np.ones((len(o), 1), dtype=bool)

    if shuffle:
        return spatial(call, 2, lambda a, k, m: window(a, m, up, r, 1), True)
    return spatial(call, 2, lambda a, k, m: conv_span(a, m, r, r, 0, 1), True)


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
