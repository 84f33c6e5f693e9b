"""Receptive-field rules for spatial ops (convolution, pooling, resampling, padding) and for
ops that mix positions (reductions, transforms, matrix products)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from fractions import Fraction
from typing import Any

import torch

from convzoo.analysis.receptive import (
    ABSENT,
    Axis,
    Field,
    Place,
    adaptive_axis,
    conv_axis,
    frac,
    linear_axis,
    nearest_axis,
    remap,
    shift_axis,
    transposed_axis,
)
from convzoo.analysis.receptive_rules import (
    DEFORMABLE_NOTE,
    RULES,
    Call,
    Places,
    Result,
    merge,
    per_dim,
    rule,
    traced_pairs,
)
from convzoo.layers import geometry as G

aten = torch.ops.aten

# -- spatial ops: convolution, pooling, resampling, padding -------------------------------


def claimed(f: Field, shape: tuple[int, ...], n: int) -> list[Place]:
    """The input's places, with an absent axis given its standard dim when that dim has
    size 1 and is free (so a 1 x W map can still be padded or convolved along h)."""
    places = list(f.places(shape))
    for i, p in enumerate(places):
        dim = -2 + i
        taken = any(q.dim == dim for q in places)
        if p == ABSENT and n >= 2 - i and len(shape) >= -dim and shape[dim] == 1 and not taken:
            places[i] = Place(dim, 1, 1)
    return places


def spatial(
    call: Call,
    n: int,
    apply: Callable[[Axis, int], Axis],
    mixes_channels: bool,
    out_place: Callable[[int], Place] | None = None,
) -> Result:
    """An op over the last ``n`` dims of its input: ``apply(axis, k)`` gives the new field of
    an axis lying alone in spatial dim ``k``. An axis in the channel dim makes the output
    global when the op mixes channels (convolution) and is kept otherwise (pooling)."""
    x = call.x()
    f = call.field_of(x)
    if f is None or f.is_global:
        return f, []
    shape = tuple(x.shape)
    axes, places = list(f.axes), claimed(f, shape, n)
    place = out_place or (lambda k: Place(k - n, 1, call.out.shape[k - n]))
    for i, p in enumerate(places):
        axis = axes[i]
        if p.dim is None or axis is None or p.dim < -n - 1:
            continue
        if p.dim == -n - 1:
            if mixes_channels:
                return Field.global_field(), [f"{call.name} mixes a spatial axis held in channels"]
            continue
        if p.inner == 0 or p.inner * p.extent != shape[p.dim]:
            return None, [f"{call.name}: its spatial dims hold a flattened spatial axis"]
        if p.inner > 1:  # outer axis, inner repeats (e.g. pixel_shuffle done by views)
            axis = nearest_axis(axis, Fraction(1, p.inner))
        axes[i], places[i] = apply(axis, n + p.dim), place(n + p.dim)
    return f.with_axes((axes[0], axes[1]), (places[0], places[1]), call.out.shape), []


def with_sides(result: Result, call: Call, names: Sequence[str]) -> Result:
    """Account for traced tensors used as weights: global makes the output global."""
    field, notes = result
    for name in names:
        f = call.field_of(call.args.get(name))
        if f is not None and f.is_global:
            return Field.global_field(), notes
        if f is not None:
            notes = [*notes, f"{call.name}: {name} is computed from the input; not followed"]
    return field, notes


@rule(aten.convolution, aten._convolution, aten.convolution_overrideable, aten._convolution_mode)
def convolution(call: Call) -> Result:
    """Convolution, transposed or not, any groups and dilation (padding symmetric here)."""
    w = call.args["weight"]
    n = w.dim() - 2
    kernel, stride = list(w.shape[2:]), per_dim(call.args["stride"], n)
    dilation, pad = per_dim(call.args["dilation"], n), call.args["padding"]
    if isinstance(pad, str):  # _convolution_mode: 'same' pads total // 2 before
        pad = [
            d * (k - 1) // 2 if pad == "same" else 0 for k, d in zip(kernel, dilation, strict=True)
        ]
    pad = per_dim(pad, n)
    if call.args.get("transposed"):

        def apply(a: Axis, k: int) -> Axis:
            return transposed_axis(a, kernel[k], stride[k], pad[k], dilation[k])

    else:

        def apply(a: Axis, k: int) -> Axis:
            return conv_axis(a, kernel[k], stride[k], pad[k], dilation[k])

    return with_sides(spatial(call, n, apply, True), call, ("weight", "bias"))


def deform_conv2d(call: Call) -> Result:
    """torchvision's deformable convolution: the nominal field, merged with the offsets'."""
    k = list(call.args["weight"].shape[-2:])
    a = call.args

    def apply(axis: Axis, i: int) -> Axis:
        return conv_axis(
            axis, k[i], a[("stride_h", "stride_w")[i]], a[("pad_h", "pad_w")[i]],
            a[("dilation_h", "dilation_w")[i]],
        )  # fmt: skip

    field, notes = with_sides(spatial(call, 2, apply, True), call, ("weight", "bias"))
    pairs = traced_pairs(call, [call.args["offset"], call.args["mask"]])
    if field is not None:
        field, more = merge(
            [(field, field.places(tuple(call.out.shape))), *pairs], call.out.shape, "deform_conv2d"
        )
        notes = notes + more
    return field, [*notes, DEFORMABLE_NOTE]


def register_torchvision() -> None:
    """Add torchvision's ops once its library is loaded (they exist only then)."""
    op = getattr(torch.ops.torchvision, "deform_conv2d", None)
    if op is not None:
        RULES.setdefault(op, deform_conv2d)


