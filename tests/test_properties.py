"""Property-based tests: random valid models from the registry (tests/strategies.py) and
``convzoo.analyze`` against a real forward pass, torch's FlopCounterMode and the gradient
support of single output units.

Per example: (1) params == the unique parameters' numel, per row too; (2) every row's
output shape == the shape its module returned on a real input (forward hooks, last call),
and the model's output shape == the one predicted from the padding definitions; (3) MACs ==
FlopCounterMode FLOPs / 2 per module, for modules without an FFT or deformable conv inside
(FlopCounterMode does not count those ops the same way); (4) the receptive field == the
support of the input gradient of output units (float64, positive weights; a final strided
upsampling is checked over its phases); (5) analysis leaves the model, its modes, hooks
and config untouched. Profiles: see tests/strategies.py (HYPOTHESIS_PROFILE=thorough).
"""

from __future__ import annotations

import copy
import random
from collections import Counter
from typing import Any

import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import convzoo
from convzoo.config import ConfigError
from convzoo.layers.deformable import Deformable
from convzoo.layers.fft import FFTConv
from tests.conftest import COUNTS
from tests.strategies import Plan, models
from tests.test_receptive_gradients import positive_, support

BATCH = 2
# DEFECT 1 (reported to the lead): aten.hardswish has no class in convzoo/analysis/ops.py, so
# activation(fn="hardswish") is reported as an uncounted op and ``complete`` is False.
KNOWN_UNCOUNTED = {"hardswish"}
# DEFECT 2: the builder infers shapes with one sample in training mode, so batch norm (alone
# or inside a layer or block) after a 1x1 feature map fails to build with torch's "Expected
# more than 1 value per channel when training"; such examples are rejected.
BN_ON_ONE_PIXEL = "Expected more than 1 value per channel when training"


def build(config: dict[str, Any]) -> nn.Module:
    try:
        return convzoo.build(config)
    except ConfigError as exc:
        assume(BN_ON_ONE_PIXEL not in str(exc))
        raise


HOOK_DICTS = (
    "_forward_hooks",
    "_forward_pre_hooks",
    "_backward_hooks",
    "_backward_pre_hooks",
    "_state_dict_hooks",
    "_load_state_dict_pre_hooks",
)


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Any:
    """Tiny tensors: one intra-op thread (several cost 10-100x on a loaded 2-core machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def snapshot(model: nn.Module) -> dict[str, Any]:
    """Everything analysis must not change: tensors, identities, flags, modes and hooks."""
    return {
        "state": {k: v.detach().clone() for k, v in model.state_dict(keep_vars=True).items()},
        "ids": [id(p) for p in model.parameters()] + [id(b) for b in model.buffers()],
        "grad": [p.requires_grad for p in model.parameters()],
        "kind": [(t.dtype, t.device) for t in [*model.parameters(), *model.buffers()]],
        "modes": [(name, m.training) for name, m in model.named_modules()],
        "hooks": [len(getattr(m, h)) for m in model.modules() for h in HOOK_DICTS],
        "global": [
            len(getattr(nn.modules.module, h))
            for h in (
                "_global_forward_hooks",
                "_global_forward_pre_hooks",
                "_global_module_registration_hooks",
            )
        ],
    }


def assert_unchanged(before: dict[str, Any], after: dict[str, Any]) -> None:
    assert before["state"].keys() == after["state"].keys()
    for key, value in before["state"].items():
        now = after["state"][key]
        assert now.dtype == value.dtype and torch.equal(now, value), key
    for field in ("ids", "grad", "kind", "modes", "hooks", "global"):
        assert before[field] == after[field], field


def mixed_modes(model: nn.Module, seed: int) -> None:
    """Put a random subset of modules in eval mode, so restoring the flags is tested."""
    rng = random.Random(seed)
    for module in model.modules():
        if rng.random() < 0.3:
            module.training = False


def real_run(
    model: nn.Module, shape: tuple[int, ...], dtype: torch.dtype
) -> tuple[dict[str, list[int]], Counter[str], dict[str, int], int, tuple[int, ...]]:
    """Output shape (last call) and calls per module name, FlopCounterMode FLOPs per module
    name and in total, and the model's output shape, from one eval forward on random data."""
    shapes: dict[str, list[int]] = {}
    calls: Counter[str] = Counter()

    def record(name: str) -> Any:
        def hook(module: nn.Module, inputs: Any, output: Any) -> None:
            first = output if isinstance(output, torch.Tensor) else output[0]
            shapes[name] = list(first.shape)
            calls[name] += 1

        return hook

    handles = [m.register_forward_hook(record(n)) for n, m in model.named_modules()]
    model.to(dtype).eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            y = model(torch.randn(BATCH, *shape, dtype=dtype))
    finally:
        for h in handles:
            h.remove()
    root = type(model).__name__
    flops = {}
    for key, ops in counter.get_flop_counts().items():
        if key == root or key.startswith(root + "."):
            flops[key[len(root) + 1 :]] = sum(ops.values())
    return shapes, calls, flops, counter.get_total_flops(), tuple(y.shape)


