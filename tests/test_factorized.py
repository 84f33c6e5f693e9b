"""factorized (1xk then kx1) equals the full kxk conv with a channel-rank-limited kernel."""

from __future__ import annotations

import pytest
import torch

import convzoo
from tests.helpers import DTYPES, reference_conv, tol


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", ["valid", "same", "full", (2, 1)])
@pytest.mark.parametrize(
    ("k", "s", "d", "mid"), [(3, 1, 1, 1), (7, 2, 1, 4), (4, 1, 2, 3), ((3, 5), (2, 1), 1, 6)]
)
def test_equals_full_conv_with_composed_kernel(dtype, mode, k, s, d, mid) -> None:
    layer = convzoo.create(
        "factorized",
        in_channels=3,
        out_channels=6,
        kernel_size=k,
        stride=s,
        padding=mode,
        dilation=d,
        mid_channels=mid,
    ).to(dtype)
    row, col = layer.row.weight[:, :, 0, :], layer.col.weight[:, :, :, 0]  # [m,i,x], [o,m,y]
    full = torch.einsum("omy,mix->oiyx", col, row)
    x = torch.randn(2, 3, 13, 12, dtype=dtype)
    ref = reference_conv(x, full, layer.col.bias, s, mode, d)
    torch.testing.assert_close(layer(x), ref, **tol(dtype))


def test_rank_one_kernel_single_channel() -> None:
    """The textbook case: a separable k x k kernel is the outer product of two vectors."""
    layer = convzoo.create(
        "factorized", in_channels=1, out_channels=1, kernel_size=7, bias=False
    ).double()
    kernel = torch.outer(layer.col.weight[0, 0, :, 0], layer.row.weight[0, 0, 0, :])
    assert torch.linalg.matrix_rank(kernel) == 1
    x = torch.randn(1, 1, 20, 20, dtype=torch.float64)
    ref = torch.nn.functional.conv2d(x, kernel[None, None])
    torch.testing.assert_close(layer(x), ref)
    assert layer(x).shape == (1, 1, 14, 14)  # seed 002: 20x20 -> 14x14


def test_params_and_gradcheck() -> None:
    layer = convzoo.create(
        "factorized", in_channels=2, out_channels=3, kernel_size=3, padding="same", mid_channels=4
    ).double()
    assert sum(p.numel() for p in layer.parameters()) == 4 * 2 * 3 + 3 * 4 * 3 + 3
    x = torch.randn(1, 2, 5, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(layer, (x,))
