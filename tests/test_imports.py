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
