"""deformable: a fresh layer is a conv; learned offsets/mask against a bilinear-sampling loop."""

from __future__ import annotations

import math
import sys

import pytest
import torch
import torch.nn.functional as F

import convzoo
from convzoo.errors import ConvZooError, LayerArgumentError
from convzoo.layers.deformable import Deformable
from tests.helpers import DTYPES, reference_padding, tol


def make(**kwargs) -> Deformable:
    layer = convzoo.create("deformable", **kwargs)
    assert isinstance(layer, Deformable)
    return layer


def pad_like_conv(x, mode, k, s, d):
    """Zero-pad ``x`` as a conv with this padding spec does (written from the definitions)."""
    mh, mw = (mode, mode) if isinstance(mode, (str, int)) else mode
    pt = reference_padding(mh, x.shape[-2], d[0] * (k[0] - 1) + 1, s[0])
    pl = reference_padding(mw, x.shape[-1], d[1] * (k[1] - 1) + 1, s[1])
    return F.pad(x, (pl[0], pl[1], pt[0], pt[1]))


def randomise_predictors(layer: Deformable, scale: float = 0.3) -> None:
    """Non-zero offsets of about +-2 pixels (non-integer) and masks away from 1."""
    with torch.no_grad():
        for conv in (layer.offset_conv, layer.mask_conv):
            if conv is not None:
                conv.weight.normal_(0, scale)
                conv.bias.uniform_(-1.5, 1.5)


