"""Benchmark ``convzoo.analyze`` against peer counters on torchvision resnet50 (weights=None).

Tools: convzoo.analyze (meta tensors, the default), fvcore ``FlopCountAnalysis(...).total()``,
ptflops ``get_model_complexity_info`` (default pytorch backend), thop ``profile``, torchinfo
``summary``, torchscan ``crawl_module`` and ``torch.utils.flop_counter.FlopCounterMode``
around a real forward. Batch 1, eval mode, inputs 3x224x224 and 3x2048x2048.

Each tool runs in a fresh subprocess (so no tool sees another's imports, caches or hooks):
one untimed warm-up call at 224, then the median of ``--repeats`` timed calls
(``time.perf_counter``) at 224 and of ``--repeats-large`` at 2048. Peak memory is the
``resource.getrusage(RUSAGE_SELF).ru_maxrss`` high-water mark over the calls at one size
(at the first size, the warm-up included) minus the resident set just before them, after
resetting the high-water mark by writing ``5`` to ``/proc/self/clear_refs`` (Linux >= 4.0);
where that reset is refused the figure is ``ru_maxrss`` growth only (a lower bound) and the
output says so. The process's own baseline (torch, the tool, the model's 25.6 M
parameters) is not included.

MACs are each tool's total converted to multiply-adds (see the convention column). About
4 minutes on 2 cores: every peer runs a real forward, ~20 s each at 2048. ``--quick`` is a
smoke run (224 only, 1 call, no warm-up, all tools in this process: its figures are not
isolated per tool).

    python scripts/bench_analyzer.py [--quick] [--repeats 5] [--repeats-large 1]

``--interleaved`` runs the in-process benchmark of ``bench_interleaved.py`` instead:
convzoo against fvcore and FlopCounterMode on resnet50, convnext_tiny, efficientnet_b0 and
vit_b_16, interleaved round by round (``--rounds``), with the receptive fields' share.

    python scripts/bench_analyzer.py --interleaved [--rounds 7] [--models resnet50 ...]

With ``--interleaved`` it then prints the command's start-up beside it (``bench_startup.py``:
``report resnet18``, ``compare`` and ``rf resnet18`` against ``import torch``, median of
``--startup-rounds`` fresh runs) and the throughput of a design search
(``bench_throughput.py``: ``--configs`` random configs of resnet18's size built and
analysed); ``--startup`` and ``--throughput`` print one of them alone.

    python scripts/bench_analyzer.py --startup [--startup-rounds 5]
    python scripts/bench_analyzer.py --throughput [--configs 1000]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

# Each runner: (model, input) -> {"macs", "params", "rf"} from one call of the tool; "params"
# is None where the tool reports none, "rf" whether its output holds receptive fields.
Runner = Callable[[nn.Module, torch.Tensor], dict[str, Any]]


def _convzoo() -> Runner:
    import convzoo

    def run(model: nn.Module, x: torch.Tensor) -> dict[str, Any]:
        report = convzoo.analyze(model, tuple(x.shape[1:]))
        rf = report.receptive_field is not None
        return {"macs": report.totals.macs, "params": report.totals.params, "rf": rf}

    return run


def _fvcore() -> Runner:
    from fvcore.nn import FlopCountAnalysis, parameter_count

    def run(model: nn.Module, x: torch.Tensor) -> dict[str, Any]:
        analysis = FlopCountAnalysis(model, x)
        analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        macs = int(analysis.total())  # fvcore counts one "flop" per multiply-add
        return {"macs": macs, "params": parameter_count(model)[""], "rf": False}

    return run


def _ptflops() -> Runner:
    from ptflops import get_model_complexity_info

    def run(model: nn.Module, x: torch.Tensor) -> dict[str, Any]:
        macs, params = get_model_complexity_info(
            model, tuple(x.shape[1:]), as_strings=False, print_per_layer_stat=False, verbose=False
        )
        return {"macs": int(macs), "params": int(params), "rf": False}

    return run


def _thop() -> Runner:
    import thop

    def run(model: nn.Module, x: torch.Tensor) -> dict[str, Any]:
        macs, params = thop.profile(model, inputs=(x,), verbose=False)
        return {"macs": int(macs), "params": int(params), "rf": False}

    return run


def _torchinfo() -> Runner:
    import torchinfo

    def run(model: nn.Module, x: torch.Tensor) -> dict[str, Any]:
        stats = torchinfo.summary(model, input_size=tuple(x.shape), verbose=0)
        return {"macs": int(stats.total_mult_adds), "params": int(stats.total_params), "rf": False}

    return run


def _torchscan() -> Runner:
    import torchscan

    def run(model: nn.Module, x: torch.Tensor) -> dict[str, Any]:
        info = torchscan.crawl_module(model, tuple(x.shape[1:]))
        totals = info["totals"]
        rf = any("receptive_field" in layer.get("metrics", {}) for layer in info["layers"])
        return {
            "macs": int(totals["macs"]["value"]),
            "params": int(totals["parameters"]["value"]),
            "rf": rf,
        }

    return run


def _flop_counter() -> Runner:
    from torch.utils.flop_counter import FlopCounterMode

    def run(model: nn.Module, x: torch.Tensor) -> dict[str, Any]:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(x)
        # FlopCounterMode counts 2 FLOPs per multiply-add
        return {"macs": counter.get_total_flops() // 2, "params": None, "rf": False}

    return run


TOOLS: dict[str, tuple[Callable[[], Runner], str]] = {
    "convzoo": (_convzoo, "MACs of conv/matmul/attention; element-wise ops counted apart"),
    "fvcore": (_fvcore, "total() is 1 'flop' per MAC; adds BN (2 per element), adaptive pool"),
    "ptflops": (_ptflops, "MACs (pytorch backend); adds element-wise layers: BN, ReLU, pooling"),
    "thop": (_thop, "MACs; adds BN (2 per element), avg pool; ReLU, max-pool free"),
    "torchinfo": (_torchinfo, "total_mult_adds; adds 1 per BN/bias parameter (not per element)"),
    "torchscan": (_torchscan, "totals['macs'] (module formulas); adds BN (2 per element), pooling"),
    "FlopCounterMode": (_flop_counter, "get_total_flops() / 2; conv/matmul/attention only"),
}


# -- memory ------------------------------------------------------------------------------
def _reset_peak() -> bool:
    """Reset this process's peak RSS (also what ``ru_maxrss`` reports); False if refused."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def _rss_kib() -> int:
    """Current resident set size in KiB (``ru_maxrss`` if /proc is unavailable)."""
    try:
        with open("/proc/self/statm") as handle:
            pages = int(handle.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") // 1024
    except (OSError, ValueError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


# -- one tool, in its own process ----------------------------------------------------------
def worker(
    tool: str, sizes: list[int], repeats: int, repeats_large: int, warm_up: bool = True
) -> dict[str, Any]:
    """Time and measure one tool; returns a JSON-able dict (``error`` if it cannot run)."""
    import torchvision

    warnings.filterwarnings("ignore")
    try:
        run = TOOLS[tool][0]()
    except Exception as exc:  # noqa: BLE001 - a missing or broken peer only drops its row
        return {"tool": tool, "error": f"not available ({type(exc).__name__}: {exc})"}
    model = torchvision.models.resnet50(weights=None).eval()
    result: dict[str, Any] = {"tool": tool, "sizes": {}}
    try:
        for i, size in enumerate(sizes):
            x = torch.zeros(1, 3, size, size)
            n = repeats if size <= 224 else repeats_large
            gc.collect()
            reset = _reset_peak()
            base = _rss_kib() if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            if i == 0 and warm_up:  # untimed (lazy imports, first-call costs); memory counts
                run(model, torch.zeros(1, 3, 224, 224))
            times, got = [], {}
            for _ in range(n):
                start = time.perf_counter()
                got = run(model, x)
                times.append(time.perf_counter() - start)
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            result["sizes"][str(size)] = {
                "time_s": statistics.median(times),
                "times_s": times,
                "macs": got["macs"],
                "peak_rss_mib": max(peak - base, 0) / 1024,
                "peak_reset": reset,
            }
            result.update(params=got["params"], rf=got["rf"])
            del x
    except Exception as exc:  # noqa: BLE001 - report the failure in the table
        first = (str(exc).splitlines() or [""])[0][:80]
        result["error"] = f"failed ({type(exc).__name__}: {first})"
    return result


def spawn(tool: str, sizes: list[int], repeats: int, repeats_large: int) -> dict[str, Any]:
    """Run :func:`worker` in a fresh interpreter and parse its JSON line."""
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--worker",
        tool,
        "--sizes",
        *map(str, sizes),
        "--repeats",
        str(repeats),
        "--repeats-large",
        str(repeats_large),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    return {"tool": tool, "error": f"worker exited {proc.returncode}: {tail[:100]}"}


# -- table -------------------------------------------------------------------------------
def _ms(entry: dict[str, Any] | None) -> str:
    return f"{entry['time_s'] * 1e3:,.0f}" if entry else "-"


def _ratio(entry: dict[str, Any] | None, ref: dict[str, Any] | None) -> str:
    return f"{entry['time_s'] / ref['time_s']:,.1f}x" if entry and ref else "-"


def table(results: list[dict[str, Any]], sizes: list[int]) -> str:
    """The markdown table: one row per tool, columns per input size."""
    small, large = str(sizes[0]), str(sizes[-1]) if len(sizes) > 1 else None
    ref = next((r for r in results if r["tool"] == "convzoo" and "error" not in r), None)
    head = ["tool", f"time {small} (ms)"]
    if large:
        head.append(f"time {large} (ms)")
    head += [f"vs convzoo {small}"] + ([f"vs convzoo {large}"] if large else [])
    head += [f"peak RSS {'/'.join(map(str, sizes))} (MiB)", f"MACs {small}"]
    head += [f"MACs {large}"] if large else []
    head += ["params", "receptive fields", "MAC convention"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['tool']} | {r['error']} |" + " |" * (len(head) - 2))
            continue
        got = [r["sizes"].get(str(s)) for s in sizes]
        ref_got = [ref["sizes"].get(str(s)) if ref else None for s in sizes]
        row = (
            [r["tool"]]
            + [_ms(g) for g in got]
            + [_ratio(g, f) for g, f in zip(got, ref_got, strict=True)]
        )
        row.append(" / ".join(f"{g['peak_rss_mib']:,.0f}" if g else "-" for g in got))
        row += [f"{g['macs']:,}" if g else "-" for g in got]
        row.append(f"{r['params']:,}" if r.get("params") is not None else "not reported")
        row += ["yes" if r.get("rf") else "no", TOOLS[r["tool"]][1]]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 224 only, 1 call, all tools in-process"
    )
    parser.add_argument("--repeats", type=int, default=5, help="timed calls at 224")
    parser.add_argument("--repeats-large", type=int, default=1, help="timed calls at 2048")
    parser.add_argument("--sizes", type=int, nargs="+", default=[224, 2048])
    parser.add_argument("--tools", nargs="+", default=list(TOOLS), choices=list(TOOLS))
    parser.add_argument("--worker", choices=list(TOOLS), help=argparse.SUPPRESS)
    parser.add_argument(
        "--interleaved", action="store_true", help="four models, in-process, interleaved rounds"
    )
    parser.add_argument("--rounds", type=int, default=7, help="--interleaved: timed rounds")
    parser.add_argument("--models", nargs="+", help="--interleaved: torchvision model names")
    parser.add_argument("--startup", action="store_true", help="the CLI's start-up only")
    parser.add_argument("--startup-rounds", type=int, default=5, help="fresh runs per command")
    parser.add_argument("--throughput", action="store_true", help="configs per second only")
    parser.add_argument("--configs", type=int, default=1000, help="random configs to analyse")
    opts = parser.parse_args()
    if opts.interleaved or opts.startup or opts.throughput:
        import bench_interleaved  # next to this script
        import bench_startup
        import bench_throughput

        alone = opts.startup or opts.throughput
        if opts.interleaved:
            bench_interleaved.main(opts.models or bench_interleaved.MODELS, opts.rounds, 3)
        if opts.startup or not alone:
            print()
            bench_startup.main(opts.startup_rounds)
        if opts.throughput or not alone:
            print()
            bench_throughput.main(opts.configs)
        return
    if opts.quick:
        opts.sizes, opts.repeats, opts.repeats_large = [224], 1, 1
    if opts.worker:
        print(json.dumps(worker(opts.worker, opts.sizes, opts.repeats, opts.repeats_large)))
        return
    how = (
        "--quick: 1 call per tool, no warm-up, all tools in one process"
        if opts.quick
        else f"median of {opts.repeats} (224) / {opts.repeats_large} (larger) calls after a "
        "warm-up, each tool in a fresh process"
    )
    print(
        f"resnet50 (weights=None), batch 1, eval; torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.1f}; {how}",
        flush=True,
    )
    results = []
    for tool in opts.tools:
        start = time.perf_counter()
        if opts.quick:  # one process, no warm-up: a fast smoke test
            results.append(worker(tool, opts.sizes, 1, 1, warm_up=False))
        else:
            results.append(spawn(tool, opts.sizes, opts.repeats, opts.repeats_large))
        print(f"  {tool}: {time.perf_counter() - start:.1f} s", file=sys.stderr, flush=True)
    print()
    print(table(results, opts.sizes))
    resets = [g["peak_reset"] for r in results for g in r.get("sizes", {}).values()]
    how = (
        "peak RSS: ru_maxrss high-water mark over the calls at one size (warm-up included "
        "at the first) minus the RSS before them (mark reset via /proc/self/clear_refs)"
    )
    if not all(resets):
        how += "; where the reset was refused: growth of ru_maxrss only (a lower bound)"
    print(f"\n{how}; the process baseline (torch, tool, model weights) is excluded.")


if __name__ == "__main__":
    main()
