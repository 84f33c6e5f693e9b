"""The op table as data: registration (duplicates refused, free ops need a reason), rules
reading arguments by schema name, a user's rule for a custom op, and every op classified
and given the same field rule as before the table (tests/data/op_table_before.json, taken
from the rule tables this one replaced; field rules added since, for channel shuffles,
advanced indexing and slice/select scatters (issue 21), are in it too)."""

from __future__ import annotations

import ast
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import convzoo
from convzoo.analysis import ops
from convzoo.analysis.receptive import dispatch
from convzoo.analysis.receptive.mixing import mixing
from convzoo.errors import ConvZooError

ROOT = Path(__file__).resolve().parents[1]
BEFORE = json.loads((ROOT / "tests" / "data" / "op_table_before.json").read_text())
aten = torch.ops.aten


@torch.library.custom_op("convzoo_test::project", mutates_args=())
def project(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``x [.., k] @ w [k, m]``, as an op convzoo does not know."""
    return x @ w


@project.register_fake
def _(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return x.new_empty((*x.shape[:-1], w.shape[1]))


class Projection(nn.Module):
    def __init__(self, k: int, m: int, custom: bool = True) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(k, m))
        self.custom = custom

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return project(x, self.w) if self.custom else x @ self.w


class Permute(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(0, 2, 3, 1)  # [B, C, H, W] -> [B, H, W, C]


@pytest.fixture
def unregister() -> Iterator[list[Any]]:
    """Ops registered by a test, removed from the table afterwards."""
    added: list[Any] = []
    yield added
    for op in added:
        ops.TABLE.remove(op)


def project_macs(call: ops.OpCall) -> int:
    x, w = call.arg("x"), call.arg("w")
    return x.numel() // x.shape[-1] * w.numel()


def test_a_users_rule_counts_a_custom_op_and_completes_the_report(unregister: list) -> None:
    model = Projection(8, 6)
    before = convzoo.analyze(model, (4, 8))
    assert not before.complete and [u.op for u in before.uncounted_ops] == ["project"]
    assert before.totals.macs == 0
    unregister.append("convzoo_test::project")
    convzoo.register_op("convzoo_test::project", macs=project_macs)
    for meta in (True, False):
        after = convzoo.analyze(model, (4, 8), meta=meta)
        assert after.complete and not after.uncounted_ops
        reference = Projection(8, 6, custom=False)
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            reference(torch.randn(1, 4, 8))
        assert after.totals.macs == counter.get_total_flops() // 2 == 4 * 8 * 6


def test_a_users_field_rule_is_used(unregister: list) -> None:
    """A projection over channels (channels last) keeps the conv's field, as ``x @ w``."""

    def model(custom: bool) -> nn.Module:
        return nn.Sequential(nn.Conv2d(3, 5, 3), Permute(), Projection(5, 4, custom))

    unregister.append("convzoo_test::project")
    convzoo.register_op("convzoo_test::project", macs=project_macs)
    before = convzoo.analyze(model(True), (3, 9, 9))
    assert before.receptive_field is not None and before.receptive_field.size is None
    assert "2: no receptive-field rule for convzoo_test.project.default" in before.notes

    def over_last_dim(call: Any) -> tuple[Any, list[str]]:
        x = call.args["x"]
        return mixing(call, x, {x.dim() - 1}, keep=True)

    convzoo.register_op("convzoo_test::project", field=over_last_dim)
    after = convzoo.analyze(model(True), (3, 9, 9))
    reference = convzoo.analyze(model(False), (3, 9, 9))
    assert after.receptive_field == reference.receptive_field
    assert after.receptive_field == convzoo.analyze(nn.Conv2d(3, 5, 3), (3, 9, 9)).receptive_field
    assert after.complete and not after.notes


def test_duplicates_are_refused_with_one_line_errors(unregister: list) -> None:
    cases = [
        ({"macs": project_macs}, "aten::convolution already has a MAC rule; pass replace=True"),
        ({"free": "copy"}, "aten::convolution already has a MAC rule"),
        (
            {"field": lambda call: (None, [])},
            "aten::convolution already has a receptive-field rule",
        ),
    ]
    for aspects, message in cases:
        with pytest.raises(ConvZooError, match=message) as caught:
            convzoo.register_op(aten.convolution, **aspects)
        assert "\n" not in str(caught.value)
    with pytest.raises(ConvZooError, match="already has a receptive-field rule"):
        convzoo.register_op("torchvision::deform_conv2d", field=lambda call: (None, []))
    unregister.append("convzoo_test::project")
    convzoo.register_op("convzoo_test::project", elementwise=lambda call: 1)
    with pytest.raises(ConvZooError, match="already has an element-wise rule"):
        convzoo.register_op(torch.ops.convzoo_test.project, macs=project_macs)
    convzoo.register_op(torch.ops.convzoo_test.project, macs=project_macs, replace=True)
    assert ops.classify(torch.ops.convzoo_test.project.default) == "macs"


@pytest.mark.parametrize(
    ("op", "aspects", "message"),
    [
        ("convzoo_test::project", {"free": True}, "free= takes the reason"),
        ("convzoo_test::project", {"free": " "}, "free= takes the reason"),
        ("convzoo_test::project", {}, "nothing to register"),
        ("convzoo_test::project", {"macs": 3}, "macs= takes a function"),
        ("convzoo_test::project", {"macs": len, "free": "x"}, "give one of"),
        ("project", {"macs": len}, "'namespace::name' string"),
        (3, {"macs": len}, "torch.ops packet or overload"),
    ],
)
def test_bad_registrations_are_one_line_errors(op: Any, aspects: dict, message: str) -> None:
    with pytest.raises(ConvZooError, match=message) as caught:
        convzoo.register_op(op, **aspects)
    assert "\n" not in str(caught.value)
    assert ops.TABLE.get("convzoo_test::project") is None


def test_every_entry_is_costed_or_free_with_a_reason_or_a_field_rule() -> None:
    entries = list(ops.TABLE)
    assert len(entries) > 250
    for entry in entries:
        assert entry.kind in (*ops.table.KINDS, None), entry
        assert (entry.cost is not None) == (entry.kind in ("macs", "elementwise")), entry
        assert (entry.free is not None) == (entry.kind == "free"), entry
        assert entry.free is None or entry.free.strip(), entry
        assert entry.kind or entry.field, entry
    assert ops.TABLE.resolve(aten.view.default).free == ops.table.VIEW_REASON


def dispatcher_ops() -> Iterator[tuple[str, Any]]:
    """Every op overload of the namespaces the snapshot covers (torchvision if installed)."""
    pytest.importorskip("torchvision")
    for name in sorted(torch._C._dispatch_get_all_op_names()):
        namespace, _, rest = name.partition("::")
        if namespace not in ("aten", "quantized", "torchvision", "prims"):
            continue
        packet, _, overload = rest.partition(".")
        func = getattr(getattr(getattr(torch.ops, namespace), packet), overload or "default", None)
        if func is not None:
            yield name, func


def rule_name(rule: Any) -> str | None:
    if rule is None:
        return None
    keywords = getattr(rule, "keywords", {})
    name = getattr(rule, "func", rule).__name__
    return f"{name}{sorted(keywords.items())}" if keywords else name


def test_every_op_keeps_its_class_fused_rule_and_field_rule() -> None:
    """Against the snapshot of torch 2.14's ops (other releases tag some ops differently:
    on 2.11 ``aten::_conj_physical`` is not pointwise)."""
    version = ".".join(torch.__version__.split(".")[:2])
    if version != BEFORE["torch"]:
        pytest.skip(f"the snapshot is of torch {BEFORE['torch']}'s ops, this is torch {version}")
    seen = 0
    for name, func in dispatcher_ops():
        kind = BEFORE["kinds"].get(name, "uncounted")
        assert ops.classify(func) == kind, name
        assert (ops.fused(func) is not None) == (name in BEFORE["fused"]), name
        field = rule_name(dispatch.lookup(func))
        assert field == BEFORE["fields"].get(name, field if field == "elementwise" else None), name
        seen += 1
    assert seen > 3000


ANALYSIS = ROOT / "convzoo" / "analysis"
RULE_MODULES = [
    *sorted((ANALYSIS / "ops").glob("*.py")),
    *(ANALYSIS / "receptive" / f"{m}.py" for m in ("layout", "spatial", "resample", "mixing")),
]


def positional_reads(source: str) -> list[int]:
    """Lines reading ``args[<int>]`` or ``args[<slice>]`` (``call.args[0]`` too)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Subscript):
            continue
        target = node.value
        name = target.id if isinstance(target, ast.Name) else getattr(target, "attr", None)
        index = node.slice
        by_position = isinstance(index, ast.Slice) or (
            isinstance(index, ast.Constant) and isinstance(index.value, int)
        )
        if name == "args" and by_position:
            found.append(node.lineno)
    return found


@pytest.mark.parametrize("path", RULE_MODULES, ids=lambda p: p.name)
def test_rules_read_arguments_by_schema_name(path: Path) -> None:
    assert positional_reads(path.read_text()) == []


def test_the_positional_check_can_fail() -> None:
    assert positional_reads("x = args[6]\ny = call.args[3:6]\nz = args['dim']") == [1, 2]


def test_op_call_reads_arguments_by_name_with_schema_defaults() -> None:
    func = aten.convolution.default
    args = (torch.ones(1), torch.ones(1), None, [1], [0], [1], True, [0], 1)
    call = ops.OpCall(func, args, {}, None)
    assert call.arg("transposed") is True and call.arg("groups") == 1
    assert call.arg("no_such_argument", 7) == 7
    pool = ops.OpCall(aten.max_pool2d.default, (torch.ones(1), [3]), {}, None)
    assert pool.arg("kernel_size") == [3] and pool.arg("stride") == []
    assert pool.arg("ceil_mode") is False  # the schema's default
    assert ops.OpCall(func, (), {"transposed": False}, None).arg("transposed") is False


def test_fused_rules_view_reads_the_table() -> None:
    rnn = ops.FUSED_RULES.get(aten.mkldnn_rnn_layer)
    assert rnn is not None and aten.mkldnn_rnn_layer in ops.FUSED_RULES
    assert ops.FUSED_RULES.get(aten.convolution) is None
    assert set(ops.FUSED_RULES) == {op.rsplit(".", 1)[0] for op in BEFORE["fused"]}


class Deform(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(6, 4, 3, 3))

    def forward(self, x: torch.Tensor, offset: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        from torchvision.ops import deform_conv2d

        return deform_conv2d(x, offset, self.weight, mask=mask, padding=1)


def test_torchvision_ops_registered_by_name_are_costed() -> None:
    """Hand formula: the convolution, plus 4 MACs per bilinear sample and 1 for the mask."""
    pytest.importorskip("torchvision")
    x, offset, mask = torch.randn(2, 4, 7, 5), torch.randn(2, 18, 7, 5), torch.rand(2, 9, 7, 5)
    report = convzoo.analyze(Deform(), (x, offset, mask), meta=False)
    conv = 2 * 7 * 5 * 6 * 4 * 9
    assert report.complete and report.totals.macs == conv + 2 * 4 * 9 * 7 * 5 * 5
    assert ops.TABLE.get("torchvision::deform_conv2d").cost is not None


def test_in_place_ops_are_known_without_the_inplace_tag() -> None:
    """Older torch (2.11 and before) has no ``torch.Tag.inplace``: there the schema says
    which ops write their first argument. On every in-place variant of an element-wise op
    (the ones whose fields pass through) the schema and the tag agree (where the tag
    exists; without it, the schema's answer on a few ops by hand)."""
    from convzoo.analysis.ops.table import inplace_by_schema, tagged

    aten = torch.ops.aten
    assert inplace_by_schema(aten.relu_.default) and inplace_by_schema(aten.add_.Tensor)
    assert not inplace_by_schema(aten.relu.default) and not inplace_by_schema(aten.view.default)
    if getattr(torch.Tag, "inplace", None) is None:
        return
    checked = 0
    for name in dir(aten):
        packet = getattr(aten, name, None)
        if not isinstance(packet, torch._ops.OpOverloadPacket) or not name.endswith("_"):
            continue
        functional = getattr(aten, name.rstrip("_"), None)
        for overload in packet.overloads():
            func = getattr(packet, overload)
            pure = getattr(functional, overload, None) if functional else None
            if pure is None or not tagged(pure, "pointwise"):
                continue
            assert inplace_by_schema(func) == tagged(func, "inplace"), func
            checked += 1
    assert checked > 100
