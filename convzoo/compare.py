"""Compare designs that replace one k x k convolution: theory and measured speed side by side.

``compare(kernel=7, in_channels=64, out_channels=64, size=56)`` builds each variant at the
same input and output shape, analyzes it (params, MACs, receptive field) and, with
``bench=True``, times it; every ratio is against the plain k x k ``conv``. ``efficiency``
is the measured speed-up divided by the theoretical MAC ratio: 1.0 means the hardware
delivers all of the saving, 0.5 half of it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from convzoo.analysis.analyzer import analyze
from convzoo.errors import ConvZooError
from convzoo.registry import LAYERS, close_matches, create

# How each design replaces a k x k convolution at the same input and output shape:
# variant -> (registered layer, keywords as a function of k and the channel counts).
Keywords = Callable[[int, int, int], dict[str, Any]]
VARIANTS: dict[str, tuple[str, Keywords]] = {
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
    # modern candidates for the k x k slot (``--variants``; not in the headline set)
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


def make_variant(
    name: str, kernel: int, in_channels: int, out_channels: int, **common: Any
) -> nn.Module:
    """The module of design ``name`` replacing a ``kernel`` x ``kernel`` conv."""
    layer, keywords = VARIANTS[name]
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


@dataclass
class Row:
    """One design's theory (and measurements when benchmarked)."""

    variant: str
    params: int
    macs: int
    receptive_field: int | None
    params_ratio: float
    macs_ratio: float
    forward_ms: float | None = None
    speedup: float | None = None
    efficiency: float | None = None
    train_ms: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _field_size(report: Any) -> int | None:
    rf = report.receptive_field
    if not rf or rf.get("global") or not rf.get("size"):
        return None
    return int(max(rf["size"]))


def measure_ms(module: nn.Module, x: torch.Tensor, train: bool, min_run_time: float) -> float:
    """Median time of a forward (or forward + backward) after a warm-up, in ms."""
    # torch.utils.benchmark imports cpp_extension, which warns about CUDA on CPU machines
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    from torch.utils.benchmark import Timer

    if train:
        x = x.clone().requires_grad_(True)
        stmt = "m(x).sum().backward()"
        module.train()
    else:
        stmt = "m(x)"
        module.eval()
    context = torch.enable_grad() if train else torch.no_grad()
    with context:
        for _ in range(2):
            eval(stmt, {"m": module, "x": x})  # warm-up
        timer = Timer(stmt, globals={"m": module, "x": x})
        return timer.blocked_autorange(min_run_time=min_run_time).median * 1e3


def compare(
    kernel: int = 7,
    in_channels: int = 64,
    out_channels: int = 64,
    size: int = 56,
    batch: int = 1,
    variants: list[str] | None = None,
    bench: bool = False,
    train: bool = False,
    min_run_time: float = 0.2,
    progress: bool = False,
    padding: str = "same",
    bias: bool = True,
) -> list[Row]:
    """Rows for each variant replacing a ``kernel`` x ``kernel`` conv; the first is ``conv``.

    Every design uses ``padding`` ("same" or "valid") and ``bias``, so all of them map
    ``Tensor[batch, in_channels, size, size]`` to the same output shape.
    """
    names = list(variants or DEFAULT)
    for name in names:
        if name not in VARIANTS:
            hints = close_matches(name, sorted(VARIANTS))
            raise ConvZooError(
                f"unknown variant {name!r}"
                + (f"; did you mean {', '.join(map(repr, hints))}?" if hints else "")
                + f" (choose from {', '.join(sorted(VARIANTS))})"
            )
    if kernel < 3 or kernel % 2 == 0:
        raise ConvZooError(
            f"--kernel must be an odd size >= 3 (a 3x3 stack has an odd field), got {kernel}"
        )
    if padding not in ("same", "valid"):
        raise ConvZooError(f"--padding must be 'same' or 'valid', got {padding!r}")
    common = {"padding": padding, "bias": bias}
    names = ["conv", *(n for n in names if n != "conv")]
    modules = {n: make_variant(n, kernel, in_channels, out_channels, **common) for n in names}
    return measure(modules, (in_channels, size, size), batch, bench, train, min_run_time, progress)


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
) -> list[Row]:
    """``convzoo compare --upsample S``: resize-then-conv (baseline), transposed and sub-pixel
    convolution, each mapping ``Tensor[B, C_in, n, n]`` to ``Tensor[B, C_out, S·n, S·n]``
    with a ``kernel`` x ``kernel`` filter ("same" padding)."""
    if scale < 2:
        raise ConvZooError(f"--upsample must be a factor >= 2, got {scale}")
    modules = {
        name: make(kernel, in_channels, out_channels, scale, bias)
        for name, make in UPSAMPLERS.items()
    }
    return measure(modules, (in_channels, size, size), batch, bench, train, min_run_time, progress)


