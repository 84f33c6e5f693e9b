"""In-process, interleaved benchmark of ``convzoo.analyze`` against fvcore and
``FlopCounterMode`` on four torchvision models (``bench_analyzer.py --interleaved``).

Models: resnet50, convnext_tiny, efficientnet_b0, vit_b_16 (weights=None, eval, batch 1,
3x224x224). Per model, one warm-up call of each tool, then ``rounds`` rounds; each round
times every tool once (``time.perf_counter``), in an order rotated round by round:

* convzoo: ``convzoo.analyze(model, (3, 224, 224))`` (receptive fields included);
* convzoo, no fields: the same with ``receptive_fields=False``;
* fvcore: ``FlopCountAnalysis(model, x).total()`` (warnings off);
* FlopCounterMode: a real forward under ``torch.no_grad()`` and ``FlopCounterMode``;
* floor: what any analyzer built like convzoo pays before it counts anything: the private
  copy of the model, and a meta forward under a dispatch mode that only answers each op's
  output (convzoo's own shape rules, :mod:`convzoo.analysis.meta_kernels`), with no
  counting, no module tracking, no fields and no report.

Ratios are the median over rounds of each round's ratio (so a busy moment affects all tools
of a round alike); the fields' share is ``1 - no_fields / convzoo``. convzoo's time at 224,
1024 and 8192 px (median of ``size_calls`` calls) shows its cost is flat in the input size
(vit_b_16 takes 224 only). Targets: >= 10x fvcore, >= 5x FlopCounterMode, fields <= 1/3.
The floor's ratios (fvcore / floor, FCM / floor) bound what any such analyzer can reach.
"""

from __future__ import annotations

import os
import statistics
import time
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from convzoo.analysis import isolation, meta_kernels

MODELS = ["resnet50", "convnext_tiny", "efficientnet_b0", "vit_b_16"]
FIXED_SIZE = {"vit_b_16"}  # torchvision's ViT checks the input is 224x224
SIZES = [224, 1024, 8192]
TARGETS = {"fvcore": 10.0, "FlopCounterMode": 5.0}
FIELD_SHARE = 1 / 3


def tools(model: nn.Module, x: torch.Tensor) -> dict[str, Callable[[], Any]]:
    """The timed calls on one model and input."""
    from fvcore.nn import FlopCountAnalysis
    from torch.utils.flop_counter import FlopCounterMode

    import convzoo

    size = tuple(x.shape[1:])

    def fvcore() -> int:
        analysis = FlopCountAnalysis(model, x)
        analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        return int(analysis.total())

    def flop_counter() -> int:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(x)
        return counter.get_total_flops() // 2

    def floor() -> int:
        with isolation.gc_paused():
            copy = isolation.private_copy(model, None, meta=True)
            with torch.no_grad(), ShapesOnly():
                copy(torch.empty(x.shape, device="meta"))
        return 0

    return {
        "convzoo": lambda: convzoo.analyze(model, size).totals.macs,
        "no_fields": lambda: convzoo.analyze(model, size, receptive_fields=False).totals.macs,
        "fvcore": fvcore,
        "FlopCounterMode": flop_counter,
        "floor": floor,
    }


class ShapesOnly(TorchDispatchMode):
    """Answers every op with its output and nothing else (see ``floor`` above)."""

    def __torch_dispatch__(
        self, func: Any, types: Any, args: tuple = (), kwargs: Any = None
    ) -> Any:
        kwargs = kwargs or {}
        rule = meta_kernels.RULES.get(func)
        out = rule(args, kwargs) if rule is not None else None
        return func(*args, **kwargs) if out is None else out


def rounds_of(calls: dict[str, Callable[[], Any]], rounds: int) -> list[dict[str, float]]:
    """``rounds`` rounds of one timed call per tool, the order rotated each round."""
    names = list(calls)
    out = []
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        times = {}
        for name in order:
            start = time.perf_counter()
            calls[name]()
            times[name] = time.perf_counter() - start
        out.append(times)
    return out


