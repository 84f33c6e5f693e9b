"""conv_stack: (k-1)/2 3x3 layers with the output size and receptive field of one k x k."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import convzoo
from convzoo.errors import LayerArgumentError
from tests.helpers import DTYPES, reference_conv, tol


def gradient_field(module: torch.nn.Module, size: int) -> tuple[int, int]:
    """Extent (h, w) of input pixels that influence the centre output unit."""
    x = torch.randn(1, module_in(module), size, size, dtype=torch.float64, requires_grad=True)
    y = module(x)
    y[0, 0, y.shape[-2] // 2, y.shape[-1] // 2].backward()
    rows = x.grad.abs().sum((0, 1, 3)).nonzero()
    cols = x.grad.abs().sum((0, 1, 2)).nonzero()
    return (int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1))


def module_in(module: torch.nn.Module) -> int:
    return next(m for m in module.modules() if isinstance(m, torch.nn.Conv2d)).in_channels


@pytest.mark.parametrize(("k", "d"), [(3, 1), (5, 1), (7, 1), (7, 2), (11, 1)])
def test_receptive_field_equals_kxk(k, d) -> None:
    stack = convzoo.create(
        "conv_stack", in_channels=2, out_channels=2, kernel_size=k, dilation=d, activation="tanh"
    ).double()
    with torch.no_grad():
        for p in stack.parameters():
            p.abs_().add_(0.1)  # positive weights: no accidental cancellation
    assert len([m for m in stack if isinstance(m, torch.nn.Conv2d)]) == (k - 1) // 2
    assert gradient_field(stack, 4 * k) == (d * (k - 1) + 1,) * 2


@pytest.mark.parametrize("mode", ["valid", "same", "full", 3])
@pytest.mark.parametrize("stride", [1, 2])
def test_output_size_equals_kxk(mode, stride) -> None:
    x = torch.randn(1, 3, 17, 16)
    stack = convzoo.create(
        "conv_stack", in_channels=3, out_channels=4, kernel_size=7, stride=stride, padding=mode
    )
    conv = convzoo.create(
        "conv", in_channels=3, out_channels=4, kernel_size=7, stride=stride, padding=mode
    )
    assert stack(x).shape == conv(x).shape


@pytest.mark.parametrize("dtype", DTYPES)
def test_matches_sequential_reference(dtype) -> None:
    stack = convzoo.create(
        "conv_stack",
        in_channels=3,
        out_channels=4,
        kernel_size=7,
        stride=2,
        padding="same",
        activation="relu",
    ).to(dtype)
    x = torch.randn(2, 3, 15, 14, dtype=dtype)
    ref = x
    for i in (1, 2, 3):
        conv = getattr(stack, f"conv{i}")
        ref = reference_conv(ref, conv.weight, conv.bias, 2 if i == 3 else 1, "same", 1)
        ref = F.relu(ref) if i < 3 else ref
    torch.testing.assert_close(stack(x), ref, **tol(dtype))


def test_params_27c2_vs_49c2() -> None:
    """Seed 002 / VGG: three 3x3 at C channels cost 27C^2 against 49C^2 for one 7x7."""
    c = 64
    stack = convzoo.create("conv_stack", in_channels=c, out_channels=c, kernel_size=7, bias=False)
    assert sum(p.numel() for p in stack.parameters()) == 27 * c * c


@pytest.mark.parametrize("k", [4, 1, (3, 5)])
def test_rejects_even_or_non_square(k) -> None:
    with pytest.raises(LayerArgumentError, match="conv_stack: kernel_size"):
        convzoo.create("conv_stack", in_channels=1, out_channels=1, kernel_size=k)
