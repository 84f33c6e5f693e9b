"""transposed: against F.conv_transpose2d, and as the adjoint of convzoo's conv."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import convzoo
from convzoo.errors import LayerArgumentError
from convzoo.layers.transposed import Transposed
from tests.helpers import DTYPES, tol


def make(**kwargs) -> Transposed:
    layer = convzoo.create("transposed", **kwargs)
    assert isinstance(layer, Transposed)
    return layer


def compare_with_backward(layer, x, reference, dtype, **forward_kwargs) -> torch.Tensor:
    """Forward and input/weight gradients of ``layer(x)`` against ``reference(x_ref)``."""
    layer.weight.grad = None
    x = x.clone().requires_grad_(True)
    x_ref = x.detach().clone().requires_grad_(True)
    y = layer(x, **forward_kwargs)
    y_ref = reference(x_ref)
    torch.testing.assert_close(y, y_ref, **tol(dtype))
    grad = torch.randn_like(y)
    y.backward(grad)
    gw = layer.weight.grad.clone()
    layer.weight.grad = None
    y_ref.backward(grad)
    torch.testing.assert_close(x.grad, x_ref.grad, **tol(dtype))
    torch.testing.assert_close(gw, layer.weight.grad, **tol(dtype))
    return y


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    ("k", "s", "p", "op", "d", "g"),
    [
        (3, 1, 0, 0, 1, 1),
        (3, 2, 1, 1, 1, 1),
        (4, 2, 1, 0, 1, 2),
        ((3, 2), (2, 3), (1, 0), (1, 2), 1, 1),
        (3, 1, 2, 1, 2, 1),  # output_padding < dilation (stride 1), as torch allows
        (5, 3, 2, 2, 2, 4),
        (2, 2, 3, 1, 1, 1),  # padding larger than the kernel overlap: crops real values
    ],
)
def test_int_padding_equals_conv_transpose2d(dtype, k, s, p, op, d, g) -> None:
    layer = make(
        in_channels=4,
        out_channels=8,
        kernel_size=k,
        stride=s,
        padding=p,
        output_padding=op,
        dilation=d,
        groups=g,
    ).to(dtype)
    assert tuple(layer.weight.shape) == (4, 8 // g, *((k, k) if isinstance(k, int) else k))

    def reference(x):
        return F.conv_transpose2d(x, layer.weight, layer.bias, s, p, op, g, d)

    x = torch.randn(2, 4, 5, 6, dtype=dtype)
    y = compare_with_backward(layer, x, reference, dtype)
    assert layer.output_size((5, 6)) == tuple(y.shape[-2:])


def adjoint_pair(c_small, c_big, k, s, mode, d, g, dtype):
    """A bias-free ``conv`` (C_small -> C_big) and ``transposed`` sharing one weight tensor."""
    conv = convzoo.create(
        "conv",
        in_channels=c_small,
        out_channels=c_big,
        kernel_size=k,
        stride=s,
        padding=mode,
        dilation=d,
        groups=g,
        bias=False,
    ).to(dtype)
    layer = make(
        in_channels=c_big,
        out_channels=c_small,
        kernel_size=k,
        stride=s,
        padding=mode,
        dilation=d,
        groups=g,
        bias=False,
    ).to(dtype)
    assert layer.weight.shape == conv.weight.shape
    layer.weight = conv.weight  # the very same Parameter
    return conv, layer


ADJOINT_CASES = [
    # (kernel, stride, dilation, groups, input sizes of the forward conv)
    (3, 1, 1, 1, (7, 8)),
    (4, 1, 1, 1, (7, 8)),  # even kernel, 'same' puts the odd pixel after
    (3, 2, 1, 1, (8, 7)),
    (4, 2, 1, 2, (9, 10)),
    (2, 2, 1, 1, (6, 7)),  # k_eff == s
    (1, 2, 1, 1, (6, 5)),  # k_eff < s: 'same' adds zeros at the end
    (2, 3, 1, 1, (9, 8)),
    ((3, 2), (2, 1), (1, 2), 1, (9, 7)),
    (3, 2, 2, 1, (11, 10)),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", ["valid", "same", "full", 1, (2, 0)])
@pytest.mark.parametrize(("k", "s", "d", "g", "size"), ADJOINT_CASES)
def test_adjoint_of_conv(dtype, mode, k, s, d, g, size) -> None:
    """<conv(x), y> == <x, transposed(y)> for every input size the conv accepts."""
    conv, layer = adjoint_pair(2, 4, k, s, mode, d, g, dtype)
    x = torch.randn(2, 2, *size, dtype=dtype)
    cx = conv(x)
    y = torch.randn_like(cx)
    ty = layer(y, output_size=size)
    assert ty.shape == x.shape
    lhs = (cx * y).sum()
    rhs = (x * ty).sum()
    torch.testing.assert_close(lhs, rhs, **tol(dtype))


@pytest.mark.parametrize("dtype", [torch.float64])
@pytest.mark.parametrize("mode", ["valid", "same", "full", 1])
@pytest.mark.parametrize(("k", "s", "d", "g", "size"), ADJOINT_CASES)
def test_default_size_is_adjoint_of_conv(dtype, mode, k, s, d, g, size) -> None:
    """Without output_size, transposed(y) is the adjoint of conv on the default size."""
    conv, layer = adjoint_pair(2, 4, k, s, mode, d, g, dtype)
    m = (4, 5)
    y = torch.randn(2, 4, *m, dtype=dtype)
    ty = layer(y)
    x = torch.randn_like(ty)
    cx = conv(x)
    assert tuple(cx.shape[-2:]) == m
    torch.testing.assert_close((cx * y).sum(), (x * ty).sum(), **tol(dtype))


def expected_size(mode, m: int, k: int, s: int, d: int, op: int = 0) -> int:
    """Output sizes written from the definitions."""
    k_eff = d * (k - 1) + 1
    full = (m - 1) * s + k_eff
    if mode == "valid":
        return full + op
    if mode == "same":
        return m * s
    if mode == "full":
        return full - 2 * (k_eff - 1) + op
    return full - 2 * mode + op


@pytest.mark.parametrize("mode", ["valid", "same", "full", 0, 1, 2])
@pytest.mark.parametrize(
    ("k", "s", "d", "op"), [(3, 2, 1, 1), (4, 2, 1, 0), (1, 3, 1, 2), (3, 1, 2, 0)]
)
def test_output_sizes(mode, k, s, d, op) -> None:
    if mode == "same":
        op = 0
    layer = make(
        in_channels=1,
        out_channels=1,
        kernel_size=k,
        stride=s,
        padding=mode,
        output_padding=op,
        dilation=d,
    )
    for m in (3, 4, 6):
        want = expected_size(mode, m, k, s, d, op)
        if want < 1:  # e.g. 'full' with a kernel wider than the input: nothing left
            with pytest.raises(LayerArgumentError, match=r"^transposed: input size .*too small"):
                layer(torch.randn(1, 1, m, m + 1))
            continue
        y = layer(torch.randn(1, 1, m, m + 1))
        assert tuple(y.shape[-2:]) == (want, expected_size(mode, m + 1, k, s, d, op))
        assert layer.output_size((m, m + 1)) == tuple(y.shape[-2:])


def test_same_upsamples_by_stride_exactly() -> None:
    layer = make(in_channels=3, out_channels=5, kernel_size=4, stride=(2, 3), padding="same")
    assert tuple(layer(torch.randn(2, 3, 5, 7)).shape) == (2, 5, 10, 21)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", ["valid", "full", 1])
def test_output_size_equals_conv_transpose2d_with_output_size(dtype, mode) -> None:
    """For static padding, output_size is nn.ConvTranspose2d's output_size."""
    p = {"valid": 0, "full": 2, 1: 1}[mode]
    layer = make(in_channels=2, out_channels=3, kernel_size=3, stride=3, padding=mode).to(dtype)
    ref = torch.nn.ConvTranspose2d(2, 3, 3, stride=3, padding=p).to(dtype)
    ref.weight, ref.bias = layer.weight, layer.bias  # shared, so weight grads add up alike
    x = torch.randn(1, 2, 4, 5, dtype=dtype)
    base = ref(x).shape[-2:]
    for extra in [(0, 0), (1, 2), (2, 1)]:
        size = (base[0] + extra[0], base[1] + extra[1])

        def reference(x_ref, size=size):
            return ref(x_ref, output_size=size)

        compare_with_backward(layer, x, reference, dtype, output_size=size)


