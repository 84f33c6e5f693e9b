"""``convzoo machine``: measure this machine's profile (:class:`~convzoo.machine.Profile`).

Each figure is one small benchmark, timed as ``compare --bench`` times (a warm-up, then the
median of ``torch.utils.benchmark`` blocks) and counted by the analyzer, so that a rate is
exactly the work the latency model charges divided by the time it took:

- ``overhead``: a stack of 1x1x1 convolution, batch norm and ReLU modules on one value, its
  time divided by the ops it dispatches (Python and dispatcher cost per op of an eager
  forward);
- ``conv``: dense convolutions of six shapes in turn (:data:`DENSE`: 3x3, 1x1 and 7x7, 32
  to 512 channels, batch 1 to 8): the rate over the mix;
- ``depthwise_conv``: depthwise convolutions of six shapes (:data:`DEPTHWISE`: 3x3 to 7x7,
  32 to 256 channels, batch 1 to 16);
- ``matmul``: a 1024 -> 1024 linear layer on 256 rows;
- ``elementwise``: batch norm (eval), ReLU and SiLU on 64 channels at 56x56 (cache-sized:
  its compute rate, not the bandwidth);
- ``reduction``: 3x3 max pooling (stride 2) and a global average pool on the same;
- ``bandwidth``: copying a 128 MiB tensor (read and written once).

The op's time less its dispatch overhead divides its work. About 5 s in all (float32, at
the threads torch uses, or ``threads``); only this command and the benchmark scripts run
real arithmetic.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import nn

from convzoo.analysis.analyzer import analyze
from convzoo.machine import LOCAL, MAC_CLASSES, Profile
from convzoo.measure import measure_ms

MIN_RUN_TIME = 0.4  # seconds per benchmark (after its warm-up)
COPY_BYTES = 128 * 2**20


def _stack(count: int) -> nn.Module:
    layers: list[nn.Module] = []
    for _ in range(count):
        layers += [nn.Conv2d(1, 1, 1), nn.BatchNorm2d(1), nn.ReLU()]
    return nn.Sequential(*layers)


class _Elementwise(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.silu(torch.relu(self.norm(x)))


class _Reduction(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.max_pool2d(x, 3, 2, 1).mean((2, 3))


class _Mix(nn.Module):
    """Convolutions of several shapes, each on an input of its own (a buffer), in turn: a
    rate over the mix averages the kernels a library picks for each shape. ``shapes``:
    ``(in channels, out channels, size, batch, kernel, groups)``; ``forward(x)`` ignores
    ``x``."""

    def __init__(self, shapes: list[tuple[int, int, int, int, int, int]]) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            nn.Conv2d(ci, co, k, padding=k // 2, groups=g, bias=False)
            for ci, co, _, _, k, g in shapes
        )
        for i, (ci, _, size, batch, _, _) in enumerate(shapes):
            self.register_buffer(f"x{i}", torch.randn(batch, ci, size, size))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [conv(getattr(self, f"x{i}")) for i, conv in enumerate(self.convs)]


DENSE = [  # 3x3 and 1x1, few and many channels, batch 1 to 8
    (64, 64, 56, 1, 3, 1), (128, 128, 28, 4, 3, 1), (256, 64, 56, 1, 1, 1),
    (64, 256, 56, 1, 1, 1), (512, 512, 7, 8, 3, 1), (32, 32, 112, 1, 7, 1),
]  # fmt: skip
DEPTHWISE = [  # kernels 3 to 7, from cache-sized maps to large batches
    (32, 32, 112, 1, 3, 32), (64, 64, 56, 1, 7, 64), (128, 128, 28, 4, 5, 128),
    (256, 256, 14, 8, 3, 256), (96, 96, 56, 8, 3, 96), (256, 256, 28, 16, 7, 256),
]  # fmt: skip
BENCHES: dict[str, tuple[Callable[[], nn.Module], tuple[int, ...], int]] = {
    "conv": (lambda: _Mix(DENSE), (1,), 1),
    "depthwise_conv": (lambda: _Mix(DEPTHWISE), (1,), 1),
    "matmul": (lambda: nn.Linear(1024, 1024, bias=False), (1024,), 256),
    "elementwise": (lambda: _Elementwise(64), (64, 56, 56), 1),
    "reduction": (_Reduction, (64, 56, 56), 1),
}
"""op class -> (its module, input size, batch)."""


@contextmanager
def threads_set(threads: int | None) -> Iterator[int]:
    """torch's intra-op threads set to ``threads`` (when given) for the duration."""
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def _timed(module: nn.Module, size: tuple[int, ...], batch: int) -> tuple[float, int, int]:
    """``(seconds per forward, work, counted op calls)``: work is MACs for a MAC module,
    element-wise ops otherwise, as the analyzer counts them."""
    report = analyze(module, size, batch_size=batch, receptive_fields=False)
    calls = sum(o.calls for o in report.operators if o.op_class != "free")
    work = report.totals.macs or report.totals.elementwise_ops
    x = torch.randn(batch, *size)
    seconds = measure_ms(module.eval(), x, False, MIN_RUN_TIME) / 1e3
    return seconds, work, calls


def _bandwidth() -> float:
    """Bytes per second of a large copy (read once, written once)."""
    src = torch.ones(COPY_BYTES // 4)
    dst = torch.empty_like(src)
    dst.copy_(src)
    times: list[float] = []
    deadline = time.perf_counter() + MIN_RUN_TIME
    while time.perf_counter() < deadline or len(times) < 3:
        start = time.perf_counter()
        dst.copy_(src)
        times.append(time.perf_counter() - start)
    times.sort()
    return 2 * COPY_BYTES / times[len(times) // 2]


def measure(threads: int | None = None, name: str = LOCAL) -> Profile:
    """This machine's profile (float32 on the CPU; see the module docstring)."""
    torch.manual_seed(0)
    with threads_set(threads) as used, torch.no_grad():
        seconds, _, calls = _timed(_stack(32), (1, 1, 1), 1)
        overhead = seconds / calls
        rates = {}
        for op_class, (make, size, batch) in BENCHES.items():
            seconds, work, calls = _timed(make(), size, batch)
            rates[op_class] = work / max(seconds - calls * overhead, seconds / 2)
        bandwidth = _bandwidth()
    cpu = platform.processor() or platform.machine()
    return Profile(
        name=name,
        description=f"this machine's CPU ({cpu}), {used} threads",
        source=f"measured by convzoo machine (torch {torch.__version__})",
        device="cpu",
        bandwidth=bandwidth,
        overhead=overhead,
        rates={k: float(f"{v:.4g}") for k, v in rates.items()},
        dtype="float32",
        threads=used,
        notes=f"MAC/s for {', '.join(MAC_CLASSES)}; element-wise op/s for the others",
    )
