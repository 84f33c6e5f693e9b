"""Check the roofline latency estimate (``report --latency``, issue 23) against the clock.

On this CPU, at ``--threads`` (2) torch threads, after measuring the machine's profile in
this process (``convzoo machine``'s measurement; ``--profile FILE`` reads one instead):

1. designs: every case ``convzoo compare`` runs (its headline designs at k=7, over channels
   32-256, sizes 28-112, batch 1 and 16; the forward timed as ``compare --bench`` times it,
   ``--reps`` blocks of ``--min-time`` s): the Spearman rank correlation of the estimate with
   the measured time, beside that of MACs alone (targets: >= 0.9 for the estimate);
2. whole models at batch 8 (zoo configs, torchvision, timm with pretrained=False): each
   model's estimate against its measured forward, and the median absolute error (target:
   <= 25%);
3. per layer on resnet50 and mobilenet_v3_large (batch 8): the estimate of each leaf module
   against its time in ``torch.profiler`` (a ``record_function`` around each leaf's
   forward), drawn in ``--plot`` (default ``bench_latency.png``).

    python scripts/bench_latency.py [--quick] [--reps 5] [--threads 2] [--profile FILE]

``--quick`` is a smoke run (fewer cases and models, one short block each): its figures are
not the benchmark's. Times are medians of blocks; run on a quiet machine and say its load:
the profile is measured again at the end, and a change of more than 20% is reported (the
machine was not quiet).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from convzoo import machine  # noqa: E402
from convzoo.analysis.analyzer import analyze  # noqa: E402
from convzoo.analysis.latency import estimate  # noqa: E402
from convzoo.compare import DEFAULT, compare  # noqa: E402
from convzoo.machine_bench import measure as measure_profile  # noqa: E402

CASES = [  # (channels, size, batch)
    (32, 112, 1), (64, 56, 1), (128, 28, 1), (256, 28, 1), (64, 112, 1),
    (32, 56, 16), (64, 28, 16), (128, 28, 16), (256, 28, 16),
]  # fmt: skip
QUICK_CASES = [(32, 56, 1), (64, 28, 16), (128, 28, 1)]
DESIGNS = [d for d in DEFAULT if d != "fft_conv"]  # FFT: complex kernels (own class, none)
MODELS = [
    "resnet18", "mobilenet_v1", "configs/resnet50.yaml",
    "torchvision:resnet50", "torchvision:mobilenet_v2", "torchvision:mobilenet_v3_large",
    "torchvision:efficientnet_b0", "torchvision:regnet_y_400mf",
    "torchvision:shufflenet_v2_x1_0", "torchvision:squeezenet1_0", "torchvision:densenet121",
    "torchvision:convnext_tiny", "timm:resnet26d", "timm:mobilenetv3_large_100",
    "timm:efficientnet_lite0",
]  # fmt: skip
QUICK_MODELS = ["resnet18", "torchvision:mobilenet_v3_large", "timm:mobilenetv3_large_100"]
PER_LAYER = ["torchvision:resnet50", "torchvision:mobilenet_v3_large"]


def ranks(values: list[float]) -> list[float]:
    """Average ranks (ties share the mean of their positions), from 1."""
    order = sorted(range(len(values)), key=values.__getitem__)
    out = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            out[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return out


def spearman(a: list[float], b: list[float]) -> float:
    """Spearman's rank correlation: Pearson's on the average ranks."""
    ra, rb = ranks(a), ranks(b)
    ma, mb = statistics.fmean(ra), statistics.fmean(rb)
    cov = sum((x - ma) * (y - mb) for x, y in zip(ra, rb, strict=True))
    var = (sum((x - ma) ** 2 for x in ra) * sum((y - mb) ** 2 for y in rb)) ** 0.5
    return cov / var if var else float("nan")


def timed(fn: Callable[[], Any], reps: int, min_time: float) -> float:
    """Median seconds of ``fn()`` over ``reps`` blocks of at least ``min_time`` s each,
    after one warm-up call."""
    fn()
    blocks = []
    for _ in range(reps):
        n, start = 0, time.perf_counter()
        while True:
            fn()
            n += 1
            spent = time.perf_counter() - start
            if spent >= min_time:
                break
        blocks.append(spent / n)
    return statistics.median(blocks)


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines)


def designs(profile: machine.Profile, cases: list[tuple[int, int, int]], args: Any) -> None:
    rows, predicted, measured, macs = [], [], [], []
    for channels, size, batch in cases:
        found = compare(
            7, channels, channels, size, batch, designs=DESIGNS, profile=profile,
            bench=True, min_run_time=args.min_time * args.reps,
        )  # fmt: skip
        for r in found:
            assert r.estimated_ms is not None and r.forward_ms is not None
            predicted.append(r.estimated_ms)
            measured.append(r.forward_ms)
            macs.append(r.macs)
            ratio = r.estimated_ms / r.forward_ms
            case = f"{r.design} c{channels} {size}x{size} b{batch}"
            rows.append([case, f"{r.macs / 1e6:.1f}", f"{r.estimated_ms:.3f}",
                         f"{r.forward_ms:.3f}", f"{ratio:.2f}"])  # fmt: skip
        print(f"  ... c{channels} {size}x{size} b{batch} done", file=sys.stderr)
    print(table(["design case", "MMACs", "est. ms", "measured ms", "est/measured"], rows))
    print(f"\ndesigns: {len(rows)} cases")
    print(f"Spearman(estimate, measured) = {spearman(predicted, measured):.3f}  (target >= 0.9)")
    print(f"Spearman(MACs, measured)     = {spearman([float(m) for m in macs], measured):.3f}")


def model_of(target: str) -> tuple[nn.Module, tuple[int, ...], str]:
    from convzoo.real import materialize
    from convzoo.targets import resolve

    found = resolve(target, ())
    return materialize(found.model), found.input_size[0], found.name


def models(profile: machine.Profile, names: list[str], args: Any) -> None:
    rows, errors = [], []
    for target in names:
        try:
            model, size, name = model_of(target)
        except Exception as exc:  # an optional library missing: say so, go on
            print(f"  {target}: skipped ({type(exc).__name__}: {exc})", file=sys.stderr)
            continue
        report = analyze(model, size, batch_size=args.batch, receptive_fields=False)
        est = estimate(report, profile).total.seconds
        model.eval()
        x = torch.randn(args.batch, *size)
        with torch.no_grad():
            real = timed(lambda m=model, x=x: m(x), args.reps, args.min_time)
        error = est / real - 1
        errors.append(abs(error))
        rows.append([name, f"{report.totals.macs / 1e9:.2f}", f"{est * 1e3:.1f}",
                     f"{real * 1e3:.1f}", f"{100 * error:+.0f}%"])  # fmt: skip
        print(f"  ... {name} done", file=sys.stderr)
    print(table(["model", "GMACs", "est. ms", "measured ms", "error"], rows))
    if errors:
        median = statistics.median(errors)
        print(f"\nmodels: {len(rows)} at batch {args.batch}")
        print(f"median absolute error = {100 * median:.1f}%  (target <= 25%)")


def per_layer(profile: machine.Profile, target: str, args: Any) -> list[tuple[float, float]]:
    """(estimated, measured) seconds of each leaf module of ``target`` that takes time."""
    from torch.profiler import ProfilerActivity, record_function
    from torch.profiler import profile as profiling

    model, size, _ = model_of(target)
    report = analyze(model, size, batch_size=args.batch, receptive_fields=False)
    latency = estimate(report, profile)
    leaves = {n: m for n, m in model.named_modules() if n and not any(m.children())}
    open_: dict[str, Any] = {}

    def enter(name: str) -> Callable[..., None]:
        def hook(module: nn.Module, inputs: Any) -> None:
            open_[name] = record_function(f"layer::{name}")
            open_[name].__enter__()

        return hook

    def leave(name: str) -> Callable[..., None]:
        def hook(module: nn.Module, inputs: Any, output: Any) -> None:
            open_.pop(name).__exit__(None, None, None)

        return hook

    handles = []
    for name, module in leaves.items():
        handles += [module.register_forward_pre_hook(enter(name)),
                    module.register_forward_hook(leave(name))]  # fmt: skip
    model.eval()
    x = torch.randn(args.batch, *size)
    with torch.no_grad():
        model(x)
        with profiling(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(args.reps):
                model(x)
    for h in handles:
        h.remove()
    spent = {
        e.key.removeprefix("layer::"): e.cpu_time_total / e.count / 1e6
        for e in prof.key_averages()
        if e.key.startswith("layer::")
    }
    pairs = []
    for name in leaves:
        one = latency.layers.get(name)
        if one is not None and one.seconds > 0 and spent.get(name):
            pairs.append((one.seconds, spent[name]))
    est, real = [p[0] for p in pairs], [p[1] for p in pairs]
    print(f"{target}: {len(pairs)} layers, Spearman(estimate, measured) = "
          f"{spearman(est, real):.3f}, sum est {sum(est) * 1e3:.1f} ms, "
          f"sum measured {sum(real) * 1e3:.1f} ms")  # fmt: skip
    return pairs


def plot(found: dict[str, list[tuple[float, float]]], path: str, title: str) -> None:
    from convzoo.plots import _pyplot, save

    plt = _pyplot()
    fig, axes = plt.subplots(1, len(found), figsize=(5.5 * len(found), 5), squeeze=False,
                             layout="constrained")  # fmt: skip
    for ax, (name, pairs) in zip(axes[0], found.items(), strict=True):
        est = [p[0] * 1e3 for p in pairs]
        real = [p[1] * 1e3 for p in pairs]
        ax.scatter(real, est, s=12, alpha=0.7)
        lo, hi = min(est + real), max(est + real)
        ax.plot([lo, hi], [lo, hi], color="#888888", linewidth=1, label="estimate = measured")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("measured (torch.profiler), ms")
        ax.set_ylabel("estimated (roofline), ms")
        ax.set_title(f"{name}: per layer", fontsize=9)
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    save(fig, path)
    plt.close(fig)
    print(f"plot written to {path}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a smoke run: few cases, one block")
    p.add_argument("--reps", type=int, default=5, help="timed blocks per case (5)")
    p.add_argument("--min-time", type=float, default=0.2, help="seconds per block (0.2)")
    p.add_argument("--threads", type=int, default=2, help="torch threads (2)")
    p.add_argument("--batch", type=int, default=8, help="batch of the models (8)")
    p.add_argument("--profile", help="a profile's JSON (default: measure one now)")
    p.add_argument("--plot", default="bench_latency.png", help="the per-layer plot's file")
    p.add_argument("--skip", nargs="*", default=[], choices=["designs", "models", "layers"])
    args = p.parse_args()
    if args.quick:
        args.reps, args.min_time = 1, 0.05
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    load = os.getloadavg()
    run = "quick" if args.quick else "full"
    print(f"torch {torch.__version__}, {args.threads} threads, load {load[0]:.2f} "
          f"{load[1]:.2f} {load[2]:.2f} (1/5/15 min), {run} run")  # fmt: skip
    if args.profile:
        profile = machine.read(Path(args.profile))
    else:
        profile = measure_profile(args.threads, name="this-run")
    print(machine.show_text(profile), end="\n\n")
    if "designs" not in args.skip:
        designs(profile, QUICK_CASES if args.quick else CASES, args)
        print()
    if "models" not in args.skip:
        models(profile, QUICK_MODELS if args.quick else MODELS, args)
        print()
    if "layers" not in args.skip:
        names = PER_LAYER[1:] if args.quick else PER_LAYER
        found = {n: per_layer(profile, n, args) for n in names}
        title = f"per-layer estimate vs torch.profiler, batch {args.batch}, {args.threads} threads"
        plot(found, args.plot, title)
    load = os.getloadavg()
    print(f"load at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    if not args.profile:  # the machine measured again: did it stay the same machine?
        again = measure_profile(args.threads, name="this-run-again")
        drift = {c: again.rates[c] / profile.rates[c] for c in profile.rates}
        drift["bandwidth"] = again.bandwidth / profile.bandwidth
        drift["overhead"] = profile.overhead / again.overhead
        worst = min(drift.values()), max(drift.values())
        print("profile at the end / at the start: "
              + ", ".join(f"{k} {v:.2f}x" for k, v in drift.items()))  # fmt: skip
        if worst[0] < 0.8 or worst[1] > 1.25:
            print("the machine's speed changed by more than 20% during the run: it was not "
                  "quiet, and these figures do not measure the estimate")  # fmt: skip


if __name__ == "__main__":
    main()