def test_output_size_in_constructor_and_forward() -> None:
    layer = make(
        in_channels=2, out_channels=2, kernel_size=3, stride=2, padding="same", output_size=(7, 9)
    )
    x = torch.randn(1, 2, 4, 5)
    assert tuple(layer(x).shape[-2:]) == (7, 9)
    assert layer.output_size((4, 5)) == (7, 9)
    assert tuple(layer(x, output_size=(8, 10)).shape[-2:]) == (8, 10)
    assert tuple(layer(x, output_size=torch.Size([1, 2, 8, 9])).shape[-2:]) == (8, 9)
    assert layer.output_size((4, 5), (8, 9)) == (8, 9)
    assert "output_size=(7, 9)" in repr(layer)


@pytest.mark.parametrize(
    ("mode", "size"), [("same", 6), ("same", 9), ("valid", 8), ("valid", 11), (1, 6), ("full", 3)]
)
def test_unreachable_output_size_is_a_clear_error(mode, size) -> None:
    # m = 4, k = 3, s = 2: same reaches 7..8, valid 9..10, padding 1 reaches 7..8, full 5..6
    layer = make(in_channels=1, out_channels=1, kernel_size=3, stride=2, padding=mode)
    with pytest.raises(LayerArgumentError, match=r"^transposed: output_size .*unreachable"):
        layer(torch.randn(1, 1, 4, 4), output_size=(size, size))
    with pytest.raises(LayerArgumentError, match=r"^transposed: output_size"):
        make(
            in_channels=1, out_channels=1, kernel_size=3, stride=2, padding=mode, output_size=size
        )(torch.randn(1, 1, 4, 4))


