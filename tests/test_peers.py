"""Cross-checks of ``convzoo.analyze`` against peer counters on torchvision classifiers.

Peers: ``torch.utils.flop_counter.FlopCounterMode`` (2 FLOPs per multiply-add, linear
algebra only, like convzoo's ``macs``) and fvcore ``FlopCountAnalysis`` (one "flop" per
multiply-add). Each model is built once (a module-scoped fixture) and analysed once. Every
difference from a peer is asserted to equal an amount computed from its stated reason.
"""

from __future__ import annotations

import re
import subprocess
import sys
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode, flop_registry

import convzoo
from convzoo.analysis.report import Report

torchvision = pytest.importorskip("torchvision")
aten = torch.ops.aten

ROOT = Path(__file__).resolve().parents[1]
MODELS = {  # model -> input (C, H, W); 96 (odd 3x3 final maps) keeps the CNNs cheap
    "resnet18": (3, 96, 96),
    "mobilenet_v2": (3, 96, 96),
    "vgg11": (3, 96, 96),
    "densenet121": (3, 96, 96),
    "efficientnet_b0": (3, 96, 96),
    "squeezenet1_0": (3, 96, 96),
    "shufflenet_v2_x0_5": (3, 96, 96),
    "regnet_x_400mf": (3, 96, 96),
    "convnext_tiny": (3, 96, 96),
    "vit_b_16": (3, 224, 224),  # its position embedding fixes the input size
}
# The op nn.MultiheadAttention runs instead of its Python path in eval + no_grad on CPU.
FAST_MHA = "_native_multi_head_attention"


@dataclass
class Case:
    name: str
    model: nn.Module
    report: Report
    x: torch.Tensor
    mha_queries: list[tuple[nn.MultiheadAttention, torch.Size]] = field(default_factory=list)


FAST = {"resnet18", "convnext_tiny"}  # the others (vit_b_16: 10 s) run with the peers marker


@pytest.fixture(
    scope="module",
    params=[pytest.param(n, marks=() if n in FAST else pytest.mark.peers) for n in MODELS],
)
def case(request: pytest.FixtureRequest) -> Case:
    model = torchvision.models.get_model(request.param, weights=None).eval()
    size = MODELS[request.param]
    return Case(request.param, model, convzoo.analyze(model, size), torch.randn(1, *size))


