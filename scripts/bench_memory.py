"""Training-step memory: convzoo's figures next to torchinfo's and a real forward's.

For each torchvision model (weights=None, input 3x224x224, ``--batch`` 32):

- convzoo ``analyze(..., optimizer=...)`` on meta tensors: parameters, gradients, optimizer
  state, the bytes autograd saves for backward, their total, and the inference peak of live
  activations (eval mode);
- torchinfo ``summary``: its "Forward/backward pass size" (2 x the outputs of the leaf
  layers that hold parameters: no ReLU, pooling or functional op, and nothing about what
  autograd really keeps) and its "Estimated Total Size" (input + that + parameters);
- measured: the distinct storages ``torch.autograd.graph.saved_tensors_hooks`` sees in one
  real CPU forward in train mode (``convzoo.analysis.memory.measured_saved_bytes``), at
  ``--measure-batch`` (default: ``--batch``; saved bytes grow linearly with the batch, and
  convzoo is also shown at that batch so the comparison is exact). Attention runs on the CPU
  flash kernel by default, which saves (q, k, v, out, logsumexp) where the meta forward's
  math path saves the softmax matrix; ``--math`` forces the math kernel for the measurement.

``--overhead``: the cost of liveness tracking in the default ``analyze`` (resnet50, 224,
batch 1): median of interleaved calls with it and as before it (the per-op hook a no-op,
the tracer's fields in a strong dict), in one process.

    python scripts/bench_memory.py [--batch 32] [--measure-batch 8] [--models resnet50,...]
    python scripts/bench_memory.py --overhead [--repeats 15]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from contextlib import nullcontext
from typing import Any

import torch
import torchvision

from convzoo import analyze
from convzoo.analysis import memory
from convzoo.analysis.counting import Tracer
from convzoo.limits import human

MODELS = "resnet50,efficientnet_b0,vit_b_16"


def _torchinfo(model: torch.nn.Module, shape: tuple[int, ...]) -> tuple[int, int] | None:
    try:
        import torchinfo
    except ImportError:
        return None
    stats = torchinfo.summary(model, input_size=shape, verbose=0, device="meta")
    total = stats.total_input + stats.total_output_bytes + stats.total_param_bytes
    return stats.total_output_bytes, total


def _row(name: str, batch: int, measure_batch: int, optimizer: str, math: bool) -> None:
    model = getattr(torchvision.models, name)()
    size = (3, 224, 224)
    report = analyze(model, size, batch_size=batch, optimizer=optimizer)
    train = report.training
    assert train is not None
    info = _torchinfo(copy.deepcopy(model).to("meta"), (batch, *size))
    small = analyze(model, size, batch_size=measure_batch, optimizer=optimizer).training
    assert small is not None
    kernel = torch.nn.attention.sdpa_kernel(torch.nn.attention.SDPBackend.MATH)
    start = time.perf_counter()
    with kernel if math else nullcontext():
        real = memory.measured_saved_bytes(model, (torch.randn(measure_batch, *size),))
    took = time.perf_counter() - start
    print(f"\n{name} (batch {batch}, {optimizer})")
    print(
        f"  convzoo  params {human(train.param_bytes)}, grads {human(train.gradient_bytes)}, "
        f"optimizer {human(train.optimizer_bytes)}, saved {human(train.saved_bytes)}, "
        f"training step {human(train.total_bytes)}; "
        f"inference peak {human(report.totals.peak_activation_bytes)}"
    )
    if info is None:
        print("  torchinfo not installed")
    else:
        print(
            f"  torchinfo forward/backward pass size {human(info[0])}, "
            f"estimated total {human(info[1])}"
        )
    ratio = small.saved_bytes / real if real else float("nan")
    print(
        f"  saved at batch {measure_batch}: convzoo {small.saved_bytes} B, measured "
        f"(saved_tensors_hooks, real CPU forward{', math attention' if math else ''}) "
        f"{real} B, ratio {ratio:.4f} ({took:.0f} s)"
    )


class _StrongFields(dict):
    """The tracer's field storage before liveness tracking: a dict keyed by ``id`` that
    holds each tensor (for the overhead baseline only)."""

    def __setitem__(self, t: Any, value: Any) -> None:
        super().__setitem__(id(t), (t, value))

    def get(self, t: Any, default: Any = None) -> Any:  # type: ignore[override]
        hit = super().get(id(t))
        return hit[1] if hit is not None and hit[0] is t else default

    def __contains__(self, t: object) -> bool:
        return super().__contains__(id(t))


def _overhead(repeats: int) -> None:
    """Default ``analyze`` of resnet50 with this change and without it (per-op liveness hook
    a no-op, fields in the former strong dict), interleaved in this process."""
    model = torchvision.models.resnet50()
    real_op, real_init = memory.LiveBytes.op, Tracer.__init__

    def no_op(self: memory.LiveBytes, func: object, out: object) -> None:
        return None

    def strong_init(self: Tracer, *args: Any, **kwargs: Any) -> None:
        real_init(self, *args, **kwargs)
        self.fields = _StrongFields()  # type: ignore[assignment]

    variants = {"tracked": (real_op, real_init), "before": (no_op, strong_init)}
    times: dict[str, list[float]] = {k: [] for k in variants}
    analyze(model, (3, 224, 224))  # warm-up
    try:
        for _ in range(repeats):
            for key, (op, init) in variants.items():
                memory.LiveBytes.op = op  # type: ignore[method-assign]
                Tracer.__init__ = init  # type: ignore[method-assign]
                start = time.process_time()  # CPU time: less noise from other processes
                analyze(model, (3, 224, 224))
                times[key].append(time.process_time() - start)
    finally:
        memory.LiveBytes.op = real_op  # type: ignore[method-assign]
        Tracer.__init__ = real_init  # type: ignore[method-assign]
    med = {k: statistics.median(v) for k, v in times.items()}
    print(
        f"resnet50 analyze at 224: with liveness {med['tracked'] * 1e3:.1f} ms, before "
        f"{med['before'] * 1e3:.1f} ms, ratio {med['tracked'] / med['before']:.3f} "
        f"(CPU time, median of {repeats}, interleaved)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--measure-batch", type=int, help="batch of the real forward")
    parser.add_argument("--models", default=MODELS)
    parser.add_argument("--optimizer", default="adam", choices=list(memory.OPTIMIZER_STATES))
    parser.add_argument("--math", action="store_true", help="math attention for the real run")
    parser.add_argument("--overhead", action="store_true")
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    if args.overhead:
        _overhead(args.repeats)
        return
    for name in args.models.split(","):
        _row(name, args.batch, args.measure_batch or args.batch, args.optimizer, args.math)


if __name__ == "__main__":
    main()
