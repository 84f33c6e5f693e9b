"""The modern variants against independent references: timm's and torchvision's
implementations with our weights copied in, or an explicit formulation."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import convzoo

TOL = {"rtol": 1e-9, "atol": 1e-10}


def make(name: str, **kwargs) -> nn.Module:
    """float64, eval, batch norms with random statistics (so folding them is checked)."""
    torch.manual_seed(0)
    module = convzoo.create(name, **kwargs).double()
    with torch.no_grad():  # random batch-norm statistics, so folding them is checked
        for m in module.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.normal_(0, 0.3)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.normal_(1, 0.2)
                m.bias.normal_(0, 0.2)
    return module.eval()


def x_of(c: int = 8, size: int = 12) -> torch.Tensor:
    torch.manual_seed(1)
    return torch.randn(2, c, size, size, dtype=torch.float64)


def copy_all(source: nn.Module, target: nn.Module) -> None:
    """Copy parameters and buffers in registration order (shapes must agree)."""
    pairs = [
        (list(source.parameters()), list(target.parameters())),
        (list(source.buffers()), list(target.buffers())),
    ]
    with torch.no_grad():
        for src, dst in pairs:
            assert len(src) == len(dst)
            for a, b in zip(src, dst, strict=True):
                b.copy_(a.view(b.shape))


# --- references from timm and torchvision -------------------------------------------------


def test_cond_conv_equals_timm() -> None:
    layers = pytest.importorskip("timm.layers")
    ours = make("cond_conv", in_channels=8, out_channels=6, kernel_size=3, padding=1, experts=3)
    ref = layers.CondConv2d(8, 6, 3, padding=1, bias=True, num_experts=3).double()
    with torch.no_grad():
        ref.weight.copy_(ours.weight.flatten(1))
        ref.bias.copy_(ours.bias)
    x = x_of()
    routing = torch.sigmoid(ours.route(x.mean((2, 3))))
    torch.testing.assert_close(ours(x), ref(x, routing), **TOL)


def test_mix_conv_equals_timm() -> None:
    layers = pytest.importorskip("timm.layers")
    ours = make("mix_conv", in_channels=10, kernel_sizes=(3, 5, 7), padding="same")
    ref = layers.MixedConv2d(10, 10, [3, 5, 7], padding="", depthwise=True, bias=True).double()
    copy_all(ours, ref)
    x = x_of(10)
    torch.testing.assert_close(ours(x), ref(x), **TOL)
    assert ours.splits == [4, 3, 3]


def test_squeeze_excite_equals_timm() -> None:
    layers = pytest.importorskip("timm.layers")
    ours = make("squeeze_excite", in_channels=8, reduced_channels=3)
    ref = layers.SEModule(8, rd_channels=3).double()
    copy_all(ours, ref)
    x = x_of()
    torch.testing.assert_close(ours(x), ref(x), **TOL)


def test_selective_kernel_equals_timm() -> None:
    layers = pytest.importorskip("timm.layers")
    ours = make("selective_kernel", in_channels=8, out_channels=6, attention_channels=4)
    ref = layers.SelectiveKernel(8, 6, [3, 5], rd_channels=4).double().eval()
    copy_all(ours, ref)
    x = x_of()
    torch.testing.assert_close(ours(x), ref(x), **TOL)


def test_ghost_equals_timm() -> None:
    ghostnet = pytest.importorskip("timm.models.ghostnet")
    ours = make("ghost", in_channels=8, out_channels=7, kernel_size=1, ratio=2)
    ref = ghostnet.GhostModule(8, 7, 1, 2).double().eval()
    copy_all(ours, ref)
    x = x_of()
    torch.testing.assert_close(ours(x), ref(x), **TOL)


@pytest.mark.parametrize(("cin", "cout", "stride", "groups"), [(8, 8, 1, 1), (8, 6, 2, 2)])
def test_repvgg_equals_timm_and_fuses_into_one_conv(cin, cout, stride, groups) -> None:
    byobnet = pytest.importorskip("timm.models.byobnet")
    ours = make("repvgg_block", in_channels=cin, out_channels=cout, stride=stride, groups=groups)
    ref = byobnet.RepVggBlock(cin, cout, stride=stride, group_size=cin // groups).double()
    own = {"conv_3x3": "conv_kxk", "conv_1x1": "conv_1x1", "identity": "identity"}
    for mine, theirs in own.items():
        if getattr(ours, mine) is not None:
            copy_all(getattr(ours, mine), getattr(ref, theirs))
    ref.eval()
    x = x_of(cin)
    torch.testing.assert_close(ours(x), ref(x), **TOL)
    fused = ours.fuse()
    assert isinstance(fused, torch.nn.Conv2d) and fused.kernel_size == (3, 3)
    torch.testing.assert_close(F.relu(fused(x)), ours(x), **TOL)
    block = convzoo.analyze(ours.float(), (cin, 12, 12)).totals
    single = convzoo.analyze(fused.float(), (cin, 12, 12)).totals
    assert single.macs < block.macs and single.params < block.params


def test_convnext_block_equals_torchvision() -> None:
    convnext = pytest.importorskip("torchvision.models.convnext")
    ours = make("convnext_block", in_channels=8, layer_scale=0.5)
    ref = convnext.CNBlock(8, 0.5, 0.0).double().eval()
    with torch.no_grad():
        ref.layer_scale.copy_(ours.gamma.view(-1, 1, 1))
        copy_all(nn.ModuleList([ours.dwconv, ours.norm, ours.pw1, ours.pw2]), ref.block)
    x = x_of()
    torch.testing.assert_close(ours(x), ref(x), **TOL)


# --- explicit formulations ----------------------------------------------------------------


def test_dynamic_conv_is_an_attention_weighted_kernel_per_sample() -> None:
    layer = make("dynamic_conv", in_channels=8, out_channels=5, experts=3, temperature=2.0)
    x = x_of()
    pooled = x.mean((2, 3))
    attention = torch.softmax(layer.select(F.relu(layer.reduce(pooled))) / 2.0, 1)
    torch.testing.assert_close(attention.sum(1), torch.ones(2, dtype=torch.float64))
    for b in range(2):
        w = sum(attention[b, e] * layer.weight[e] for e in range(3))
        bias = sum(attention[b, e] * layer.bias[e] for e in range(3))
        ref = F.conv2d(x[b : b + 1], w, bias, padding=1)
        torch.testing.assert_close(layer(x)[b : b + 1], ref, **TOL)


def test_shuffle_conv_is_grouped_conv_then_transpose() -> None:
    layer = make("shuffle_conv", in_channels=9, out_channels=6, groups=3, padding="same")
    x = x_of(9)
    y = F.conv2d(x, layer.weight, layer.bias, padding=1, groups=3)
    order = [g * 2 + j for j in range(2) for g in range(3)]  # [0, 2, 4, 1, 3, 5]
    torch.testing.assert_close(layer(x), y[:, order], **TOL)


def test_involution_by_explicit_loop() -> None:
    layer = make("involution", in_channels=4, kernel_size=3, stride=2, groups=2, reduction=2)
    x = x_of(4, 7)
    y = layer(x)
    source = F.avg_pool2d(x, 2, 2, ceil_mode=True)
    h = layer.span(layer.reduce(source)).view(2, 2, 3, 3, *source.shape[2:])
    xp = F.pad(x, (1, 1, 1, 1))  # "same", k = 3: one pixel each side at these sizes
    for i, j in itertools.product(range(4), range(4)):
        for c in range(4):
            patch = xp[:, c, 2 * i : 2 * i + 3, 2 * j : 2 * j + 3]
            ref = (patch * h[:, c // 2, :, :, i, j]).sum((1, 2))
            torch.testing.assert_close(y[:, c, i, j], ref, **TOL)


def test_octave_conv_by_its_four_paths() -> None:
    layer = make("octave_conv", in_channels=8, out_channels=6, alpha=0.25)
    x = x_of()
    xh, xl = x[:, :6], F.avg_pool2d(x[:, 6:], 2)
    conv = lambda t, m: F.conv2d(t, m.weight, m.bias, padding=1)  # noqa: E731
    up = lambda t: t.repeat_interleave(2, -1).repeat_interleave(2, -2)  # noqa: E731
    yh = conv(xh, layer.hh) + up(conv(xl, layer.lh))
    yl = conv(xl, layer.ll) + conv(F.avg_pool2d(xh, 2), layer.hl)
    torch.testing.assert_close(layer(x), torch.cat([yh, up(yl)], 1), **TOL)
    conv_macs = convzoo.analyze(
        convzoo.create("conv", in_channels=8, out_channels=6, kernel_size=3, padding="same"),
        (8, 12, 12),
    )
    assert convzoo.analyze(layer.float(), (8, 12, 12)).totals.macs < conv_macs.totals.macs


def test_sub_pixel_icnr_is_conv_then_nearest_upsampling() -> None:
    layer = make("sub_pixel", in_channels=8, out_channels=3, scale=2)
    x = x_of()
    first = layer.weight.view(3, 4, 8, 3, 3)[:, 0]
    bias = layer.bias.view(3, 4)[:, 0]
    ref = F.interpolate(F.conv2d(x, first, bias, padding=1), scale_factor=2, mode="nearest")
    torch.testing.assert_close(layer(x), ref, **TOL)
    with torch.no_grad():
        layer.weight.normal_()
    y = F.conv2d(x, layer.weight, layer.bias, padding=1)
    torch.testing.assert_close(layer(x), F.pixel_shuffle(y, 2), **TOL)


@pytest.mark.parametrize("dims", [1, 2, 3])
def test_coord_conv_appends_coordinates(dims) -> None:
    layer = make("coord_conv", in_channels=2, out_channels=3, dims=dims)
    x = torch.randn(1, 2, *(5,) * dims, dtype=torch.float64)
    grid = torch.linspace(-1, 1, 5, dtype=torch.float64)
    coords = torch.stack(torch.meshgrid(*[grid] * dims, indexing="ij"))[None]
    ref = F.pad(torch.cat([x, coords], 1), [1] * 2 * dims)
    conv = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[dims]
    torch.testing.assert_close(layer(x), conv(ref, layer.weight, layer.bias), **TOL)


def test_partial_conv_by_its_definition() -> None:
    layer = make("partial_conv", in_channels=2, out_channels=3)
    x = x_of(2, 6)
    mask = (torch.rand(2, 1, 6, 6) > 0.6).double()
    mask[1, :, :3] = 0  # a hole larger than the kernel: some windows see nothing
    y, new = layer.masked(x, mask)
    xp, mp = F.pad(x * mask, (1, 1, 1, 1)), F.pad(mask, (1, 1, 1, 1))
    for b, i, j in itertools.product(range(2), range(6), range(6)):
        valid = mp[b, 0, i : i + 3, j : j + 3].sum()
        assert new[b, 0, i, j] == (valid > 0)
        window = xp[b, :, i : i + 3, j : j + 3]
        if valid == 0:
            assert not y[b, :, i, j].any()
            continue
        expect = torch.einsum("cuv,ocuv->o", window, layer.weight) * 9 / valid + layer.bias
        torch.testing.assert_close(y[b, :, i, j], expect, **TOL)


def test_gated_conv_by_its_definition() -> None:
    layer = make("gated_conv", in_channels=4, out_channels=3)
    x = x_of(4)
    z = F.conv2d(x, layer.weight, layer.bias, padding=1)
    torch.testing.assert_close(layer(x), F.elu(z[:, :3]) * torch.sigmoid(z[:, 3:]), **TOL)


# --- the analyzer counts them exactly -----------------------------------------------------

NEW_LAYERS = [
    ("cond_conv", {"out_channels": 6}, True),
    ("dynamic_conv", {"out_channels": 6}, True),
    ("mix_conv", {}, False),
    ("shuffle_conv", {"out_channels": 6}, False),
    ("squeeze_excite", {}, True),
    ("selective_kernel", {"out_channels": 6}, True),
    ("ghost", {"out_channels": 6}, False),
    ("coord_conv", {"out_channels": 6}, False),
    ("partial_conv", {"out_channels": 6}, False),
    ("gated_conv", {"out_channels": 6}, False),
    ("involution", {"groups": 2, "stride": 2}, False),
    ("octave_conv", {"out_channels": 6}, False),
    ("sub_pixel", {"out_channels": 6}, False),
    ("convnext_block", {}, False),
    ("repvgg_block", {"out_channels": 8}, False),
]


@pytest.mark.parametrize(("name", "kwargs", "global_field"), NEW_LAYERS)
def test_analyzer_macs_equal_flop_counter(name, kwargs, global_field) -> None:
    from torch.utils.flop_counter import FlopCounterMode

    layer = convzoo.create(name, in_channels=8, **kwargs).eval()
    report = convzoo.analyze(layer, (8, 12, 12))
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        layer(torch.randn(1, 8, 12, 12))
    assert report.complete, report.uncounted_ops
    assert report.totals.macs == counter.get_total_flops() // 2 > 0
    # global pooling inside (squeeze, routing, attention): every output sees every input
    assert report.receptive_field.is_global is global_field


def test_compare_upsample_designs_by_hand_formula() -> None:
    from convzoo.compare import compare_upsample

    rows = {r.design: r for r in compare_upsample(2, 3, 4, 6, 5)}
    assert list(rows) == ["resize_conv", "transposed", "sub_pixel"]
    k2, ci, co, n, s = 9, 4, 6, 5, 2
    assert rows["resize_conv"].macs == (s * n) ** 2 * co * ci * k2  # conv at the output size
    assert rows["transposed"].macs == n**2 * ci * co * k2  # every input pixel meets k² weights
    assert rows["sub_pixel"].macs == n**2 * co * s * s * ci * k2  # conv to C_out·s² channels
    assert rows["sub_pixel"].params == s * s * (co * ci * k2 + co)


def test_compare_new_candidates_fill_the_kxk_slot() -> None:
    from convzoo.compare import compare

    names = ["conv", "shuffle_conv", "cond_conv", "octave_conv", "selective_kernel", "ghost"]
    rows = {r.design: r for r in compare(5, 8, 8, 8, designs=names)}
    assert rows["shuffle_conv"].macs_ratio == pytest.approx(0.25)  # 4 groups
    assert rows["cond_conv"].receptive_field is None  # global routing