@rule(aten.max_pool1d, aten.avg_pool1d, n=1)
@rule(aten.max_pool2d, aten.max_pool2d_with_indices, aten.avg_pool2d, n=2)
@rule(aten.max_pool3d, aten.max_pool3d_with_indices, aten.avg_pool3d, n=3)
def pool(call: Call, n: int) -> Result:
    """Max and average pooling (``ceil_mode`` only adds units at the end)."""
    kernel = per_dim(call.args["kernel_size"], n)
    stride = per_dim(call.args.get("stride") or kernel, n)
    pad, dilation = per_dim(call.args["padding"], n), per_dim(call.args.get("dilation", 1), n)
    return spatial(
        call, n, lambda a, k: conv_axis(a, kernel[k], stride[k], pad[k], dilation[k]), False
    )


@rule(aten.adaptive_max_pool1d, n=1)
@rule(aten._adaptive_avg_pool2d, aten.adaptive_max_pool2d, aten.adaptive_avg_pool2d, n=2)
@rule(aten._adaptive_avg_pool3d, aten.adaptive_max_pool3d, n=3)
def adaptive_pool(call: Call, n: int) -> Result:
    """Adaptive pooling: global when the output is 1 x 1, else the largest window."""
    x, out = call.x(), call.out
    if all(s == 1 for s in out.shape[-n:]) and any(s > 1 for s in x.shape[-n:]):
        return Field.global_field(), []
    return spatial(call, n, lambda a, k: adaptive_axis(a, x.shape[k - n], out.shape[k - n]), False)


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
def resample(call: Call, n: int, taps: int) -> Result:
    """Upsampling (``taps`` 0: nearest, 1: nearest-exact, 2: linear, 4: cubic); the stride
    becomes a fraction, see :func:`~convzoo.analysis.receptive.nearest_axis`."""
    x, out, args = call.x(), call.out, call.args
    scales = args.get("scale_factors") or [v for k, v in args.items() if k.startswith("scales")]
    align = bool(args.get("align_corners"))

    def apply(a: Axis, k: int) -> Axis:
        m_in, m_out = x.shape[k - n], out.shape[k - n]
        scale = scales[k] if len(scales) == n and scales[k] else None
        ratio = 1 / frac(scale) if scale else Fraction(m_in, m_out)
        if taps < 2:
            return nearest_axis(a, ratio, exact=taps == 1)
        if align:
            ratio = Fraction(m_in - 1, m_out - 1) if m_out > 1 else Fraction(0)
        return linear_axis(a, ratio, align, taps)

    return spatial(call, n, apply, False)


