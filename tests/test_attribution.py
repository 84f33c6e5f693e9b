"""Rows that add up (issue 21): one owner per cost (:mod:`convzoo.analysis.owners`), and
``activation_bytes`` that does not move when an op is made in place.

Every case is a small hand-made model with hand counts; :func:`assert_rows_add_up` checks
the invariants on any report against the model's own ``named_parameters`` (torch's rule for
a shared tensor: its first name), and the slow tier runs it over the shipped configs, every
torchvision classifier and a timm sample.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn

import convzoo
from convzoo.analysis.report import Report

FIELDS = ("macs", "elementwise_ops", "params", "activation_bytes", "saved_bytes", "calls")


def _children(report: Report) -> dict[str, list[str]]:
    kids: dict[str, list[str]] = {row.name: [] for row in report.layers}
    for row in report.layers:
        if row.name:
            kids[row.name.rpartition(".")[0]].append(row.name)
    return kids


def assert_rows_add_up(report: Report, model: nn.Module) -> None:
    """Self costs add up to the totals and every row is its own part plus its children's:
    MACs exactly (``self_macs``), parameters exactly (each tensor in the module that
    ``model.named_parameters()`` names it under), activation bytes exactly (only leaves
    produce them), element-wise ops and saved bytes at least (a container's own ops);
    an alias row holds nothing and names a first-name row of the same type."""
    rows = {row.name: row for row in report.layers}
    own_params: dict[str, int] = {}
    for name, p in model.named_parameters():
        owner = name.rpartition(".")[0]
        own_params[owner] = own_params.get(owner, 0) + p.numel()
    for name, kids in _children(report).items():
        row, below = rows[name], [rows[k] for k in kids]
        assert row.macs == row.self_macs + sum(k.macs for k in below), name
        assert row.params == own_params.get(name, 0) + sum(k.params for k in below), name
        assert row.elementwise_ops >= sum(k.elementwise_ops for k in below), name
        if below:
            assert row.activation_bytes == sum(k.activation_bytes for k in below), name
        if row.saved_bytes is not None:
            assert row.saved_bytes >= sum(k.saved_bytes or 0 for k in below), name
        if row.alias_of is not None:
            first = rows[row.alias_of]
            assert first.alias_of is None and first.type == row.type, name
            assert not any(getattr(row, f) for f in (*FIELDS, "self_macs")), name
    t, root = report.totals, rows[""]
    assert sum(row.self_macs for row in report.layers) == t.macs == root.macs
    assert (root.params, root.elementwise_ops) == (t.params, t.elementwise_ops)
    assert root.activation_bytes == t.activation_bytes
    if report.training is not None:
        assert root.saved_bytes == report.training.saved_bytes


# -- one module under several names -----------------------------------------------------------
class TwoNames(nn.Module):
    """One conv registered as ``a`` and ``b``, called once (through ``b``)."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 8, 3)
        self.b = self.a

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(x)


def test_a_module_under_two_names_counts_once_under_its_first_name() -> None:
    model = TwoNames()
    report = convzoo.analyze(model, (3, 8, 8), optimizer="sgd")
    macs = 6 * 6 * 8 * 3 * 3 * 3  # H_out W_out C_out C_in k k
    out = 8 * 6 * 6 * 4
    assert report.totals.macs == macs == sum(row.self_macs for row in report.layers)
    a, b = report["a"], report["b"]
    assert (a.macs, a.params, a.calls, a.activation_bytes) == (macs, 8 * 27 + 8, 1, out)
    assert a.saved_bytes == report.training.saved_bytes == 3 * 8 * 8 * 4  # the input
    assert b.alias_of == "a" and (b.macs, b.params, b.calls, b.saved_bytes) == (0, 0, 0, 0)
    assert (b.output_shape, b.receptive_field) == (a.output_shape, a.receptive_field)  # not costs
    assert_rows_add_up(report, model)
    # the alias is shown in every format
    assert "Conv2d (alias of a)" in report.to_table()
    assert json.loads(report.to_json())["layers"][2]["alias_of"] == "a"
    assert [r["alias_of"] for r in csv.DictReader(io.StringIO(report.to_csv()))] == ["", "", "a"]
    assert Report.from_json(report.to_json())["b"].alias_of == "a"


class Block(nn.Module):
    def __init__(self, fc: nn.Linear) -> None:
        super().__init__()
        self.fc = fc

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x) * 2


