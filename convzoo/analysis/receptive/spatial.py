"""Rules for spatial ops: convolution (also transposed), pooling (also adaptive), resampling
(nearest, linear, cubic), pixel shuffle, im2col and padding. Each says which input units
every output unit reads (:func:`~.intervals.window`), on this input and on an unbounded one."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np
import torch

from convzoo.analysis.receptive import channels as ch
from convzoo.analysis.receptive.field import ABSENT, Field, Place
from convzoo.analysis.receptive.intervals import Taps, affine, window
from convzoo.analysis.receptive.layout import merge, traced_pairs
from convzoo.analysis.receptive.span import Span
from convzoo.analysis.receptive.table import (
    Call,
    Result,
    channel_aware,
    keeps_global,
    mixes_channels,
    per_channel,
    per_dim,
    rule,
)

aten = torch.ops.aten
DEFORMABLE_NOTE = (
    "deformable: the field shown is the nominal one of its kernel; learned offsets can move "
    "every sampling point, so the true field can be larger and shifted"
)
Apply = Callable[[Span, int, int], Span]  # (span, spatial dim k, output extent) -> span


def claimed(f: Field, shape: tuple[int, ...], n: int) -> list[Place]:
    """The input's places, with an absent axis given its standard dim when that dim has
    size 1 and is free (so a 1 x W map can still be padded or convolved along h)."""
    places = list(f.places(shape))
    count = len(places)
    for i, p in enumerate(places):
        dim = i - count
        taken = any(q.dim == dim for q in places)
        if p == ABSENT and -dim <= n and len(shape) >= -dim and shape[dim] == 1 and not taken:
            places[i] = Place(dim, 1, 1)
    return places


def _standard(f: Field, shape: tuple[int, ...], n: int) -> bool:
    """Whether the ``n`` axes of ``f`` (none missing) lie alone in the last ``n`` dims of
    ``shape``, each of extent above 1 (the common case, which needs no places)."""
    return (
        f.layout is None
        and len(f.axes) == n
        and all(a is not None for a in f.axes)
        and min(shape[-n:], default=0) > 1
    )


def spread(span: Span, inner: int) -> Span:
    """An axis whose dim repeats each unit ``inner`` times (nearest upsampling by views)."""
    n = len(span) * inner
    return window(
        span, n, lambda o, e: ((o // inner)[:, None], np.ones((len(o), 1), bool)), inner, 1
    )


def spatial(
    call: Call,
    n: int,
    apply: Apply,
    mixes_channels: bool,
    out_place: Callable[[int], Place] | None = None,
) -> Result:
    """An op over the last ``n`` dims of its input: ``apply(span, k, extent)`` gives the new
    span of an axis lying alone in spatial dim ``k``. An axis in the channel dim makes the
    output global when the op mixes channels (convolution) and is kept otherwise (pooling)."""
    x = call.x()
    f = call.field_of(x)
    if f is None or f.is_global:
        return f, []
    shape, out = tuple(x.shape), call.out.shape
    standard = out_place is None and len(out) == len(shape) > n and _standard(f, shape, n)
    if standard and min(out[-n:]) > 1:  # every axis alone in its dim, before and after
        new = [apply(a, k, out[k - n]) for k, a in enumerate(f.axes)]  # type: ignore[arg-type]
        return Field(tuple(new), False, None, f.reason, f.bound), []
    axes, places = list(f.axes), claimed(f, shape, n)
    place = out_place or (lambda k: Place(k - n, 1, call.out.shape[k - n]))
    given = tuple(places)
    for i, p in enumerate(given):
        axis = axes[i]
        if p.dim is None or axis is None or p.dim < -n - 1:
            continue
        if p.dim == -n - 1:
            if mixes_channels:
                return Field.global_field(), [f"{call.name} mixes a spatial axis held in channels"]
            continue
        sharing = sum(q.dim == p.dim for q in given)
        if p.inner == 0 or p.inner * p.extent != shape[p.dim] or sharing > 1:
            return None, [f"{call.name}: its spatial dims hold a flattened spatial axis"]
        if p.inner > 1:  # outer axis, inner repeats (e.g. pixel_shuffle done by views)
            axis = spread(axis, p.inner)
        k = n + p.dim
        places[i] = where = place(k)
        axes[i] = apply(axis, k, where.extent)
    return f.with_axes(axes, places, call.out.shape), []


def with_sides(result: Result, call: Call, names: tuple[str, ...]) -> Result:
    """Account for traced tensors used as weights: global makes the output global."""
    field, notes = result
    for name in names:
        f = call.field_of(call.args.get(name))
        if f is not None and f.is_global:
            return Field.global_field(), notes
        if f is not None:
            notes = [*notes, f"{call.name}: {name} is computed from the input; not followed"]
    return field, notes


def conv_span(span: Span, n_out: int, kernel: int, stride: int, pad: int, dilation: int) -> Span:
    """Output ``o`` reads inputs ``o·stride - pad + j·dilation`` (convolution, pooling)."""
    return window(span, n_out, affine(stride, -pad, kernel, dilation), 1, stride)


def transposed_taps(kernel: int, stride: int, pad: int, dilation: int) -> Taps:
    """Output ``o`` receives input ``i`` through tap ``j`` if ``o = i·s - pad + j·dilation``."""
    steps = np.arange(kernel, dtype=np.int64) * dilation

    def taps(o: np.ndarray, exact: bool) -> tuple[np.ndarray, np.ndarray]:
        t = o[:, None] + pad - steps[None, :]
        return t // stride, t % stride == 0

    return taps


@rule(aten.convolution, aten._convolution, aten.convolution_overrideable, aten._convolution_mode)
@keeps_global
@channel_aware
def convolution(call: Call) -> Result:
    """Convolution, transposed or not, any groups and dilation (padding symmetric here;
    ``output_padding`` only adds units at the end)."""
    w = call.args["weight"]
    n = w.dim() - 2
    kernel, stride = list(w.shape[2:]), per_dim(call.args["stride"], n)
    dilation, pad = per_dim(call.args["dilation"], n), call.args["padding"]
    if isinstance(pad, str):  # _convolution_mode: 'same' pads total // 2 before
        pad = [
            d * (k - 1) // 2 if pad == "same" else 0 for k, d in zip(kernel, dilation, strict=True)
        ]
    pad = per_dim(pad, n)
    transposed = bool(call.args.get("transposed"))

    def apply(a: Span, k: int, n_out: int) -> Span:
        if transposed:
            return window(
                a, n_out, transposed_taps(kernel[k], stride[k], pad[k], dilation[k]), stride[k], 1
            )
        return conv_span(a, n_out, kernel[k], stride[k], pad[k], dilation[k])

    def run(field: Field | None) -> Result:
        one = Call(call.func, call.args, call.out, lambda t: field)
        return with_sides(spatial(one, n, apply, True), call, ("weight", "bias"))

    f = call.field_of(call.x())
    if f is None or f.channels is None:
        return run(f)
    return grouped(call, f, n, run)


def grouped(call: Call, f: Field, n: int, run: Callable[[Field | None], Result]) -> Result:
    """A convolution of an input whose channels have different fields: each output group
    sees the union over its input group's channels (exact; one group: the union of all)."""
    top, notes = run(f.uniform())
    channels, groups = f.channels, int(call.args.get("groups") or 1)
    if top is None or top.is_global or not top.known or channels is None or groups == 1:
        return top, notes  # one group: every output channel sees the union (exact)
    if channels.dims != (-n - 1,) or not channels.alone or call.out.dim() != n + 2:
        return replace(top, bound=True), [*notes, f"{call.name}: {LOST}"]
    c_out = call.out.shape[1]
    per_group: dict[tuple[int, ...], int] = {}
    parts: list[ch.Part] = []
    ids = np.empty(c_out, dtype=np.int64)
    for g, row in enumerate(channels.ids.reshape(groups, -1)):
        key = tuple(np.unique(row).tolist())
        if key not in per_group:
            got, _ = run(f.part(ch.union_axes([channels.parts[i] for i in key])))
            if got is not None and (got.is_global or got.layout != top.layout):
                return replace(top, bound=True), [*notes, f"{call.name}: {LOST}"]
            per_group[key] = len(parts)
            parts.append(None if got is None else got.axes)
        ids[g * (c_out // groups) : (g + 1) * (c_out // groups)] = per_group[key]
    out = top.segmented((-n - 1,), ids, parts)
    return (top if out is None else out), notes


LOST = (
    "its channels have different fields, held where a convolution does not group them: "
    "each unit's field is the union over the channels, an upper bound"
)


@rule("torchvision::deform_conv2d")  # by name: torchvision need not be imported
@mixes_channels
def deform_conv2d(call: Call) -> Result:
    """torchvision's deformable convolution: the nominal field, merged with the offsets'."""
    k = list(call.args["weight"].shape[-2:])
    a = call.args

    def apply(span: Span, i: int, n_out: int) -> Span:
        return conv_span(
            span, n_out, k[i], a[("stride_h", "stride_w")[i]], a[("pad_h", "pad_w")[i]],
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


@rule(aten.max_pool1d, aten.avg_pool1d, n=1)
@rule(aten.max_pool2d, aten.max_pool2d_with_indices, aten.avg_pool2d, n=2)
@rule(aten.max_pool3d, aten.max_pool3d_with_indices, aten.avg_pool3d, n=3)
@keeps_global
@per_channel
def pool(call: Call, n: int) -> Result:
    """Max and average pooling (``ceil_mode``: the last windows hang over the end)."""
    kernel = per_dim(call.args["kernel_size"], n)
    stride = per_dim(call.args.get("stride") or kernel, n)
    pad, dilation = per_dim(call.args["padding"], n), per_dim(call.args.get("dilation", 1), n)

    def apply(a: Span, k: int, n_out: int) -> Span:
        return conv_span(a, n_out, kernel[k], stride[k], pad[k], dilation[k])

    return spatial(call, n, apply, False)


def adaptive_taps(n: int, m: int) -> tuple[Taps, int, int]:
    """Window ``o`` is ``[floor(o·n/m), ceil((o+1)·n/m))``; period ``m/g``, advance ``n/g``."""
    widest = -(-n // m) + 1
    steps = np.arange(widest, dtype=np.int64)

    def taps(o: np.ndarray, exact: bool) -> tuple[np.ndarray, np.ndarray]:
        begin, end = (o * n) // m, -((-(o + 1) * n) // m)
        units = begin[:, None] + steps[None, :]
        return units, units < end[:, None]

    g = np.gcd(n, m)
    return taps, m // g, n // g


@rule(aten.adaptive_max_pool1d, n=1)
@rule(aten._adaptive_avg_pool2d, aten.adaptive_max_pool2d, aten.adaptive_avg_pool2d, n=2)
@rule(aten._adaptive_avg_pool3d, aten.adaptive_max_pool3d, n=3)
@keeps_global
@per_channel
def adaptive_pool(call: Call, n: int) -> Result:
    """Adaptive pooling of any ratio: global when the output is 1 x 1, else its windows."""
    x, out = call.x(), call.out
    if all(s == 1 for s in out.shape[-n:]) and any(s > 1 for s in x.shape[-n:]):
        return Field.global_field(), []

    def apply(a: Span, k: int, n_out: int) -> Span:
        taps, period, advance = adaptive_taps(x.shape[k - n], n_out)
        return window(a, n_out, taps, period, advance)

    return spatial(call, n, apply, False)