@rule(aten.pixel_shuffle, shuffle=True)
@rule(aten.pixel_unshuffle, shuffle=False)
def pixel_shuffle(call: Call, shuffle: bool) -> Result:
    """Channels to space (like nearest upsampling by r) and back (an r x r window)."""
    r = call.args.get("upscale_factor") or call.args["downscale_factor"]
    if shuffle:
        return spatial(call, 2, lambda a, k: nearest_axis(a, Fraction(1, r)), True)
    return spatial(call, 2, lambda a, k: conv_axis(a, r, r, 0, 1), True)


@rule(aten.im2col)
def im2col(call: Call) -> Result:
    """``F.unfold``: each column holds one window, columns in row-major (h, w) order."""
    x, args = call.x(), call.args
    k, d, p, s = (per_dim(args[a], 2) for a in ("kernel_size", "dilation", "padding", "stride"))
    size = [G.conv_output_size(x.shape[-2 + i], k[i], s[i], d[i], (p[i], p[i])) for i in (0, 1)]
    return spatial(
        call,
        2,
        lambda a, i: conv_axis(a, k[i], s[i], p[i], d[i]),
        True,
        lambda i: Place(-1, size[1] if i == 0 else 1, size[i]),
    )


@rule(
    aten.constant_pad_nd, aten.pad, aten.reflection_pad1d, aten.reflection_pad2d,
    aten.reflection_pad3d, aten.replication_pad1d, aten.replication_pad2d,
    aten.replication_pad3d, aten._pad_circular,
)  # fmt: skip
def pad(call: Call) -> Result:
    """Padding (negative: cropping) shifts ``start``; pad pairs run from the last dim."""
    x = call.x()
    f = call.field_of(x)
    if f is None or f.is_global:
        return f, []
    pads = list(call.args["pad"] if "pad" in call.args else call.args["padding"])
    axes, places = list(f.axes), claimed(f, tuple(x.shape), 2)
    for i, p in enumerate(places):
        axis = axes[i]
        if p.dim is None or axis is None or -2 * p.dim > len(pads):
            continue
        before, after = pads[-2 * p.dim - 2], pads[-2 * p.dim - 1]
        extent = call.out.shape[p.dim]
        if p.inner != 1 or p.extent != x.shape[p.dim]:
            places[i] = Place(p.dim, 0, extent) if before or after else p
        else:
            axes[i], places[i] = shift_axis(axis, -before), Place(p.dim, 1, extent)
    circular = call.args.get("mode") == "circular" or call.func.overloadpacket is aten._pad_circular
    notes = ["circular padding: border units see the far side"] if circular else []
    return f.with_axes((axes[0], axes[1]), (places[0], places[1]), call.out.shape), notes


# -- ops that mix positions: reductions, scans, transforms, matrix products ---------------


def mixing(call: Call, x: torch.Tensor, dims: set[int], keep: bool) -> Result:
    """An op mixing every position along ``dims`` (positive) of ``x``: global if that
    includes a spatial axis, else the field with those dims removed unless ``keep``."""
    f = call.field_of(x)
    if f is None or f.is_global:
        return f, []
    places = f.places(tuple(x.shape))
    hit = [p.dim is not None and x.dim() + p.dim in dims for p in places]
    if any(hit):
        partial_hit = not all(hit) and any(p.dim is not None for p in places)
        note = f"{call.name} mixes one spatial axis only; reported as global"
        return Field.global_field(), [note] if partial_hit else []
    n_out = call.out.dim()
    mapping = (
        (lambda p: p) if keep else (lambda p: None if p in dims else p - sum(d < p for d in dims))
    )
    return f.with_axes(f.axes, remap(places, x.dim(), n_out, mapping), call.out.shape), []


