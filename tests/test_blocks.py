"""Blocks against independent references: torchvision's ResNet / MobileNetV2 blocks and
``Conv2dNormActivation`` (same parameter shapes in the same order, same outputs and
gradients once the weights are copied), and ``F.conv2d`` + ``F.batch_norm`` compositions."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import mobilenetv2, resnet
from torchvision.ops.misc import Conv2dNormActivation

import convzoo
from convzoo import LAYERS, LayerArgumentError
from convzoo.blocks.conv_norm_act import ConvNormAct
from convzoo.blocks.residual import BasicBlock, Bottleneck, InvertedResidual

DTYPES = [torch.float32, torch.float64]
TOL = {torch.float32: dict(rtol=1e-4, atol=1e-5), torch.float64: dict(rtol=1e-9, atol=1e-10)}


def randomize(module: nn.Module, seed: int) -> None:
    """Random weights and non-trivial batch-norm statistics, so copies are checked."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
        for m in module.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=gen) * 0.3)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)


def copy_into(source: nn.Module, target: nn.Module) -> None:
    """Copy parameters and buffers in order; every pair must have the same shape."""
    src_p, dst_p = list(source.parameters()), list(target.parameters())
    src_b, dst_b = list(source.buffers()), list(target.buffers())
    assert len(src_p) == len(dst_p) and len(src_b) == len(dst_b)
    with torch.no_grad():
        for a, b in [*zip(src_p, dst_p, strict=True), *zip(src_b, dst_b, strict=True)]:
            assert a.shape == b.shape
            b.copy_(a)


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def assert_same_block(
    ref: nn.Module, ours: nn.Module, in_channels: int, dtype: torch.dtype, size: int = 9
) -> None:
    """Equal parameter counts; after copying, equal outputs (eval and train) and gradients."""
    assert n_params(ours) == n_params(ref)
    randomize(ref, seed=in_channels)
    copy_into(ref, ours)
    ref, ours = ref.to(dtype), ours.to(dtype)
    x = torch.randn(3, in_channels, size, size, dtype=dtype)
    ref.eval(), ours.eval()
    torch.testing.assert_close(ours(x), ref(x), **TOL[dtype])
    ref.train(), ours.train()
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    ya, yb = ref(xa), ours(xb)
    torch.testing.assert_close(yb, ya, **TOL[dtype])
    weight = torch.randn_like(ya)
    (ya * weight).sum().backward()
    (yb * weight).sum().backward()
    torch.testing.assert_close(xb.grad, xa.grad, **TOL[dtype])
    for a, b in zip(ref.parameters(), ours.parameters(), strict=True):
        torch.testing.assert_close(b.grad, a.grad, **TOL[dtype])


def downsample(cin: int, cout: int, stride: int) -> nn.Module | None:
    if stride == 1 and cin == cout:
        return None
    return nn.Sequential(resnet.conv1x1(cin, cout, stride), nn.BatchNorm2d(cout))


# --- residual blocks vs torchvision ------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cin,cout,stride", [(8, 8, 1), (8, 16, 1), (8, 8, 2), (8, 16, 2)])
def test_basic_block_matches_torchvision(cin: int, cout: int, stride: int, dtype) -> None:
    ref = resnet.BasicBlock(cin, cout, stride, downsample(cin, cout, stride))
    ours = BasicBlock(in_channels=cin, out_channels=cout, stride=stride)
    assert isinstance(ours.shortcut, nn.Identity) == (stride == 1 and cin == cout)
    assert_same_block(ref, ours, cin, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "cin,planes,stride,groups",
    [(16, 4, 1, 1), (8, 4, 1, 1), (8, 4, 2, 1), (16, 4, 2, 1), (16, 4, 1, 2), (8, 4, 2, 4)],
)
def test_bottleneck_matches_torchvision(cin: int, planes: int, stride: int, groups: int, dtype):
    cout = planes * resnet.Bottleneck.expansion
    ref = resnet.Bottleneck(cin, planes, stride, downsample(cin, cout, stride), groups=groups)
    mid = planes * groups  # torchvision's width with base_width=64
    ours = Bottleneck(
        cin, cout, mid_channels=mid if groups > 1 else None, stride=stride, groups=groups
    )
    assert ours.mid_channels == mid
    assert_same_block(ref, ours, cin, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "cin,cout,stride,ratio",
    [(8, 8, 1, 6), (8, 16, 1, 6), (8, 8, 2, 6), (8, 8, 1, 1), (8, 12, 2, 1), (6, 6, 1, 2.5)],
)
def test_inverted_residual_matches_torchvision(cin, cout, stride, ratio, dtype) -> None:
    ref = mobilenetv2.InvertedResidual(cin, cout, stride, ratio)
    ours = InvertedResidual(cin, cout, stride=stride, expand_ratio=ratio)
    assert ours.use_residual == ref.use_res_connect
    assert (ours.expand is None) == (ratio == 1)
    assert_same_block(ref, ours, cin, dtype)