def measure(
    modules: Mapping[str, nn.Module],
    input_size: tuple[int, ...],
    batch: int = 1,
    bench: bool = False,
    train: bool = False,
    min_run_time: float = 0.2,
    progress: bool = False,
) -> list[Row]:
    """Analyze (and optionally time) named modules on one input; the first is the baseline."""
    reports = {n: analyze(m, input_size, batch_size=batch) for n, m in modules.items()}
    shapes = {n: r.output_shape for n, r in reports.items()}
    if len({str(s) for s in shapes.values()}) != 1:
        raise ConvZooError(
            "the designs must produce the same output shape to be compared: "
            + ", ".join(f"{n} {s}" for n, s in shapes.items())
        )
    base_name = next(iter(modules))
    base = reports[base_name].totals
    rows = [
        Row(
            n,
            r.totals["params"],
            r.totals["macs"],
            _field_size(r),
            r.totals["params"] / max(base["params"], 1),
            r.totals["macs"] / max(base["macs"], 1),
        )
        for n, r in reports.items()
    ]
    if bench:
        x = torch.randn(batch, *input_size)
        items = list(modules.items())
        if progress:
            from tqdm import tqdm

            items = tqdm(items, desc="benchmarking", unit="design", leave=False)
        times = {}
        for name, module in items:
            times[name] = measure_ms(module, x, False, min_run_time)
            if train:
                rows[list(modules).index(name)].train_ms = measure_ms(module, x, True, min_run_time)
        for row in rows:
            row.forward_ms = times[row.variant]
            row.speedup = times[base_name] / times[row.variant]
            row.efficiency = row.speedup * row.macs_ratio if row.macs else None
    return rows


def compare_config(
    path: str | Path,
    batch: int = 1,
    bench: bool = False,
    train: bool = False,
    min_run_time: float = 0.2,
    progress: bool = False,
) -> list[Row]:
    """``convzoo compare CONFIG.yaml``: a config whose ``compare:`` maps design names to
    layer lists, all built on its ``input``; the first design is the baseline."""
    from convzoo.builder import build
    from convzoo.config import ConfigError, load_config

    data = load_config(path) if not isinstance(path, dict) else path
    designs = data.get("compare")
    if not isinstance(designs, dict) or len(designs) < 2:
        raise ConfigError(
            "expected 'compare:' mapping at least two design names to layer lists",
            "compare",
            str(path),
        )
    modules = {}
    for name, layers in designs.items():
        try:
            spec = {"input": data.get("input"), "layers": layers, "blocks": data.get("blocks")}
            modules[str(name)] = build(spec)
        except ConfigError as exc:
            raise ConfigError(exc.message, f"compare.{name}.{exc.where}", str(path)) from None
    input_size = next(iter(modules.values())).input_size
    return measure(modules, input_size, batch, bench, train, min_run_time, progress)


def rows_table(rows: list[Row], fmt: str = "table") -> str:
    """Rows as a table (``table``/``markdown``), JSON or CSV, with human units in tables."""
    import csv
    import io
    import json

    from tabulate import tabulate

    if fmt == "json":
        return json.dumps([r.to_dict() for r in rows], indent=2)
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0].to_dict()), lineterminator="\n")
        writer.writeheader()
        writer.writerows(r.to_dict() for r in rows)
        return buffer.getvalue().rstrip("\n")
    timed = rows[0].forward_ms is not None
    headers = ["design", "params", "MACs", "field", "params ratio", "MACs ratio"]
    if timed:
        headers += ["forward ms", "speed-up", "efficiency"]
    if rows[0].train_ms is not None:
        headers.append("fwd+bwd ms")
    table = []
    for r in rows:
        line = [
            r.variant,
            f"{r.params:,}",
            f"{r.macs:,}",
            r.receptive_field or "-",
            f"{r.params_ratio:.3f}",
            f"{r.macs_ratio:.3f}",
        ]
        if timed:
            line += [f"{r.forward_ms:.3f}", f"{r.speedup:.2f}x", f"{r.efficiency:.2f}"]
        if r.train_ms is not None:
            line.append(f"{r.train_ms:.3f}")
        table.append(line)
    return tabulate(
        table,
        headers=headers,
        tablefmt="github" if fmt == "markdown" else "simple",
        disable_numparse=True,
    )
