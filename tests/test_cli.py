"""The command line, through ``convzoo.cli.main([...])``."""

from __future__ import annotations

import csv
import io
import json
import re
import sys
from pathlib import Path

import pytest

from convzoo.analysis.report import SCHEMA_VERSION, Report
from convzoo.cli import main

ROOT = Path(__file__).resolve().parents[1]
SEED = str(ROOT / "configs" / "seed_64x64_5x5.yaml")
SEED_MACS = 60 * 60 * 2 * 3 * 5 * 5  # output positions x filters x (C_in k_h k_w)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_list(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "list", "depth*")
    assert code == 0
    assert "depthwise" in out and "depthwise_separable" in out and "tiled" not in out


def test_build(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "build", SEED)
    assert code == 0 and "152 parameters" in out
    code, out, _ = run(capsys, "build", "seed_64x64_5x5")  # a packaged config by name
    assert code == 0 and "152 parameters" in out


def test_report_seed_table(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "report", SEED)
    assert code == 0 and err == ""
    assert re.search(rf"^MACs:\s+\S+ \({SEED_MACS:,}\)$", out, re.M)
    assert re.search(rf"^FLOPs:\s+\S+ \({2 * SEED_MACS:,};", out, re.M)
    assert re.search(r"^output shape:\s+1x2x60x60$", out, re.M)
    assert re.search(r"^total\s+152\s", out, re.M)


def test_report_json_keys(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "report", SEED, "--format", "json", "--batch", "2")
    assert code == 0
    data = json.loads(out)
    assert list(data) == [
        "schema_version",  # first, so a reader can check it before anything else
        "target",
        "input_shape",
        "totals",
        "output_shape",
        "receptive_field",
        "fields_computed",
        "layers",
        "operators",
        "uncounted_ops",
        "complete",
        "notes",
        "training",
    ]
    assert data["schema_version"] == SCHEMA_VERSION
    assert list(data["totals"]) == [
        "params",
        "trainable_params",
        "macs",
        "flops",
        "elementwise_ops",
        "activation_bytes",
        "param_bytes",
        "peak_activation_bytes",
        "bytes_moved",
    ]
    assert data["receptive_field"] == {
        "size": [5, 5],
        "stride": [1, 1],
        "start": [2, 2],
        "period": [1, 1],
        "global": False,
    }
    assert Report.from_json(out).to_dict() == data
    assert data["target"] == "seed_64x64_5x5"
    assert data["input_shape"] == [[2, 3, 64, 64]]
    assert data["totals"]["macs"] == 2 * SEED_MACS
    assert [row["name"] for row in data["layers"]] == ["", "conv"]
    assert set(data["layers"][1]) >= {"name", "type", "depth", "output_shape", "params", "macs"}