def test_bottleneck_default_width() -> None:
    block = Bottleneck(256, 256)
    assert block.mid_channels == 64
    assert block.conv2.conv.weight.shape == (64, 64, 3, 3)
    assert n_params(block) == n_params(resnet.Bottleneck(256, 64))


def basic_block_reference(block: BasicBlock, x: torch.Tensor, dilation: int, groups: int):
    """Eval-mode basic block written with F.conv2d / F.batch_norm, shortcut identity."""

    def bn(y: torch.Tensor, norm: nn.BatchNorm2d) -> torch.Tensor:
        return F.batch_norm(
            y, norm.running_mean, norm.running_var, norm.weight, norm.bias, False, 0.0, norm.eps
        )

    c1, c2 = block.conv1, block.conv2
    y = F.conv2d(x, c1.conv.weight, None, 1, dilation, dilation, groups)
    y = F.relu(bn(y, c1.norm))
    y = bn(F.conv2d(y, c2.conv.weight, None, 1, dilation, dilation, groups), c2.norm)
    return F.relu(y + x)


@pytest.mark.parametrize("dilation,groups", [(2, 1), (1, 4), (3, 2)])
def test_basic_block_dilation_groups_reference(dilation: int, groups: int) -> None:
    block = BasicBlock(8, 8, groups=groups, dilation=dilation).double()
    randomize(block, seed=dilation * 10 + groups)
    block.eval()
    x = torch.randn(2, 8, 11, 10, dtype=torch.float64)
    expected = basic_block_reference(block, x, dilation, groups)
    torch.testing.assert_close(block(x), expected)
    assert block.conv1.conv.weight.shape == (8, 8 // groups, 3, 3)


def test_inverted_residual_kernel5_params_and_shape() -> None:
    block = InvertedResidual(4, 8, stride=2, expand_ratio=3, kernel_size=5)
    hid = 12
    expected = 4 * hid + 2 * hid + hid * 25 + 2 * hid + hid * 8 + 2 * 8
    assert n_params(block) == expected
    assert block(torch.randn(1, 4, 9, 8)).shape == (1, 8, 5, 4)


@pytest.mark.parametrize("conv", ["conv", "dilated", "depthwise_separable", "factorized"])
def test_blocks_with_other_convs_run_backward(conv: str) -> None:
    if conv not in LAYERS:
        pytest.skip(f"{conv} not registered yet")
    x = torch.randn(2, 8, 7, 7, requires_grad=True)
    for block in (BasicBlock(8, 8, conv=conv), Bottleneck(8, 8, expansion=2, conv=conv)):
        y = block(x)
        assert y.shape == x.shape
        y.square().sum().backward()
        assert all(p.grad is not None for p in block.parameters())


@pytest.mark.slow  # each block is torch ops; the layers' own gradchecks stay fast
def test_gradcheck_blocks() -> None:
    torch.manual_seed(0)
    x = torch.randn(1, 2, 5, 5, dtype=torch.float64, requires_grad=True)
    for block in (
        BasicBlock(2, 3, stride=2, activation="silu"),
        Bottleneck(2, 4, expansion=2, activation="tanh"),
        InvertedResidual(2, 2, expand_ratio=2, activation="silu"),
    ):
        block = block.double().eval()
        assert torch.autograd.gradcheck(block, (x,))


# --- conv_norm_act -----------------------------------------------------------------------


def test_conv_norm_act_children_and_bias() -> None:
    full = ConvNormAct(4, 6)
    assert [n for n, _ in full.named_children()] == ["conv", "norm", "act"]
    assert full.conv.bias is None
    bare = ConvNormAct(4, 6, norm=None, activation=None)
    assert [n for n, _ in bare.named_children()] == ["conv"]
    assert bare.conv.bias is not None and bare.conv.bias.shape == (6,)
    no_act = ConvNormAct(4, 6, activation=None)
    assert [n for n, _ in no_act.named_children()] == ["conv", "norm"]
    forced = ConvNormAct(4, 6, conv_args={"bias": True})
    assert forced.conv.bias is not None


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "k,stride,dilation,groups",
    [(3, 1, 1, 1), (3, 2, 1, 1), (5, 1, 2, 1), (3, 2, 3, 2), ((3, 5), 1, 1, 4), (1, 2, 1, 1)],
)
def test_conv_norm_act_matches_torchvision(k, stride, dilation, groups, dtype) -> None:
    ref = Conv2dNormActivation(4, 8, k, stride, groups=groups, dilation=dilation)
    ours = ConvNormAct(4, 8, k, stride, dilation=dilation, groups=groups)
    assert_same_block(ref, ours, 4, dtype, size=10)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("padding", ["same", "valid", 2, (0, 1)])
