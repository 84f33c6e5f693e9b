"""The blocks and the modern variants in 1-D and 3-D (``dims=1|3``): each against an explicit
formulation with torch's functional ops of that rank and the module's own weights; the
N-D pixel shuffle and windows against torch's 2-D ops; deformable refuses other ranks."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import convzoo
from convzoo.layers.capsule import squash
from convzoo.layers.involution import windows_nd
from convzoo.layers.subpixel import shuffle_nd
from tests.test_dims import CONV, pad
from tests.test_modern import make as make_2d

SIZES = {1: (12,), 3: (4, 6, 4)}
POOL = {1: F.avg_pool1d, 3: F.avg_pool3d}
TOL = {"rtol": 1e-9, "atol": 1e-10}
DIMS = [1, 3]


def make(name: str, dims: int, **kwargs) -> nn.Module:
    """:func:`tests.test_modern.make` in ``dims`` dimensions."""
    return make_2d(name, dims=dims, **kwargs)


def data(dims: int, channels: int = 4) -> torch.Tensor:
    torch.manual_seed(1)
    return torch.randn(2, channels, *SIZES[dims], dtype=torch.float64)


def cv(x, m, stride=1, padding=0, dilation=1, groups=1) -> torch.Tensor:  # noqa: ANN001
    """``m``'s weight and bias through torch's functional conv of ``x``'s rank."""
    return CONV[x.dim() - 2](x, m.weight, m.bias, stride, padding, dilation, groups)


def bn(x, m) -> torch.Tensor:  # noqa: ANN001
    return F.batch_norm(x, m.running_mean, m.running_var, m.weight, m.bias, False, 0.0, m.eps)


def cna(x, block, stride=1, padding=0, groups=1, act=None) -> torch.Tensor:  # noqa: ANN001
    """A ``conv_norm_act`` child by hand (``act``: a function or None)."""
    y = bn(cv(x, block.conv, stride, padding, 1, groups), block.norm)
    return y if act is None else act(y)


# -- blocks ---------------------------------------------------------------------------------


@pytest.mark.parametrize("dims", DIMS)
def test_residual_and_bottleneck_by_hand(dims) -> None:
    x = data(dims)
    res = make("residual", dims, in_channels=4, out_channels=6, stride=2)
    h = cna(cna(x, res.conv1, 2, 1, act=F.relu), res.conv2, 1, 1)
    ref = F.relu(h + cna(x, res.shortcut, 2))
    torch.testing.assert_close(res(x), ref, **TOL)
    same = make("residual", dims, in_channels=4, out_channels=4)
    assert isinstance(same.shortcut, nn.Identity)
    neck = make("bottleneck", dims, in_channels=4, out_channels=8, stride=2, groups=2)
    h = cna(x, neck.conv1, act=F.relu)
    h = cna(cna(h, neck.conv2, 2, 1, 2, F.relu), neck.conv3)
    torch.testing.assert_close(neck(x), F.relu(h + cna(x, neck.shortcut, 2)), **TOL)


@pytest.mark.parametrize("dims", DIMS)
def test_inverted_residual_and_convnext_by_hand(dims) -> None:
    x = data(dims)
    inv = make("inverted_residual", dims, in_channels=4, out_channels=4, expand_ratio=2)
    h = cna(cna(x, inv.expand, act=F.relu6), inv.depthwise, 1, 1, 8, F.relu6)
    torch.testing.assert_close(inv(x), x + cna(h, inv.project), **TOL)
    nxt = make("convnext_block", dims, in_channels=4, kernel_size=3, layer_scale=0.5)
    t = cv(x, nxt.dwconv, 1, 1, 1, 4).movedim(1, -1)  # [B, *S, C]
    t = F.layer_norm(t, (4,), nxt.norm.weight, nxt.norm.bias, 1e-6)
    t = F.linear(F.gelu(F.linear(t, nxt.pw1.weight, nxt.pw1.bias)), nxt.pw2.weight, nxt.pw2.bias)
    torch.testing.assert_close(nxt(x), x + (t * nxt.gamma).movedim(-1, 1), **TOL)


