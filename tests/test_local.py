"""Locally connected (unshared) and tiled convolution against independent references:
F.conv2d with a shared kernel, explicit per-position Python loops, algebraic identities."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F

import convzoo
from convzoo.errors import LayerArgumentError
from convzoo.layers.local import LocallyConnected, Tiled

DTYPES = [torch.float32, torch.float64]


def tol(dtype: torch.dtype) -> dict[str, float]:
    return {"atol": 1e-4, "rtol": 1e-4} if dtype == torch.float32 else {"atol": 1e-10, "rtol": 0}


def explicit_pads(
    spec: object, size: tuple[int, int], k: tuple[int, int], s: tuple[int, int], d: tuple[int, int]
) -> tuple[int, int, int, int]:
    """F.pad order (left, right, top, bottom), written out here from the documented rules."""
    out = []
    for a in (1, 0):  # F.pad wants the last axis (w) first
        k_eff = d[a] * (k[a] - 1) + 1
        if spec == "valid":
            out += [0, 0]
        elif spec == "full":
            out += [k_eff - 1, k_eff - 1]
        elif spec == "same":
            total = max((math.ceil(size[a] / s[a]) - 1) * s[a] + k_eff - size[a], 0)
            out += [total // 2, total - total // 2]
        else:
            p = spec if isinstance(spec, int) else spec[a]
            out += [p, p]
    return tuple(out)  # type: ignore[return-value]


def two(v: int | tuple[int, int]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else v


Size = int | tuple[int, int]
KernelAt = Callable[[int, int], torch.Tensor]


def shared_reference(
    x: torch.Tensor,
    w: torch.Tensor,
    b: torch.Tensor | None,
    stride: Size,
    padding: object,
    dilation: Size,
) -> torch.Tensor:
    """F.conv2d on the explicitly padded input."""
    k = (w.shape[2], w.shape[3])
    pads = explicit_pads(padding, (x.shape[2], x.shape[3]), k, two(stride), two(dilation))
    return F.conv2d(F.pad(x, pads), w, b, stride, 0, dilation)


def loop_reference(
    x: torch.Tensor,
    kernel_at: KernelAt,
    bias_at: KernelAt,
    k: Size,
    stride: Size,
    padding: object,
    dilation: Size,
) -> torch.Tensor:
    """out[:, :, i, j] = sum(kernel_at(i, j) * patch(i, j)) + bias_at(i, j), pixel by pixel."""
    (kh, kw), (sh, sw), (dh, dw) = two(k), two(stride), two(dilation)
    xp = F.pad(x, explicit_pads(padding, (x.shape[2], x.shape[3]), (kh, kw), (sh, sw), (dh, dw)))
    h_out = (xp.shape[2] - dh * (kh - 1) - 1) // sh + 1
    w_out = (xp.shape[3] - dw * (kw - 1) - 1) // sw + 1
    rows = []
    for i in range(h_out):
        cols = []
        for j in range(w_out):
            top, left = i * sh, j * sw
            patch = xp[
                :, :, top : top + dh * (kh - 1) + 1 : dh, left : left + dw * (kw - 1) + 1 : dw
            ]
            value = torch.einsum("bcuv,ocuv->bo", patch, kernel_at(i, j))
            cols.append(value + bias_at(i, j))
        rows.append(torch.stack(cols, -1))
    return torch.stack(rows, -2)


# ---------------------------------------------------------------- locally connected

LC_CASES = [
    # (input_size, kernel, stride, padding, dilation)
    ((9, 11), 3, 1, "valid", 1),
    ((9, 11), 3, 1, "same", 1),
    ((7, 8), 3, 2, "same", 1),
    ((8, 7), (2, 3), (2, 1), "same", 1),
    ((6, 7), 3, 1, "full", 1),
    ((9, 10), 3, 2, "full", 2),
    ((10, 9), 3, 1, (2, 1), 2),
    ((7, 7), (3, 1), 3, 1, (1, 1)),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("size", "k", "stride", "padding", "dilation"), LC_CASES)
def test_locally_connected_with_shared_kernel_is_conv2d(size, k, stride, padding, dilation, dtype):
    torch.manual_seed(0)
    layer = LocallyConnected(3, 5, k, size, stride, padding, dilation).to(dtype)
    w = torch.randn(5, 3, *two(k), dtype=dtype)
    b = torch.randn(5, dtype=dtype)
    layer.from_conv_weight(w, b)
    x = torch.randn(2, 3, *size, dtype=dtype, requires_grad=True)
    y = layer(x)
    x_ref = x.detach().clone().requires_grad_(True)
    w_ref, b_ref = w.clone().requires_grad_(True), b.clone().requires_grad_(True)
    ref = shared_reference(x_ref, w_ref, b_ref, stride, padding, dilation)
    assert y.shape == ref.shape and tuple(y.shape[2:]) == layer.output_size()
    torch.testing.assert_close(y, ref, **tol(dtype))
    # backward: same input gradient; weight/bias gradients summed over positions = conv's
    g = torch.randn_like(ref)
    (y * g).sum().backward()
    (ref * g).sum().backward()
    torch.testing.assert_close(x.grad, x_ref.grad, **tol(dtype))
    torch.testing.assert_close(
        layer.weight.grad.sum((0, 1)).permute(3, 0, 1, 2), w_ref.grad, **tol(dtype)
    )
    torch.testing.assert_close(layer.bias.grad.sum((1, 2)), b_ref.grad, **tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    ("size", "k", "stride", "padding", "dilation"),
    [((5, 6), 3, 1, "valid", 1), ((6, 5), (2, 3), 2, "same", 1), ((5, 5), 2, (1, 2), 1, 2)],
)
def test_locally_connected_unshared_matches_loop(size, k, stride, padding, dilation, dtype):
    torch.manual_seed(1)
    layer = LocallyConnected(2, 3, k, size, stride, padding, dilation).to(dtype)
    with torch.no_grad():
        layer.weight.normal_()
        layer.bias.normal_()
    x = torch.randn(2, 2, *size, dtype=dtype)
    # documented layout: weight[i, j] is Tensor[C_in, k_h, k_w, C_out], bias[:, i, j]
    ref = loop_reference(
        x,
        lambda i, j: layer.weight[i, j].permute(3, 0, 1, 2),
        lambda i, j: layer.bias[:, i, j],
        k,
        stride,
        padding,
        dilation,
    )
    torch.testing.assert_close(layer(x), ref, **tol(dtype))


def test_locally_connected_positions_are_independent():
    """Changing one position's kernel changes only that output pixel (no sharing)."""
    torch.manual_seed(2)
    layer = LocallyConnected(2, 3, 3, (6, 6), padding="same", bias=False)
    x = torch.randn(1, 2, 6, 6)
    before = layer(x).detach()
    with torch.no_grad():
        layer.weight[2, 4] += 1.0
    changed = (layer(x).detach() - before).abs().sum(1)[0] > 0
    expected = torch.zeros(6, 6, dtype=torch.bool)
    expected[2, 4] = True
    assert torch.equal(changed, expected)