def test_conv_norm_act_padding_specs(padding, dtype) -> None:
    block = ConvNormAct(3, 5, 3, 2, padding=padding, activation="gelu").to(dtype).eval()
    randomize(block, seed=1)
    x = torch.randn(2, 3, 9, 8, dtype=dtype)
    if padding == "same":  # TF style, by hand: H=9 -> 2 rows (1, 1); W=8 -> 1 col (0, 1)
        xp = F.pad(x, (0, 1, 1, 1))
        pad: int | tuple[int, int] = 0
    else:
        xp, pad = x, (0 if padding == "valid" else padding)
    n = block.norm
    y = F.conv2d(xp, block.conv.weight, None, 2, pad)
    y = F.batch_norm(y, n.running_mean, n.running_var, n.weight, n.bias, False, 0.0, n.eps)
    torch.testing.assert_close(block(x), F.gelu(y), **TOL[dtype])


@pytest.mark.parametrize(
    "conv,kwargs",
    [
        ("conv", {}),
        ("dilated", {"dilation": 2}),
        ("grouped", {"groups": 4}),
        ("depthwise", {}),
        ("pointwise", {"kernel_size": 1}),
        ("depthwise_separable", {}),
        ("factorized", {}),
    ],
)
def test_conv_norm_act_any_conv(conv: str, kwargs: dict) -> None:
    if conv not in LAYERS:
        pytest.skip(f"{conv} not registered yet")
    block = ConvNormAct(8, 8, conv=conv, **kwargs)
    assert isinstance(block.conv, LAYERS.get(conv).cls)  # the 2-D twin of the class
    x = torch.randn(2, 8, 7, 6, requires_grad=True)
    y = block(x)
    assert y.shape == (2, 8, 7, 6)
    y.square().sum().backward()
    assert x.grad is not None and all(p.grad is not None for p in block.parameters())
    if conv == "dilated":
        assert block.conv.dilation == (2, 2) and block.conv.padding == (2, 2)
    if conv == "grouped":
        assert block.conv.groups == 4


def test_conv_norm_act_layer_defaults_and_conv_args() -> None:
    dilated = ConvNormAct(4, 4, conv="dilated")
    assert dilated.conv.dilation == (2, 2) and dilated.conv.padding == (2, 2)
    assert ConvNormAct(4, 4, conv="grouped").conv.groups == 2
    assert ConvNormAct(4, 4).conv.groups == 1 and ConvNormAct(4, 4).conv.dilation == (1, 1)
    multi = ConvNormAct(4, 8, conv="depthwise", conv_args={"depth_multiplier": 2})
    assert multi.conv.weight.shape == (8, 1, 3, 3)
    assert multi(torch.randn(1, 4, 5, 5)).shape == (1, 8, 5, 5)


