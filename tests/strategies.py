"""Hypothesis strategies: random VALID model configs from the registry, valid by construction.

:func:`models` draws a :class:`Plan`: a config ``{"input": [C, H, W], "layers": [...]}``
and the output shape predicted from the padding definitions, computed here independently
of ``convzoo.layers.geometry``. Each layer generator knows the shape it receives and only
draws arguments that fit it (kernel inside the padded input, groups dividing the channels,
residual bodies and parallel branches that keep the spatial size a merge needs).

Importing this module registers the hypothesis profiles ``ci`` (the default: a few hundred
reproducible examples) and ``thorough`` (thousands, fresh ones each run) and loads the one
named by ``HYPOTHESIS_PROFILE``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

_QUIET = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]
_COMMON: dict[str, Any] = dict(
    deadline=None, database=None, print_blob=True, suppress_health_check=_QUIET
)
# "fast": the default `pytest -q` tier; "ci": CI's property step; "thorough": by hand.
settings.register_profile("fast", max_examples=20, derandomize=True, **_COMMON)
settings.register_profile("ci", max_examples=200, derandomize=True, **_COMMON)
settings.register_profile("thorough", max_examples=2000, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "fast"))

Draw = Callable[[st.SearchStrategy[Any]], Any]
Shape = tuple[int, ...]
Spec = dict[str, Any]
Pad = str | int
MAX_SIDE = 40  # no spatial size above this (full padding and upsampling grow inputs)
KERNELS = (1, 2, 3, 4, 5)
ACTIVATIONS = ("relu", "leaky_relu", "elu", "gelu", "silu", "mish", "hardswish", "identity")
SATURATING = ("relu6", "sigmoid", "tanh")  # zero gradients on big inputs: not in RF examples


# -- lengths from the definitions (docs/zoo.md, "Padding modes"), one axis ---------------------
def padded(pad: Pad, span: int) -> int:
    """Total zeros on one axis for "valid", "full" or an int (not "same")."""
    return 0 if pad == "valid" else 2 * (span - 1) if pad == "full" else 2 * int(pad)


def conv_len(n: int, k: int, s: int, d: int, pad: Pad) -> int | None:
    """Output length of a convolution, or None when the dilated kernel does not fit."""
    span, total = d * (k - 1) + 1, 0 if pad == "same" else padded(pad, d * (k - 1) + 1)
    if pad == "same":
        return -(-n // s)
    return None if n + total < span else (n + total - span) // s + 1


def transposed_len(m: int, k: int, s: int, d: int, pad: Pad, extra: int) -> int | None:
    """Output length of the transposed convolution (the adjoint of ``conv`` with ``pad``)."""
    span = d * (k - 1) + 1
    n = m * s if pad == "same" else (m - 1) * s + span - padded(pad, span) + extra
    return n if n >= 1 else None


def stack_len(n: int, k: int, s: int, d: int, pad: Pad) -> int | None:
    """``conv_stack``: (k-1)/2 3x3 convs, stride on the last, int padding on the first only."""
    layers = (k - 1) // 2
    for i in range(1, layers + 1):
        step = s if i == layers else 1
        got = conv_len(n, 3, step, d, pad if isinstance(pad, str) or i == 1 else 0)
        if got is None:
            return None
        n = got
    return n


def _spec(pair: tuple[int, int]) -> int | list[int]:
    return pair[0] if pair[0] == pair[1] else list(pair)


@dataclass(frozen=True)
class Ctx:
    """What the enclosing structure needs from the next layer."""

    rf: bool = False  # receptive-field example: avg pools, non-saturating activations
    same: bool = False  # "same" padding only, output size ceil(n / stride)
    stride: int | None = None  # forced stride (None: drawn)
    out: int | None = None  # forced output channels (None: drawn)
    depth: int = 0  # nesting of residual / parallel / sequential


def _one(draw: Draw, options: Any) -> Any:
    return draw(st.sampled_from(list(options)))


def _channels(draw: Draw, ctx: Ctx) -> int:
    return ctx.out if ctx.out is not None else draw(st.integers(1, 6))


def _divisor(draw: Draw, *counts: int) -> int:
    g = math.gcd(*counts)
    return _one(draw, [d for d in range(1, g + 1) if g % d == 0])


def _act(draw: Draw, ctx: Ctx) -> str:
    return _one(draw, ACTIVATIONS if ctx.rf else ACTIVATIONS + SATURATING)


def _stride(draw: Draw, ctx: Ctx) -> tuple[int, int]:
    if ctx.stride is not None:
        return (ctx.stride, ctx.stride)
    return _one(draw, [(1, 1), (2, 2), (1, 1), (2, 2), (1, 2), (2, 1)])


def _geometry(
    draw: Draw,
    hw: Shape,
    ctx: Ctx,
    kernels: tuple[int, ...] = KERNELS,
    dilations: tuple[int, ...] = (1, 2),
    length: Callable[[int, int, int, int, Pad], int | None] = conv_len,
    square: bool = False,
) -> tuple[Spec, Shape] | None:
    """kernel_size, stride, dilation and a padding that fit ``hw``, and the output size."""
    kh = _one(draw, kernels)
    k = (kh, kh) if square or draw(st.booleans()) else (kh, _one(draw, kernels))
    s, d = _stride(draw, ctx), _one(draw, dilations)
    top = min(d * (x - 1) for x in k)
    p, q = draw(st.integers(0, top)), draw(st.integers(0, top))
    options: list[Any] = ["same"] if ctx.same else ["valid", "same", "full", p, (p, q)]
    fits = []
    for opt in options:
        out = tuple(
            length(hw[a], k[a], s[a], d, opt[a] if isinstance(opt, tuple) else opt) for a in (0, 1)
        )
        if all(o is not None and 1 <= o <= MAX_SIDE for o in out):
            fits.append((list(opt) if isinstance(opt, tuple) else opt, out))
    if not fits:
        return None
    pad, out = _one(draw, fits)
    return {"kernel_size": _spec(k), "stride": _spec(s), "dilation": d, "padding": pad}, out


# -- layers: each returns (spec, output shape) or None when it cannot fit here ------------------
Result = tuple[Spec, Shape] | None


def conv_layer(draw: Draw, name: str, shape: Shape, ctx: Ctx) -> Result:
    """conv, grouped, dilated, fft_conv, deformable, tiled, locally_connected, factorized,
    depthwise_separable, conv_stack: the same geometry, their own extra arguments."""
    c, out = shape[0], _channels(draw, ctx)
    if name == "conv_stack":
        geo = _geometry(draw, shape[1:], ctx, (3, 5), length=stack_len, square=True)
    else:
        geo = _geometry(draw, shape[1:], ctx, dilations=(1, 2, 3) if name == "dilated" else (1, 2))
    if geo is None:
        return None
    spec: Spec = {"type": name, "out_channels": out, **geo[0]}
    if name in ("conv", "grouped", "dilated", "fft_conv", "deformable"):
        spec["groups"] = _divisor(draw, c, out)
    if name == "deformable":
        spec["version"] = _one(draw, (1, 2))
        spec["offset_groups"] = _divisor(draw, c)
    elif name == "tiled":
        spec["tile_size"] = draw(st.integers(1, 3))
    elif name == "factorized" and draw(st.booleans()):
        spec["mid_channels"] = draw(st.integers(1, 4))
    elif name == "depthwise_separable":
        spec["depth_multiplier"] = draw(st.integers(1, 2))
        spec["norm"] = _one(draw, (None, "batch_norm"))
        spec["activation"] = _one(draw, (None, _act(draw, ctx)))
    elif name == "conv_stack":
        spec["activation"] = _one(draw, (None, _act(draw, ctx)))
    if draw(st.integers(0, 3)) == 0 and name != "depthwise_separable":
        spec["bias"] = False
    return spec, (out, *geo[1])


def depthwise(draw: Draw, shape: Shape, ctx: Ctx) -> Result:
    c = shape[0]
    if ctx.out is not None and (ctx.out % c or ctx.out // c > 3):
        return None
    m = ctx.out // c if ctx.out is not None else draw(st.integers(1, 2))
    geo = _geometry(draw, shape[1:], ctx)
    if geo is None:
        return None
    return {"type": "depthwise", "depth_multiplier": m, **geo[0]}, (c * m, *geo[1])


def pointwise(draw: Draw, shape: Shape, ctx: Ctx) -> Result:
    out, s = _channels(draw, ctx), _stride(draw, ctx)
    spec = {"type": "pointwise", "out_channels": out, "stride": _spec(s)}
    spec["groups"] = _divisor(draw, shape[0], out)
    return spec, (out, *(-(-shape[1 + a] // s[a]) for a in (0, 1)))


def transposed(draw: Draw, shape: Shape, ctx: Ctx, stride: int | None = None) -> Result:
    """Strided only outside "same" bodies and, in RF examples, only as the last layer."""
    if stride or ctx.rf:
        ctx = replace(ctx, stride=stride or 1)
    c, out, extra = shape[0], _channels(draw, ctx), draw(st.integers(0, 1))

    def length(n: int, k: int, s: int, d: int, pad: Pad) -> int | None:
        if pad != "same" and extra >= max(s, d):  # output_padding must stay below those
            return None
        return transposed_len(n, k, s, d, pad, 0 if pad == "same" else extra)

    geo = _geometry(draw, shape[1:], ctx, length=length)
    if geo is None:
        return None
    spec = {"type": "transposed", "out_channels": out, **geo[0], "groups": _divisor(draw, c, out)}
    if extra and spec["padding"] != "same":
        spec["output_padding"] = extra
    return spec, (out, *geo[1])


def pool(draw: Draw, shape: Shape, ctx: Ctx) -> Result:
    """max_pool (avg_pool in RF examples) or avg_pool; stride None means stride = kernel."""
    name = "avg_pool" if ctx.rf else _one(draw, ("max_pool", "avg_pool"))
    k = _one(draw, (1, 2, 3))
    stride = ctx.stride if ctx.stride is not None else _one(draw, (None, 1, 2))
    s = k if stride is None else stride
    pad = "same" if ctx.same else _one(draw, ("valid", "same", k // 2))
    size = tuple(conv_len(n, k, s, 1, pad) for n in shape[1:])
    if None in size:
        return None
    spec: Spec = {"type": name, "kernel_size": k, "padding": pad}
    if stride is not None:
        spec["stride"] = stride
    return spec, (shape[0], *size)  # type: ignore[arg-type]


def keeping(draw: Draw, shape: Shape, ctx: Ctx) -> Result:
    """batch_norm, activation, dropout, identity: the shape passes through."""
    kind = _one(draw, ("batch_norm", "activation", "activation", "dropout", "identity"))
    spec: Spec = {"type": kind}
    if kind == "activation":
        spec["fn"] = _act(draw, ctx)
    elif kind == "dropout":
        spec["p"] = _one(draw, (0.0, 0.25, 0.5))
    return spec, shape


def upsample(draw: Draw, shape: Shape, ctx: Ctx, scale: int | None = None) -> Result:
    scale = scale or 2
    if max(shape[1:]) * scale > MAX_SIDE:
        return None
    spec = {"type": "upsample", "scale_factor": scale, "mode": _one(draw, ("nearest", "bilinear"))}
    return spec, (shape[0], shape[1] * scale, shape[2] * scale)


def conv_norm_act(draw: Draw, shape: Shape, ctx: Ctx) -> Result:
    """conv_norm_act around one of several convs; padding None means d·(k-1)//2 per side."""
    conv = _one(draw, ("conv", "dilated", "fft_conv", "factorized", "depthwise_separable", "tiled"))
    c, out = shape[0], _channels(draw, ctx)
    k, s, d = _one(draw, (1, 2, 3, 4)), _stride(draw, ctx), _one(draw, (1, 2))
    pad: Any = "same" if ctx.same else _one(draw, (None, "same", "valid"))
    as_int = d * (k - 1) // 2 if pad is None else pad
    size = tuple(conv_len(shape[1 + a], k, s[a], d, as_int) for a in (0, 1))
    if not all(n is not None and n <= MAX_SIDE for n in size):
        return None
    spec: Spec = {"type": "conv_norm_act", "conv": conv, "out_channels": out, "kernel_size": k}
    spec.update(stride=_spec(s), padding=pad, dilation=d)
    if conv in ("conv", "dilated", "fft_conv"):
        spec["groups"] = _divisor(draw, c, out)
    spec["norm"] = _one(draw, ("batch_norm", None))
    spec["activation"] = _one(draw, (None, _act(draw, ctx)))
    return spec, (out, *size)  # type: ignore[arg-type]