@given(plan=models(), float64=st.booleans(), train=st.booleans())
def test_analysis_agrees_with_a_real_run(plan: Plan, float64: bool, train: bool) -> None:
    COUNTS["property examples"] += 1
    config = copy.deepcopy(plan.config)
    model = build(config)
    assert config == plan.config  # building does not edit the config
    mixed_modes(model, plan.seed)
    before = snapshot(model)
    report = convzoo.analyze(model, plan.input, batch_size=BATCH, train=train)
    assert_unchanged(before, snapshot(model))  # (5)

    # (1) params: each tensor once, per row and in total
    modules = dict(model.named_modules())
    unique = {id(p): p.numel() for p in model.parameters()}
    assert report.totals.params == sum(unique.values())
    for row in report.layers:
        assert row.params == sum(p.numel() for p in modules[row.name].parameters()), row.name

    # (2) shapes: every row against a real forward, the output against the definitions
    dtype = torch.float64 if float64 else torch.float32
    shapes, calls, flops, total, out = real_run(model, plan.input, dtype)
    assert out == (BATCH, *plan.out), (out, plan.out)
    assert report.output_shape == [BATCH, *plan.out]
    for row in report.layers:
        assert row.output_shape == shapes.get(row.name), (row.name, row.output_shape)
        assert row.calls == calls[row.name], (row.name, row.calls)

    # (3) MACs == FLOPs / 2 per module, where FlopCounterMode counts every op the same way
    opaque = (FFTConv, Deformable)
    for row in report.layers:
        if not any(isinstance(m, opaque) for m in modules[row.name].modules()):
            assert 2 * row.macs == flops.get(row.name, 0), (row.name, row.macs, flops)
    if not any(isinstance(m, opaque) for m in model.modules()):
        assert 2 * report.totals.macs == total
        missing = {op.op for op in report.uncounted_ops} - KNOWN_UNCOUNTED
        assert not missing, report.uncounted_ops


@given(plan=models(rf=True))
def test_receptive_field_matches_gradient_support(plan: Plan) -> None:
    """(4) Every checked unit's gradient support equals its exact field
    (``receptive_field.unit``): corners, a middle and a random unit, and with a final
    transposed conv or upsampling by ``t`` every phase of ``t x t`` units. No unit's
    support is wider than the summary's ``size``."""
    COUNTS["property examples"] += 1
    model = build(plan.config)
    report = convzoo.analyze(model, plan.input)
    field = report.receptive_field
    assert field is not None and not field.is_global, field  # no global op was generated
    positive_(model)
    h, w = report.output_shape[-2:]
    rng = random.Random(plan.seed)
    units = [(0, 0), (h - 1, w - 1), (h // 2, w // 3), (rng.randrange(h), rng.randrange(w))]
    t = plan.period
    units += [(min(h // 2 + k // t, h - 1), min(w // 2 + k % t, w - 1)) for k in range(t * t)]
    for unit in units:
        check_unit(model, plan.input, field, unit)


def check_unit(
    model: nn.Module, shape: tuple[int, ...], field: dict[str, Any], unit: tuple[int, int]
) -> None:
    """The unit's gradient support is its exact field (inside it where the field says it
    is only a bound), and no wider than the summary's size."""
    got = support(model, shape, unit)
    want = field.unit(*unit)
    if field.field.bound:
        for g, w in zip(got, want, strict=True):
            assert g is None or (w is not None and w[0] <= g[0] <= g[1] <= w[1]), (unit, got, want)
    else:
        assert got == want, (unit, got, want, field)
    for a, g in enumerate(got):
        assert g is None or g[1] - g[0] + 1 <= field.size[a], (unit, got, field)