@pytest.mark.parametrize("mode", ["valid", "same", "full", (1, 2)])
@pytest.mark.parametrize(
    ("k", "s", "d"),
    [pytest.param(3, 2, 1, marks=pytest.mark.slow), (2, 1, 2), (1, 2, 1)],  # 3x the others
)
def test_gradcheck(mode, k, s, d) -> None:
    layer = make(
        in_channels=2, out_channels=2, kernel_size=k, stride=s, padding=mode, dilation=d
    ).double()
    x = torch.randn(1, 2, 3, 4, dtype=torch.float64, requires_grad=True)
    w = layer.weight.detach().clone().requires_grad_(True)
    b = layer.bias.detach().clone().requires_grad_(True)

    def fn(x, w, b):
        return torch.func.functional_call(layer, {"weight": w, "bias": b}, (x,))

    assert torch.autograd.gradcheck(fn, (x, w, b))


def test_too_small_input_is_a_clear_error() -> None:
    layer = make(in_channels=3, out_channels=2, kernel_size=3, padding="full")
    assert "padding='full'" in repr(layer)
    # 'full', stride 1: output m - (k_eff - 1) = m - 2, nothing left for m = 1
    with pytest.raises(LayerArgumentError, match=r"^transposed: input size 1 .*too small"):
        layer(torch.randn(1, 3, 1, 5))


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"kernel_size": 0}, r"^transposed: kernel_size must be positive"),
        ({"stride": (1, 0)}, r"^transposed: stride must be positive"),
        ({"padding": "half"}, r"^transposed: padding must be one of"),
        ({"padding": -1}, r"^transposed: padding must be >= 0"),
        ({"stride": 2, "output_padding": 2}, r"^transposed: output_padding must be smaller"),
        ({"output_padding": -1}, r"^transposed: output_padding must be >= 0"),
        (
            {"stride": 2, "padding": "same", "output_padding": 1},
            r"^transposed: output_padding must be 0 with padding='same'",
        ),
        (
            {"stride": 2, "output_padding": 1, "output_size": 9},
            r"^transposed: output_size and output_padding",
        ),
        ({"output_size": 0}, r"^transposed: output_size must be positive"),
        ({"groups": 4}, r"^transposed: groups must divide in_channels"),
        ({"out_channels": 0}, r"^transposed: out_channels must be a positive int"),
    ],
)
def test_argument_errors(kwargs, pattern) -> None:
    args = {"in_channels": 6, "out_channels": 3, "kernel_size": 3} | kwargs
    with pytest.raises(LayerArgumentError, match=pattern):
        make(**args)


def test_input_errors() -> None:
    layer = make(in_channels=3, out_channels=2, kernel_size=3)
    with pytest.raises(LayerArgumentError, match=r"^transposed: input must be a 4-D"):
        layer(torch.randn(3, 5, 5))
    with pytest.raises(LayerArgumentError, match=r"^transposed: input has 4 channels"):
        layer(torch.randn(1, 4, 5, 5))
    with pytest.raises(LayerArgumentError, match=r"^transposed: output_size must be"):
        layer(torch.randn(1, 3, 5, 5), output_size=(7, 7, 7))


def test_is_registered_with_metadata() -> None:
    entry = convzoo.LAYERS.get("transposed")
    assert entry.category == "conv"
    assert entry.description.startswith("Transposed convolution")
    assert entry.params_formula
    layer = make(in_channels=4, out_channels=6, kernel_size=(3, 2), groups=2)
    n_params = sum(p.numel() for p in layer.parameters())
    assert n_params == 6 * 4 * 3 * 2 // 2 + 6
    assert math.prod(layer.weight.shape) == 4 * (6 // 2) * 3 * 2
