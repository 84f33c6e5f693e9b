"""Cross-check convzoo against its peers on every torchvision classification model.

The machinery is ``scripts/crosscheck_peers.py`` (loaded by path). Two tiers:

* every model (meta tensors; one per family in the fast tier, all under ``slow``): convzoo
  params == the model's unique parameters == torchvision's documented ``num_params``
  (googlenet's difference explained exactly), convzoo MACs == torchvision's documented
  GFLOPS within its 3-decimal rounding, and the report is complete;
* ``@pytest.mark.peers``: the models whose real checks are cheap, by the rule documented
  GFLOPS <= ``CHEAP_GMACS`` (50 models, ~1 min on 2 idle cores; the other 30 take ~6 min
  more: run the script): a real forward under FlopCounterMode and fvcore's
  ``FlopCountAnalysis`` (via ``compare_fvcore``); every difference must be explained by a
  known reason whose amount is computed exactly.

The reason formulas themselves are checked against the peers on tiny modules.
"""

from __future__ import annotations

import functools
import importlib.util
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import convzoo
from convzoo.analysis import ops, peers

torchvision = pytest.importorskip("torchvision")
fvcore_nn = pytest.importorskip("fvcore.nn")

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location(
    "crosscheck_peers", ROOT / "scripts/crosscheck_peers.py"
)
assert _spec is not None and _spec.loader is not None
cc = importlib.util.module_from_spec(_spec)
sys.modules["crosscheck_peers"] = cc  # dataclasses look their module up while defined
_spec.loader.exec_module(cc)

CHEAP_GMACS = 10.0  # the peers tier: models documented at most this many GMACs
ALL = cc.specs()
CHEAP = [s for s in ALL if s.doc_gflops <= CHEAP_GMACS]
# The only MAC disagreements expected, by model prefix: (peer, reason's first words).
VIT = {"vit_b_16": (12, 768, 16), "vit_b_32": (12, 768, 32), "vit_l_16": (24, 1024, 16)}
VIT |= {"vit_l_32": (24, 1024, 32), "vit_h_14": (32, 1280, 14)}  # ViT paper: layers, D, patch


def ids(spec: Any) -> str:
    return spec.name


# One model per family in the fast tier; the whole zoo runs in the slow tier (CI's own step).
FAST = {"resnet18", "googlenet", "efficientnet_b0", "vit_b_16", "swin_t", "maxvit_t"}
EVERY = [pytest.param(s, id=s.name, marks=() if s.name in FAST else pytest.mark.slow) for s in ALL]


@functools.cache
def meta(name: str) -> tuple[nn.Module, Any]:
    spec = next(s for s in ALL if s.name == name)
    model = cc.build(spec, meta=True)
    return model, convzoo.analyze(model, spec.input_size)


# -- every model: meta analysis --------------------------------------------------------------
def test_every_classification_model_is_listed() -> None:
    assert len(ALL) == len(torchvision.models.list_models(module=torchvision.models)) >= 80
    assert {"vit_h_14", "regnet_y_128gf", "maxvit_t", "swin_v2_b"} <= {s.name for s in ALL}
    assert len(CHEAP) >= 40


@pytest.mark.parametrize("spec", EVERY)
def test_params_and_documented_macs(spec: Any) -> None:
    model, report = meta(spec.name)
    found = {c.peer: c for c in cc.meta_comparisons(spec, model, report)}
    unique = {id(p): p.numel() for p in model.parameters()}
    assert report.totals.params == sum(unique.values()) > 0
    assert found["sum of unique parameters"].diff == 0
    gflops = found["torchvision GFLOPS"]
    assert abs(report.totals.macs - spec.doc_gflops * 1e9) <= 500_000 and gflops.agrees
    doc = found["torchvision num_params"]
    assert doc.unexplained == 0
    if spec.name == "googlenet":  # detected and explained, not skipped
        assert doc.diff > 0 and len(doc.reasons) == 1
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            plain = torchvision.models.googlenet(weights=None, aux_logits=False, init_weights=False)
        assert sum(p.numel() for p in plain.parameters()) == spec.doc_params
        assert doc.reasons[0].amount == report.totals.params - spec.doc_params
    else:
        assert doc.diff == 0 and not doc.reasons


@pytest.mark.parametrize("spec", EVERY)
def test_report_is_complete(spec: Any) -> None:
    report = meta(spec.name)[1]
    assert report.complete, report.uncounted_ops


