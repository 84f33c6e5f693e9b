"""depthwise_separable against depthwise conv + channel matmul, and its cost ratio."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import convzoo
from tests.helpers import DTYPES, tol


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mult", [1, 2])
def test_matches_depthwise_then_pointwise(dtype, mult) -> None:
    layer = convzoo.create(
        "depthwise_separable",
        in_channels=3,
        out_channels=5,
        kernel_size=3,
        stride=2,
        padding="same",
        depth_multiplier=mult,
    ).to(dtype)
    x = torch.randn(2, 3, 9, 8, dtype=dtype, requires_grad=True)
    dw = layer.depthwise
    mid = F.conv2d(F.pad(x, (0, 1, 1, 1)), dw.weight, dw.bias, 2, groups=3)  # same, n=9/8, s=2
    w = layer.pointwise.weight[:, :, 0, 0]
    ref = torch.einsum("om,bmhw->bohw", w, mid) + layer.pointwise.bias[None, :, None, None]
    out = layer(x)
    torch.testing.assert_close(out, ref, **tol(dtype))
    (g1,) = torch.autograd.grad(out.sum(), x)
    (g2,) = torch.autograd.grad(ref.sum(), x)
    torch.testing.assert_close(g1, g2, **tol(dtype))


@pytest.mark.parametrize(("c_in", "c_out", "k"), [(32, 64, 3), (64, 128, 5), (16, 16, 7)])
def test_cost_ratio_is_one_over_n_plus_one_over_k2(c_in, c_out, k) -> None:
    """Howard et al. 2017: separable / full = 1/N + 1/k^2 (N = output channels, no biases)."""
    sep = convzoo.create(
        "depthwise_separable", in_channels=c_in, out_channels=c_out, kernel_size=k, bias=False
    )
    full = convzoo.create("conv", in_channels=c_in, out_channels=c_out, kernel_size=k, bias=False)
    ratio = sum(p.numel() for p in sep.parameters()) / sum(p.numel() for p in full.parameters())
    assert ratio == pytest.approx(1 / c_out + 1 / k**2)


def test_norm_and_activation_between() -> None:
    layer = convzoo.create(
        "depthwise_separable", in_channels=4, out_channels=6, norm="batch_norm", activation="relu"
    )
    assert [n for n, _ in layer.named_children()] == ["depthwise", "norm", "act", "pointwise"]
    assert layer.depthwise.bias is None  # a norm follows
    assert layer(torch.randn(2, 4, 6, 6)).shape == (2, 6, 4, 4)
