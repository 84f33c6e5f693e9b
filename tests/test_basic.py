"""Pooling, batch norm, dropout, activations, flatten, linear, upsample."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import convzoo
from convzoo.errors import LayerArgumentError


def test_max_pool_same_padding_never_selects_padding() -> None:
    pool = convzoo.create("max_pool", kernel_size=2, stride=2, padding="same")
    x = -torch.rand(1, 1, 5, 5) - 1  # all negative: a zero pad would win
    y = pool(x)
    assert y.shape == (1, 1, 3, 3)
    assert (y < 0).all()
    torch.testing.assert_close(y[..., :2, :2], F.max_pool2d(x[..., :4, :4], 2))


def test_avg_pool_matches_reference_and_defaults_stride_to_kernel() -> None:
    pool = convzoo.create("avg_pool", kernel_size=3)
    x = torch.randn(2, 4, 9, 10)
    torch.testing.assert_close(pool(x), F.avg_pool2d(x, 3, 3))
    with pytest.raises(LayerArgumentError, match="avg_pool: padding 'full'"):
        convzoo.create("avg_pool", padding="full")


def test_global_pools_batch_norm_flatten_linear() -> None:
    x = torch.randn(2, 3, 5, 7)
    assert convzoo.create("global_avg_pool")(x).shape == (2, 3, 1, 1)
    torch.testing.assert_close(convzoo.create("global_max_pool")(x)[..., 0, 0], x.amax((2, 3)))
    bn = convzoo.create("batch_norm", in_channels=3)
    assert sum(p.numel() for p in bn.parameters()) == 6
    flat = convzoo.create("flatten")(x)
    assert flat.shape == (2, 105)
    assert convzoo.create("linear", in_features=105, out_features=4)(flat).shape == (2, 4)


def test_dropout_probability_is_drop_probability() -> None:
    drop = convzoo.create("dropout", p=0.7)
    drop.train()
    y = drop(torch.ones(200_000))
    assert (y == 0).float().mean().item() == pytest.approx(0.7, abs=0.01)
    assert y.max().item() == pytest.approx(1 / 0.3)
    drop.eval()
    assert torch.equal(drop(torch.ones(5)), torch.ones(5))
    with pytest.raises(LayerArgumentError, match="dropout: p"):
        convzoo.create("dropout", p=1.5)


@pytest.mark.parametrize(
    ("name", "ref"), [("relu", F.relu), ("gelu", F.gelu), ("silu", F.silu), ("tanh", torch.tanh)]
)
def test_activation_by_name(name, ref) -> None:
    x = torch.randn(10)
    torch.testing.assert_close(convzoo.create("activation", fn=name)(x), ref(x))


def test_unknown_activation_suggests() -> None:
    with pytest.raises(LayerArgumentError, match="activation: fn 'rellu'.*did you mean 'relu'"):
        convzoo.create("activation", fn="rellu")


def test_upsample() -> None:
    up = convzoo.create("upsample", scale_factor=2)
    assert up(torch.randn(1, 2, 3, 4)).shape == (1, 2, 6, 8)