# -- cheap models: real forwards under FlopCounterMode and fvcore ---------------------------
def vit_missed(name: str) -> int:
    """What both peers drop for a ViT, by hand: per layer 4 L E^2 + 2 L^2 E (L = tokens)."""
    layers, e, patch = VIT[name]
    tokens = (next(s for s in ALL if s.name == name).input_size[-1] // patch) ** 2 + 1
    return layers * (4 * tokens * e * e + 2 * tokens * tokens * e)


@pytest.mark.peers
@pytest.mark.parametrize("spec", CHEAP, ids=ids)
def test_macs_match_peers_or_differ_for_a_known_reason(spec: Any) -> None:
    result = cc.check(spec)
    assert not result.error, result.error
    found = {c.peer: c for c in result.comparisons}
    assert {"FlopCounterMode", "fvcore conv+linear+matmul", "fvcore total"} <= set(found)
    for c in result.comparisons:
        assert c.unexplained == 0, (c.peer, c.diff, [(r.text, r.amount) for r in c.reasons])
    assert found["compare_fvcore's convzoo side"].diff == 0
    flop_counter, fvcore = found["FlopCounterMode"], found["fvcore conv+linear+matmul"]
    if spec.name in VIT:  # nn.MultiheadAttention's fast path: both peers drop it
        assert flop_counter.diff == fvcore.diff == vit_missed(spec.name)
        for c in (flop_counter, fvcore):
            assert len(c.reasons) == 1 and "_native_multi_head_attention" in c.reasons[0].text
    elif spec.name == "maxvit_t":  # fvcore's rounded einsum counts
        assert flop_counter.diff == 0 and fvcore.diff != 0
        assert len(fvcore.reasons) == 1 and "einsum" in fvcore.reasons[0].text
    else:
        assert flop_counter.diff == fvcore.diff == 0
    extra = {r.text for r in found["fvcore total"].reasons if r.amount < 0}
    has_bn = any(isinstance(m, nn.BatchNorm2d) for m in cc.build(spec, meta=True).modules())
    assert any("batch norm" in t for t in extra) == has_bn


@pytest.mark.peers
def test_a_one_mac_error_per_convolution_is_caught() -> None:
    aten_conv = torch.ops.aten.convolution
    entry = ops.TABLE.get(aten_conv)
    assert entry is not None and entry.cost is not None
    conv = entry.cost
    ops.register_op(aten_conv, macs=lambda call: conv(call) + 1, replace=True)
    try:
        spec = next(s for s in ALL if s.name == "squeezenet1_1")
        result = cc.check(spec)
    finally:
        ops.register_op(aten_conv, macs=conv, replace=True)
    assert result.status == "unexplained" and not result.error
    found = {c.peer: c for c in result.comparisons}
    assert found["FlopCounterMode"].unexplained == 26  # squeezenet1_1 runs 26 convolutions
    assert found["torchvision GFLOPS"].agrees  # within the documentation's rounding
    assert "UNEXPLAINED [+26]" in cc.render([result]) and "1 unexplained" in cc.summary([result])


@pytest.mark.peers
def test_script_main_writes_the_tables(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "crosscheck.md"
    assert cc.main(["--models", "squeezenet1_1,vit_h_14", "--output", str(out)]) == 0
    text = out.read_text()
    assert text.strip() == capsys.readouterr().out.strip()
    assert text.strip().endswith(
        "2 models cross-checked (1 with real forwards, 1 meta-only): 2 agree exactly, "
        "0 differ with explained reasons, 0 unexplained"
    )
    assert "meta-only (params + convzoo MACs): 1017 GMACs > --real-max-gmacs 400" in text
    assert cc.main(["--models", "alexnet", "--max-seconds", "0"]) == 0
    assert "meta-only (params + convzoo MACs): --max-seconds 0 spent" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="not_a_model"):
        cc.main(["--models", "not_a_model"])


# -- the reasons' formulas against the peers themselves, on tiny modules -------------------
class Einsum(nn.Module):
    def __init__(self, equation: str) -> None:
        super().__init__()
        self.equation = equation

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.einsum(self.equation, a, b)


def fvcore_total(model: nn.Module, *inputs: torch.Tensor) -> int:
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        analysis = fvcore_nn.FlopCountAnalysis(model.eval(), inputs)
        analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        return int(analysis.total())


@pytest.mark.parametrize(
    "equation, a, b",
    [
        ("abc,abd->acd", (2, 3, 5), (2, 3, 7)),  # fvcore's special cases: exact
        ("abc,adc->adb", (2, 3, 5), (2, 7, 5)),
        ("B G H I D, B G H J D -> B G H I J", (1, 7, 3, 49, 32), (1, 7, 3, 49, 32)),  # rounds
        ("bij,bjk->bik", (3, 17, 19), (3, 19, 23)),  # 4 significant digits: rounds
        ("ij,jk->ik", (4, 5), (5, 6)),  # 120: exact in 4 digits
    ],
)
def test_einsum_formulas_match_fvcore_and_flop_counter(
    equation: str, a: tuple[int, ...], b: tuple[int, ...]
) -> None:
    x, y = torch.randn(a), torch.randn(b)
    shapes = [list(a), list(b)]
    assert cc.fvcore_einsum_macs(equation, shapes) == fvcore_total(Einsum(equation), x, y)
    with FlopCounterMode(display=False) as counter:
        torch.einsum(equation, x, y)
    assert cc.einsum_exact_macs(equation, shapes) == counter.get_total_flops() // 2
    assert cc.fvcore_einsum_macs("ab,bc,cd->ad", [[2, 3], [3, 4], [4, 5]]) is None


class SelfAttention(nn.Module):
    def __init__(self, embed: int = 8, heads: int = 2, batch_first: bool = True) -> None:
        super().__init__()
        self.mha = nn.MultiheadAttention(embed, heads, batch_first=batch_first)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mha(x, x, x, need_weights=False)[0]


@pytest.mark.parametrize("batch_first, shape", [(True, (2, 5, 8)), (False, (5, 3, 8))])
def test_mha_formula_matches_flop_counter_on_the_math_path(
    batch_first: bool, shape: tuple[int, ...]
) -> None:
    mha = nn.MultiheadAttention(8, 2, batch_first=batch_first)
    x = torch.randn(shape)
    with FlopCounterMode(display=False) as counter:  # need_weights: explicit bmm, no SDPA
        mha(x, x, x, need_weights=True)
    assert cc.mha_macs(mha, x.shape, x.shape) == counter.get_total_flops() // 2


def test_fast_path_drop_is_explained_exactly() -> None:
    model, x = SelfAttention().eval(), torch.randn(1, 5, 8)
    fwd = cc.real_forward(model, x)
    assert fwd.ops.calls[cc.FAST_MHA] == 1 and len(fwd.mha) == 1  # the fast path ran
    macs = convzoo.analyze(model, (5, 8)).totals.macs
    comparison = cc.flop_counter_comparison(macs, fwd)
    assert comparison.diff == 4 * 5 * 8 * 8 + 2 * 5 * 5 * 8 and comparison.unexplained == 0
    fvcore = cc.fvcore_comparisons(macs, peers.compare_fvcore(model, (5, 8)), fwd)
    assert [c.unexplained for c in fvcore] == [0, 0, 0] and fvcore[1].diff == comparison.diff


class Norms(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn, self.bn_plain = nn.BatchNorm2d(4), nn.BatchNorm2d(4, affine=False)
        self.gn, self.ln = nn.GroupNorm(2, 4), nn.LayerNorm(6, elementwise_affine=False)
        self.pool = nn.AdaptiveAvgPool2d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.ln(self.gn(self.bn_plain(self.bn(self.conv(x)))))
        x = F.batch_norm(x, self.bn.running_mean, self.bn.running_var)  # defaults: eval, plain
        return F.adaptive_avg_pool2d(self.pool(x), 1)


def test_fvcore_extra_counts_are_explained_exactly() -> None:
    model, x = Norms().eval(), torch.randn(1, 3, 8, 8)
    fwd = cc.real_forward(model, x)
    macs = convzoo.analyze(model, (3, 8, 8)).totals.macs
    *_, total = cc.fvcore_comparisons(macs, peers.compare_fvcore(model, (3, 8, 8)), fwd)
    n = 4 * 6 * 6  # elements after the convolution
    by_hand = 2 * n + n + 5 * n + 4 * n + n + n + 4 * 2 * 2  # bn, bn, gn, ln, F.bn, 2 pools
    assert total.peer_value - macs == by_hand == fvcore_total(model, x) - macs
    assert total.unexplained == 0 and sum(r.amount for r in total.reasons) == -by_hand
