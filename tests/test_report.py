"""Report rendering (units, table, markdown, csv, json) and the fvcore cross-check."""

from __future__ import annotations

import csv
import io
import json
from collections import Counter

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from convzoo import analyze
from convzoo.analysis import render
from convzoo.analysis.peers import compare, compare_fvcore
from convzoo.analysis.render import field_text, human, human_bytes, shape_text
from convzoo.analysis.report import LayerStats, ReceptiveField, Report, Totals, UncountedOp
from convzoo.errors import ConvZooError

# -- units -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (0, "0"),
        (7, "7"),
        (999, "999"),
        (1000, "1.00K"),
        (1234, "1.23K"),
        (12_346, "12.35K"),
        (99_994, "99.99K"),
        (99_996, "100.0K"),  # 2 decimals would print 100.00K: 1 decimal from 100 up
        (123_456, "123.5K"),
        (999_949, "999.9K"),
        (999_960, "1.00M"),  # rounds up to the next unit, never "1000.0K"
        (1_500_000, "1.50M"),
        (148_557_824, "148.6M"),
        (4_089_184_256, "4.09G"),
        (3 * 10**12, "3.00T"),
        (-1500, "-1.50K"),
    ],
)
def test_human(n: int, text: str) -> None:
    assert human(n) == text


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (0, "0 B"),
        (608, "608 B"),
        (1023, "1023 B"),
        (1024, "1.00 KiB"),
        (1536, "1.50 KiB"),
        (3 * 1024**2, "3.00 MiB"),
        (1024**2 - 1, "1.00 MiB"),
        (5 * 1024**3 // 2, "2.50 GiB"),
    ],
)
def test_human_bytes(n: int, text: str) -> None:
    assert human_bytes(n) == text


@pytest.mark.parametrize("bad", [1.5, True, "12", None])
def test_human_rejects_non_ints(bad: object) -> None:
    with pytest.raises(ConvZooError):
        human(bad)  # type: ignore[arg-type]


def test_shape_and_field_text() -> None:
    assert shape_text([1, 64, 56, 56]) == "1x64x56x56"
    assert shape_text(None) == "-"
    rf = ReceptiveField(size=(7, 7), stride=(2, 2), start=(-3, -3), period=(1, 1))
    assert field_text(rf) == "7x7 /2" == str(rf)
    assert field_text(ReceptiveField((7, 3), (2, 1), (-3, -1))) == "7x3 /2x1"
    assert field_text(ReceptiveField((7, 7), (2, 2), (0, 0), (2, 1))) == "7x7 /2 (period 2x1)"
    assert field_text(ReceptiveField((8, 8), None, None, is_global=True)) == "global"
    assert field_text(None) == "-"
    unknown = ReceptiveField(None, None, None)
    assert field_text(unknown) == "unknown"  # not followed (Swin's windows): notes say why
    assert field_text(rf.to_dict()) == "7x7 /2"  # the JSON form reads the same


# -- a hand-made report ------------------------------------------------------------------

RF = ReceptiveField(size=(5, 3), stride=(2, 1), start=(-2, -1), period=(1, 1))


def hand_report() -> Report:
    rows = [
        LayerStats("", "Net", 0, [1, 8, 4, 4], 1234, 2_000_000, 50, RF, 4096),
        LayerStats("body", "Sequential", 1, [1, 8, 4, 4], 1234, 2_000_000, 50, RF, 512),
        LayerStats(
            "body.conv", "conv", 2, [1, 8, 4, 4], 1234, 2_000_000, 0, RF, 512, self_macs=2_000_000
        ),
        LayerStats("body.act", "ReLU", 2, [1, 8, 4, 4], 0, 0, 50, None, 1024, calls=2),
        LayerStats("unused", "Linear", 1, None, 0, 0, 0, None, 0, calls=0),
    ]
    totals = Totals(
        params=1234,
        trainable_params=1000,
        macs=2_000_000,
        elementwise_ops=50,
        activation_bytes=3 * 1024**2,
        param_bytes=4936,
    )
    return Report(
        target="hand",
        input_shape=[[1, 3, 8, 8]],
        totals=totals,
        output_shape=[1, 8, 4, 4],
        receptive_field=RF,
        layers=rows,
        uncounted_ops=[UncountedOp("weird_op", "body.conv", 3)],
        notes=["a note"],
    )


