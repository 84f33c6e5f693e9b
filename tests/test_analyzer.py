"""analyze(): MAC counting at the op level, attribution, honesty flags, model left unchanged."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import convzoo


def test_seed_example_macs_and_shape() -> None:
    report = convzoo.analyze("configs/seed_64x64_5x5.yaml")
    assert report.output_shape == [1, 2, 60, 60]
    assert report.totals.macs == 60 * 60 * 2 * 3 * 5 * 5
    assert report.totals.flops == 2 * report.totals.macs
    assert report.totals.params == 2 * 3 * 25 + 2
    assert report.layer("conv").macs == report.totals.macs


class Functional(nn.Module):
    """Work done with functional calls and operators, not submodules."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(4, 3, 3, 3))
        self.proj = nn.Parameter(torch.randn(16, 8))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.conv2d(x, self.w, padding=1)  # [B, 4, 8, 8]
        t = y.flatten(2).transpose(1, 2)  # [B, 64, 4]
        attn = F.scaled_dot_product_attention(t, t, t)  # [B, 64, 4]
        z = torch.einsum("bnc,bmc->bnm", attn, attn)  # [B, 64, 64]
        return z.reshape(-1, 16, 16)[..., :16] @ self.proj  # [B*16, 16, 8]


def test_functional_calls_are_counted() -> None:
    b = 2
    report = convzoo.analyze(Functional(), (3, 8, 8), batch_size=b)
    conv = b * 8 * 8 * 4 * 3 * 9
    sdpa = b * 64 * 64 * (4 + 4)
    einsum = b * 64 * 64 * 4
    matmul = (b * 64 * 64 // 256) * 16 * 16 * 8
    assert report.totals.macs == conv + sdpa + einsum + matmul
    assert report.complete


def test_transposed_conv_is_counted_over_input_positions() -> None:
    layer = convzoo.create("transposed", in_channels=6, out_channels=4, kernel_size=3, stride=2)
    report = convzoo.analyze(layer, (6, 5, 7))
    assert report.output_shape == [1, 4, 11, 15]
    assert report.totals.macs == 5 * 7 * 6 * 4 * 3 * 3  # each input value meets C_out*k*k


class Twice(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)
        self.tied = nn.Conv2d(4, 4, 3, padding=1)
        self.tied.weight = self.conv.weight  # a parameter shared by two modules

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.tied(self.conv(self.conv(x)))


def test_module_called_twice_counts_macs_twice_params_once() -> None:
    report = convzoo.analyze(Twice(), (4, 6, 6))
    one = 6 * 6 * 4 * 4 * 3 * 3  # H_out W_out C_out C_in k_h k_w, the textbook formula
    assert report.layer("conv").macs == 2 * one and report.layer("conv").calls == 2
    assert report.totals.macs == 3 * one
    assert report.totals.params == 4 * 4 * 9 + 4 + 4  # shared weight once, two biases
    # the shared weight belongs to its first holder (named_parameters calls it conv.weight)
    assert report.layer("conv").params == 4 * 4 * 9 + 4 and report.layer("tied").params == 4


def test_elementwise_is_separate_from_macs() -> None:
    model = nn.Sequential(nn.ReLU(), nn.BatchNorm2d(3), nn.MaxPool2d(2))
    report = convzoo.analyze(model, (3, 8, 8))
    assert report.totals.macs == 0
    assert report.layer("0").elementwise_ops == 3 * 8 * 8
    assert report.layer("2").elementwise_ops == 3 * 4 * 4 * 4  # 2x2 reads per output


class Unknown(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.linalg.inv(x.flatten(1)[:, :9].reshape(-1, 3, 3))


def test_ops_without_formula_are_listed_never_zero() -> None:
    report = convzoo.analyze(Unknown(), (3, 4, 4))
    assert not report.complete
    assert [u.op for u in report.uncounted_ops] == ["linalg_inv_ex"]


class NeedsReal(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = float(x.abs().sum().item()) + 1.0  # data-dependent: impossible on meta
        return x * scale


def test_falls_back_to_real_tensors_and_says_so() -> None:
    report = convzoo.analyze(NeedsReal(), (3, 4, 4))
    assert report.output_shape == [1, 3, 4, 4]
    assert any("ran on real tensors" in n for n in report.notes)


def test_failure_names_the_layer() -> None:
    model = convzoo.build("configs/vgg16.yaml")
    with pytest.raises(convzoo.AnalysisError, match=r"input 1x3x16x16 in layer 'stage5"):
        convzoo.analyze(model, (3, 16, 16))


def test_model_is_left_unchanged() -> None:
    model = convzoo.build("configs/resnet18.yaml")
    model.layer1.train()  # mixed modes must survive
    model.layer2.eval()
    before = copy.deepcopy(model.state_dict())
    modes = {n: m.training for n, m in model.named_modules()}
    for train in (False, True):
        convzoo.analyze(model, (3, 64, 64), train=train)
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert {n: m.training for n, m in model.named_modules()} == modes
    assert all(p.device.type == "cpu" and p.dtype == torch.float32 for p in model.parameters())
    for module in model.modules():
        assert not module._forward_hooks and not module._forward_pre_hooks


def test_huge_input_stays_on_meta_and_dtype_sets_bytes() -> None:
    model = convzoo.build("configs/resnet18.yaml")
    big = convzoo.analyze(model, (3, 8192, 8192))
    assert not big.notes and big.output_shape == [1, 1000]
    half = convzoo.analyze(model, (3, 224, 224), dtype=torch.float16)
    full = convzoo.analyze(model, (3, 224, 224))
    assert half.totals.activation_bytes * 2 == full.totals.activation_bytes
    assert full.layer("stem.conv").activation_bytes == 64 * 112 * 112 * 4
    assert full.layer("stem").activation_bytes == 3 * 64 * 112 * 112 * 4  # conv, norm, act


ZOO_LAYERS = [
    ("conv", dict(kernel_size=3, stride=2, padding="same")),
    ("pointwise", {}),
    ("depthwise", dict(kernel_size=5, out_channels=None)),
    ("grouped", dict(groups=2, kernel_size=3)),
    ("depthwise_separable", dict(kernel_size=3)),
    ("factorized", dict(kernel_size=5, padding="same")),
    ("dilated", dict(kernel_size=3, dilation=2)),
    ("conv_stack", dict(kernel_size=7)),
    ("transposed", dict(kernel_size=4, stride=2)),
    ("tiled", dict(kernel_size=3, tile_size=2)),
    ("locally_connected", dict(kernel_size=3, input_size=(12, 12))),
]


@pytest.mark.parametrize(("name", "kwargs"), ZOO_LAYERS, ids=[n for n, _ in ZOO_LAYERS])
def test_zoo_layers_agree_with_flop_counter_mode(name: str, kwargs: dict) -> None:
    """torch.utils.flop_counter counts convolutions and matmuls: MACs = its FLOPs / 2."""
    kwargs = {"in_channels": 4, "out_channels": 8, **kwargs}
    if kwargs.get("out_channels", 0) is None:
        kwargs.pop("out_channels")
    layer = convzoo.create(name, **kwargs)
    report = convzoo.analyze(layer, (4, 12, 12), batch_size=2)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        layer(torch.randn(2, 4, 12, 12))
    assert report.totals.macs == counter.get_total_flops() // 2 > 0
    assert report.complete


def test_receptive_fields_can_be_skipped_without_changing_counts() -> None:
    model = convzoo.build("configs/resnet18.yaml")
    full = convzoo.analyze(model, (3, 64, 64))
    fast = convzoo.analyze(model, (3, 64, 64), receptive_fields=False)
    assert fast.totals == full.totals and fast.receptive_field is None
    assert all(row.receptive_field is None for row in fast.layers)
    assert full.layer("layer4").receptive_field.size == (435, 435)  # ResNet-18's field


def test_a_modules_own_forward_hook_shapes_its_row() -> None:
    """Modules are followed by wrapping ``forward`` in the private copy, except those with
    hooks of their own: their row records what their hooks return."""
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    model[0].register_forward_hook(lambda m, i, o: o[:, :2])  # keeps 2 of 4 channels
    report = convzoo.analyze(model, (3, 8, 8))
    assert report["0"].output_shape == [1, 2, 6, 6]
    assert report["1"].output_shape == [1, 2, 6, 6]
    assert report["0"].macs == 4 * 6 * 6 * 27 and report.totals.macs == report["0"].macs
    assert "forward" not in vars(model[0]) and "forward" not in vars(model[1])


def test_direct_forward_calls_count_in_the_called_module() -> None:
    class Outer(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = nn.Conv2d(3, 4, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.inner.forward(x)  # bypasses nn.Module.__call__

    report = convzoo.analyze(Outer(), (3, 5, 5))
    assert report["inner"].macs == report.totals.macs == 4 * 25 * 3
    assert report["inner"].calls == 1
