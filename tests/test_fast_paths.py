"""Whole-model analyses are the same with the tracer's fast shape rules on and off: every
module's MACs, element-wise ops, output shape, activation bytes and receptive field, and
every per-operator tally (see :mod:`convzoo.analysis.meta_kernels`)."""

from __future__ import annotations

import types
from typing import Any

import pytest
import torch
from torch import nn

from convzoo.analysis import analyzer, inputs, isolation
from convzoo.analysis.counting import Tracer
from convzoo.analysis.field_flow import FieldFlow

tv = pytest.importorskip("torchvision")


def traced(model: nn.Module, size: tuple, fast: bool, train: bool) -> Tracer:
    """One meta-tensor forward of a private copy of ``model`` under a fresh tracer."""
    clone = isolation.private_copy(model, None, meta=True)
    args = inputs.spec(size, 2 if train else 1, torch.float32)("meta", None)
    tracer = Tracer(fast=fast)
    analyzer._trace(clone, args, tracer, train)
    return tracer


def summary(tracer: Tracer) -> dict[str, Any]:
    return {
        "stats": {name: vars(s) for name, s in tracer.stats.items()},
        "per_op": tracer.per_op,
        "uncounted": tracer.uncounted,
        "notes": tracer.notes,
    }


FAST = [("mobilenet_v3_small", False), ("convnext_tiny", False), ("resnet18", True)]
SLOW = ["efficientnet_b0", "vit_b_16", "swin_t", "regnet_y_400mf", "densenet121", "maxvit_t"]


def check(name: str, train: bool) -> None:
    model = getattr(tv.models, name)(weights=None)
    size = (3, 224, 224)
    fast, slow = traced(model, size, True, train), traced(model, size, False, train)
    answered = sum(t.calls for (_, op, _), t in fast.per_op.items())
    assert answered > 0
    assert summary(fast) == summary(slow)


@pytest.mark.parametrize(("name", "train"), FAST)
def test_fast_rules_change_nothing(name: str, train: bool) -> None:
    check(name, train)


@pytest.mark.slow
@pytest.mark.parametrize("name", SLOW)
@pytest.mark.parametrize("train", [False, True])
def test_fast_rules_change_nothing_on_more_models(name: str, train: bool) -> None:
    check(name, train)


def test_fast_rules_answer_most_ops() -> None:
    """The rules do fire: on a ResNet most ops never reach a meta kernel."""
    model = tv.models.resnet18(weights=None).eval()
    clone = isolation.private_copy(model, None, meta=True)
    args = inputs.spec((3, 64, 64), 1, torch.float32)("meta", None)
    hits: list[bool] = []
    real = Tracer.__torch_dispatch__

    class Spy(Tracer):
        def __torch_dispatch__(
            self, func: Any, types: Any, args: tuple = (), kwargs: Any = None
        ) -> Any:
            out = real(self, func, types, args, kwargs)
            rule = self.facts[func].shape_rule
            hits.append(rule is not None and rule(args, kwargs or {}) is not None)
            return out

    spy = Spy(fast=True)
    analyzer._trace(clone, args, spy, False)
    assert sum(hits) > 0.6 * len(hits)


# -- the field shortcuts (FieldFlow._shortcut) ------------------------------------------------


def _fields_of(model: nn.Module, size: tuple, shortcuts: bool, calls: list[bool]) -> Tracer:
    """A traced forward, with the field shortcuts on or off; ``calls`` records whether
    each shortcut attempt answered."""
    real = FieldFlow._shortcut

    def switch(self: FieldFlow, *args: Any) -> bool:
        if not shortcuts:
            return False
        answered = real(self, *args)
        calls.append(answered)
        return answered

    clone = isolation.private_copy(model, None, meta=True)
    tracer = Tracer()
    tracer.fields._shortcut = types.MethodType(switch, tracer.fields)  # type: ignore[method-assign]
    analyzer._trace(clone, inputs.spec(size, 1, torch.float32)("meta", None), tracer, False)
    return tracer


def _patch_vit() -> nn.Module:
    """Patches, a class token and two encoder layers: fields go global at attention and
    then pass through views, transposes, matrix products and norms."""

    class PatchViT(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Conv2d(3, 32, 8, stride=8)
            self.token = nn.Parameter(torch.zeros(1, 1, 32))
            layer = nn.TransformerEncoderLayer(32, 4, 64, batch_first=True)
            self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
            self.head = nn.Linear(32, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.embed(x).flatten(2).transpose(1, 2)
            x = torch.cat([self.token.expand(x.shape[0], -1, -1), x], dim=1)
            return self.head(self.encoder(x)[:, 0])

    return PatchViT()


@pytest.mark.parametrize(
    ("name", "make"),
    [
        ("resnet18", lambda: tv.models.resnet18(weights=None)),
        ("convnext_tiny", lambda: tv.models.convnext_tiny(weights=None)),
        ("mobilenet_v3_small", lambda: tv.models.mobilenet_v3_small(weights=None)),
        ("patch_vit", _patch_vit),
    ],
)
def test_field_shortcuts_change_nothing(name: str, make: Any) -> None:
    """Every module's field (spans per unit and theoretical, layout, bound), every note
    and count is the same with the shortcuts as through the op's field rule; and the
    shortcuts do answer (each model has more than 20 norms and activations), and the
    channels-last layouts of ConvNeXt's blocks are remembered."""
    model = make().eval()
    calls: list[bool] = []
    fast = _fields_of(model, (3, 64, 64), True, calls)
    slow = _fields_of(model, (3, 64, 64), False, [])
    assert summary(fast) == summary(slow)
    assert sum(calls) > 20
    assert bool(fast.fields.layouts) == (name in ("convnext_tiny", "patch_vit"))
