"""How long the ``convzoo`` command takes to answer, against ``python -c "import torch"``
(``bench_analyzer.py --startup``, and with ``--interleaved``).

Each command runs in a fresh interpreter (``python -m convzoo ...``, output discarded), in
rounds: every round runs ``import torch`` and each command once, in an order rotated round
by round, so a busy moment affects a whole round. Printed per command: the median wall time
over rounds, its ratio to ``import torch``'s median (the target: 1.3x or less for
``report resnet18``, ``compare`` and ``rf resnet18``), and the median CPU time (user +
system, steadier than wall time on a shared machine). The load average is printed with the
figures: measure on a quiet machine.

    python scripts/bench_startup.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time

BASELINE = "import torch"
COMMANDS: dict[str, list[str]] = {
    BASELINE: ["-c", "import torch"],
    "report resnet18": ["-m", "convzoo", "report", "resnet18"],
    "compare": ["-m", "convzoo", "compare"],
    "rf resnet18": ["-m", "convzoo", "rf", "resnet18"],
    "report resnet81 (a typo)": ["-m", "convzoo", "report", "resnet81"],
}
TARGET = 1.3
"""The ratio to ``import torch`` that the first three commands must stay within."""


def run_once(argv: list[str]) -> tuple[float, float]:
    """``(wall, cpu)`` seconds of ``python ARGV`` in a fresh interpreter."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([sys.executable, *argv], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def measure(rounds: int) -> dict[str, dict[str, float]]:
    """Per command: median ``wall`` and ``cpu`` seconds over ``rounds`` rotated rounds, and
    ``ratio`` and ``cpu_ratio``: its medians over ``import torch``'s."""
    names = list(COMMANDS)
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
    run_once(COMMANDS[BASELINE])  # warm the file cache: the first start reads from disk
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            times[name].append(run_once(COMMANDS[name]))
    result = {
        name: {
            "wall": statistics.median(w for w, _ in got),
            "cpu": statistics.median(c for _, c in got),
        }
        for name, got in times.items()
    }
    for name in names:
        result[name]["ratio"] = result[name]["wall"] / result[BASELINE]["wall"]
        result[name]["cpu_ratio"] = result[name]["cpu"] / result[BASELINE]["cpu"]
    return result


def table(result: dict[str, dict[str, float]], rounds: int) -> str:
    """The markdown table of :func:`measure`'s result."""
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    lines = [
        f"CLI start-up: median of {rounds} fresh runs each, rounds interleaved; "
        f"load average {load}",
        "",
        "| command | wall (s) | vs import torch | CPU (s) | CPU vs import torch |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, got in result.items():
        lines.append(
            f"| `{name}` | {got['wall']:.2f} | {got['ratio']:.2f}x | {got['cpu']:.2f} | "
            f"{got['cpu_ratio']:.2f}x |"
        )
    return "\n".join(lines)


def main(rounds: int) -> None:
    print(table(measure(rounds), rounds), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    main(parser.parse_args().rounds)
