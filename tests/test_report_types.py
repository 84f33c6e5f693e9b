"""The typed report: attribute access, deprecated dict reads, lookups, JSON round trips,
per-operator accounting (against FlopCounterMode) and the memory lines of the table."""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import replace

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import convzoo
from convzoo.analysis import render
from convzoo.analysis.peers import op_counts
from convzoo.analysis.report import (
    SCHEMA_VERSION,
    LayerStats,
    OperatorStats,
    ReceptiveField,
    Report,
    Totals,
    TrainingMemory,
    UncountedOp,
)
from convzoo.errors import ConvZooError

torchvision = pytest.importorskip("torchvision")

RF = ReceptiveField(size=(5, 3), stride=(2, 1), start=(-2, -1), period=(1, 1))


def hand_report(**changes: object) -> Report:
    """Two convs and a ReLU, made by hand: every number below is chosen, none computed."""
    rows = [
        LayerStats("", "Net", 0, [1, 8, 4, 4], 300, 2_000, 70, RF, 4096),
        LayerStats("a", "Conv2d", 1, [1, 8, 4, 4], 200, 1_500, 0, RF, 512, self_macs=1_500),
        LayerStats("b", "Sequential", 1, [1, 8, 4, 4], 100, 500, 70, RF, 512),
        LayerStats("b.conv", "Conv2d", 2, [1, 8, 4, 4], 100, 500, 20, RF, 512, self_macs=500),
        LayerStats("b.act", "ReLU", 2, [1, 8, 4, 4], 0, 0, 50, None, 512, calls=2),
    ]
    ops = [
        OperatorStats("a", "convolution", "macs", 1, 1_500),
        OperatorStats("b.conv", "convolution", "macs", 1, 500, 20),  # fused element-wise
        OperatorStats("b.act", "relu", "elementwise", 2, 0, 50),
        OperatorStats("b.act", "view", "free", 3),
    ]
    totals = Totals(300, 300, 2_000, 70, 1536, 1200)
    report = Report("hand", [[1, 3, 8, 8]], totals, [1, 8, 4, 4], RF, rows, ops)
    return replace(report, **changes)


# -- attribute access, deprecated dict reads, lookups --------------------------------------


def test_attributes_and_deprecated_dict_reads_agree() -> None:
    report = convzoo.analyze(nn.Conv2d(3, 2, 5, stride=2), (3, 16, 16))
    totals, rf = report.totals, report.receptive_field
    assert totals.macs == 6 * 6 * 2 * 3 * 25 and totals.flops == 2 * totals.macs
    assert rf is not None and rf.size == (5, 5) and rf.stride == (2, 2) and not rf.is_global
    with pytest.warns(DeprecationWarning, match=r"Totals\['macs'\].*\.macs"):
        assert totals["macs"] == totals.macs
    with pytest.warns(DeprecationWarning, match=r"use the attribute \.is_global"):
        assert rf["global"] is False
    with pytest.warns(DeprecationWarning):
        assert rf["size"] == [5, 5]  # what the old dict held: lists
    with pytest.warns(DeprecationWarning):
        assert rf.get("period") == [1, 1] and "stride" in rf and totals.get("nope", 7) == 7
    with pytest.warns(DeprecationWarning), pytest.raises(KeyError):
        totals["nope"]


def test_report_lookup_by_name_suggests_close_names() -> None:
    report = convzoo.analyze(torchvision.models.resnet18(), (3, 32, 32), receptive_fields=False)
    assert report["layer4"] is report.layer("layer4") and report["layer4"].name == "layer4"
    with pytest.raises(KeyError, match="did you mean 'layer4'"):
        report["layer44"]
    with pytest.raises(KeyError, match="did you mean"):
        report.by_operator("layr1")


def test_complete_follows_the_uncounted_ops() -> None:
    report = hand_report()
    assert report.complete and report.to_dict()["complete"] is True
    broken = replace(report, uncounted_ops=[UncountedOp("weird", "a", 2)])
    assert not broken.complete and broken.to_dict()["complete"] is False


# -- JSON ------------------------------------------------------------------------------------