def block(draw: Draw, shape: Shape, ctx: Ctx) -> Result:
    """The registered residual, bottleneck and inverted_residual blocks: ceil(n / s)."""
    name = _one(draw, ("residual", "bottleneck", "inverted_residual"))
    c, out, s = shape[0], _channels(draw, ctx), _stride(draw, ctx)
    spec: Spec = {"type": name, "out_channels": out, "stride": _spec(s)}
    spec["activation"] = _act(draw, ctx)
    if name == "residual":
        spec["conv"] = _one(draw, ("conv", "fft_conv", "dilated", "tiled"))
        spec["groups"] = 1 if spec["conv"] == "tiled" else _divisor(draw, c, out)
        spec["dilation"] = _one(draw, (1, 2))
    elif name == "bottleneck":
        mid = draw(st.integers(1, 4))
        spec.update(mid_channels=mid, groups=_divisor(draw, mid))
    else:
        spec["expand_ratio"] = _one(draw, (1, 2, 0.5))
        spec["kernel_size"] = _one(draw, (3, 5, [3, 1]))
        if round(c * spec["expand_ratio"]) < 1:
            spec["expand_ratio"] = 1
    return spec, (out, *(-(-shape[1 + a] // s[a]) for a in (0, 1)))


# -- structures from the config syntax -----------------------------------------------------------
def items(draw: Draw, shape: Shape, ctx: Ctx, count: int) -> tuple[list[Spec], Shape]:
    """``count`` layers in a row; the first takes ``ctx.stride``, the rest stride 1 when forced."""
    specs = []
    for i in range(count):
        sub = ctx if i == 0 or ctx.stride is None else replace(ctx, stride=1)
        spec, shape = layer(draw, shape, sub)
        specs.append(spec)
    return specs, shape


def residual(draw: Draw, shape: Shape, ctx: Ctx) -> Result:
    """``{residual: [...]}``: a "same" body, at most one strided layer, so a 1x1 projection
    (auto) or the identity fits; optional activation after the sum."""
    stride = ctx.stride if ctx.stride is not None else _one(draw, (1, 2))
    inner = replace(ctx, same=True, stride=stride, depth=ctx.depth + 1)
    body, out = items(draw, shape, inner, draw(st.integers(1, 3)))
    spec: Spec = {"residual": body}
    modes = ["auto", "projection"] + (["identity"] if out == shape else [])
    mode = _one(draw, modes)
    if mode != "auto" or draw(st.booleans()):
        spec["shortcut"] = mode
    if draw(st.booleans()):
        spec["activation"] = _act(draw, ctx)
    return spec, out


def parallel(draw: Draw, shape: Shape, ctx: Ctx) -> Result:
    """``{parallel: [[...], ...]}``: branches of "same" layers at one stride; concat adds the
    branch channels, sum needs them equal (always sum when the channels are forced)."""
    merge = "sum" if ctx.out is not None else _one(draw, ("concat", "sum"))
    stride = ctx.stride if ctx.stride is not None else _one(draw, (1, 2))
    common = _channels(draw, ctx)
    branches, shapes = [], []
    for _ in range(draw(st.integers(2, 3))):
        out = common if merge == "sum" else draw(st.integers(1, 4))
        inner = Ctx(ctx.rf, True, stride, out, ctx.depth + 1)
        branch, got = items(draw, shape, inner, draw(st.integers(1, 2)))
        branches.append(branch)
        shapes.append(got)
    spec: Spec = {"parallel": branches}
    if merge == "sum" or draw(st.booleans()):
        spec["merge"] = merge
    channels = shapes[0][0] if merge == "sum" else sum(s[0] for s in shapes)
    return spec, (channels, *shapes[0][1:])


def sequential(draw: Draw, shape: Shape, ctx: Ctx) -> Result:
    specs, out = items(draw, shape, replace(ctx, depth=ctx.depth + 1), draw(st.integers(1, 2)))
    return {"sequential": specs}, out


CONVS = ("conv", "grouped", "dilated", "fft_conv", "deformable", "tiled", "locally_connected")
CONVS += ("factorized", "depthwise_separable", "conv_stack")
GENERATORS: dict[str, Callable[[Draw, Shape, Ctx], Result]] = {
    name: (lambda n: lambda draw, s, c: conv_layer(draw, n, s, c))(name) for name in CONVS
}
GENERATORS.update(depthwise=depthwise, pointwise=pointwise, transposed=transposed, pool=pool)
GENERATORS.update(keeping=keeping, upsample=upsample, conv_norm_act=conv_norm_act, block=block)
GENERATORS.update(residual_spec=residual, parallel_spec=parallel, sequential_spec=sequential)
CHANNEL_KEEPING = ("pool", "keeping", "upsample")
STRUCTURES = ("residual_spec", "parallel_spec", "sequential_spec")
CHOICES = ("conv", *CONVS, "depthwise", "pointwise", "transposed", "transposed", "pool", "pool")
CHOICES += ("keeping", "keeping", "upsample", "conv_norm_act", "block", *STRUCTURES, *STRUCTURES)


def layer(draw: Draw, shape: Shape, ctx: Ctx) -> tuple[Spec, Shape]:
    """One layer spec valid for ``shape`` under ``ctx``; sometimes repeated (shape kept)."""
    if ctx.depth == 0 and ctx.stride is None and draw(st.integers(0, 9)) == 0:
        spec, out = layer(draw, shape, Ctx(ctx.rf, True, 1, shape[0], ctx.depth))
        assert out == shape, (spec, shape, out)  # "same", stride 1, same channels
        return {**spec, "repeat": draw(st.integers(2, 3))}, out
    choices = [
        c
        for c in CHOICES
        if not (c in STRUCTURES and ctx.depth >= 2)
        and not (c in CHANNEL_KEEPING and ctx.out not in (None, shape[0]))
        and not (c == "upsample" and (ctx.same or ctx.rf))
        and not (c in ("keeping", "transposed") and ctx.stride not in (None, 1))
    ]
    got = None
    for _ in range(5):
        got = GENERATORS[_one(draw, choices)](draw, shape, ctx)
        if got is not None:
            break
    return got or pointwise(draw, shape, ctx)  # type: ignore[return-value]  # fits any ctx


# -- heads and whole models ------------------------------------------------------------------------
def head(draw: Draw, shape: Shape) -> tuple[list[Spec], Shape]:
    """Nothing, flatten + linear, global pool + flatten + linear, or a capsule head."""
    kind = _one(draw, ("none", "none", "linear", "global", "capsules"))
    c, h, w = shape
    if kind == "capsules":
        k, s, pad = _one(draw, (1, 2, 3)), _one(draw, (1, 2)), _one(draw, ("valid", "same"))
        size = [conv_len(n, k, s, 1, pad) for n in (h, w)]
        types, dim = draw(st.integers(1, 3)), draw(st.integers(2, 4))
        if None not in size and types * size[0] * size[1] <= 256:  # type: ignore[operator]
            caps = (draw(st.integers(2, 4)), draw(st.integers(2, 4)))
            primary = dict(num_types=types, capsule_dim=dim, kernel_size=k, stride=s, padding=pad)
            routing = dict(
                out_capsules=caps[0], out_dim=caps[1], iterations=draw(st.integers(1, 3))
            )
            specs = [
                {"type": "primary_capsules", **primary},
                {"type": "routing_capsules", **routing},
            ]
            if draw(st.booleans()):
                return [*specs, {"type": "capsule_lengths"}], (caps[0],)
            return specs, caps
        kind = "linear"
    if kind == "none":
        return [], shape
    specs: list[Spec] = []
    if kind == "global":
        specs.append({"type": _one(draw, ("global_avg_pool", "global_max_pool"))})
    specs.append({"type": "flatten"})
    out = draw(st.integers(1, 8))
    specs.append({"type": "linear", "out_features": out})
    if draw(st.booleans()):
        out2 = draw(st.integers(1, 5))
        specs += [{"type": "activation", "fn": "relu"}, {"type": "linear", "out_features": out2}]
        return specs, (out2,)
    return specs, (out,)


@dataclass
class Plan:
    """A generated model: its config, input and predicted output shapes (without batch)."""

    config: dict[str, Any]
    input: Shape
    out: Shape
    period: int = 1  # RF examples: the stride of a final upsampling layer (1 if none)
    seed: int = 0  # for choices made in the test (units, module modes)


@st.composite
def models(draw: Draw, rf: bool = False) -> Plan:
    """Random valid model configs; ``rf=True``: spatial output, avg pools, non-saturating
    activations, and strided upsampling only as the last layer (its phases are checked)."""
    lo = 8 if rf else 6
    shape: Shape = (draw(st.integers(1, 6)), draw(st.integers(lo, 20)), draw(st.integers(lo, 20)))
    start, ctx = shape, Ctx(rf=rf)
    layers = []
    for i in range(draw(st.integers(1, 4))):
        spec, shape = layer(draw, shape, ctx)
        if draw(st.integers(0, 5)) == 0:
            spec = {**spec, "name": f"layer_{i}"}
        layers.append(spec)
    period = 1
    if rf and draw(st.integers(0, 2)) == 0:
        factor = _one(draw, (2, 3))
        maker = _one(draw, (transposed, upsample))
        got = maker(draw, shape, Ctx(rf=True), factor)
        if got is not None:
            layers.append(got[0])
            shape, period = got[1], factor
    elif not rf:
        extra, shape = head(draw, shape)
        layers += extra
    seed = draw(st.integers(0, 2**16))
    return Plan({"input": list(start), "layers": layers}, start, shape, period, seed)