def test_conv_norm_act_gradcheck() -> None:
    torch.manual_seed(0)
    block = ConvNormAct(2, 3, 3, 2, dilation=2, activation="silu").double()
    x = torch.randn(2, 2, 6, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(block, (x,))  # train mode: through batch statistics


@pytest.mark.parametrize(
    "kwargs,start",
    [
        ({"conv": "nope"}, "conv_norm_act: conv must name a registered conv layer"),
        ({"conv": "batch_norm"}, "conv_norm_act: conv must name a registered conv layer"),
        ({"activation": "rellu"}, "conv_norm_act: activation"),
        ({"norm": "relu"}, "conv_norm_act: norm"),
        ({"conv_args": {"stride": 2}}, "conv_norm_act: conv_args must not repeat stride"),
        ({"conv_args": {"nope": 1}}, "conv_norm_act: conv_args has 'nope'"),
        ({"conv": "depthwise", "groups": 2}, "conv_norm_act: groups"),
        ({"conv": "pointwise", "padding": "same"}, "conv_norm_act: padding"),
        ({"padding": "half"}, "conv_norm_act: padding"),
        ({"kernel_size": 0}, "conv_norm_act: kernel_size"),
        ({"out_channels": 0}, "conv_norm_act: out_channels"),
    ],
)
def test_conv_norm_act_errors(kwargs: dict, start: str) -> None:
    args = {"in_channels": 4, "out_channels": 4, **kwargs}
    with pytest.raises(LayerArgumentError) as info:
        ConvNormAct(**args)
    assert str(info.value).startswith(start)


@pytest.mark.parametrize(
    "build,start",
    [
        (lambda: Bottleneck(8, 10), "bottleneck: expansion must divide out_channels=10"),
        (lambda: Bottleneck(8, 16, mid_channels=6, groups=4), "bottleneck: groups"),
        (lambda: BasicBlock(8, 8, conv="nope"), "residual: conv"),
        (lambda: BasicBlock(8, 8, stride=0), "residual: stride"),
        (lambda: BasicBlock(8, 8, activation="nope"), "residual: activation"),
        (lambda: InvertedResidual(8, 8, kernel_size=4), "inverted_residual: kernel_size"),
        (lambda: InvertedResidual(8, 8, expand_ratio=0), "inverted_residual: expand_ratio"),
    ],
)
def test_block_argument_errors(build, start: str) -> None:
    with pytest.raises(LayerArgumentError) as info:
        build()
    assert str(info.value).startswith(start)


@pytest.mark.parametrize(
    "block,name",
    [
        (ConvNormAct(4, 4), "conv_norm_act"),
        (BasicBlock(4, 4), "residual"),
        (Bottleneck(4, 8, expansion=2), "bottleneck"),
        (InvertedResidual(4, 4), "inverted_residual"),
    ],
)
def test_bad_input_errors(block: nn.Module, name: str) -> None:
    for x, word in ((torch.randn(1, 3, 6, 6), "channels"), (torch.randn(4, 6, 6), "4-D")):
        with pytest.raises(LayerArgumentError, match=word) as info:
            block(x)
        assert str(info.value).startswith(f"{name}: input")


def test_registered_as_blocks() -> None:
    names = [name for name, _ in convzoo.list_layers(category="block")]
    for name in ("conv_norm_act", "residual", "bottleneck", "inverted_residual"):
        assert name in names
        assert LAYERS.get(name).description and LAYERS.get(name).params_formula
    block = convzoo.create("residual", in_channels=4, out_channels=8, stride=2)
    assert isinstance(block, BasicBlock)
    assert block(torch.randn(1, 4, 7, 7)).shape == (1, 8, 4, 4)
