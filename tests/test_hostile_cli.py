"""Hostile command lines (issue 10): huge numbers, memory estimates, plot paths, the
top-level handler, and peak memory measured in a subprocess for representative cases."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from convzoo import cli
from convzoo.cli import main
from convzoo.errors import ConvZooError
from tests.test_fuzz_configs import ANCHORS, LINE_CAP, cli_error

ROOT = Path(__file__).resolve().parents[1]
SEED = str(ROOT / "configs" / "seed_64x64_5x5.yaml")
HUGE = "100000000000000000000"
SMALL_COMPARE = ["--kernel", "3", "--in-channels", "2", "--out-channels", "2", "--size", "8"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["report", SEED, "--batch", HUGE], "--batch: must be an int from 1 to 1,048,576"),
        (["report", SEED, "--batch", "1048577"], "--batch: must be an int"),
        (["report", SEED, "--depth", HUGE], "--depth: must be an int"),
        (["report", SEED, "--input", "3x10000000000x10000000000"], "over the limits"),
        (["report", SEED, "--input", "1048576x1048576x4"], "over the limits"),
        (["report", SEED, "--input", "3x" + "9" * 5000], "--input must look like"),
        (["report", SEED, "--max-memory", "8XB"], "expected an amount of memory"),
        (["report", SEED, "--max-memory", "9" * 10000], "expected an amount of memory"),
        (["compare", "--kernel", HUGE], "--kernel: must be an int from 3"),
        (["compare", "--in-channels", HUGE], "--in-channels: must be an int"),
        (["compare", "--out-channels", "-1"], "--out-channels: must be an int"),
        (["compare", "--size", HUGE], "--size: must be an int"),
        (["compare", "--batch", HUGE], "--batch: must be an int"),
        (["rf", SEED, "--samples", "1000000000"], "--samples: must be an int from 1 to 10,000"),
        (["build", SEED, "--input", "3x0x4"], "--input must look like"),
        (["nonsense"], "unknown command 'nonsense'"),
        (["report"], "the following arguments are required"),
    ],
)
def test_huge_and_malformed_cli_numbers(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert message in cli_error(capsys, argv)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["compare", "--kernel", "100001", "--designs", "conv"], "over the limit of 2,000,000"),
        (["compare", "--in-channels", "100000", "--out-channels", "100000"], "over the limit"),
        (["compare", "--bench", "--batch", "1000000"], "benchmarking at batch 1,000,000 needs"),
        (["compare", *SMALL_COMPARE, "--bench", "--max-memory", "1KiB"], "budget of 1.0 KiB"),
        (["report", SEED, "--check-fvcore", "--input", "3x100000x100000"], "--check-fvcore"),
        (
            ["rf", SEED, "--plot", "p.png", "--input", "3x4096x4096", "--max-memory", "64MiB"],
            "rf --plot (a float64 forward and backward) needs about",
        ),
    ],
)
def test_real_tensor_work_is_estimated_and_refused(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)  # p.png would be written here
    assert message in cli_error(capsys, argv)
    assert not (tmp_path / "p.png").exists()


def test_plot_paths(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "d.png").mkdir()
    existing = tmp_path / "old.png"
    existing.write_bytes(b"keep")
    cases = {
        "x.txt": "the name must end in .png, .svg, .pdf, .jpg, .jpeg",
        "chart": "the name must end in",
        str(tmp_path / "nodir" / "x.png"): "no directory",
        str(tmp_path / "d.png"): "it is a directory",
        str(existing): "exists; pass --force",
    }
    for path, message in cases.items():
        for command in (["compare", *SMALL_COMPARE], ["rf", SEED]):
            assert message in cli_error(capsys, [*command, "--plot", path])
    assert existing.read_bytes() == b"keep"


def test_plot_is_written_to_exactly_the_path_given(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    pytest.importorskip("matplotlib")
    path = tmp_path / "chart.SVG"  # an upper-case extension still picks the format
    path.write_bytes(b"old")
    code = main(["compare", *SMALL_COMPARE, "--designs", "conv", "--plot", str(path), "--force"])
    err = capsys.readouterr().err
    assert code == 0 and err == f"plot written to {path}\n"
    assert b"<svg" in path.read_bytes()[:500] and sorted(tmp_path.iterdir()) == [path]


def test_a_bug_is_one_line_and_exit_1(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(args: object) -> int:
        raise KeyError("x" * 10000)

    monkeypatch.setitem(cli.COMMANDS, "list", broken)
    assert main(["list"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("convzoo: internal error: KeyError: ")
    assert "--debug" in err and len(err) < LINE_CAP
    assert main(["--debug", "list"]) == 1
    assert "Traceback" in capsys.readouterr().err
    assert main(["list", "--debug"]) == 1
    assert "Traceback" in capsys.readouterr().err


PROBE = """
import json, resource, sys, time
from convzoo.cli import main
from convzoo.errors import ConvZooError
cases = json.loads(sys.argv[1])
results = []
for argv in cases:
    start = time.perf_counter()
    code = main(argv)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    results.append([code, time.perf_counter() - start, peak])
print(json.dumps(results))
"""


@pytest.mark.slow  # one subprocess that imports torch and runs six cases
def test_peak_memory_of_representative_cases(tmp_path: Path) -> None:
    """One subprocess, cases in a row, its peak RSS read after each (ru_maxrss never falls,
    so each reading bounds everything so far). Before the fix, the alias bomb alone took
    3.4-6.2 GB and the 1.6e9-parameter report allocated 6.4 GB of weights."""
    anchors = "".join(f"  {line}\n" for line in ANCHORS.splitlines())
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(f"blocks:\n{anchors}input: [3, 8, 8]\nlayers: [{{type: *i}}]\n")
    wide = tmp_path / "wide.yaml"  # 1.6e9 parameters, just under the limit
    wide.write_text("input: [40000, 2, 2]\nlayers: [{type: pointwise, out_channels: 40000}]\n")
    cases = [
        ["list", "depthwise"],  # the baseline: python, torch and convzoo imported
        ["build", str(bomb)],
        ["build", "/dev/zero"],
        ["report", str(wide), "--no-fields", "--format", "json", "--output", str(tmp_path / "r")],
        ["compare", "--in-channels", "100000", "--out-channels", "100000"],
        ["compare", "--bench", "--batch", "1000000"],
    ]
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(cases)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout.splitlines()[-1])
    codes = [code for code, _, _ in results]
    assert codes == [0, 2, 2, 0, 2, 2], done.stderr
    baseline = results[0][2]
    for argv, (_, seconds, peak) in zip(cases[1:], results[1:], strict=True):
        assert seconds < 10, (argv, seconds)
        assert peak - baseline < 512 * 2**20, (argv, peak - baseline)
    report = json.loads((tmp_path / "r").read_text())
    assert report["totals"]["params"] == 40000 * 40000 + 40000


def test_the_effective_field_in_python_is_refused_above_the_budget() -> None:
    """The Python API bounds its real float64 forward and backward as the CLI does."""
    from convzoo.plots import effective_field

    model = torch.nn.Conv2d(3, 64, 3, padding=1)
    with pytest.raises(ConvZooError, match="effective field .* memory budget"):
        effective_field(model, (3, 4096, 4096))
    small, unit = effective_field(model, (3, 16, 16), samples=2, max_memory=2**30)
    assert small.shape == (16, 16) and unit == (8, 8)