class SharedLinear(nn.Module):
    """One Linear placed in two blocks, each block calling it once."""

    def __init__(self) -> None:
        super().__init__()
        fc = nn.Linear(16, 16)
        self.block1, self.block2 = Block(fc), Block(fc)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block2(self.block1(x))


def test_a_linear_in_two_blocks_belongs_to_the_first_and_no_child_exceeds_its_parent() -> None:
    model = SharedLinear()
    report = convzoo.analyze(model, (16,), optimizer="sgd")
    one = 16 * 16  # one call, batch 1
    fc, block1, block2 = report["block1.fc"], report["block1"], report["block2"]
    assert report.totals.macs == fc.macs == block1.macs == 2 * one and fc.calls == 2
    assert block2.macs == 0 and block2.calls == 1  # it ran, calling a module block1 owns
    assert block1.elementwise_ops == block2.elementwise_ops == 16  # each its own mul by 2
    assert report["block2.fc"].alias_of == "block1.fc"
    assert fc.params == block1.params == report.totals.params == 16 * 16 + 16
    assert block2.params == 0
    # saved bytes: each block's Linear saves its input (64 bytes); the muls save nothing
    assert fc.saved_bytes == block1.saved_bytes == report.training.saved_bytes == 2 * 64
    assert block2.saved_bytes == 0
    assert_rows_add_up(report, model)


class Tied(nn.Module):
    """Two Linears sharing one weight: the tensor is ``first.weight`` (torch's name)."""

    def __init__(self) -> None:
        super().__init__()
        self.first, self.second = nn.Linear(8, 8), nn.Linear(8, 8)
        self.second.weight = self.first.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.second(self.first(x))


def test_a_shared_parameter_counts_once_in_its_first_holder() -> None:
    model = Tied()
    report = convzoo.analyze(model, (8,))
    assert (report["first"].params, report["second"].params) == (64 + 8, 8)
    assert report.totals.params == 64 + 8 + 8 == sum(p.numel() for p in model.parameters())
    assert_rows_add_up(report, model)


