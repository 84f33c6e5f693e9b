"""Throughput for design searches: build and analyse random configs of resnet18's size
(``bench_analyzer.py --throughput``, and with ``--interleaved``).

Each config is a ResNet-18 skeleton whose parts are drawn from the zoo (seeded): a
``conv_norm_act`` stem (kernel 3, 5 or 7, stride 2), max or average pooling, four stages of
two units (``base``, 2, 4 and 8 times ``base`` channels, ``base`` one of 48, 64, 80; stride
2 at the start of stages 2-4), each unit a ``residual`` or ``bottleneck`` block around a
convolution drawn from the registry's ``conv`` category (those that fit inside a block,
found by building one small block each), or an ``inverted_residual`` or ``repvgg_block``;
now and then a ``squeeze_excite`` after a stage; global average pooling and a 1000-way
``linear`` head, input 3x224x224.

Timed per config (``time.perf_counter``), after one untimed warm-up config:
``convzoo.build(config, meta=True)`` then ``convzoo.analyze(model, (3, 224, 224))``,
receptive fields on. Printed: configs per second over all of them, the median build and
analysis times, and the same for ``configs/resnet18.yaml`` itself; configs per CPU second
(``time.process_time``) too, steadier than wall time on a shared machine. Target: 20 configs/s
or more. The load average is printed with the figures: measure on a quiet machine.

    python scripts/bench_throughput.py [--configs 1000] [--seed 0]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time
from typing import Any

import convzoo
from convzoo.registry import LAYERS

SIZE = (3, 224, 224)
TARGET = 20.0
"""Configs per second to reach."""


def block_convs() -> list[str]:
    """The ``conv`` category's layers that fit inside a ``residual`` and a ``bottleneck``
    block (stride 2, channels changed): each is tried once on a small input."""
    fitting = []
    for entry in LAYERS.entries("*", "conv"):
        units = [
            {"type": "residual", "out_channels": 32, "stride": 2, "conv": entry.name},
            {"type": "bottleneck", "out_channels": 32, "conv": entry.name},
        ]
        try:
            convzoo.build({"input": [16, 8, 8], "layers": units}, meta=True)
        except convzoo.ConvZooError:
            continue
        fitting.append(entry.name)
    return fitting


def unit(rng: random.Random, channels: int, stride: int, convs: list[str]) -> dict[str, Any]:
    """One unit of a stage: a block from the zoo (with a zoo convolution where it takes
    one)."""
    kind = rng.choice(["residual", "residual", "bottleneck", "inverted_residual", "repvgg_block"])
    spec: dict[str, Any] = {"type": kind, "out_channels": channels, "stride": stride}
    if kind in ("residual", "bottleneck"):
        spec["conv"] = rng.choice(convs)
    return spec


def resnet18_like(rng: random.Random, convs: list[str]) -> dict[str, Any]:
    """A random config of resnet18's size (see the module docstring)."""
    base = rng.choice([48, 64, 80])
    pool = rng.choice(
        [
            {"type": "max_pool", "kernel_size": 3, "stride": 2, "padding": 1},
            {"type": "avg_pool", "kernel_size": 2},
        ]
    )
    layers: list[dict[str, Any]] = [
        {
            "type": "conv_norm_act",
            "name": "stem",
            "out_channels": base,
            "kernel_size": rng.choice([3, 5, 7]),
            "stride": 2,
        },  # fmt: skip
        {"name": "pool", **pool},
    ]
    for i in range(4):
        channels = base * 2**i
        units = [unit(rng, channels, 2 if i and j == 0 else 1, convs) for j in range(2)]
        if rng.random() < 0.3:
            units.append({"type": "squeeze_excite", "reduction": 16})
        layers.append({"name": f"layer{i + 1}", "sequential": units})
    layers += [
        {"type": "global_avg_pool", "name": "avgpool"},
        {"type": "flatten", "name": "flatten"},
        {"type": "linear", "name": "fc", "out_features": 1000},
    ]
    return {"name": "random_resnet18", "input": list(SIZE), "layers": layers}


def timed(config: Any) -> tuple[float, float]:
    """``(build, analysis)`` seconds of one config, fields on."""
    start = time.perf_counter()
    model = convzoo.build(config, meta=True)
    built = time.perf_counter()
    convzoo.analyze(model, SIZE)
    return built - start, time.perf_counter() - built


def measure(count: int, seed: int) -> dict[str, Any]:
    """Build and analyse ``count`` random configs, then ``resnet18`` ``min(count, 20)``
    times; per-config medians (s) and configs per second."""
    rng = random.Random(seed)
    convs = block_convs()
    configs = [resnet18_like(rng, convs) for _ in range(count)]
    timed(configs[0])  # warm-up: first-call costs (imports, caches)
    start, cpu = time.perf_counter(), time.process_time()
    got = [timed(config) for config in configs]
    total, cpu = time.perf_counter() - start, time.process_time() - cpu
    fixed = [timed("resnet18") for _ in range(min(count, 20))]
    return {
        "count": count,
        "convs": convs,
        "per_second": count / total,
        "per_cpu_second": count / cpu,
        "build": statistics.median(b for b, _ in got),
        "analysis": statistics.median(a for _, a in got),
        "resnet18_build": statistics.median(b for b, _ in fixed),
        "resnet18_analysis": statistics.median(a for _, a in fixed),
    }


def table(result: dict[str, Any]) -> str:
    """The markdown table of :func:`measure`'s result."""
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    ms = lambda s: f"{s * 1e3:.0f}"  # noqa: E731
    rate = 1 / (result["resnet18_build"] + result["resnet18_analysis"])
    return "\n".join(
        [
            f"Throughput: {result['count']} random configs of resnet18's size (convolutions "
            f"from {len(result['convs'])} zoo layers), build on meta + analyse, fields on; "
            f"load average {load}",
            "",
            "| configs | configs / s | configs / CPU s | build (ms) | analysis (ms) |",
            "|---|---:|---:|---:|---:|",
            f"| random, resnet18's size | {result['per_second']:.1f} | "
            f"{result['per_cpu_second']:.1f} | {ms(result['build'])} | {ms(result['analysis'])} |",
            f"| `configs/resnet18.yaml` | {rate:.1f} | - | {ms(result['resnet18_build'])} | "
            f"{ms(result['resnet18_analysis'])} |",
        ]
    )


def main(count: int, seed: int = 0) -> None:
    print(table(measure(count, seed)), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    opts = parser.parse_args()
    main(opts.configs, opts.seed)
