"""``convzoo rf`` as a user drives it (issue 20): which layer it shows by default and why, a
field in words whatever its kind (never Python's ``None``), ``--format json``, ``--plot``
refused on an input it cannot draw before any work, and the field cell of ``report``
telling fields not computed from no field and from an unknown one."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
from torch import nn

import convzoo
from convzoo.analysis import render
from convzoo.analysis.receptive.describe import field_data, field_line, pick_layer
from convzoo.analysis.report import Report
from tests.test_real import cli

MODELS = '''
import torch
from torch import nn


class Scaled(nn.Module):
    """A 1x1 conv of its input scaled by the input's global mean (CondConv-like routing):
    a feature map, every unit of which sees the whole input."""

    def __init__(self, channels):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 1)

    def forward(self, x):
        return self.conv(x * x.mean((2, 3), keepdim=True))


class Routed(nn.Module):
    """Local layers (stem, body), then feature maps with global fields, then a classifier."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
        self.body = nn.Conv2d(4, 4, 3)
        self.routed = Scaled(4)
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        return self.head(self.routed(self.body(self.stem(x))).mean((2, 3)))


class Segmenter(nn.Module):
    """A segmentation net returning a dict: a local encoder, then image-level context
    (global pooling added back to every pixel, as DeepLab's ASPP), so every output unit
    sees the whole input."""

    def __init__(self):
        super().__init__()
        self.encoder = nn.Conv2d(3, 4, 3, padding=1)
        self.context = Scaled(4)
        self.classifier = nn.Conv2d(4, 2, 1)

    def forward(self, x):
        y = self.classifier(self.context(self.encoder(x)))
        return {"out": y, "aux": y.mean((2, 3))}


class Copied(nn.Module):
    """Uses only its input's shape (a new tensor of it): no input pixel can be traced into
    any output. (A copy of the input into a new tensor, as torchvision's detection
    transform makes, is followed since issue 21.)"""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        y = x.new_ones(x.shape)
        return self.conv(y)


class Windows(nn.Module):
    """Swin's window partition: a view that splits each axis across two dims (unknown)."""

    def forward(self, x):
        b, c, h, w = x.shape
        return x.view(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5).mean((-1, -2))


def windowed():
    return nn.Sequential(nn.Conv2d(1, 1, 3), Windows())


def sequence():
    """A 1-D model whose forward fails (96 features into a Linear of 3): analysing it shows."""
    model = nn.Sequential(nn.Conv1d(3, 8, 5), nn.Linear(3, 2))
    model.input_size = (3, 100)
    return model