# -- containers that never run ---------------------------------------------------------------
class Holder(nn.Module):
    """A module whose forward never runs: its parent calls its child directly."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - never called
        raise AssertionError("not called")


class Lists(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            [nn.Conv2d(3 if i == 0 else 4, 4, 3, padding=1) for i in (0, 1)]
        )
        self.heads = nn.ModuleDict({"act": nn.ReLU(), "pool": nn.AvgPool2d(2)})
        self.holder = Holder()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.heads["pool"](self.holder.conv(self.heads["act"](x)))


def test_containers_that_never_run_show_their_childrens_sums() -> None:
    model = Lists()
    report = convzoo.analyze(model, (3, 8, 8))
    conv0, conv1, conv2 = 8 * 8 * 4 * 3 * 9, 8 * 8 * 4 * 4 * 9, 8 * 8 * 4 * 4
    blocks, heads, holder = report["blocks"], report["heads"], report["holder"]
    assert blocks.calls == heads.calls == holder.calls == 0
    assert blocks.macs == conv0 + conv1 and holder.macs == conv2
    assert blocks.params == (4 * 27 + 4) + (4 * 36 + 4) and holder.params == 16 + 4
    out = 4 * 8 * 8 * 4
    assert blocks.activation_bytes == 2 * out and holder.activation_bytes == out
    assert heads.activation_bytes == out + out // 4  # relu, pool
    assert heads.elementwise_ops == 4 * 8 * 8 + 4 * 4 * 4 * 4  # relu, 2x2 reads per output
    assert_rows_add_up(report, model)


# -- activation bytes and in-place ops --------------------------------------------------------
def twins(inplace: bool) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.ReLU(inplace=inplace),
        nn.Identity(),  # passes its input on: nothing new
        nn.Flatten(),  # a view of its input: nothing new
        nn.Dropout(0.5, inplace=inplace),  # eval mode: its input as it is
    )


def test_activation_bytes_do_not_change_when_an_op_runs_in_place() -> None:
    out = 4 * 8 * 8 * 4  # conv and relu outputs, float32
    fresh, inplace = (convzoo.analyze(twins(v), (3, 8, 8)) for v in (False, True))
    for report in (fresh, inplace):
        assert report.totals.activation_bytes == 2 * out
        assert report["1"].activation_bytes == out  # in place or not: the relu's values
        assert report["2"].activation_bytes == report["3"].activation_bytes == 0
    # the inference peak does see the in-place relu: input + conv output (+ relu output)
    x = 3 * 8 * 8 * 4
    assert inplace.totals.peak_activation_bytes == x + out
    assert fresh.totals.peak_activation_bytes == x + 2 * out


class HookedInPlace(nn.Module):
    """An in-place ReLU followed by forward hooks (the tracer's hook path, not its wrapper)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.act = nn.ReLU(inplace=True)
        self.act.register_forward_hook(lambda m, i, o: None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv(x))


def test_an_in_place_module_followed_by_hooks_counts_its_output() -> None:
    report = convzoo.analyze(HookedInPlace(), (3, 8, 8))
    assert report["act"].activation_bytes == 4 * 8 * 8 * 4


def test_resnet18_config_and_torchvision_give_the_same_activation_bytes() -> None:
    """The same network, with in-place ReLUs (torchvision) and without (the config)."""
    config = convzoo.analyze("configs/resnet18.yaml", receptive_fields=False)
    vision = convzoo.analyze(torchvision.models.resnet18(), (3, 224, 224), receptive_fields=False)
    assert config.totals.macs == vision.totals.macs
    assert config.totals.activation_bytes == vision.totals.activation_bytes
    peak = (config.totals.peak_activation_bytes, vision.totals.peak_activation_bytes)
    assert peak[1] < peak[0]  # in-place ReLUs hold less at once


# -- the sweep ----------------------------------------------------------------------------------
CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))
TIMM = ["xcit_nano_12_p16_224", "gcvit_xxtiny", "coat_lite_tiny", "convnext_atto", "resnet18"]


@pytest.mark.slow
@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_rows_add_up_on_every_shipped_config(path: Path) -> None:
    model = convzoo.build(path, meta=True)  # batch 2: batch norm trains on 1x1 maps too
    report = convzoo.analyze(model, batch_size=2, receptive_fields=False, optimizer="sgd")
    assert_rows_add_up(report, model)


@pytest.mark.slow
def test_rows_add_up_on_every_torchvision_classifier() -> None:
    from tests.test_crosscheck import ALL, cc

    for spec in ALL:
        model = cc.build(spec, meta=True)
        report = convzoo.analyze(
            model, spec.input_size, batch_size=2, receptive_fields=False, optimizer="sgd"
        )
        assert_rows_add_up(report, model)


@pytest.mark.slow
@pytest.mark.parametrize("name", TIMM)
def test_rows_add_up_on_timm_models(name: str) -> None:
    timm = pytest.importorskip("timm")
    model = timm.create_model(name, pretrained=False).eval()
    size = tuple(model.pretrained_cfg["input_size"])
    report = convzoo.analyze(model, size, batch_size=2, receptive_fields=False, optimizer="sgd")
    assert_rows_add_up(report, model)
    if name in ("xcit_nano_12_p16_224", "gcvit_xxtiny"):  # ModuleLists that never run
        lists = [r for r in report.layers if r.type == "ModuleList"]
        assert lists and all(r.calls == 0 and r.macs > 0 for r in lists)