@pytest.mark.parametrize("dims", DIMS)
def test_repvgg_by_hand_and_fused(dims) -> None:
    x = data(dims)
    block = make("repvgg_block", dims, in_channels=4, out_channels=4)
    ref = cna(x, block.conv_3x3, 1, 1) + cna(x, block.conv_1x1) + bn(x, block.identity)
    torch.testing.assert_close(block(x), F.relu(ref), **TOL)
    fused = block.fuse()
    assert isinstance(fused, (nn.Conv1d, nn.Conv3d)[dims // 2]) and fused.dims == dims
    torch.testing.assert_close(F.relu(fused(x)), block(x), **TOL)


# -- layers ---------------------------------------------------------------------------------


@pytest.mark.parametrize("dims", DIMS)
def test_sub_pixel_moves_channel_offsets_to_positions(dims) -> None:
    x = data(dims)
    layer = make("sub_pixel", dims, in_channels=4, out_channels=2, scale=2)
    first = layer.weight.view(2, 2**dims, *layer.weight.shape[1:])[:, 0]
    fresh = CONV[dims](x, first, layer.bias.view(2, -1)[:, 0], 1, 1)
    nearest = F.interpolate(fresh, scale_factor=2, mode="nearest")  # ICNR: conv + nearest
    torch.testing.assert_close(layer(x), nearest, **TOL)
    with torch.no_grad():
        layer.weight.normal_()
        layer.bias.normal_()
    z = cv(x, layer, 1, 1).view(2, 2, 2**dims, *SIZES[dims])  # [B, C, r^d, *S]
    y = layer(x)
    assert y.shape == (2, 2, *(2 * n for n in SIZES[dims]))
    for flat, offset in enumerate(itertools.product(range(2), repeat=dims)):  # row-major
        grid = (..., *(slice(o, None, 2) for o in offset))
        torch.testing.assert_close(y[grid], z[:, :, flat], **TOL)


def test_shuffle_nd_is_torchs_pixel_shuffle_in_2d() -> None:
    x = torch.randn(2, 18, 4, 5)
    torch.testing.assert_close(shuffle_nd(x, 3, 2), F.pixel_shuffle(x, 3), rtol=0, atol=0)


def test_windows_nd_is_torchs_unfold_in_2d() -> None:
    x = torch.randn(2, 3, 7, 8)
    ref = F.unfold(x, (3, 2), stride=(2, 3)).view(2, 3, 6, 3, 3)
    torch.testing.assert_close(windows_nd(x, (3, 2), (2, 3)), ref, rtol=0, atol=0)


@pytest.mark.parametrize("dims", DIMS)
def test_ghost_and_mix_conv_by_hand(dims) -> None:
    x = data(dims, 5)
    ghost = make("ghost", dims, in_channels=5, out_channels=5)  # 3 primary maps, 3 cheap
    p = cna(x, nn.ModuleDict(dict(conv=ghost.primary[0], norm=ghost.primary[1])), act=F.relu)
    c = cna(p, nn.ModuleDict(dict(conv=ghost.cheap[0], norm=ghost.cheap[1])), 1, 1, 3, F.relu)
    torch.testing.assert_close(ghost(x), torch.cat([p, c], 1)[:, :5], **TOL)
    mix = make("mix_conv", dims, in_channels=5, kernel_sizes=(3, 5))
    assert mix.splits == [3, 2]
    ref = torch.cat([cv(x[:, :3], mix.conv0, 1, 1, 1, 3), cv(x[:, 3:], mix.conv1, 1, 2, 1, 2)], 1)
    torch.testing.assert_close(mix(x), ref, **TOL)


@pytest.mark.parametrize("dims", DIMS)
def test_octave_conv_by_its_four_paths(dims) -> None:
    x = data(dims, 8)
    layer = make("octave_conv", dims, in_channels=8, out_channels=6, alpha=0.25)
    xh, xl = x[:, :6], POOL[dims](x[:, 6:], 2)

    def up(t: torch.Tensor) -> torch.Tensor:
        for axis in range(2, t.dim()):
            t = t.repeat_interleave(2, axis)
        return t

    yh = cv(xh, layer.hh, 1, 1) + up(cv(xl, layer.lh, 1, 1))
    yl = cv(xl, layer.ll, 1, 1) + cv(POOL[dims](xh, 2), layer.hl, 1, 1)
    torch.testing.assert_close(layer(x), torch.cat([yh, up(yl)], 1), **TOL)


@pytest.mark.parametrize("dims", DIMS)
def test_involution_by_explicit_loop(dims) -> None:
    x = data(dims)
    layer = make("involution", dims, in_channels=4, kernel_size=3, stride=2, groups=2, reduction=2)
    y = layer(x)
    source = POOL[dims](x, 2, 2, ceil_mode=True)
    h = layer.span(layer.reduce(source)).view(2, 2, 3**dims, *source.shape[2:])
    xp = pad(x, "same", 3, 2, 1)
    out = y.shape[2:]
    assert tuple(out) == tuple(math.ceil(n / 2) for n in SIZES[dims])
    for pos in itertools.product(*(range(n) for n in out)):
        patch = xp[(..., *(slice(2 * i, 2 * i + 3) for i in pos))].flatten(2)  # [B, C, 3^d]
        for c in range(4):
            ref = (patch[:, c] * h[(slice(None), c // 2, slice(None), *pos)]).sum(1)
            torch.testing.assert_close(y[(slice(None), c, *pos)], ref, **TOL)


@pytest.mark.parametrize("dims", DIMS)
def test_selective_kernel_by_hand(dims) -> None:
    x = data(dims)
    layer = make("selective_kernel", dims, in_channels=4, out_channels=6, attention_channels=3)
    parts = torch.chunk(x, 2, 1)
    ys = []
    for i, (k, part) in enumerate(zip((3, 5), parts, strict=True)):
        path = getattr(layer, f"path{i}")
        d = (k - 1) // 2
        ys.append(F.relu(bn(cv(part, path[0], 1, d, d), path[1])))
    s = (ys[0] + ys[1]).mean(tuple(range(2, 2 + dims)), keepdim=True)
    a = cv(F.relu(bn(cv(s, layer.reduce[0]), layer.reduce[1])), layer.select)
    a = torch.softmax(a.view(2, 2, 6, *(1,) * dims), 1)
    torch.testing.assert_close(layer(x), a[:, 0] * ys[0] + a[:, 1] * ys[1], **TOL)


def linear_x2(x: torch.Tensor, axis: int) -> torch.Tensor:
    """Linear upsampling by 2 along ``axis`` (half-pixel centres, edges clamped): outputs
    ``2i`` and ``2i + 1`` are ``3/4 x[i] + 1/4 x[i -/+ 1]``."""
    before = torch.cat([x.narrow(axis, 0, 1), x.narrow(axis, 0, x.shape[axis] - 1)], axis)
    after = torch.cat([x.narrow(axis, 1, x.shape[axis] - 1), x.narrow(axis, -1, 1)], axis)
    pair = torch.stack([0.75 * x + 0.25 * before, 0.75 * x + 0.25 * after], axis + 1)
    return pair.flatten(axis, axis + 1)


@pytest.mark.parametrize("dims", DIMS)
def test_upsample_nearest_and_linear_per_axis(dims) -> None:
    x = data(dims)
    near, lin = x, x
    for axis in range(2, 2 + dims):
        near, lin = near.repeat_interleave(2, axis), linear_x2(lin, axis)
    torch.testing.assert_close(convzoo.create("upsample", dims=dims)(x), near, **TOL)
    linear = convzoo.create("upsample", mode="linear", dims=dims)
    torch.testing.assert_close(linear(x), lin, **TOL)
    with pytest.raises(ValueError, match="^upsample: mode must be one of 'nearest', 'linear'"):
        convzoo.create("upsample", mode="bilinear", dims=dims)


@pytest.mark.parametrize("dims", DIMS)
def test_primary_capsules_row_major_positions(dims) -> None:
    x = data(dims)
    caps = make("primary_capsules", dims, in_channels=4, num_types=2, capsule_dim=3,
                kernel_size=3, stride=1)  # fmt: skip
    y, z = caps(x), cv(x, caps.conv)  # z: [B, T·D, *S_out]
    out = z.shape[2:]
    assert y.shape == (2, 2 * math.prod(out), 3) == (2, *caps.output_size(SIZES[dims]))
    for t, pos in itertools.product(range(2), [(0,) * dims, tuple(n - 1 for n in out)]):
        index = t * math.prod(out) + sum(p * math.prod(out[a + 1 :]) for a, p in enumerate(pos))
        vector = z[(slice(None), slice(3 * t, 3 * t + 3), *pos)]
        torch.testing.assert_close(y[:, index], squash(vector), **TOL)


@pytest.mark.parametrize("dims", DIMS)
def test_deformable_is_2d_only_and_says_why(dims) -> None:
    msg = (
        f"deformable: dims must be 2: its sampling is torchvision.ops.deform_conv2d, which is "
        f"2-D only; got {dims}"
    )
    with pytest.raises(ValueError) as err:
        convzoo.create("deformable", in_channels=2, out_channels=2, dims=dims)
    assert str(err.value) == msg
    with pytest.raises(ValueError, match=r"layers\[0\]\.dims.*2-D only"):
        convzoo.build({"input": [2, *SIZES[dims]], "layers": [{"type": "deformable",
                       "out_channels": 2}]})  # fmt: skip
    assert convzoo.create("deformable", in_channels=2, out_channels=2, dims=2).dims == 2