CONV_CASES = [
    # (kernel, stride, padding, dilation, groups, offset_groups, input size)
    (3, 1, "valid", 1, 1, 1, (6, 7)),
    (3, 1, "same", 1, 2, 2, (6, 7)),
    (4, 1, "same", 1, 1, 4, (6, 5)),  # even kernel: asymmetric padding
    (3, 2, "same", 1, 1, 1, (8, 7)),  # stride 2: padding depends on the size
    ((2, 3), (2, 1), "full", (1, 2), 2, 1, (5, 6)),
    (3, 2, (1, 2), 2, 4, 2, (9, 8)),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize(("k", "s", "mode", "d", "g", "og", "size"), CONV_CASES)
def test_fresh_layer_is_a_standard_conv(dtype, version, k, s, mode, d, g, og, size) -> None:
    layer = make(
        in_channels=4,
        out_channels=8,
        kernel_size=k,
        stride=s,
        padding=mode,
        dilation=d,
        groups=g,
        version=version,
        offset_groups=og,
    ).to(dtype)
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
    assert conv.weight.shape == layer.weight.shape
    conv.weight, conv.bias = layer.weight, layer.bias  # shared Parameters
    kp, sp, dp = (pair if isinstance(pair, tuple) else (pair, pair) for pair in (k, s, d))
    x = torch.randn(2, 4, *size, dtype=dtype, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_(True)
    y = layer(x)
    y_ref = F.conv2d(pad_like_conv(x_ref, mode, kp, sp, dp), layer.weight, layer.bias, s, 0, d, g)
    torch.testing.assert_close(y, y_ref, **tol(dtype))
    torch.testing.assert_close(y, conv(x), **tol(dtype))
    grad = torch.randn_like(y)
    y.backward(grad)
    gw = layer.weight.grad.clone()
    layer.weight.grad = None
    y_ref.backward(grad)
    torch.testing.assert_close(x.grad, x_ref.grad, **tol(dtype))
    torch.testing.assert_close(gw, layer.weight.grad, **tol(dtype))
    assert layer.output_size(size) == tuple(y.shape[-2:])


def bilinear(img: torch.Tensor, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``img[y, x]`` for real ``y, x``, interpolating the 4 neighbours; zero outside ``img``."""
    h, w = img.shape
    y0, x0 = math.floor(y.item()), math.floor(x.item())
    fy, fx = y - y0, x - x0
    value = img.new_zeros(())
    for yy, wy in ((y0, 1 - fy), (y0 + 1, fy)):
        for xx, wx in ((x0, 1 - fx), (x0 + 1, fx)):
            if 0 <= yy < h and 0 <= xx < w:
                value = value + wy * wx * img[yy, xx]
    return value


def reference_deform(xp, offset, mask, weight, bias, stride, dilation, groups, offset_groups):
    """Deformable conv of the already padded ``xp``, one output value at a time.

    Offsets: channel ``2 * (g * K + t)`` is dy and ``+ 1`` dx of tap ``t`` (row-major)
    of offset group ``g``; mask channel ``g * K + t``.
    """
    b_, c_, _, _ = xp.shape
    c_out, c_group, kh, kw = weight.shape
    taps = kh * kw
    h_out, w_out = offset.shape[-2:]
    out = []
    for b in range(b_):
        for o in range(c_out):
            g = o // (c_out // groups)
            for i in range(h_out):
                for j in range(w_out):
                    acc = bias[o] if bias is not None else xp.new_zeros(())
                    for ci in range(c_group):
                        c = g * c_group + ci
                        og = c // (c_ // offset_groups)
                        for a in range(kh):
                            for e in range(kw):
                                t = og * taps + a * kw + e
                                py = i * stride[0] + a * dilation[0] + offset[b, 2 * t, i, j]
                                px = j * stride[1] + e * dilation[1] + offset[b, 2 * t + 1, i, j]
                                m = 1.0 if mask is None else mask[b, t, i, j]
                                sample = bilinear(xp[b, c], py, px)
                                acc = acc + weight[o, ci, a, e] * m * sample
                    out.append(acc)
    return torch.stack(out).reshape(b_, c_out, h_out, w_out)


REF_CASES = [
    # (kernel, stride, padding, dilation, groups, offset_groups, version, input size)
    (2, 1, "valid", 1, 1, 1, 2, (4, 5)),
    (3, 2, "same", 1, 2, 2, 2, (5, 4)),  # asymmetric padding, stride 2
    ((2, 3), 1, 1, (2, 1), 1, 2, 1, (4, 4)),
    (2, (1, 2), "full", 1, 2, 1, 1, (3, 4)),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("k", "s", "mode", "d", "g", "og", "version", "size"), REF_CASES)
def test_random_offsets_match_bilinear_loop(dtype, k, s, mode, d, g, og, version, size) -> None:
    layer = make(
        in_channels=2,
        out_channels=2,
        kernel_size=k,
        stride=s,
        padding=mode,
        dilation=d,
        groups=g,
        version=version,
        offset_groups=og,
    ).to(dtype)
    randomise_predictors(layer)
    kp, sp, dp = (pair if isinstance(pair, tuple) else (pair, pair) for pair in (k, s, d))
    x = torch.randn(1, 2, *size, dtype=dtype, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_(True)
    y = layer(x)

    xp = pad_like_conv(x_ref, mode, kp, sp, dp)
    offset = F.conv2d(xp, layer.offset_conv.weight, layer.offset_conv.bias, sp, 0, dp)
    assert offset.abs().max() > 0.5  # the offsets really move the taps
    mask = None
    if version == 2:
        logits = F.conv2d(xp, layer.mask_conv.weight, layer.mask_conv.bias, sp, 0, dp)
        mask = 2 * torch.sigmoid(logits)
    y_ref = reference_deform(xp, offset, mask, layer.weight, layer.bias, sp, dp, g, og)
    torch.testing.assert_close(y, y_ref, **tol(dtype))

    grad = torch.randn_like(y)
    y.backward(grad)
    grads = [p.grad.clone() for p in (layer.weight, layer.offset_conv.weight)]
    layer.zero_grad()
    y_ref.backward(grad)
    loose = {"rtol": 1e-3, "atol": 1e-4} if dtype == torch.float32 else tol(dtype)
    torch.testing.assert_close(x.grad, x_ref.grad, **loose)
    torch.testing.assert_close(grads[0], layer.weight.grad, **loose)
    torch.testing.assert_close(grads[1], layer.offset_conv.weight.grad, **loose)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("axis", "mode"), [(1, "valid"), (0, "valid"), (1, 1), (0, "same")])
def test_integer_offset_is_a_shifted_conv(dtype, axis, mode) -> None:
    """Offsets of exactly +1 along x (axis 1) or y (axis 0): conv of the shifted padded input."""
    layer = make(in_channels=3, out_channels=4, kernel_size=3, padding=mode).to(dtype)
    with torch.no_grad():
        layer.offset_conv.bias[axis::2] = 1.0  # channels alternate dy, dx
    x = torch.randn(2, 3, 6, 7, dtype=dtype)
    xp = pad_like_conv(x, mode, (3, 3), (1, 1), (1, 1))
    if axis == 1:
        shifted = F.pad(xp[..., :, 1:], (0, 1, 0, 0))
    else:
        shifted = F.pad(xp[..., 1:, :], (0, 0, 0, 1))
    y_ref = F.conv2d(shifted, layer.weight, layer.bias)
    torch.testing.assert_close(layer(x), y_ref, **tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_constant_mask_scales_the_conv(dtype) -> None:
    """v2 with mask logits b everywhere: (out - bias) = 2 sigmoid(b) (conv - bias)."""
    layer = make(in_channels=3, out_channels=4, kernel_size=3, padding="same").to(dtype)
    with torch.no_grad():
        layer.mask_conv.bias.fill_(-0.7)
    x = torch.randn(2, 3, 5, 6, dtype=dtype)
    bias = layer.bias[None, :, None, None]
    conv = F.conv2d(x, layer.weight, None, 1, 1)
    scale = 2 / (1 + math.exp(0.7))
    torch.testing.assert_close(layer(x) - bias, scale * conv, **tol(dtype))


@pytest.mark.parametrize("version", [1, 2])
def test_gradcheck(version) -> None:
    layer = make(
        in_channels=2,
        out_channels=2,
        kernel_size=2,
        padding="same",
        stride=2,
        version=version,
        offset_groups=2,
    ).double()
    randomise_predictors(layer)
    # the predictors' biases are their outputs' offsets: gradients through the sampling
    names = ["weight", "bias", "offset_conv.bias"] + (["mask_conv.bias"] if version == 2 else [])
    own = dict(layer.named_parameters())
    params = [own[name].detach().clone().requires_grad_(True) for name in names]
    x = torch.randn(1, 2, 3, 4, dtype=torch.float64, requires_grad=True)

    def fn(x, *params):
        return torch.func.functional_call(layer, dict(zip(names, params, strict=True)), (x,))

    assert torch.autograd.gradcheck(fn, (x, *params))


def test_parameters_and_metadata() -> None:
    layer = make(in_channels=4, out_channels=6, kernel_size=(3, 2), groups=2, offset_groups=2)
    taps = 2 * 3 * 2
    assert tuple(layer.weight.shape) == (6, 2, 3, 2)
    assert tuple(layer.bias.shape) == (6,)
    assert tuple(layer.offset_conv.weight.shape) == (2 * taps, 4, 3, 2)
    assert tuple(layer.mask_conv.weight.shape) == (taps, 4, 3, 2)
    n_params = sum(p.numel() for p in layer.parameters())
    assert n_params == 6 * 2 * 6 + 6 + 3 * taps * (4 * 6 + 1)
    v1 = make(in_channels=4, out_channels=6, kernel_size=3, version=1, bias=False)
    assert v1.mask_conv is None and v1.bias is None
    assert sum(p.numel() for p in v1.parameters()) == 6 * 4 * 9 + 2 * 9 * (4 * 9 + 1)
    entry = convzoo.LAYERS.get("deformable")
    assert entry.category == "conv" and entry.params_formula
    assert entry.description.startswith("Deformable convolution")


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"version": 3}, r"^deformable: version must be 1 or 2"),
        ({"offset_groups": 3}, r"^deformable: offset_groups must be a positive int dividing"),
        ({"offset_groups": 0}, r"^deformable: offset_groups must be"),
        ({"kernel_size": 0}, r"^deformable: kernel_size must be positive"),
        ({"padding": "half"}, r"^deformable: padding must be one of"),
        ({"groups": 3}, r"^deformable: groups must divide in_channels"),
    ],
)
def test_argument_errors(kwargs, pattern) -> None:
    with pytest.raises(LayerArgumentError, match=pattern):
        make(**({"in_channels": 4, "out_channels": 4} | kwargs))


def test_input_errors() -> None:
    layer = make(in_channels=3, out_channels=2, kernel_size=3)
    with pytest.raises(LayerArgumentError, match=r"^deformable: input must be a 4-D"):
        layer(torch.randn(3, 5, 5))
    with pytest.raises(LayerArgumentError, match=r"^deformable: input has 4 channels"):
        layer(torch.randn(1, 4, 5, 5))
    with pytest.raises(LayerArgumentError, match=r"^deformable: kernel_size .* padded input"):
        layer(torch.randn(1, 3, 2, 5))


def test_missing_torchvision_is_a_clear_error(monkeypatch) -> None:
    layer = make(in_channels=3, out_channels=2, kernel_size=3)
    monkeypatch.setitem(sys.modules, "torchvision.ops", None)  # makes the import fail
    with pytest.raises(ConvZooError, match=r"^deformable: needs torchvision\.ops\.deform_conv2d"):
        layer(torch.randn(1, 3, 5, 5))
