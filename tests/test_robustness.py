"""Numerical robustness of the zoo: fft_conv accuracy at scale in float32, capsule routing
with tiny and huge activations."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import convzoo
from tests.conftest import FIGURES

WORST: dict[str, float] = {}


@pytest.mark.parametrize(
    ("size", "k", "channels", "stride", "padding"),
    [
        (256, 31, 4, 1, "same"),
        (200, 63, 2, 1, "valid"),
        (129, 15, 8, 2, "full"),
        (512, 9, 2, 1, "same"),
        (97, 45, 3, 3, "same"),
    ],
)
def test_fft_conv_float32_accuracy_at_scale(size, k, channels, stride, padding) -> None:
    """Relative to the output's largest magnitude, against a float64 direct convolution."""
    layer = convzoo.create(
        "fft_conv",
        in_channels=channels,
        out_channels=channels,
        kernel_size=k,
        stride=stride,
        padding=padding,
    )
    x = torch.randn(1, channels, size, size) * 10
    reference = convzoo.create(
        "conv",
        in_channels=channels,
        out_channels=channels,
        kernel_size=k,
        stride=stride,
        padding=padding,
    ).double()
    reference.load_state_dict(layer.state_dict())
    with torch.no_grad():
        expected = reference(x.double())
        got = layer(x)
    error = ((got.double() - expected).abs().max() / expected.abs().max()).item()
    WORST["fft"] = max(WORST.get("fft", 0.0), error)
    FIGURES["fft_conv worst float32 relative error"] = f"{WORST['fft']:.2e}"
    assert error < 1e-4


@pytest.mark.parametrize("scale", [0.0, 1e-30, 1e-12, 1.0, 1e12, 1e30])
def test_capsule_routing_is_stable(scale: float) -> None:
    layer = convzoo.create(
        "routing_capsules", in_capsules=32, in_dim=8, out_capsules=10, out_dim=16, iterations=3
    )
    u = (torch.randn(4, 32, 8) * scale).requires_grad_(True)
    v = layer(u)
    lengths = convzoo.create("capsule_lengths")(v)
    assert torch.isfinite(v).all() and torch.isfinite(lengths).all()
    assert (lengths <= 1 + 1e-6).all()  # |v| < 1 in exact arithmetic
    lengths.sum().backward()
    assert torch.isfinite(u.grad).all() and torch.isfinite(layer.weight.grad).all()


def test_primary_capsules_then_routing_half_precision_inputs_stay_finite() -> None:
    model = convzoo.build("configs/capsnet_mnist.yaml")
    x = torch.rand(2, 1, 28, 28) * 1e6  # saturating inputs
    with torch.no_grad():
        scores = model(x)
    assert torch.isfinite(scores).all() and (scores <= 1 + 1e-6).all()


@pytest.mark.parametrize(
    ("name", "extra"),
    [
        ("locally_connected", {"input_size": (13, 11)}),
        ("tiled", {"tile_size": 3}),
    ],
)
@pytest.mark.parametrize("stride", [1, 2, 3])
@pytest.mark.parametrize("padding", ["valid", "same", "full", (2, 1)])
def test_unshared_and_tiled_odd_sizes_match_conv_when_kernels_are_equal(
    name, extra, stride, padding
) -> None:
    """With every position's (or tile's) kernel equal to one conv kernel, both are that conv."""
    conv = convzoo.create(
        "conv", in_channels=3, out_channels=2, kernel_size=(3, 2), stride=stride, padding=padding
    ).double()
    layer = convzoo.create(
        name,
        in_channels=3,
        out_channels=2,
        kernel_size=(3, 2),
        stride=stride,
        padding=padding,
        **extra,
    ).double()
    x = torch.randn(2, 3, 13, 11, dtype=torch.float64)
    with torch.no_grad():
        if name == "locally_connected":
            layer.from_conv_weight(conv.weight, conv.bias)
        else:
            t = extra["tile_size"]
            layer.weight.copy_(conv.weight.repeat(t * t, 1, 1, 1))
            layer.bias.copy_(conv.bias.repeat(t * t))
        torch.testing.assert_close(layer(x), conv(x))
    assert F.relu(layer(x)).shape == conv(x).shape