def test_locally_connected_gradcheck():
    torch.manual_seed(3)
    layer = LocallyConnected(2, 3, (3, 2), (5, 6), 2, "same", 1).double()
    x = torch.randn(2, 2, 5, 6, dtype=torch.float64, requires_grad=True)

    def fn(x, w, b):
        return torch.func.functional_call(layer, {"weight": w, "bias": b}, (x,))

    assert torch.autograd.gradcheck(fn, (x, layer.weight, layer.bias))


def test_locally_connected_output_size_and_shapes():
    layer = convzoo.create(
        "locally_connected",
        in_channels=4,
        out_channels=6,
        kernel_size=3,
        input_size=(11, 8),
        stride=2,
        padding="same",
    )
    assert layer.output_size() == (6, 4)
    assert layer.weight.shape == (6, 4, 4, 3, 3, 6)
    assert layer.bias.shape == (6, 6, 4)
    assert layer.kernels().shape == (6, 4, 6, 4, 3, 3)
    assert layer(torch.randn(1, 4, 11, 8)).shape == (1, 6, 6, 4)
    assert sum(p.numel() for p in layer.parameters()) == 6 * 4 * 6 * (4 * 9 + 1)
    valid = LocallyConnected(1, 1, (3, 5), 9, stride=(2, 1), dilation=(1, 2))
    assert valid.output_size() == ((9 - 3) // 2 + 1, 9 - 9 + 1)
    assert LocallyConnected(1, 1, 3, 4, padding="full").output_size() == (6, 6)
    assert LocallyConnected(1, 1, 3, 4, bias=False).bias is None


def test_locally_connected_errors():
    layer = LocallyConnected(3, 4, 3, (8, 9))
    with pytest.raises(
        LayerArgumentError, match=r"^locally_connected: input .*\(8, 10\).*\(8, 9\)"
    ):
        layer(torch.randn(1, 3, 8, 10))
    with pytest.raises(LayerArgumentError, match="^locally_connected: input has 2 channels"):
        layer(torch.randn(1, 2, 8, 9))
    with pytest.raises(LayerArgumentError, match="^locally_connected: input must be a 4-D"):
        layer(torch.randn(3, 8, 9))
    with pytest.raises(LayerArgumentError, match="^locally_connected: kernel_size"):
        LocallyConnected(3, 4, 5, (4, 9))
    with pytest.raises(LayerArgumentError, match="^locally_connected: input_size"):
        LocallyConnected(3, 4, 3, 0)
    with pytest.raises(LayerArgumentError, match="^locally_connected: padding"):
        LocallyConnected(3, 4, 3, 8, padding="reflect")
    with pytest.raises(LayerArgumentError, match=r"^locally_connected: weight must have shape"):
        layer.from_conv_weight(torch.randn(4, 3, 3, 2))
    with pytest.raises(LayerArgumentError, match="^locally_connected: bias was given"):
        LocallyConnected(3, 4, 3, 8, bias=False).from_conv_weight(
            torch.randn(4, 3, 3, 3), torch.randn(4)
        )


def test_locally_connected_from_conv_weight_without_bias_zeroes_bias():
    layer = LocallyConnected(2, 2, 1, 3)
    layer.from_conv_weight(torch.eye(2).view(2, 2, 1, 1))
    x = torch.randn(1, 2, 3, 3)
    torch.testing.assert_close(layer(x), x)


# ---------------------------------------------------------------- tiled


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    ("size", "k", "stride", "padding", "dilation"),
    [
        ((9, 11), 3, 1, "valid", 1),
        ((7, 8), 3, 2, "same", 1),
        ((6, 7), (2, 3), 1, "full", 1),
        ((10, 9), 3, (1, 2), 1, 2),
    ],
)
def test_tiled_t1_is_conv_with_same_state_dict(size, k, stride, padding, dilation, dtype):
    torch.manual_seed(4)
    kw = dict(in_channels=3, out_channels=4, kernel_size=k, stride=stride, padding=padding)
    conv = convzoo.create("conv", dilation=dilation, **kw).to(dtype)
    tiled = convzoo.create("tiled", tile_size=1, dilation=dilation, **kw).to(dtype)
    tiled.load_state_dict(conv.state_dict())
    x = torch.randn(2, 3, *size, dtype=dtype)
    ref = shared_reference(x, conv.weight, conv.bias, stride, padding, dilation)
    torch.testing.assert_close(tiled(x), ref, **tol(dtype))
    torch.testing.assert_close(tiled(x), conv(x), **tol(dtype))