@rule(
    aten.sum, aten.mean, aten.amax, aten.amin, aten.max, aten.min, aten.var, aten.std,
    aten.var_mean, aten.std_mean, aten.norm, aten.linalg_vector_norm, aten.prod, aten.logsumexp,
    aten.any, aten.all, aten.argmax, aten.argmin, aten.median, aten.mode, aten.kthvalue,
    aten.nansum, aten.count_nonzero,
)  # fmt: skip
@rule(
    aten._softmax, aten._log_softmax, aten.cumsum, aten.cumprod, aten.cummax, aten.cummin,
    aten.logcumsumexp, aten.sort, aten.topk, aten._fft_r2c, aten._fft_c2r, aten._fft_c2c,
    scan=True,
)  # fmt: skip
def reduction(call: Call, scan: bool = False) -> Result:
    """Reductions over ``dim`` (all dims when absent), and scans/softmax/FFT (shape kept)."""
    x = call.x()
    dim = call.args.get("dim")
    dims = [dim] if isinstance(dim, int) else list(dim or range(x.dim()))
    keep = scan or bool(call.args.get("keepdim"))
    return mixing(call, x, {d % max(x.dim(), 1) for d in dims}, keep)


MIX = None  # marks a contracted dim in CONTRACTIONS
CONTRACTIONS: dict[Any, tuple[tuple[str, dict[int, int | None]], ...]] = {
    aten.mm: (("self", {-1: MIX}), ("mat2", {-2: MIX})),
    aten.bmm: (("self", {-1: MIX}), ("mat2", {-2: MIX})),
    aten.addmm: (("self", {}), ("mat1", {-1: MIX}), ("mat2", {-2: MIX})),
    aten.baddbmm: (("self", {}), ("batch1", {-1: MIX}), ("batch2", {-2: MIX})),
    aten.addbmm: (("self", {}), ("batch1", {-3: MIX, -1: MIX}), ("batch2", {-3: MIX, -2: MIX})),
    aten.mv: (("self", {-2: -1, -1: MIX}), ("vec", {-1: MIX})),
    aten.addmv: (("self", {}), ("mat", {-2: -1, -1: MIX}), ("vec", {-1: MIX})),
    aten.dot: (("self", {-1: MIX}), ("tensor", {-1: MIX})),
}


@rule(*CONTRACTIONS)
def contraction(call: Call) -> Result:
    """Matrix products: a spatial axis in a contracted dim makes the output global (flatten
    then linear); elsewhere it moves to the matching output dim (channels-last linear)."""
    pairs: list[tuple[Field, Places | None]] = []
    for name, dims in CONTRACTIONS[call.func.overloadpacket]:
        t = call.args[name]
        f = call.field_of(t)
        if f is None or f.is_global:
            pairs += [(f, None)] if f else []
            continue
        places = f.places(tuple(t.shape))
        if any(p.dim is not None and dims.get(p.dim, 0) is MIX for p in places):
            return Field.global_field(), []
        new = tuple(
            p if p.dim is None else Place(dims.get(p.dim, p.dim), p.inner, p.extent) for p in places
        )
        pairs.append((f, (new[0], new[1])))
    if len({places for _, places in pairs if places}) > 1:
        return Field.global_field(), [
            f"{call.name} of two spatial operands (attention-like): global"
        ]
    return merge(pairs, call.out.shape, call.name)


@rule(aten.grid_sampler_2d, aten.grid_sampler_3d, aten.max_unpool2d, aten.fractional_max_pool2d)
def anywhere(call: Call) -> Result:
    """Ops that read or write data-dependent positions: any input pixel may be seen."""
    return Field.global_field(), [f"{call.name} reads data-dependent positions: field is global"]
