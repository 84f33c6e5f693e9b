"""Time ``locally_connected`` and ``tiled`` against ``conv`` at the same shapes (same MACs).

Usage: ``.venv/bin/python scripts/bench_local.py [--threads 1] [--rounds 3] [--backward]``

Each entry is the median of a ``torch.utils.benchmark.Timer.blocked_autorange`` run after a
warm-up; the rounds are interleaved over the layers and the fastest median is kept, which
filters out load from other processes on a shared machine. Runs in well under a minute.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import torch
from torch import nn
from torch.utils.benchmark import Timer

import convzoo

# (batch, C_in, C_out, H=W, kernel)
SHAPES = [(8, 16, 16, 32, 3), (1, 16, 16, 32, 3), (32, 32, 32, 16, 3), (8, 64, 64, 16, 3)]


def layers(b: int, c_in: int, c_out: int, size: int, k: int) -> dict[str, nn.Module]:
    """The layers compared at one shape, all with ``padding="same"``, stride 1."""
    common = dict(in_channels=c_in, out_channels=c_out, kernel_size=k, padding="same")
    return {
        "conv": convzoo.create("conv", **common),
        "local": convzoo.create("locally_connected", input_size=size, **common),
        "tiled2": convzoo.create("tiled", tile_size=2, **common),
        "tiled3": convzoo.create("tiled", tile_size=3, **common),
    }


def step(module: nn.Module, x: torch.Tensor, backward: bool) -> Callable[[], object]:
    """A closure running forward (and backward) once."""
    if not backward:

        def forward() -> object:
            with torch.no_grad():
                return module(x)

        return forward

    def forward_backward() -> object:
        module.zero_grad(set_to_none=True)
        module(x).sum().backward()
        return None

    return forward_backward


def time_ms(fn: Callable[[], object], min_run_time: float) -> float:
    """Median milliseconds of ``fn()`` after a short warm-up."""
    for _ in range(3):
        fn()
    timer = Timer("fn()", globals={"fn": fn})
    return timer.blocked_autorange(min_run_time=min_run_time).median * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds, best kept")
    parser.add_argument("--min-run-time", type=float, default=0.2, help="seconds per timing")
    parser.add_argument("--backward", action="store_true", help="time forward + backward")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    what = "forward+backward" if args.backward else "forward"
    print(f"{what}, float32, CPU, {args.threads} thread(s), best of {args.rounds} medians (ms)")
    header = (
        f"{'B':>3} {'C_in':>4} {'C_out':>5} {'HxW':>7} {'k':>2} | {'conv':>7} "
        f"{'local':>7} {'ratio':>6} {'W MB':>5} | {'tiled2':>7} {'ratio':>6} "
        f"{'tiled3':>7} {'ratio':>6}"
    )
    print(header)
    print("-" * len(header))
    for b, c_in, c_out, size, k in SHAPES:
        mods = layers(b, c_in, c_out, size, k)
        x = torch.randn(b, c_in, size, size)
        best = {name: float("inf") for name in mods}
        for _ in range(args.rounds):
            for name, module in mods.items():
                ms = time_ms(step(module, x, args.backward), args.min_run_time)
                best[name] = min(best[name], ms)
        weight_mb = mods["local"].weight.numel() * 4 / 2**20
        conv = best["conv"]
        print(
            f"{b:>3} {c_in:>4} {c_out:>5} {f'{size}x{size}':>7} {k:>2} | {conv:7.3f} "
            f"{best['local']:7.3f} {best['local'] / conv:5.2f}x {weight_mb:5.1f} | "
            f"{best['tiled2']:7.3f} {best['tiled2'] / conv:5.2f}x "
            f"{best['tiled3']:7.3f} {best['tiled3'] / conv:5.2f}x"
        )


if __name__ == "__main__":
    main()