def test_json_round_trip_of_a_real_report() -> None:
    report = convzoo.analyze(torchvision.models.resnet18(), (3, 64, 64))
    data = json.loads(report.to_json())
    assert list(data)[0] == "schema_version" and data["schema_version"] == SCHEMA_VERSION
    back = Report.from_json(report.to_json())
    assert back == report  # per-unit field data is not compared (nor serialised)
    assert back.to_dict() == data and back.to_table() == report.to_table()
    assert back["layer4"].receptive_field == report["layer4"].receptive_field
    with pytest.raises(ConvZooError, match="per-unit"):
        back["layer4"].receptive_field.unit(0, 0)  # type: ignore[union-attr]
    assert report["layer4"].receptive_field.unit(0, 0)  # type: ignore[union-attr]


def test_json_round_trip_with_memory_fields_and_version_check() -> None:
    training = TrainingMemory("adam", 1200, 1200, 2400, 640)
    report = hand_report(totals=replace(hand_report().totals, peak_activation_bytes=2048))
    report = replace(report, training=training, uncounted_ops=[UncountedOp("w", "a", 1)])
    data = report.to_dict()
    assert data["training"]["total_bytes"] == 1200 + 1200 + 2400 + 640
    assert data["totals"]["peak_activation_bytes"] == 2048
    assert Report.from_dict(json.loads(json.dumps(data))) == report
    with pytest.raises(ConvZooError, match="schema_version 99"):
        Report.from_dict({**data, "schema_version": 99})


# -- per-operator accounting ---------------------------------------------------------------


