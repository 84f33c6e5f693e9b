"""Compare designs that replace one k x k convolution: theory and measured speed side by side.

``compare(kernel=7, in_channels=64, out_channels=64, size=56)`` builds each design at the
same input and output shape, analyzes it (params, MACs, receptive field) and, with
``bench=True``, times it; every ratio is against the plain k x k ``conv``. ``efficiency``
is the measured speed-up divided by the theoretical one (speed-up x MAC ratio): 1.0 means
the hardware delivers all of the saving, 0.5 half of it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from convzoo.errors import ConvZooError, render
from convzoo.limits import check_size
from convzoo.measure import Row, measure
from convzoo.registry import LAYERS, close_matches, create
from convzoo.values import input_shape

# How each design replaces a k x k convolution at the same input and output shape:
# design -> (registered layer, keywords as a function of k and the channel counts).
Keywords = Callable[[int, int, int], dict[str, Any]]
DESIGNS: dict[str, tuple[str, Keywords]] = {
    "conv": ("conv", lambda k, ci, co: {"kernel_size": k}),
    "conv_stack": ("conv_stack", lambda k, ci, co: {"kernel_size": k, "activation": "relu"}),
    "factorized": ("factorized", lambda k, ci, co: {"kernel_size": k}),
    "depthwise_separable": ("depthwise_separable", lambda k, ci, co: {"kernel_size": k}),
    # a 3x3 with dilation (k-1)/2 reaches the same field k with 9 taps
    "dilated": ("dilated", lambda k, ci, co: {"kernel_size": 3, "dilation": max(1, (k - 1) // 2)}),
    "fft_conv": ("fft_conv", lambda k, ci, co: {"kernel_size": k}),
    "grouped": (
        "grouped",
        lambda k, ci, co: {"kernel_size": k, "groups": 4 if ci % 4 == 0 and co % 4 == 0 else 1},
    ),
    "deformable": ("deformable", lambda k, ci, co: {"kernel_size": k}),
    # modern candidates for the k x k slot (``--designs``; not in the headline set)
    "shuffle_conv": (
        "shuffle_conv",
        lambda k, ci, co: {"kernel_size": k, "groups": 4 if ci % 4 == 0 and co % 4 == 0 else 1},
    ),
    "cond_conv": ("cond_conv", lambda k, ci, co: {"kernel_size": k}),
    "dynamic_conv": ("dynamic_conv", lambda k, ci, co: {"kernel_size": k}),
    "coord_conv": ("coord_conv", lambda k, ci, co: {"kernel_size": k}),
    "gated_conv": ("gated_conv", lambda k, ci, co: {"kernel_size": k}),
    "partial_conv": ("partial_conv", lambda k, ci, co: {"kernel_size": k}),
    # "same" by construction: padding 'valid' gives another output size (a clear error)
    "octave_conv": ("octave_conv", lambda k, ci, co: {"kernel_size": k}),
    "selective_kernel": ("selective_kernel", lambda k, ci, co: {"kernel_sizes": [3, k]}),
    "ghost": ("ghost", lambda k, ci, co: {"kernel_size": k}),
}

# Designs that upsample by ``s`` and apply a k x k filter (``compare --upsample s``);
# the first, resize-then-conv, is the baseline.
UPSAMPLERS: dict[str, Callable[[int, int, int, int, bool], nn.Module]] = {
    "resize_conv": lambda k, ci, co, s, bias: nn.Sequential(
        create("upsample", scale_factor=s),
        create("conv", in_channels=ci, out_channels=co, kernel_size=k, padding="same", bias=bias),
    ),
    "transposed": lambda k, ci, co, s, bias: create(
        "transposed",
        in_channels=ci,
        out_channels=co,
        kernel_size=k,
        stride=s,
        padding="same",
        bias=bias,
    ),  # fmt: skip
    "sub_pixel": lambda k, ci, co, s, bias: create(
        "sub_pixel", in_channels=ci, out_channels=co, kernel_size=k, scale=s, bias=bias
    ),
}


def make_design(
    name: str, kernel: int, in_channels: int, out_channels: int, **common: Any
) -> nn.Module:
    """The module of design ``name`` replacing a ``kernel`` x ``kernel`` conv."""
    layer, keywords = DESIGNS[name]
    accepted = LAYERS.get(layer).keywords()
    return create(
        layer,
        in_channels=in_channels,
        out_channels=out_channels,
        **keywords(kernel, in_channels, out_channels),
        **{k: v for k, v in common.items() if k in accepted},
    )


DEFAULT = [
    "conv",
    "conv_stack",
    "factorized",
    "depthwise_separable",
    "dilated",
    "fft_conv",
    "grouped",
]


def compare(
    kernel: int = 7,
    in_channels: int = 64,
    out_channels: int = 64,
    size: int = 56,
    batch: int = 1,
    designs: list[str] | None = None,
    bench: bool = False,
    train: bool = False,
    min_run_time: float = 0.2,
    progress: bool = False,
    padding: str = "same",
    bias: bool = True,
    max_memory: int | None = None,
    profile: Any = None,
) -> list[Row]:
    """Rows for each design replacing a ``kernel`` x ``kernel`` conv (``designs``: names in
    :data:`DESIGNS`, default :data:`DEFAULT`); the first is ``conv``.

    Every design uses ``padding`` ("same" or "valid") and ``bias``, so all of them map
    ``Tensor[batch, in_channels, size, size]`` to the same output shape. The designs are
    built and analyzed on meta tensors; ``bench=True`` builds real ones only after their
    memory is estimated within ``max_memory`` bytes (None: the default budget).
    """
    for value, what in ((in_channels, "in_channels"), (out_channels, "out_channels")):
        check_size(value, what)
    check_size(kernel, "kernel", minimum=3)
    check_size(size, "size")
    check_size(batch, "batch")
    input_shape((in_channels, size, size), "input", batch)
    names = pick(designs, DESIGNS, DEFAULT)
    if kernel < 3 or kernel % 2 == 0:
        raise ConvZooError(
            f"--kernel must be an odd size >= 3 (a 3x3 stack has an odd field), got {kernel}"
        )
    if padding not in ("same", "valid"):
        raise ConvZooError(f"--padding must be 'same' or 'valid', got {render(padding)}")
    if not isinstance(bias, bool):
        raise ConvZooError(f"bias must be True or False, got {render(bias)}")
    common = {"padding": padding, "bias": bias}

    def modules() -> dict[str, nn.Module]:
        return {n: make_design(n, kernel, in_channels, out_channels, **common) for n in names}

    shape, timing = (in_channels, size, size), (batch, bench, train, min_run_time, progress)
    return measure(
        on_meta(modules), shape, *timing, real=modules, max_memory=max_memory, profile=profile
    )


def compare_upsample(
    scale: int = 2,
    kernel: int = 3,
    in_channels: int = 64,
    out_channels: int = 64,
    size: int = 28,
    batch: int = 1,
    bench: bool = False,
    train: bool = False,
    min_run_time: float = 0.2,
    progress: bool = False,
    bias: bool = True,
    max_memory: int | None = None,
    profile: Any = None,
    designs: list[str] | None = None,
) -> list[Row]:
    """``convzoo compare --upsample S``: resize-then-conv (baseline), transposed and sub-pixel
    convolution (``designs``: some of :data:`UPSAMPLERS`, default all), each mapping
    ``Tensor[B, C_in, n, n]`` to ``Tensor[B, C_out, S·n, S·n]`` with a ``kernel`` x
    ``kernel`` filter ("same" padding)."""
    check_size(scale, "upsample", minimum=2)
    for value, what in (
        (kernel, "kernel"),
        (in_channels, "in_channels"),
        (out_channels, "out_channels"),
        (size, "size"),
        (batch, "batch"),
    ):
        check_size(value, what)
    names = pick(designs, UPSAMPLERS, list(UPSAMPLERS))

    def modules() -> dict[str, nn.Module]:
        return {n: UPSAMPLERS[n](kernel, in_channels, out_channels, scale, bias) for n in names}

    shape, timing = (in_channels, size, size), (batch, bench, train, min_run_time, progress)
    return measure(
        on_meta(modules), shape, *timing, real=modules, max_memory=max_memory, profile=profile
    )


def pick(names: list[str] | None, known: Mapping[str, object], default: list[str]) -> list[str]:
    """The designs ``names`` (``default`` when None), each one of ``known``, with the
    baseline (``known``'s first) first; an empty list or an unknown name is refused."""
    if names is not None and not names:
        raise ConvZooError(f"no design given; choose from {', '.join(sorted(known))}")
    for name in names or ():
        if name not in known:
            hints = close_matches(name, sorted(known)) if isinstance(name, str) else []
            raise ConvZooError(
                f"unknown design {render(name)}"
                + (f"; did you mean {', '.join(map(repr, hints))}?" if hints else "")
                + f" (choose from {', '.join(sorted(known))})"
            )
    baseline = next(iter(known))
    return [baseline, *dict.fromkeys(n for n in names or default if n != baseline)]


def on_meta(designs: Callable[[], Mapping[str, nn.Module]]) -> Mapping[str, nn.Module]:
    """``designs()`` built on the meta device: shapes and counts, no memory."""
    with torch.device("meta"):
        return designs()


def compare_config(
    path: str | Path,
    batch: int = 1,
    bench: bool = False,
    train: bool = False,
    min_run_time: float = 0.2,
    progress: bool = False,
    max_memory: int | None = None,
    profile: Any = None,
) -> list[Row]:
    """``convzoo compare CONFIG.yaml``: a config whose ``compare:`` maps design names to
    layer lists, all built on its ``input``; the first design is the baseline. Built on
    meta tensors; real ones only for ``bench``, within ``max_memory``."""
    from convzoo.builder import Model, build
    from convzoo.config import ConfigError, check_name, load_config

    data = load_config(path) if not isinstance(path, dict) else path
    designs = data.get("compare")
    if not isinstance(designs, dict) or len(designs) < 2:
        raise ConfigError(
            "expected 'compare:' mapping at least two design names to layer lists",
            "compare",
            str(path),
        )
    for name in designs:
        check_name(name, "compare", source=str(path))

    def models(meta: bool) -> dict[str, Model]:
        modules: dict[str, Model] = {}
        for name, layers in designs.items():
            try:
                spec = {"input": data.get("input"), "layers": layers, "blocks": data.get("blocks")}
                modules[name] = build(spec, meta=meta)
            except ConfigError as exc:
                where = f"compare.{name}.{exc.where}" if exc.where else f"compare.{name}"
                raise ConfigError(exc.message, where, str(path)) from None
        return modules

    modules = models(meta=True)
    input_size = tuple(next(iter(modules.values())).input_size)
    return measure(
        modules,
        input_size,
        batch,
        bench,
        train,
        min_run_time,
        progress,
        real=lambda: models(meta=False),
        max_memory=max_memory,
        profile=profile,
    )
