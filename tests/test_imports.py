"""What importing convzoo costs: the command's ``--help`` and ``list`` never import torch,
and the library never imports torchvision, matplotlib or fvcore unless a feature needs them.

Each check runs in a fresh interpreter (this one has torch loaded by conftest) and asserts
on ``sys.modules``, not on timings.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OPTIONAL = ("torchvision", "matplotlib", "fvcore")

COMMAND_LINES = [
    [],
    ["--help"],
    ["--version"],
    ["list"],
    ["list", "depth*", "--category", "conv", "--format", "markdown"],
    ["list", "nothing*"],
    ["list", "--configs"],
    *([name, "--help"] for name in ("list", "build", "report", "compare", "rf")),
]

CLI_PROBE = """
import contextlib, io, json, sys
from convzoo.cli import main
codes = []
for argv in json.loads(sys.argv[1]):
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            codes.append([main(argv), out.getvalue()])
        except SystemExit as exc:  # --help and --version exit through argparse
            codes.append([exc.code, out.getvalue()])
print(json.dumps([codes, sorted({m.split(".")[0] for m in sys.modules})]))
"""

LIBRARY_PROBE = """
import json, sys
import convzoo
plain = sorted({m.split(".")[0] for m in sys.modules})
for name in convzoo.__all__:
    getattr(convzoo, name)
model = convzoo.build({"input": [3, 16, 16], "layers": [
    {"type": "conv", "out_channels": 4, "kernel_size": 3},
    {"type": "inverted_residual", "out_channels": 4},
]})
report = convzoo.analyze(model, (3, 16, 16))
import convzoo.targets, convzoo.compare, convzoo.views, convzoo.plots, convzoo.analysis.peers
print(json.dumps([plain, report.totals.macs, sorted({m.split(".")[0] for m in sys.modules})]))
"""


COMMAND_PROBE = """
import contextlib, io, json, sys
from convzoo.cli import main
seen = []
for argv in json.loads(sys.argv[1]):
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = main(argv)
    seen.append([code, out.getvalue(), sorted(m for m in sys.modules if m.startswith("torch"))])
print(json.dumps(seen))
"""

TYPO = ["report", "resnet81"]
CONFIG_COMMANDS = [["report", "resnet18"], ["rf", "resnet18"]]
MORE_COMMANDS = [["build", "resnet18"], ["compare"]]  # compare: fft_conv's DFT set-up too
HEAVY = ("torchvision", "torch._dynamo")  # 1.1 s and 0.7 s of a 1.3 s start-up


def check_light(commands: list[list[str]], results: list) -> None:
    """Each command succeeded and left torch, but neither of :data:`HEAVY`, imported."""
    for argv, (code, out, modules) in zip(commands, results, strict=True):
        assert code == 0, (argv, out)
        assert "torch" in modules and not set(HEAVY) & set(modules), (argv, modules)


def test_a_config_target_imports_neither_torchvision_nor_dynamo() -> None:
    """Issue 25: a mistyped target is answered without importing torch (its suggestions come
    from package data); a config target is built and analysed on meta tensors without
    importing torchvision or ``torch._dynamo``. The modules are read after each command,
    in one fresh interpreter (the typo first, while nothing has imported torch)."""
    (typo, *configs) = probe(COMMAND_PROBE, json.dumps([TYPO, *CONFIG_COMMANDS]))
    code, out, modules = typo
    assert code == 2 and "did you mean resnet18, resnet50?" in out
    assert modules == [], modules
    check_light(CONFIG_COMMANDS, configs)


@pytest.mark.slow
def test_build_and_compare_import_neither_torchvision_nor_dynamo() -> None:
    """Issue 25: ``build`` of a config, and ``compare`` (whose ``fft_conv`` design computes
    its DFT matrices on every forward), import neither of :data:`HEAVY` either."""
    check_light(MORE_COMMANDS, probe(COMMAND_PROBE, json.dumps(MORE_COMMANDS)))


def probe(code: str, *argv: str) -> list:
    done = subprocess.run(
        [sys.executable, "-c", code, *argv],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_help_version_and_list_do_not_import_torch() -> None:
    results, modules = probe(CLI_PROBE, json.dumps(COMMAND_LINES))
    codes = [code for code, _ in results]
    assert codes == [2, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0]
    outputs = dict(zip(map(" ".join, COMMAND_LINES), (out for _, out in results), strict=True))
    assert "usage: convzoo" in outputs["--help"] and "convzoo 0.1.0" in outputs["--version"]
    assert (
        "depthwise_separable" in outputs["list"]
        and "| `depthwise`" in outputs["list depth* --category conv --format markdown"]
    )
    assert "--max-memory" in outputs["report --help"]
    assert not {"torch", "numpy", *OPTIONAL} & set(modules), sorted(modules)


def test_the_library_leaves_optional_dependencies_out() -> None:
    """``import convzoo`` imports nothing heavy; building and analysing a model imports torch
    but not torchvision, matplotlib or fvcore (each imported where a feature needs it)."""
    plain, macs, modules = probe(LIBRARY_PROBE)
    assert "torch" not in plain and "convzoo" in plain
    assert macs > 0 and "torch" in modules
    assert not set(OPTIONAL) & set(modules), sorted(set(OPTIONAL) & set(modules))