'''

NONE = re.compile(r"\bNone\b")


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """The file of the models above (for the CLI) and its namespace (for Python)."""
    path = tmp_path_factory.mktemp("rf") / "models.py"
    path.write_text(MODELS)
    namespace: dict[str, Any] = {}
    exec(compile(MODELS, str(path), "exec"), namespace)
    return path, namespace


def analyze(model: nn.Module, size: tuple[int, ...] = (3, 16, 16), **kw: Any) -> Report:
    return convzoo.analyze(model, size, **kw)


def test_the_default_layer_is_the_last_local_one_and_the_remark_says_why(
    models: tuple[Path, dict[str, Any]],
) -> None:
    ns = models[1]
    report = analyze(ns["Routed"]())
    row, remark = pick_layer(report, "")
    # stem, stem.0, stem.1 and body see part of the input; routed (a 12x12 map) sees all of it
    local = [
        r.name for r in report.layers if r.name and render.field_kind(r.receptive_field) == "local"
    ]
    assert local[-1] == "body" and row.name == "body"
    assert render.field_kind(report["routed"].receptive_field) == "global"
    assert report["routed"].output_shape[2] > 1  # a feature map that is not shown: said so
    assert remark.startswith("the model's output (1x2) is not a feature map; showing 'body'")
    assert "the last layer (in module order) whose units each see only part of the input" in remark
    assert "later feature maps have global fields" in remark
    # a named layer is shown as asked, without a remark
    assert pick_layer(report, "stem") == (report["stem"], "")


def test_a_segmentation_output_with_a_global_field_is_said_to_be_one(
    models: tuple[Path, dict[str, Any]],
) -> None:
    report = analyze(models[1]["Segmenter"]())
    assert report.output_shape == [1, 2, 16, 16]  # the dict's first tensor: a feature map
    row, remark = pick_layer(report, "")
    assert row.name == "encoder"
    assert remark.startswith(
        "every unit of the model's output (1x2x16x16) sees the whole input (a global field)"
    )
    line = field_line(report["context"], (16, 16))
    assert line == "receptive field global: every unit sees the whole 16x16 input"
    data = field_data(report["context"], (16, 16))
    assert data["kind"] == "global" and data["size"] == [16, 16] and data["stride"] is None


def test_no_field_and_unknown_fields_are_said_in_words(models: tuple[Path, dict[str, Any]]) -> None:
    copied = analyze(models[1]["Copied"]())
    assert all(r.receptive_field is None for r in copied.layers)
    row, remark = pick_layer(copied, "")
    assert row.name == "" and remark == "no input pixel could be traced into any layer's output"
    assert field_line(row) == "no receptive field: no input pixel could be traced into it"
    assert field_data(row)["kind"] == "none" and field_data(row)["size"] is None
    windowed = analyze(models[1]["windowed"](), (1, 10, 10))
    row, remark = pick_layer(windowed, "")
    assert row.name == "0" and remark.startswith("the field of the model's output (1x4x4x1)")
    line = field_line(windowed[""])
    assert line.startswith("receptive field unknown: the tracer could not follow it (")
    assert "split across dims" in line
    for text in (remark, line, field_line(windowed["0"])):
        assert not NONE.search(text), text


def test_report_field_cells_tell_not_computed_from_none_and_unknown(
    models: tuple[Path, dict[str, Any]],
) -> None:
    ns = models[1]
    skipped = analyze(ns["Routed"](), receptive_fields=False)
    copied, windowed = analyze(ns["Copied"]()), analyze(ns["windowed"](), (1, 10, 10))
    cells = {
        "not computed": render.layer_rows(skipped)[0][6],
        "none": render.layer_rows(copied)[0][6],
        "unknown": render.layer_rows(windowed)[0][6],
    }
    assert cells == {"not computed": "not computed", "none": "-", "unknown": "unknown"}
    assert "not computed" in skipped.to_table("markdown")
    kinds = [
        next(csv.DictReader(io.StringIO(r.to_csv())))["rf_kind"]
        for r in (skipped, copied, windowed)
    ]
    assert kinds == ["not computed", "none", "unknown"]
    data = [json.loads(r.to_json()) for r in (skipped, copied)]
    assert [d["fields_computed"] for d in data] == [False, True]
    assert Report.from_json(skipped.to_json()).fields_computed is False  # read back


def test_rf_format_json(models: tuple[Path, dict[str, Any]]) -> None:
    path = models[0]
    done = cli("rf", f"{path}:Routed", "--input", "3x16x16", "--format", "json", "--unit", "2,3")
    assert done.returncode == 0 and done.stderr == "", done.stderr
    data = json.loads(done.stdout)
    assert list(data) == ["target", "layer", "remark", "output_shape", "receptive_field", "unit"]
    assert data["layer"] == "body" and data["output_shape"] == [1, 4, 12, 12]
    assert "later feature maps have global fields" in data["remark"]
    k = 3 + 3 - 1  # two stacked valid 3x3 convs: unit (i, j) sees rows i..i+4, cols j..j+4
    field = data["receptive_field"]
    assert list(field) == ["kind", "axes", "size", "stride", "start", "period", "exact", "note"]
    assert field["kind"] == "local" and field["axes"] == ["h", "w"] and field["size"] == [k, k]
    assert field["stride"] == [1, 1] and field["note"] is None
    assert data["unit"] == {
        "index": [2, 3],
        "input": {"h": [2, 2 + k - 1], "w": [3, 3 + k - 1]},
        "exact": True,
    }


@pytest.mark.slow  # a subprocess: the fast tier keeps one per command (test_contract)
def test_rf_plot_refuses_an_input_it_cannot_draw_before_any_work(
    models: tuple[Path, dict[str, Any]], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    png = tmp_path / "erf.png"
    # --input given: refused before the target is loaded (this file does not even exist)
    done = cli("rf", f"{tmp_path}/absent.py:make", "--input", "3x100", "--plot", str(png))
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.splitlines() == ["convzoo: error: --plot needs a CxHxW input, got 3x100"]
    # the target's own 1-D input: refused before the analysis (its forward would fail)
    from convzoo.cli import main

    assert main(["rf", f"{models[0]}:sequence", "--plot", str(png)]) == 2
    err = capsys.readouterr().err
    assert err.splitlines() == ["convzoo: error: --plot needs a CxHxW input, got 3x100"]
    assert not png.exists()


# -- the new user's models, whole (slow: torchvision builds and traces them) --------------------


@pytest.mark.slow
def test_rf_of_a_segmentation_model_returning_a_dict() -> None:
    done = cli("rf", "torchvision:deeplabv3_resnet50")
    assert done.returncode == 0, done.stderr
    first, line = done.stdout.splitlines()
    assert first.startswith(
        "torchvision:deeplabv3_resnet50: every unit of the model's output (1x21x520x520) "
        "sees the whole input (a global field); showing 'classifier.0.convs.3'"
    )
    assert line.startswith("torchvision:deeplabv3_resnet50 / classifier.0.convs.3: output ")
    assert not NONE.search(done.stdout)


@pytest.mark.slow
def test_rf_of_a_detector_never_prints_none() -> None:
    target = "torchvision:fasterrcnn_mobilenet_v3_large_320_fpn"
    text, data = cli("rf", target), cli("rf", target, "--format", "json")
    assert text.returncode == data.returncode == 0, text.stderr + data.stderr
    assert not NONE.search(text.stdout), text.stdout
    # the transform's copy of the image into its batch is followed (issue 21): the boxes
    # are not a feature map, so the last backbone layer with a local field is shown
    assert " / backbone." in text.stdout.splitlines()[-1], text.stdout
    field = json.loads(data.stdout)["receptive_field"]
    assert field["kind"] == "local" and field["exact"] is True


@pytest.mark.slow
def test_rf_of_every_conv_names_the_rule_and_the_global_maps_after() -> None:
    done = cli("rf", "configs/every_conv.yaml", "--unit", "16,16")
    assert done.returncode == 0, done.stderr
    remark = done.stdout.splitlines()[0]
    assert "showing 'variants.mix_conv1', the last layer (in module order) whose units" in remark
    assert "later feature maps have global fields" in remark


@pytest.mark.slow
def test_rf_text_and_json_agree(models: tuple[Path, dict[str, Any]]) -> None:
    argv = ("rf", f"{models[0]}:Segmenter", "--input", "3x16x16", "--unit", "0,15")
    text, data = cli(*argv), cli(*argv, "--format", "json")
    assert text.returncode == data.returncode == 0, text.stderr + data.stderr
    got = json.loads(data.stdout)
    remark, line, unit = text.stdout.splitlines()
    assert remark == f"{models[0]}:Segmenter: {got['remark']}"
    assert line.startswith(f"{models[0]}:Segmenter / {got['layer']}: output 1x4x16x16, ")
    (r0, r1), (c0, c1) = got["unit"]["input"]["h"], got["unit"]["input"]["w"]
    assert unit == f"unit (0, 15): input h {r0}..{r1}, w {c0}..{c1} (exact)"
    assert cli(*argv, "--format", "json").stdout == data.stdout  # byte-deterministic
