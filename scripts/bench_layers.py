"""Time every zoo convolution next to a plain `conv` with the same arguments.

For each registered conv layer: its MACs (from ``convzoo.analyze``), the MACs of the
``conv`` it replaces, and the median forward time of both (torch.utils.benchmark, after a
warm-up), with ratio columns. Then the FFT crossover section (scripts/bench_fft.py: conv vs
fft_conv vs the fft-conv-pytorch package) and the unshared/tiled section
(scripts/bench_local.py).

    python scripts/bench_layers.py            # everything (a few minutes on 2 cores)
    python scripts/bench_layers.py --quick    # the zoo table only, shorter runs
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from typing import Any

import torch
from tabulate import tabulate
from torch.utils.benchmark import Timer

import convzoo

sys.path.insert(0, str(Path(__file__).resolve().parent))

# variant -> (its extra keywords, keywords shared with the baseline conv)
VARIANTS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "conv": ({}, {"kernel_size": 3}),
    "pointwise": ({}, {"kernel_size": 1}),
    "depthwise": ({}, {"kernel_size": 3}),
    "grouped": ({"groups": 4}, {"kernel_size": 3}),
    "depthwise_separable": ({}, {"kernel_size": 3}),
    "factorized": ({}, {"kernel_size": 7}),
    "conv_stack": ({}, {"kernel_size": 7}),
    "dilated": ({}, {"kernel_size": 3, "dilation": 2}),
    "transposed": ({}, {"kernel_size": 3}),
    "tiled": ({"tile_size": 2}, {"kernel_size": 3}),
    "locally_connected": ({"input_size": None}, {"kernel_size": 3}),
    "fft_conv": ({}, {"kernel_size": 7}),
    "deformable": ({}, {"kernel_size": 3}),
}


def median_ms(module: torch.nn.Module, x: torch.Tensor, min_run_time: float) -> float:
    with torch.no_grad():
        module(x)  # warm-up
        timer = Timer("m(x)", globals={"m": module, "x": x})
        return timer.blocked_autorange(min_run_time=min_run_time).median * 1e3


def build(
    name: str, extra: dict[str, Any], shared: dict[str, Any], channels: int, size: int
) -> torch.nn.Module:
    kwargs: dict[str, Any] = {"in_channels": channels, **shared}
    entry = convzoo.LAYERS.get(name)
    if "out_channels" in entry.keywords() and name != "depthwise":
        kwargs["out_channels"] = channels
    if "padding" in entry.keywords() and name != "transposed":
        kwargs["padding"] = "same"
    for key, value in extra.items():
        kwargs[key] = (size, size) if key == "input_size" else value
    if name == "pointwise":
        kwargs.pop("kernel_size")
    return convzoo.create(name, **kwargs).eval()


def zoo_table(channels: int, size: int, batch: int, min_run_time: float) -> str:
    rows = []
    x = torch.randn(batch, channels, size, size)
    for name in [n for n, _ in convzoo.list_layers(category="conv")]:
        if name not in VARIANTS:
            rows.append((name, "-", "-", "-", "-", "-", "-", "no benchmark entry"))
            continue
        extra, shared = VARIANTS[name]
        layer = build(name, extra, shared, channels, size)
        base = build("conv", {}, shared, channels, size)
        macs = convzoo.analyze(layer, (channels, size, size), batch_size=batch).totals.macs
        base_macs = convzoo.analyze(base, (channels, size, size), batch_size=batch).totals.macs
        t, t0 = median_ms(layer, x, min_run_time), median_ms(base, x, min_run_time)
        k = shared.get("kernel_size", 1)
        rows.append(
            (
                name,
                f"{k}x{k}",
                f"{macs / 1e6:.1f}",
                f"{base_macs / 1e6:.1f}",
                f"{macs / base_macs:.3f}",
                f"{t:.3f}",
                f"{t0:.3f}",
                f"{t / t0:.2f}",
            )
        )
    headers = [
        "variant",
        "kernel",
        "MMACs",
        "conv MMACs",
        "MAC ratio",
        "ms",
        "conv ms",
        "time ratio",
    ]
    return tabulate(rows, headers=headers, tablefmt="github")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="zoo table only, short runs")
    parser.add_argument("--channels", type=int, default=32)
    parser.add_argument("--size", type=int, default=56)
    parser.add_argument("--batch", type=int, default=4)
    args = parser.parse_args()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; input "
        f"{args.batch}x{args.channels}x{args.size}x{args.size}, padding 'same', forward only\n"
    )
    print(zoo_table(args.channels, args.size, args.batch, 0.05 if args.quick else 0.4))
    if args.quick:
        return
    for script in ("bench_fft", "bench_local"):
        print(f"\n## {script}.py\n", flush=True)
        sys.argv = [script]
        importlib.import_module(script).main()


if __name__ == "__main__":
    main()
