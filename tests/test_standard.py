"""conv, pointwise, depthwise, grouped, dilated against independent references."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import convzoo
from convzoo.errors import LayerArgumentError
from tests.helpers import DTYPES, reference_conv, tol


def test_seed_worked_example_64x64x3_5x5_two_filters() -> None:
    """shared/seeds 003: 64x64x3, 5x5 kernel, no padding, stride 1, 2 filters -> 60x60x2."""
    conv = convzoo.create("conv", in_channels=3, out_channels=2, kernel_size=5)
    assert tuple(conv(torch.randn(1, 3, 64, 64)).shape) == (1, 2, 60, 60)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", ["valid", "same", "full", 1, 2])
@pytest.mark.parametrize(
    ("k", "s", "d", "g", "size"),
    [
        (3, 1, 1, 1, 9),
        (4, 2, 1, 2, 10),
        (5, 3, 2, 1, 17),
        (2, 1, 3, 4, 8),
        (1, 2, 1, 1, 7),
    ],
)
def test_conv_matches_reference(dtype, mode, k, s, d, g, size) -> None:
    conv = convzoo.create(
        "conv",
        in_channels=4,
        out_channels=8,
        kernel_size=k,
        stride=s,
        padding=mode,
        dilation=d,
        groups=g,
    ).to(dtype)
    x = torch.randn(2, 4, size, size + 1, dtype=dtype, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_(True)
    y = conv(x)
    y_ref = reference_conv(x_ref, conv.weight, conv.bias, s, mode, d, g)
    torch.testing.assert_close(y, y_ref, **tol(dtype))
    grad = torch.randn_like(y)
    y.backward(grad)
    gw = conv.weight.grad.clone()
    conv.weight.grad = None
    y_ref.backward(grad)
    torch.testing.assert_close(x.grad, x_ref.grad, **tol(dtype))
    torch.testing.assert_close(gw, conv.weight.grad, **tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_pointwise_is_channel_matmul(dtype) -> None:
    layer = convzoo.create("pointwise", in_channels=5, out_channels=3).to(dtype)
    x = torch.randn(2, 5, 4, 6, dtype=dtype)
    w = layer.weight[:, :, 0, 0]
    ref = torch.einsum("oc,bchw->bohw", w, x) + layer.bias[None, :, None, None]
    torch.testing.assert_close(layer(x), ref, **tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mult", [1, 2])
def test_depthwise_is_one_filter_per_channel(dtype, mult) -> None:
    layer = convzoo.create(
        "depthwise", in_channels=3, kernel_size=3, padding="same", depth_multiplier=mult
    ).to(dtype)
    x = torch.randn(2, 3, 7, 7, dtype=dtype)
    outs = []
    for c in range(3):  # channel c feeds outputs c*mult ... c*mult + mult - 1
        w = layer.weight[c * mult : (c + 1) * mult]
        b = layer.bias[c * mult : (c + 1) * mult]
        outs.append(F.conv2d(x[:, c : c + 1], w, b, padding=1))
    torch.testing.assert_close(layer(x), torch.cat(outs, 1), **tol(dtype))
    assert layer.weight.shape == (3 * mult, 1, 3, 3)


@pytest.mark.parametrize("dtype", DTYPES)
def test_grouped_is_independent_convolutions(dtype) -> None:
    layer = convzoo.create("grouped", in_channels=6, out_channels=4, kernel_size=3, groups=2).to(
        dtype
    )
    x = torch.randn(1, 6, 8, 8, dtype=dtype)
    ref = torch.cat(
        [
            F.conv2d(x[:, :3], layer.weight[:2], layer.bias[:2]),
            F.conv2d(x[:, 3:], layer.weight[2:], layer.bias[2:]),
        ],
        1,
    )
    torch.testing.assert_close(layer(x), ref, **tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("dilation", [2, 3, (2, 1)])
def test_dilated_equals_conv_with_dilated_kernel(dtype, dilation) -> None:
    layer = convzoo.create(
        "dilated", in_channels=2, out_channels=3, kernel_size=3, dilation=dilation
    ).to(dtype)
    dh, dw = (dilation, dilation) if isinstance(dilation, int) else dilation
    big = torch.zeros(3, 2, 2 * dh + 1, 2 * dw + 1, dtype=dtype)
    big[:, :, ::dh, ::dw] = layer.weight  # insert the holes by hand
    x = torch.randn(2, 2, 11, 12, dtype=dtype)
    torch.testing.assert_close(layer(x), F.conv2d(x, big, layer.bias), **tol(dtype))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(in_channels=3, out_channels=4, kernel_size=0), "conv: kernel_size must be positive"),
        (dict(in_channels=3, out_channels=4, kernel_size=3, groups=2), "conv: groups must divide"),
        (
            dict(in_channels=0, out_channels=4, kernel_size=3),
            "conv: in_channels must be a positive",
        ),
        (dict(in_channels=3, out_channels=4, kernel_size=3, stride=-1), "conv: stride must be"),
        (dict(in_channels=3, out_channels=4, kernel_size=3, padding="half"), "conv: padding must"),
    ],
)
def test_bad_arguments_name_layer_and_argument(kwargs, match) -> None:
    with pytest.raises(LayerArgumentError, match=match):
        convzoo.create("conv", **kwargs)


def test_bad_inputs_are_clear() -> None:
    conv = convzoo.create("conv", in_channels=3, out_channels=4, kernel_size=7)
    with pytest.raises(LayerArgumentError, match=r"conv: kernel_size .* padded input is only 5x5"):
        conv(torch.randn(1, 3, 5, 5))
    with pytest.raises(LayerArgumentError, match="conv: input has 2 channels but in_channels=3"):
        conv(torch.randn(1, 2, 9, 9))
    with pytest.raises(LayerArgumentError, match="4-D"):
        conv(torch.randn(3, 9, 9))
    with pytest.raises(LayerArgumentError, match="depthwise: out_channels must be"):
        convzoo.create("depthwise", in_channels=3, out_channels=5)


def test_same_padding_with_stride_is_input_dependent_and_correct() -> None:
    conv = convzoo.create(
        "conv", in_channels=1, out_channels=1, kernel_size=4, stride=3, padding="same"
    )
    for n in range(4, 12):
        assert conv(torch.randn(1, 1, n, n)).shape[-1] == math.ceil(n / 3)
        assert conv.output_size((n, n)) == (math.ceil(n / 3),) * 2


def test_conv_is_an_nn_conv2d_with_readable_repr() -> None:
    conv = convzoo.create("conv", in_channels=3, out_channels=4, kernel_size=3, padding="same")
    assert isinstance(conv, torch.nn.Conv2d)
    assert "padding='same'" in repr(conv)
    assert conv.padding == (1, 1)  # static symmetric part is visible to tools reading attributes