TILED_CASES = [
    # (tile, input_size, kernel, stride, padding, dilation)
    (2, (7, 9), 3, 1, "valid", 1),
    (2, (7, 8), 3, 2, "same", 1),
    (3, (9, 7), (2, 3), 1, "same", 1),
    (3, (8, 9), 3, (2, 1), 1, 1),
    (2, (9, 9), 2, 1, "full", 2),
    (4, (5, 6), 3, 1, "valid", 1),  # tile larger than the 3x4 output
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("t", "size", "k", "stride", "padding", "dilation"), TILED_CASES)
def test_tiled_matches_loop_forward_and_backward(t, size, k, stride, padding, dilation, dtype):
    torch.manual_seed(5)
    layer = Tiled(3, 2, k, t, stride, padding, dilation).to(dtype)
    x = torch.randn(2, 3, *size, dtype=dtype, requires_grad=True)
    # documented layout: rows (a*t + b)*C_out ... hold kernel (a, b)
    w = layer.weight.detach().clone().requires_grad_(True)
    b = layer.bias.detach().clone().requires_grad_(True)

    def kernel_at(i: int, j: int) -> torch.Tensor:
        n = (i % t) * t + j % t
        return w[n * 2 : (n + 1) * 2]

    def bias_at(i: int, j: int) -> torch.Tensor:
        n = (i % t) * t + j % t
        return b[n * 2 : (n + 1) * 2]

    x_ref = x.detach().clone().requires_grad_(True)
    ref = loop_reference(x_ref, kernel_at, bias_at, k, stride, padding, dilation)
    y = layer(x)
    torch.testing.assert_close(y, ref, **tol(dtype))
    assert tuple(y.shape[2:]) == layer.output_size(size)
    g = torch.randn_like(ref)
    (y * g).sum().backward()
    (ref * g).sum().backward()
    torch.testing.assert_close(x.grad, x_ref.grad, **tol(dtype))
    torch.testing.assert_close(layer.weight.grad, w.grad, **tol(dtype))
    torch.testing.assert_close(layer.bias.grad, b.grad, **tol(dtype))