def table_lines(text: str) -> list[str]:
    """The table part (before the blank line), without the header and rule."""
    return text.split("\n\n")[0].splitlines()[2:]


def test_table_columns_units_and_totals() -> None:
    text = hand_report().to_table()
    rows = table_lines(text)
    assert len(rows) == 5 + 1  # every layer, then the totals row
    conv = rows[2].split()
    assert conv == [
        *["conv", "conv", "1x8x4x4", "1.23K", "2.00M", "2.00M", "5x3", "/2x1", "512", "B"]
    ]
    assert rows[1].split()[5] == "0"  # self MACs: the container runs nothing itself
    assert rows[1].startswith("  body ")  # indented by depth
    assert rows[2].startswith("    conv ")
    assert "ReLU (2 calls)" in rows[3] and "Linear (not called)" in rows[4]
    assert rows[-1].split() == ["total", "1.23K", "2.00M", "3.00", "MiB"]
    summary = text.split("\n\n")[1]
    for expected in [
        "input shape:",
        "1x3x8x8",
        "output shape:",
        "FLOPs:",
        "4.00M (4,000,000",
        "elementwise ops:",
        "param bytes:",
        "4.82 KiB",
        "counts complete:  no",
        "weird_op in body.conv (3 calls)",
        "a note",
    ]:
        assert expected in summary


@pytest.mark.parametrize(("depth", "names"), [(0, ["hand"]), (1, ["hand", "body", "unused"])])
def test_depth_filter(depth: int, names: list[str]) -> None:
    rows = table_lines(hand_report().to_table(depth=depth))
    assert [r.split()[0] for r in rows] == [*names, "total"]


def test_depth_must_be_non_negative() -> None:
    with pytest.raises(ConvZooError, match="depth"):
        hand_report().to_table(depth=-1)
    with pytest.raises(ConvZooError, match="format"):
        hand_report().to_table("html")


def test_markdown_is_a_pipe_table_with_bullets() -> None:
    text = hand_report().to_table("markdown", depth=1)
    table, summary = text.split("\n\n")
    lines = table.splitlines()
    assert all(line.startswith("|") and line.endswith("|") for line in lines)
    assert "---:" in lines[1]  # numbers right-aligned
    assert len(lines) == 2 + 3 + 1
    assert "- **FLOPs**: 4.00M" in summary


def test_csv_round_trips() -> None:
    report = hand_report()
    rows = list(csv.DictReader(io.StringIO(report.to_csv())))
    assert len(rows) == len(report.layers)
    assert list(rows[0]) == render.CSV_FIELDS
    conv = rows[2]
    assert conv["name"] == "body.conv" and conv["output_shape"] == "1x8x4x4"
    assert (conv["params"], conv["macs"], conv["activation_bytes"]) == ("1234", "2000000", "512")
    rf = [conv[f"rf_{k}_{a}"] for k in ("size", "stride", "start") for a in "hw"]
    assert rf == ["5", "3", "2", "1", "-2", "-1"] and conv["rf_global"] == "false"
    act = rows[3]
    assert act["rf_size_h"] == "" and act["rf_global"] == "" and act["calls"] == "2"
    assert rows[4]["output_shape"] == ""


def test_json_round_trips() -> None:
    report = hand_report()
    data = json.loads(report.to_json())
    assert data == report.to_dict() and list(data)[0] == "schema_version"
    assert data["complete"] is False and data["totals"]["flops"] == 4_000_000
    assert data["layers"][0]["receptive_field"]["size"] == [5, 3]
    assert Report.from_json(report.to_json()) == report


# -- on a real analysis ------------------------------------------------------------------


def small_net() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.ReLU(),
        nn.Sequential(nn.Conv2d(4, 2, 1), nn.ReLU()),
    )