class OpLog(TorchDispatchMode):
    """Counts aten op packets by name (an independent witness of what a forward ran)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: Counter[str] = Counter()

    def __torch_dispatch__(
        self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None
    ) -> Any:
        self.calls[func.overloadpacket.__name__] += 1
        return func(*args, **(kwargs or {}))


def record_mha_queries(case: Case) -> list[torch.utils.hooks.RemovableHandle]:
    """Pre-hooks that record (module, query shape) of every nn.MultiheadAttention call."""
    case.mha_queries.clear()

    def hook(module: nn.Module, args: tuple, kwargs: dict) -> None:
        query = args[0] if args else kwargs["query"]
        case.mha_queries.append((module, query.shape))

    return [
        m.register_forward_pre_hook(hook, with_kwargs=True)
        for m in case.model.modules()
        if isinstance(m, nn.MultiheadAttention)
    ]


def mha_dims(module: nn.MultiheadAttention, shape: torch.Size) -> tuple[int, int, int]:
    """(batch, tokens, embed) of a self-attention call from its query shape."""
    assert module._qkv_same_embed_dim, "the formulas below assume kdim == vdim == embed_dim"
    b, n = (shape[0], shape[1]) if module.batch_first else (shape[1], shape[0])
    return b, n, module.embed_dim


def projection_macs(module: nn.MultiheadAttention, shape: torch.Size) -> int:
    """in_proj (3 E x E) and out_proj (E x E) applied to every token: B * 4 * L * E^2."""
    b, n, e = mha_dims(module, shape)
    return b * 4 * n * e * e


def attention_core_macs(module: nn.MultiheadAttention, shape: torch.Size) -> int:
    """Q K^T and (softmax) V over all heads: B * 2 * L^2 * E."""
    b, n, e = mha_dims(module, shape)
    return b * 2 * n * n * e


# -- params ------------------------------------------------------------------------------
def test_params_are_the_unique_parameters(case: Case) -> None:
    unique = {id(p): p for _, p in case.model.named_parameters(remove_duplicate=False)}
    assert case.report.totals.params == sum(p.numel() for p in unique.values())
    assert case.report.totals.trainable_params == case.report.totals.params
    assert case.report.layer("").params == case.report.totals.params


def test_tied_and_frozen_parameters_are_counted_once() -> None:
    a, b, c = nn.Linear(8, 8, bias=False), nn.Linear(8, 8), nn.Linear(8, 8, bias=False)
    b.weight = a.weight  # tied weights, b keeps its own bias
    a.weight.requires_grad_(False)
    model = nn.Sequential(a, nn.ReLU(), b, c, c)  # c runs twice: its weight counts once
    report = convzoo.analyze(model, (8,))
    assert report.totals.params == 64 + 8 + 64
    assert report.totals.trainable_params == 8 + 64
    assert report.totals.macs == 4 * 8 * 8  # four 8x8 matmuls on one row


# -- FlopCounterMode -----------------------------------------------------------------------
def test_macs_match_flop_counter_mode(case: Case) -> None:
    """convzoo MACs == FlopCounterMode FLOPs / 2, in eval mode under no_grad (how it is used).

    Difference, asserted exactly: in eval + no_grad on CPU nn.MultiheadAttention takes its
    fused fast path (one ``aten._native_multi_head_attention`` call), for which
    FlopCounterMode has no formula and which it drops silently, so its projections and its
    attention core are missing from the peer's total. convzoo runs on meta tensors, where
    the fast path is not taken, and counts them. With grad enabled (no fast path) the
    projections are counted by both and only the CPU attention kernel's core is missing.
    """
    handles = record_mha_queries(case)
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter, OpLog() as log:
            case.model(case.x)
    finally:
        for h in handles:
            h.remove()
    flops = counter.get_total_flops()
    assert flops % 2 == 0
    fast = case.mha_queries if log.calls[FAST_MHA] else []
    assert log.calls[FAST_MHA] == len(fast)  # every MHA call took the fast path, or none
    missed = sum(projection_macs(m, s) + attention_core_macs(m, s) for m, s in fast)
    assert case.report.totals.macs - flops // 2 == missed
    if case.name == "vit_b_16":  # the difference is real here: detect it, don't skip it
        assert len(fast) == len(case.model.encoder.layers) == 12
        assert missed == 12 * (4 * 197 * 768**2 + 2 * 197**2 * 768)
        counts = counter.get_flop_counts()
        assert not any("self_attention" in module for module in counts)  # silently dropped
        # grad on: no fast path; projections now counted, the attention core runs as
        # aten._scaled_dot_product_flash_attention_for_cpu, which has no formula in
        # FlopCounterMode's registry (CUDA's flash/efficient/cudnn variants do)
        with FlopCounterMode(display=False) as grad_counter, OpLog() as grad_log:
            case.model(case.x)
        cpu_sdpa = aten._scaled_dot_product_flash_attention_for_cpu
        assert grad_log.calls[cpu_sdpa.__name__] == 12
        core = sum(attention_core_macs(m, s) for m, s in fast)
        missed = 0 if cpu_sdpa in flop_registry else core
        assert case.report.totals.macs - grad_counter.get_total_flops() // 2 == missed
    assert case.report.complete, case.report.uncounted_ops


# -- fvcore ----------------------------------------------------------------------------------
def leaf_conv_linear_macs(case: Case) -> tuple[int, list[str]]:
    """convzoo MACs summed over the rows of leaf Conv2d / Linear modules, and those names."""
    modules = dict(case.model.named_modules())
    rows = [r for r in case.report.layers if isinstance(modules[r.name], (nn.Conv2d, nn.Linear))]
    return sum(r.macs for r in rows), [r.name for r in rows]


def test_conv_linear_macs_match_fvcore(case: Case) -> None:
    """Leaf Conv2d + Linear rows of convzoo == fvcore's ``conv`` + ``linear`` counts.

    Difference, asserted exactly: nn.MultiheadAttention applies its input and output
    projections with ``F.linear`` on its own weights and never calls its ``out_proj``
    module, so no leaf Linear row holds them (the ``out_proj`` row has 0 calls), while
    fvcore sees the ``aten::linear`` calls: ``B * 4 * L * E^2`` per attention call.
    """
    fvcore_nn = pytest.importorskip("fvcore.nn")
    handles = record_mha_queries(case)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            analysis = fvcore_nn.FlopCountAnalysis(case.model, case.x)
            analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
            by_op = analysis.by_operator()
    finally:
        for h in handles:
            h.remove()
    # any other name for a matmul would need its own explanation: fail rather than ignore
    assert not {"matmul", "bmm", "addmm", "mm", "einsum", "baddbmm"} & set(by_op), by_op
    ours, names = leaf_conv_linear_macs(case)
    assert ours > 0 and by_op["conv"] > 0
    mha = [m for m in case.model.modules() if isinstance(m, nn.MultiheadAttention)]
    for module in mha:
        prefix = next(n for n, m in case.model.named_modules() if m is module)
        row = case.report.layer(f"{prefix}.out_proj")
        assert row.calls == 0 and row.macs == 0 and f"{prefix}.out_proj" in names
    assert len(case.mha_queries) == len(mha)
    explained = sum(projection_macs(m, s) for m, s in case.mha_queries)
    assert by_op["conv"] + by_op.get("linear", 0) - ours == explained
    if case.name == "vit_b_16":
        assert explained == 12 * 4 * 197 * 768**2


# -- the benchmark script --------------------------------------------------------------------
@pytest.mark.slow
def test_bench_quick_prints_a_convzoo_row() -> None:
    """``bench_analyzer.py --quick`` runs and prints a convzoo row whose MACs agree with the
    FlopCounterMode row (resnet50: no attention, so the two must be equal)."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench_analyzer.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = {}
    for line in proc.stdout.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| ") and len(cells) > 4:
            rows[cells[0]] = cells
    head = rows["tool"]
    assert "convzoo" in rows, proc.stdout
    macs = rows["convzoo"][head.index("MACs 224")]
    assert re.fullmatch(r"[\d,]+", macs), macs
    assert int(macs.replace(",", "")) > 4 * 10**9  # resnet50: ~4.09 GMACs
    peer = rows.get("FlopCounterMode")
    if peer is not None and len(peer) == len(head):
        assert peer[head.index("MACs 224")] == macs