def size_times(model: nn.Module, name: str, calls: int) -> list[float | None]:
    """convzoo's median time at each of :data:`SIZES` (None where the model takes 224 only)."""
    import convzoo

    found: list[float | None] = []
    for size in SIZES:
        if name in FIXED_SIZE and size != 224:
            found.append(None)
            continue
        times = []
        for _ in range(calls):
            start = time.perf_counter()
            convzoo.analyze(model, (3, size, size))
            times.append(time.perf_counter() - start)
        found.append(statistics.median(times))
    return found


def bench(name: str, rounds: int, size_calls: int) -> dict[str, Any]:
    """Everything measured on one model."""
    import torchvision

    model = getattr(torchvision.models, name)(weights=None).eval()
    x = torch.zeros(1, 3, 224, 224)
    calls = tools(model, x)
    macs = {tool: call() for tool, call in calls.items()}  # warm-up, and the counts
    measured = rounds_of(calls, rounds)
    median = {tool: statistics.median(r[tool] for r in measured) for tool in calls}
    ratio = {peer: statistics.median(r[peer] / r["convzoo"] for r in measured) for peer in TARGETS}
    bound = {peer: statistics.median(r[peer] / r["floor"] for r in measured) for peer in TARGETS}
    share = statistics.median(1 - r["no_fields"] / r["convzoo"] for r in measured)
    return {
        "model": name,
        "median_s": median,
        "ratio": ratio,
        "bound": bound,
        "field_share": share,
        "macs": macs,
        "sizes_s": size_times(model, name, size_calls),
    }


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1e3:,.0f}"


def table(results: list[dict[str, Any]]) -> str:
    head = [
        "model",
        "convzoo (ms)",
        "no fields (ms)",
        "fvcore (ms)",
        "FlopCounterMode (ms)",
        "fvcore / convzoo",
        "FCM / convzoo",
        "fields' share",
        "floor (ms)",
        "fvcore / floor",
        "FCM / floor",
        *(f"convzoo {s} px (ms)" for s in SIZES),
        "MACs convzoo / FCM",
        "targets met",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        t, ratio, share = r["median_s"], r["ratio"], r["field_share"]
        met = all(ratio[p] >= goal for p, goal in TARGETS.items()) and share <= FIELD_SHARE
        row = [
            r["model"],
            *(_ms(t[k]) for k in ("convzoo", "no_fields", "fvcore", "FlopCounterMode")),
            f"{ratio['fvcore']:.1f}x",
            f"{ratio['FlopCounterMode']:.1f}x",
            f"{share:.2f}",
            _ms(t["floor"]),
            f"{r['bound']['fvcore']:.1f}x",
            f"{r['bound']['FlopCounterMode']:.1f}x",
            *(_ms(s) for s in r["sizes_s"]),
            f"{r['macs']['convzoo']:,} / {r['macs']['FlopCounterMode']:,}",
            "yes" if met else "no",
        ]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def main(models: list[str], rounds: int, size_calls: int) -> None:
    """Print the header line and the table."""
    warnings.filterwarnings("ignore")
    print(
        f"torchvision models (weights=None), batch 1, eval, 3x224x224; torch "
        f"{torch.__version__}, {torch.get_num_threads()} threads, load average "
        f"{os.getloadavg()[0]:.1f}; one process, {rounds} interleaved rounds, ratios are "
        f"medians of per-round ratios; sizes: median of {size_calls} calls",
        flush=True,
    )
    results = [bench(name, rounds, size_calls) for name in models]
    print()
    print(table(results))
    print(
        f"\ntargets: fvcore / convzoo >= {TARGETS['fvcore']:g}, FCM / convzoo >= "
        f"{TARGETS['FlopCounterMode']:g}, fields' share <= 1/3 (1 - no fields / convzoo)"
    )