def test_analyzed_table_and_csv() -> None:
    report = analyze(small_net(), (3, 6, 6))
    rows = table_lines(report.to_table())
    assert [r.split()[0] for r in rows] == ["Sequential", "0", "1", "2", "0", "1", "total"]
    macs = 6 * 6 * 4 * 3 * 9 + 6 * 6 * 2 * 4  # by hand
    assert rows[-1].split()[2] == human(macs)
    assert f"{2 * macs:,}" in report.to_table()  # FLOPs line
    parsed = list(csv.DictReader(io.StringIO(report.to_csv())))
    names = [r["name"] for r in parsed]
    assert names == ["Sequential", "0", "1", "2", "2.0", "2.1"]  # the model row as in the table
    assert int(parsed[0]["macs"]) == macs


# -- fvcore cross-check ------------------------------------------------------------------


def test_compare_pairs_op_types_and_explains() -> None:
    ours = Counter(
        {
            ("macs", "convolution"): 100,
            ("macs", "addmm"): 30,
            ("macs", "_fft_r2c"): 7,
            ("elementwise", "native_batch_norm"): 5,
            ("elementwise", "relu_"): 10,
            ("elementwise", "add_"): 4,
        }
    )
    theirs = Counter({"conv": 100, "linear": 30, "batch_norm": 10})
    unsupported = Counter({"aten::fft_rfft2": 1, "aten::add_": 2})
    rows = {r.op: r for r in compare(ours, theirs, unsupported, {"aten::relu_"})}
    assert rows["conv"].matches and rows["linear/matmul"].matches
    assert (rows["fft"].convzoo, rows["fft"].fvcore) == (7, 0)
    assert "aten::fft_rfft2 x1" in rows["fft"].reason
    assert "2 flops per element" in rows["batch_norm"].reason
    other = rows["other element-wise"]
    assert (other.convzoo, other.ops) == (14, ["add_", "relu_"])
    assert "ignores on purpose: aten::relu_" in other.reason
    assert "aten::add_ x2" in other.reason


class ConvAttention(nn.Module):
    """Transposed conv, attention, linear and softmax: ops fvcore counts or skips."""

    def __init__(self) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(3, 4, 3, stride=2)
        self.fc = nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.up(x)  # 1x4x9x9
        t = y.flatten(2)[..., :64].reshape(1, 4, 8, 8)
        return self.fc(F.scaled_dot_product_attention(t, t, t)).softmax(-1)


def test_compare_fvcore_transposed_conv_and_attention() -> None:
    model = ConvAttention().train()
    check = compare_fvcore(model, (3, 4, 4))
    assert model.training  # mode restored
    conv = check.row("conv")  # fvcore counts transposed conv per input position, as we do
    assert conv.convzoo == conv.fvcore == 1 * 3 * 4 * 4 * 4 * 3 * 3
    # convzoo counts on meta, where attention runs as Q K^T and A V matmuls (4 heads,
    # L = S = E = 8); fvcore sees one scaled_dot_product_attention op and skips it.
    linear = check.row("linear/matmul")
    assert linear.fvcore == 4 * 8 * 8 * 8
    assert linear.convzoo == 4 * 8 * 8 * 8 + 4 * 8 * 8 * (8 + 8)
    assert "aten::scaled_dot_product_attention x1" in linear.reason
    assert check.unsupported == {"aten::scaled_dot_product_attention": 1, "aten::softmax": 1}
    text = check.to_text()
    assert "differences:" in text and "linear/matmul:" in text


def test_compare_skips_uncounted_and_splits_fused_ops() -> None:
    ours = Counter({("macs", "addmm"): 50, ("uncounted", "weird"): 3})
    fused = {"aten::_native_multi_head_attention": 2}
    rows = compare(ours, Counter({"linear": 20}), Counter(fused), set())
    assert [(r.op, r.convzoo, r.fvcore) for r in rows] == [("linear/matmul", 50, 20)]
    assert "aten::_native_multi_head_attention x2" in rows[0].reason


def test_compare_fvcore_matches_the_analyzer_on_resnet18() -> None:
    torchvision = pytest.importorskip("torchvision")
    model = torchvision.models.resnet18(weights=None)
    check = compare_fvcore(model, (3, 64, 64))
    report = analyze(model, (3, 64, 64))
    fvcore_macs = check.row("conv").fvcore + check.row("linear/matmul").fvcore
    assert fvcore_macs == report.totals.macs == check.convzoo_macs
    assert check.convzoo_elementwise == report.totals.elementwise_ops
    assert check.row("batch_norm").fvcore == 2 * check.row("batch_norm").convzoo
