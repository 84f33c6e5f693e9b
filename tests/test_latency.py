"""Machine profiles and the roofline estimate (issue 23): data in, arithmetic out, checked by
hand. The estimate's accuracy against the clock is scripts/bench_latency.py's business."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from torch import nn

import convzoo
from convzoo import machine
from convzoo.analysis.latency import estimate, prefixes
from convzoo.errors import ConvZooError
from convzoo.latency_view import latency_text, roofline_points, seconds_text
from tests.helpers import ROOT, cli_env

F32 = 4
ROUND = machine.Profile(
    name="round",
    description="round numbers",
    source="a test",
    device="cpu",
    bandwidth=1e9,  # 1 byte per ns
    overhead=1e-6,
    rates={"conv": 1e9, "depthwise_conv": 1e8, "matmul": 2e9, "elementwise": 1e9, "reduction": 5e8},
)


def test_rate_measured_in_its_dtype_else_the_datasheet_peak() -> None:
    assert ROUND.rate("conv", "float32") == 1e9
    with pytest.raises(ConvZooError, match="round has no throughput for float16 .*float32"):
        ROUND.rate("conv", "float16")
    h100 = machine.load("nvidia-h100")
    assert h100.rate("matmul", "float16") == h100.peak["float16"] / 2  # a MAC is two FLOPs
    assert h100.rate("elementwise", "float16") == h100.peak["float16"]


def test_shipped_profiles_are_datasheets_with_their_source() -> None:
    for name in ("nvidia-a100", "nvidia-h100", "nvidia-h200"):
        profile = machine.load(name)
        assert profile.source.startswith("https://") and profile.peak and not profile.rates
        assert {"float32", "float16", "bfloat16"} <= set(profile.peak)
    assert machine.load("nvidia-h200").bandwidth == 4.8e12


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"bandwidth": -1.0}, "bandwidth must be a positive number"),
        ({"rates": {"conv": True}}, "conv must be a positive number"),
        ({"rates": {"fft": 1.0}}, "unknown op class 'fft'"),
        ({"rates": {}, "peak": {}}, "needs rates or peak"),
        ({"overhead": -1.0}, "overhead must be >= 0"),
        ({"speed": 1}, "not a machine profile"),
        ({"rates": [1.0]}, "rates must be an object of numbers"),
    ],
)
def test_a_bad_profile_is_one_line_naming_its_file(change: dict, words: str) -> None:
    data = {**ROUND.to_dict(), **change}
    with pytest.raises(ConvZooError, match=words):
        machine.Profile.from_dict(data, "bad.json")
    with pytest.raises(ConvZooError, match="a JSON object"):
        machine.Profile.from_dict([], "bad.json")


def test_cache_follows_xdg_and_shadows_nothing_it_lacks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert machine.cache_dir() == tmp_path / "convzoo" / "machines"
    with pytest.raises(ConvZooError, match="run `convzoo machine`"):
        machine.load(machine.LOCAL)
    local = machine.Profile(**{**ROUND.to_dict(), "name": machine.LOCAL})
    path = machine.save(local)
    assert path.parent == machine.cache_dir() and machine.load(machine.LOCAL) == local
    assert machine.LOCAL in machine.names() and "measured" in machine.list_table()
    assert machine.load(str(path)) == local  # a profile's path works too
    with pytest.raises(ConvZooError, match="did you mean 'nvidia-h100'"):
        machine.load("nvidia-h10")
    blocked = tmp_path / "file"
    blocked.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocked))  # a file where the folder goes
    with pytest.raises(ConvZooError, match="cannot write the machine profile"):
        machine.save(local)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    path.write_text("{")
    with pytest.raises(ConvZooError, match="cannot read machine profile"):
        machine.load(machine.LOCAL)


def test_estimate_is_each_ops_roofline_plus_overhead_by_hand() -> None:
    model = nn.Sequential(nn.Conv2d(8, 16, 3, padding=1), nn.ReLU())
    report = convzoo.analyze(model, (8, 10, 10))
    conv_macs = 16 * 100 * 8 * 9
    conv_bytes = (8 * 100 + 16 * 8 * 9 + 16 + 16 * 100) * F32
    relu_bytes = 2 * 16 * 100 * F32
    conv = max(conv_macs / 1e9, conv_bytes / 1e9) + 1e-6
    relu = max(16 * 100 / 1e9, relu_bytes / 1e9) + 1e-6
    latency = estimate(report, ROUND)
    assert latency.layers["0"].seconds == pytest.approx(conv)
    assert latency.layers["1"].seconds == pytest.approx(relu)
    assert latency.total.seconds == pytest.approx(conv + relu)
    assert latency.layers[""] is latency.total
    assert latency.layers["0"].bound == "compute" and latency.layers["1"].bound == "memory"
    assert latency.total.attained == pytest.approx(conv_macs / (conv + relu))


def test_grouped_and_free_ops_by_hand() -> None:
    depthwise = nn.Sequential(nn.Conv2d(4, 4, 3, groups=4, bias=False), nn.Flatten())
    report = convzoo.analyze(depthwise, (4, 5, 5))
    macs = 4 * 9 * 9
    moved = (4 * 25 + 4 * 9 + 4 * 9) * F32
    latency = estimate(report, ROUND)
    assert latency.total.seconds == pytest.approx(max(macs / 1e8, moved / 1e9) + 1e-6)
    assert latency.layers["1"].seconds == 0  # a view: no time, no dispatch counted


def test_prefixes() -> None:
    assert prefixes("a.b") == ["", "a", "a.b"] and prefixes("") == [""]


def test_latency_text_in_every_format() -> None:
    report = convzoo.analyze(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()), (3, 8, 8))
    table = latency_text(report, ROUND, "table", "float32")
    assert "est. time" in table and "on round (float32)" in table and "a lower bound" in table
    data = json.loads(latency_text(report, ROUND, "json", "float32", top=1))
    assert (
        [e["name"] for e in data["latency"]["layers"]]
        == ["0"]
        == [r["name"] for r in data["layers"]]
    )
    assert data["latency"]["seconds"] == pytest.approx(estimate(report, ROUND).total.seconds)
    rows = latency_text(report, ROUND, "csv", "float32").splitlines()
    assert rows[0] == "name,type,depth,macs,bytes_moved,intensity,bound,seconds" and len(rows) == 4
    (point,) = roofline_points(report, estimate(report, ROUND))
    assert point[:2] == ("0", "conv") and point[2] == pytest.approx(report["0"].intensity)
    assert [seconds_text(s) for s in (2.0, 0.00123, 4.5e-6)] == ["2 s", "1.23 ms", "4.5 us"]


def test_compare_column_only_when_asked() -> None:
    from convzoo.compare import compare
    from convzoo.measure import rows_table

    rows = compare(3, 8, 8, 8, designs=["conv", "depthwise_separable"], profile=ROUND)
    assert all(r.estimated_ms and r.estimated_ms > 0 for r in rows)
    assert "est. ms" in rows_table(rows)
    plain = compare(3, 8, 8, 8, designs=["conv"])
    assert "estimated_ms" not in plain[0].to_dict() and "est. ms" not in rows_table(plain)


@pytest.mark.slow
def test_machine_measures_into_the_users_cache(tmp_path: Path) -> None:
    """``convzoo machine`` as a user runs it: measured in well under a minute, saved under
    $XDG_CACHE_HOME, then listed and used by ``report --latency`` without ``--machine``."""
    env = cli_env(XDG_CACHE_HOME=str(tmp_path))

    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "convzoo", *argv],
            capture_output=True, text=True, env=env, cwd=ROOT, timeout=120,
        )  # fmt: skip

    done = run("machine", "--threads", "1")
    assert done.returncode == 0, done.stderr
    saved = tmp_path / "convzoo" / "machines" / "local.json"
    assert f"profile written to {saved}" in done.stderr and "conv:" in done.stdout
    assert machine.read(saved).threads == 1
    assert "local" in run("machine", "--list").stdout
    report = run("report", "resnet18", "--latency", "--depth", "1")
    assert report.returncode == 0 and "on local (float32)" in report.stdout, report.stderr


def test_machine_list_and_show_do_not_import_torch() -> None:
    code = (
        "import sys\nfrom convzoo.cli import main\n"
        "assert main(['machine', '--list']) == 0\n"
        "assert main(['machine', '--show', 'nvidia-h100', '--format', 'json']) == 0\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=cli_env(), timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert '"source": "https://' in done.stdout