class Functional(nn.Module):
    """Functional ops and a module called twice: attribution must still add up."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.proj = nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.conv(x)).flatten(2).transpose(1, 2)  # [B, HW, 8]
        y = self.proj(self.proj(y))
        return torch.softmax(y @ y.transpose(1, 2), -1).sum()


MODELS = {
    "resnet18": lambda: (torchvision.models.resnet18(), (3, 64, 64)),
    "mobilenet_v2": lambda: (torchvision.models.mobilenet_v2(), (3, 64, 64)),
    "vit_b_16": lambda: (torchvision.models.vit_b_16(), (3, 224, 224)),
    "functional": lambda: (Functional(), (3, 8, 8)),
    "lstm": lambda: (nn.LSTM(6, 5, batch_first=True), (7, 6)),
}


@pytest.mark.parametrize("name", list(MODELS))
def test_operators_add_up_to_the_totals(name: str) -> None:
    model, size = MODELS[name]()
    report = convzoo.analyze(model, size, receptive_fields=False)
    ops = report.by_operator()
    assert sum(o.macs for o in ops) == report.totals.macs > 0
    assert sum(o.elementwise_ops for o in ops) == report.totals.elementwise_ops > 0
    assert len({o.op for o in ops}) == len(ops)  # one entry per op
    keys = [(-o.macs, -o.elementwise_ops, -o.calls, o.op) for o in ops]
    assert keys == sorted(keys)  # heaviest first
    for row in report.layers:  # each module's subtree: its own row's inclusive counts
        sub = report.by_operator(row.name)
        assert sum(o.macs for o in sub) == row.macs, row.name
        assert sum(o.elementwise_ops for o in sub) == row.elementwise_ops, row.name
        own = [o for o in report.operators if o.module == row.name]
        assert sum(o.macs for o in own) == row.self_macs, row.name


@pytest.mark.parametrize(
    ("name", "size"),
    [("resnet18", 64), pytest.param("vit_b_16", 224, marks=pytest.mark.slow)],
)
def test_by_operator_matches_flop_counter_mode_per_module(name: str, size: int) -> None:
    """FlopCounterMode (2 FLOPs per MAC) on the same meta forward, module by module (its
    counts are inclusive, like ``by_operator(module)``) and op by op."""
    model = torchvision.models.get_model(name).eval()
    report = convzoo.analyze(model, (3, size, size), receptive_fields=False)
    meta = torchvision.models.get_model(name).eval().to("meta")
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        meta(torch.empty(1, 3, size, size, device="meta"))
    counts = counter.get_flop_counts()
    root = type(model).__name__
    checked = 0
    for row in report.layers:
        theirs = {
            op.__name__: n for op, n in counts.get(f"{root}.{row.name}".rstrip("."), {}).items()
        }
        ours = {o.op: 2 * o.macs for o in report.by_operator(row.name) if o.macs}
        assert ours == theirs, row.name
        checked += bool(ours)
    assert checked > 20
    everything = {op.__name__: n for op, n in counts["Global"].items()}
    assert {o.op: 2 * o.macs for o in report.by_operator() if o.macs} == everything


def test_subtree_view_keeps_its_operators() -> None:
    from convzoo.views import subtree

    model = torchvision.models.resnet18()
    report = convzoo.analyze(model, (3, 64, 64), receptive_fields=False)
    part = subtree(report, model, "layer2")
    assert part.by_operator() == [replace(o, module="") for o in report.by_operator("layer2")]
    assert {o.module.split(".")[0] for o in part.operators} == {"layer2"}


def test_op_counts_feed_the_fvcore_comparison() -> None:
    counts = op_counts(hand_report())
    assert counts == Counter(
        {
            ("macs", "convolution"): 2_000,
            ("elementwise", "convolution"): 20,  # fused into the MAC kernel
            ("elementwise", "relu"): 50,
        }
    )
    uncounted = hand_report(operators=[OperatorStats("a", "weird", "uncounted", 4)])
    assert op_counts(uncounted) == Counter({("uncounted", "weird"): 4})


# -- rendering -----------------------------------------------------------------------------


def test_operator_table_columns_and_shares() -> None:
    text = hand_report().operator_table()
    lines = text.splitlines()
    assert lines[0].split() == ["op", "kind", "calls", "MACs", "share", "element-wise", "ops"]
    assert lines[2].split() == ["convolution", "macs", "2", "2.00K", "100.0%", "20"]
    assert lines[3].split() == ["relu", "elementwise", "2", "0", "-", "50"]
    assert lines[4].split() == ["total", "4", "2.00K", "100.0%", "70"]
    assert "free ops:     view x3" in text
    part = hand_report().operator_table("markdown", module="b")
    assert (
        "| convolution" in part and "25.0%" not in part and "- **operators of**: hand / b" in part
    )
    assert "500" in part and "100.0%" in part  # shares of the subtree's MACs


def test_memory_lines_and_saved_column_only_when_analysed() -> None:
    plain = hand_report()
    text = plain.to_table()
    assert "inference peak" not in text and "training step" not in text
    assert "saved" not in text.splitlines()[0]
    saved = [640, 384, 256, 0, 256]
    back = [900, 500, 400, 0, 0]
    rows = [
        replace(r, saved_bytes=s, backward_macs=b)
        for r, s, b in zip(plain.layers, saved, back, strict=True)
    ]
    peak = replace(plain.totals, peak_activation_bytes=3 * 1024**2)
    training = TrainingMemory("sgd-momentum", 1200, 1200, 1200, 640, 450, 900, 30, 60, 0, 900)
    report = replace(plain, layers=rows, totals=peak, training=training)
    text = report.to_table()
    header, *_ = text.splitlines()
    assert header.split()[-3:] == ["saved", "backward", "MACs"]
    table = text.split("\n\n")[0].splitlines()
    assert table[3].split()[-3:] == ["384", "B", "500"]
    assert table[-1].split()[-3:] == ["640", "B", "900"]
    summary = dict(line.split(":", 1) for line in text.split("\n\n")[1].splitlines())
    assert summary["inference peak"].strip() == "3.00 MiB (3,145,728), by tensor liveness"
    assert summary["training step"].strip() == (
        "4.14 KiB (4,240) = params 1.17 KiB + gradients 1.17 KiB + optimizer state "
        "(sgd-momentum) 1.17 KiB + saved tensors 640 B"
    )
    assert summary["training MACs"].strip() == (
        "1.35K (1,350) = forward 450 + backward 900; optimizer (sgd-momentum) 900 element-wise ops"
    )
    assert re.search(r"<th[^>]*>\s*saved</th>", report._repr_html_())
    missing = replace(report, layers=[replace(rows[0], saved_bytes=None, backward_macs=None)])
    assert render.layer_rows(missing)[0][-2:] == ["-", "-"]  # a row without the figures


def test_table_unchanged_without_memory_analysis() -> None:
    """The layer table of a report without memory figures has exactly the old columns."""
    report = hand_report()
    assert render.columns(report) == (render.HEADERS, render.ALIGN)
    assert all(len(row) == len(render.HEADERS) for row in render.layer_rows(report))
