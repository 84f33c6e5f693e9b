"""Benchmark ``fft_conv`` against ``conv`` (F.conv2d) and the ``fft-conv-pytorch`` package.

128x128 input, 16 -> 16 channels, "same" padding, batch 1 and 8, odd kernel sizes 3..31.
Prints median times (torch.utils.benchmark, after a warm-up call), the ratios, and the
crossover kernel size (smallest k where ``fft_conv`` beats ``conv``). About a minute on 2 cores.

    python scripts/bench_fft.py [--sizes 3 5 7] [--batches 1 8] [--min-time 0.2]
"""

from __future__ import annotations

import argparse
import warnings
from collections.abc import Callable

import torch
from torch.utils.benchmark import Timer

import convzoo

warnings.filterwarnings("ignore", module="fft_conv_pytorch")  # its deprecated indexing
try:
    from fft_conv_pytorch import fft_conv as peer_fft_conv
except Exception as error:  # noqa: BLE001  (any import failure just drops the column)
    peer_fft_conv = None
    PEER_NOTE = f"fft-conv-pytorch not available ({type(error).__name__}: {error})"
else:
    PEER_NOTE = ""


def median_ms(fn: Callable[[], torch.Tensor], min_time: float) -> float:
    """Median wall time of ``fn()`` in milliseconds (the caller has warmed it up)."""
    return Timer("fn()", globals={"fn": fn}).blocked_autorange(min_run_time=min_time).median * 1e3


def bench(k: int, batch: int, size: int, channels: int, min_time: float) -> dict[str, float]:
    """Times in ms of each implementation for one configuration; checks they agree."""
    args = {"in_channels": channels, "out_channels": channels, "kernel_size": k}
    conv = convzoo.create("conv", padding="same", **args)
    fft = convzoo.create("fft_conv", padding="same", **args)
    fft.load_state_dict(conv.state_dict())
    x = torch.randn(batch, channels, size, size)
    fns: dict[str, Callable[[], torch.Tensor]] = {
        "conv": lambda: conv(x),
        "fft_conv": lambda: fft(x),
    }
    if peer_fft_conv is not None:
        fns["peer"] = lambda: peer_fft_conv(x, conv.weight, conv.bias, padding="same")
    with torch.no_grad():
        ref = fns["conv"]()
        for name, fn in fns.items():  # warm-up call, checked against conv
            err = ((fn() - ref).abs().max() / ref.abs().max()).item()
            assert err < 1e-4, f"{name} disagrees with conv at k={k}: {err:.2e}"
        return {name: median_ms(fn, min_time) for name, fn in fns.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[3, 5, 7, 9, 11, 15, 21, 31])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--min-time", type=float, default=0.2)
    opts = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    if PEER_NOTE:
        print(f"note: {PEER_NOTE}; its columns are left out")
    peer = peer_fft_conv is not None
    for batch in opts.batches:
        print(
            f"\nbatch {batch}, {opts.channels}->{opts.channels} channels, "
            f"{opts.size}x{opts.size}, padding='same' (median ms)"
        )
        head = f"{'k':>3} {'conv':>9} {'fft_conv':>9} {'conv/fft':>9}"
        if peer:
            head += f" {'peer':>9} {'peer/fft':>9}"
        print(head)
        crossover = None
        for k in opts.sizes:
            t = bench(k, batch, opts.size, opts.channels, opts.min_time)
            ratio = t["conv"] / t["fft_conv"]
            line = f"{k:>3} {t['conv']:>9.2f} {t['fft_conv']:>9.2f} {ratio:>9.2f}"
            if peer:
                line += f" {t['peer']:>9.2f} {t['peer'] / t['fft_conv']:>9.2f}"
            print(line, flush=True)
            if crossover is None and t["fft_conv"] < t["conv"]:
                crossover = k
        found = f"k = {crossover}" if crossover is not None else "none in the sizes tried"
        print(f"crossover (smallest k where fft_conv beats conv): {found}")


if __name__ == "__main__":
    main()