@pytest.mark.parametrize("t", [2, 3])
def test_tiled_is_equivariant_to_shifts_by_t_only(t):
    torch.manual_seed(6)
    layer = Tiled(2, 3, 3, t).double()
    x = torch.randn(1, 2, 12, 13, dtype=torch.float64)
    y = layer(x)
    torch.testing.assert_close(layer(x[:, :, t:, t:]), y[:, :, t:, t:])
    torch.testing.assert_close(layer(x[:, :, t:, :]), y[:, :, t:, :])
    # a shift by 1 lands on other kernels: the outputs differ (so the check above can fail)
    assert not torch.allclose(layer(x[:, :, 1:, 1:]), y[:, :, 1:, 1:])


@pytest.mark.slow  # 11 s; locally_connected's gradcheck (the same unfold path) stays fast
def test_tiled_gradcheck():
    torch.manual_seed(7)
    layer = Tiled(2, 2, (3, 2), 2, 2, "same").double()
    x = torch.randn(1, 2, 7, 6, dtype=torch.float64, requires_grad=True)

    def fn(x, w, b):
        return torch.func.functional_call(layer, {"weight": w, "bias": b}, (x,))

    assert torch.autograd.gradcheck(fn, (x, layer.weight, layer.bias))


def test_tiled_channels_last_input_and_no_bias():
    torch.manual_seed(8)
    layer = Tiled(3, 4, 3, 2, padding="same", bias=False)
    assert layer.bias is None
    x = torch.randn(2, 3, 9, 8)
    torch.testing.assert_close(layer(x.contiguous(memory_format=torch.channels_last)), layer(x))


def test_tiled_shapes_and_parameter_count():
    layer = convzoo.create("tiled", in_channels=4, out_channels=6, kernel_size=3, tile_size=3)
    assert layer.weight.shape == (54, 4, 3, 3) and layer.bias.shape == (54,)
    assert layer.kernels().shape == (3, 3, 6, 4, 3, 3)
    assert sum(p.numel() for p in layer.parameters()) == 9 * (6 * 4 * 9 + 6)
    assert layer.output_size((10, 7)) == (8, 5)
    assert layer(torch.randn(1, 4, 10, 7)).shape == (1, 6, 8, 5)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2", None])
def test_tiled_rejects_bad_tile_size(bad):
    with pytest.raises(LayerArgumentError, match="^tiled: tile_size must be a positive int"):
        Tiled(3, 4, 3, bad)


def test_tiled_errors():
    layer = Tiled(3, 4, 3)
    with pytest.raises(LayerArgumentError, match="^tiled: input has 2 channels"):
        layer(torch.randn(1, 2, 8, 8))
    with pytest.raises(LayerArgumentError, match="^tiled: kernel_size"):
        layer(torch.randn(1, 3, 2, 8))
    with pytest.raises(LayerArgumentError, match="^tiled: padding"):
        Tiled(3, 4, 3, padding=-1)
    with pytest.raises(LayerArgumentError, match="^tiled: in_channels"):
        Tiled(0, 4, 3)