def test_report_csv_and_output_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = run(capsys, "report", SEED, "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and [r["name"] for r in rows] == ["seed_64x64_5x5", "conv", "(total)"]
    assert int(rows[1]["macs"]) == SEED_MACS
    assert rows[2]["type"] == "total" and int(rows[2]["macs"]) == SEED_MACS
    assert int(rows[2]["params"]) == 152 and rows[2]["output_shape"] == "1x2x60x60"
    target = tmp_path / "r.json"
    code, out, _ = run(capsys, "report", SEED, "--format", "json", "--output", str(target))
    assert code == 0 and out == ""
    assert json.loads(target.read_text())["totals"]["macs"] == SEED_MACS


def test_report_input_override(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "report", SEED, "--input", "3x32x32", "--format", "json")
    assert code == 0 and json.loads(out)["totals"]["macs"] == 28 * 28 * 2 * 3 * 5 * 5


def test_report_torchvision_depth(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        capsys, "report", "torchvision:resnet18", "--input", "3x64x64", "--depth", "1"
    )
    assert code == 0 and err == ""
    table = out.split("\n\n")[0].splitlines()[2:]
    names = [line.split()[0] for line in table]
    assert names == ["torchvision:resnet18", "conv1", "bn1", "relu", "maxpool", "layer1",
                     "layer2", "layer3", "layer4", "avgpool", "fc", "total"]  # fmt: skip
    assert re.search(r"^input shape:\s+1x3x64x64$", out, re.M)
    assert re.search(r"^output shape:\s+1x1000$", out, re.M)


def test_report_check_fvcore(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["report", "torchvision:resnet18", "--input", "3x64x64", "--format", "json"]
    code, out, err = run(capsys, *argv, "--check-fvcore")
    assert code == 0
    macs = json.loads(out)["totals"]["macs"]  # stdout stays pure json; the check is on stderr
    found = re.search(r"MAC op types:\s+convzoo ([\d,]+), fvcore ([\d,]+): match", err)
    assert found and int(found[1].replace(",", "")) == int(found[2].replace(",", "")) == macs
    assert re.search(r"^conv\s+MACs\s+([\d,]+)\s+\1\s+yes$", err, re.M)
    assert re.search(r"^linear/matmul\s+MACs\s+([\d,]+)\s+\1\s+yes$", err, re.M)
    assert "aten::add_" in err  # skipped by fvcore, explained


ERRORS = [
    (["report", "torchvision:resnet1"], "did you mean torchvision:resnet18"),
    (["report", "missing/nowhere.yaml"], "no config file 'missing/nowhere.yaml'"),
    (["report", SEED, "--input", "3xx64"], "--input must look like 3x224x224"),
    (["report", SEED, "--input", "3x4x4"], "kernel_size"),
    (["report", "torchvision:squeezenet1_0", "--input", "3x16x16"], "in layer 'features.11'"),
    (["build", "missing/nowhere.yaml"], "no config file 'missing/nowhere.yaml'"),
]


@pytest.mark.parametrize(("argv", "message"), ERRORS)
def test_errors_exit_2_with_one_line(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert len(err.splitlines()) == 1 and err.startswith("convzoo: error: ")
    assert message in err and "Traceback" not in err


def test_wrong_channels_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "report", "torchvision:resnet18", "--input", "1x64x64")
    assert code == 2 and "in layer 'conv1'" in err


def test_config_error_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("input: [3, 8, 8]\nlayers:\n  - {type: nonsense_layer}\n")
    code, out, err = run(capsys, "report", str(bad))
    assert code == 2 and out == "" and len(err.splitlines()) == 1
    assert err.startswith("convzoo: error: ") and "nonsense_layer" in err


def test_output_to_missing_directory(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, "report", SEED, "--output", str(tmp_path / "no" / "r.txt"))
    assert code == 2 and len(err.splitlines()) == 1 and "cannot write" in err


@pytest.mark.parametrize(
    "argv", [["report", SEED, "--batch", "0"], ["report", SEED, "--depth", "x"]]
)
def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == "" and len(err.splitlines()) == 1
    assert "must be an int" in err and "--help" in err


def test_compare_default_is_the_headline_table(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "compare")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["design", "params", "MACs"]
    conv = next(line for line in lines if line.startswith("conv "))
    assert f"{56 * 56 * 64 * 64 * 49:,}" in conv  # 'same' padding: 56x56 outputs


def test_compare_formats_and_plot(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    args = [
        "compare",
        "--kernel",
        "5",
        "--in-channels",
        "4",
        "--out-channels",
        "4",
        "--size",
        "12",
        "--designs",
        "conv,factorized",
        "--no-bias",
    ]
    code, out, _ = run(capsys, *args, "--format", "json")
    rows = json.loads(out)
    assert code == 0 and [r["design"] for r in rows] == ["conv", "factorized"]
    assert rows[1]["params"] == 4 * 4 * 5 * 2 and rows[0]["params"] == 4 * 4 * 25
    plot = tmp_path / "cmp.png"
    code, out, err = run(capsys, *args, "--bench", "--plot", str(plot))
    assert code == 0 and plot.read_bytes()[:4] == b"\x89PNG" and "speed-up" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["compare", "--designs", "conv,stak"], "unknown design 'stak'"),
        (["compare", "--kernel", "4"], "--kernel must be an odd size"),
        (["compare", "missing.yaml"], "cannot read config"),
        (["rf", "configs/resnet18.yaml", "--layer", "layer9"], "no layer named 'layer9'"),
    ],
)
def test_compare_and_rf_errors(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 2 and len(err.splitlines()) == 1 and message in err


def test_rf_prints_the_field_and_plots(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    plot = tmp_path / "erf.png"
    code, out, _ = run(
        capsys,
        "rf",
        "configs/seed_64x64_5x5.yaml",
        "--layer",
        "conv",
        "--plot",
        str(plot),
        "--samples",
        "2",
    )
    assert code == 0 and "receptive field 5x5 /1" in out and plot.exists()


# issue 14: flags that mirror analyze, targets, version, suggestions, list, progress

TWO_WAYS = """
import torch
from torch import nn


class TwoWays(nn.Module):
    '''Train mode runs a 3x3 conv, eval mode a 1x1; a second input goes through a 1x1.'''

    def __init__(self) -> None:
        super().__init__()
        self.big = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.small = nn.Conv2d(3, 4, 1, bias=False)
        self.side = nn.Conv2d(1, 4, 1, bias=False)

    def forward(self, x, y=None):
        out = self.big(x) if self.training else self.small(x)
        return out if y is None else out + self.side(y)
"""


@pytest.fixture
def two_ways(tmp_path: Path) -> str:
    path = tmp_path / "two_ways.py"
    path.write_text(TWO_WAYS)
    return f"{path}:TwoWays"


def report_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:
    code, out, err = run(capsys, "report", *argv, "--format", "json")
    assert code == 0, err
    return json.loads(out)


def test_report_train_dtype_and_several_inputs(
    capsys: pytest.CaptureFixture[str], two_ways: str
) -> None:
    pixels = 8 * 8
    eval_ = report_json(capsys, two_ways, "--input", "3x8x8")
    assert eval_["totals"]["macs"] == pixels * 4 * 3  # the 1x1 branch
    train = report_json(capsys, two_ways, "--input", "3x8x8", "--train")
    assert train["totals"]["macs"] == pixels * 4 * 3 * 9  # the 3x3 branch
    both = report_json(capsys, two_ways, "--input", "3x8x8", "--input", "1x8x8")
    assert both["input_shape"] == [[1, 3, 8, 8], [1, 1, 8, 8]]
    assert both["totals"]["macs"] == pixels * 4 * 3 + pixels * 4 * 1
    double = report_json(capsys, two_ways, "--input", "3x8x8", "--dtype", "float64")
    assert double["totals"]["activation_bytes"] == 2 * eval_["totals"]["activation_bytes"]


def test_report_file_target_with_kwargs(capsys: pytest.CaptureFixture[str]) -> None:
    data = report_json(
        capsys,
        "tests/data/some_model.py:Net",
        "--input",
        "3x32x32",
        "--kwargs",
        '{"num_classes": 3}',
    )
    assert data["target"] == "tests/data/some_model.py:Net"
    assert data["totals"]["macs"] == 30 * 30 * 8 * 27 + 8 * 3  # conv outputs x taps + linear


def test_report_layer_is_one_subtree(capsys: pytest.CaptureFixture[str]) -> None:
    whole = report_json(capsys, "resnet18")
    layer1 = next(row for row in whole["layers"] if row["name"] == "layer1")
    part = report_json(capsys, "resnet18", "--layer", "layer1")
    names = [row["name"] for row in part["layers"]]
    assert names[0] == "layer1" and all(n.startswith("layer1.") for n in names[1:])
    assert part["totals"]["macs"] == layer1["macs"] and part["totals"]["params"] == 147_968
    assert part["layers"][0]["depth"] == 0 and part["target"] == "resnet18 / layer1"
    code, out, err = run(capsys, "report", "resnet18", "--layer", "layer9")
    assert code == 2 and "no layer named 'layer9'" in err and len(err.splitlines()) == 1


def test_report_by_op_in_every_format(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "report", SEED, "--by-op")
    assert code == 0
    assert out.splitlines()[0].split() == [
        *["op", "kind", "calls", "MACs", "share", "element-wise", "ops"]
    ]
    assert re.search(r"^convolution\s+macs\s+1\s+\S+\s+100\.0%", out, re.M)
    code, out, _ = run(capsys, "report", SEED, "--by-op", "--format", "json", "--batch", "2")
    data = json.loads(out)
    assert list(data)[0] == "schema_version" and data["schema_version"] == SCHEMA_VERSION
    assert sum(op["macs"] for op in data["operators"]) == 2 * SEED_MACS
    code, out, _ = run(capsys, "report", SEED, "--by-op", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert rows[0]["op"] == "convolution" and int(rows[0]["macs"]) == SEED_MACS
    code, out, _ = run(capsys, "report", SEED, "--by-op", "--format", "markdown")
    assert out.startswith("| op") and "- **operators of**: seed_64x64_5x5" in out
    code, _, err = run(capsys, "report", SEED, "--by-op", "--top", "3", "--depth", "1")
    assert code == 2 and "drop --top, --depth" in err and len(err.splitlines()) == 1


def test_report_by_op_of_one_subtree(capsys: pytest.CaptureFixture[str]) -> None:
    whole = report_json(capsys, "resnet18", "--no-fields")
    layer2 = next(row for row in whole["layers"] if row["name"] == "layer2")
    code, out, _ = run(
        capsys,
        "report",
        "resnet18",
        "--no-fields",
        "--by-op",
        "--layer",
        "layer2",
        "--format",
        "json",
    )
    data = json.loads(out)
    assert code == 0 and data["module"] == "layer2"
    assert sum(op["macs"] for op in data["operators"]) == layer2["macs"]
    assert sum(op["elementwise_ops"] for op in data["operators"]) == layer2["elementwise_ops"]


def test_report_sort_top(capsys: pytest.CaptureFixture[str]) -> None:
    whole = report_json(capsys, "resnet18")
    for key in ("params", "macs"):
        code, out, _ = run(capsys, "report", "resnet18", "--sort", key, "--top", "4")
        lines = out.split("\n\n")[0].splitlines()[2:]
        rows = sorted((r for r in whole["layers"] if r["name"]), key=lambda r: -r[key])
        assert code == 0 and [line.split()[0] for line in lines] == [
            *(r["name"] for r in rows[:4]),
            "total",
        ]
    assert lines[0].startswith("layer1 ")  # by MACs the stem-side stage leads (462.4M)


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    import convzoo

    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert (
        exc.value.code == 0 and capsys.readouterr().out.strip() == f"convzoo {convzoo.__version__}"
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["reprot", "resnet18"], "unknown command 'reprot'; did you mean report?"),
        (["lst"], "did you mean list?"),
        (["report", "resnet18", "--format", "xml"], "invalid choice: 'xml'"),
        (["report"], "the following arguments are required: target"),
        (["report", "resnet18", "--sort", "flops"], "invalid choice: 'flops'"),
    ],
)
def test_usage_errors_are_one_line(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, _, err = run(capsys, *argv)
    assert code == 2 and len(err.splitlines()) == 1 and message in err


def test_compare_config_refuses_design_flags(capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        "compare",
        "configs/compare/bottleneck_vs_two_3x3.yaml",
        "--kernel",
        "9",
        "--size",
        "80",
    ]
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == "" and len(err.splitlines()) == 1
    assert "--kernel, --size do not apply" in err


def test_list_fits_100_columns(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    code, out, _ = run(capsys, "list")
    assert code == 0 and max(len(line) for line in out.splitlines()) <= 100
    for name in ("conv", "deformable", "inverted_residual", "routing_capsules"):
        assert re.search(rf"^{name}\s", out, re.M)


def test_list_pattern_matching_nothing_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "list", "depthwize*")
    assert code == 2 and out == "" and len(err.splitlines()) == 1
    assert "no registered layer matches 'depthwize*'" in err and "depthwise" in err


BENCH = ["compare", "--kernel", "3", "--in-channels", "2", "--out-channels", "2", "--size", "8",
         "--designs", "conv,factorized", "--bench"]  # fmt: skip


def test_progress_on_a_terminal_quiet_when_piped(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, err = run(capsys, *BENCH)  # captured: not a terminal
    assert code == 0 and err == ""
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    code, _, err = run(capsys, *BENCH)
    assert code == 0 and "benchmarking" in err
