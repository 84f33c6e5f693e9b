"""The shared geometry (any number of axes) against torch, and the strict argument checks."""

from __future__ import annotations

import inspect
import math

import pytest
import torch
import torch.nn.functional as F

import convzoo
from convzoo.errors import LayerArgumentError
from convzoo.layers.geometry import Geometry
from convzoo.registry import LAYERS
from tests.helpers import reference_padding

CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


@pytest.mark.parametrize("dims", [1, 2, 3])
@pytest.mark.parametrize("mode", ["valid", "same", "full", 1])
@pytest.mark.parametrize(("k", "s", "d"), [(3, 1, 1), (2, 2, 1), (3, 2, 2), (4, 3, 1)])
def test_output_size_and_padding_match_torch(dims, mode, k, s, d) -> None:
    geo = Geometry.parse("conv", dims, k, s, mode, d)
    size = (9, 7, 8)[:dims]
    pads = geo.pads(size)
    span = d * (k - 1) + 1
    assert pads == tuple(reference_padding(mode, n, span, s) for n in size)
    flat = [p for pair in reversed(pads) for p in pair]
    x = F.pad(torch.zeros(1, 1, *size), flat)
    y = CONV[dims](x, torch.zeros(1, 1, *(k,) * dims), stride=s, dilation=d)
    assert geo.output_size(size) == tuple(y.shape[2:])
    if mode == "same":
        assert geo.output_size(size) == tuple(math.ceil(n / s) for n in size)


def test_same_is_asymmetric_with_the_odd_pixel_after() -> None:
    geo = Geometry.parse("conv", 3, 4, 1, "same")
    assert geo.pads((5, 6, 7)) == ((1, 2),) * 3
    assert not Geometry.parse("conv", 1, 3, 2, "same").is_static
    assert Geometry.parse("conv", 2, 3, 1, "full").static_padding() == (2, 2)


def test_fit_check_names_the_layer_for_every_rank() -> None:
    with pytest.raises(LayerArgumentError, match=r"^conv: kernel_size .* only 4x4x4"):
        Geometry.parse("conv", 3, 5).check_fits((4, 4, 4), "conv")
    with pytest.raises(LayerArgumentError, match=r"^conv: kernel_size .* only 2"):
        Geometry.parse("conv", 1, 3).check_fits((2,), "conv")


@pytest.mark.parametrize(
    ("name", "kwargs", "argument"),
    [
        ("linear", {"in_features": True, "out_features": 3}, "in_features"),
        ("linear", {"in_features": 2, "out_features": 3, "bias": 1}, "bias"),
        ("depthwise", {"in_channels": 2, "depth_multiplier": True}, "depth_multiplier"),
        ("batch_norm", {"in_channels": True}, "in_channels"),
        ("conv", {"in_channels": 2, "out_channels": 2, "kernel_size": (3, True)}, "kernel_size"),
        ("conv", {"in_channels": 2, "out_channels": 2, "kernel_size": 3, "groups": True}, "groups"),
        ("conv", {"in_channels": 2, "out_channels": 2, "kernel_size": 3, "dims": 4}, "dims"),
        (
            "tiled",
            {"in_channels": 2, "out_channels": 2, "kernel_size": 3, "tile_size": True},
            "tile_size",
        ),  # fmt: skip
        ("upsample", {"scale_factor": True}, "scale_factor"),
        ("max_pool", {"kernel_size": False}, "kernel_size"),
    ],
)
def test_booleans_are_not_ints(name, kwargs, argument) -> None:
    with pytest.raises(LayerArgumentError) as info:
        convzoo.create(name, **kwargs)
    message = str(info.value)
    assert message.startswith(f"{name}: {argument} ") and "\n" not in message


def test_default_only_subclasses_show_their_defaults() -> None:
    for name, changed in (("dilated", {"dilation": 2}), ("grouped", {"groups": 2})):
        params = inspect.signature(LAYERS.get(name).cls.__init__).parameters
        assert all(params[k].default == v for k, v in changed.items())
        assert list(params) == list(inspect.signature(LAYERS.get("conv").cls.__init__).parameters)
    assert convzoo.create("dilated", in_channels=1, out_channels=1).dilation == (2, 2)
    assert convzoo.create("grouped", in_channels=2, out_channels=4, dims=1).groups == 2


def test_rank_twins_are_torch_modules_of_that_rank() -> None:
    for dims, base in ((1, torch.nn.Conv1d), (2, torch.nn.Conv2d), (3, torch.nn.Conv3d)):
        conv = convzoo.create("conv", in_channels=1, out_channels=1, kernel_size=3, dims=dims)
        assert isinstance(conv, base) and isinstance(conv, LAYERS.get("conv").cls)
        assert conv.dims == dims and conv.weight.shape == (1, 1, *(3,) * dims)
    norm = convzoo.create("batch_norm", in_channels=2, dims=3)
    assert isinstance(norm, torch.nn.BatchNorm3d)
    with pytest.raises(LayerArgumentError, match=r"^batch_norm: input must be a 5-D"):
        norm(torch.zeros(2, 2, 3, 3))


def test_conv_norm_act_takes_factories() -> None:
    from convzoo.blocks.conv_norm_act import ConvNormAct
    from convzoo.layers.basic import BatchNorm

    torch.manual_seed(0)
    named = ConvNormAct(3, 4, 3, 2, conv="conv", norm="batch_norm").eval()
    given = ConvNormAct(3, 4, 3, 2, conv=torch.nn.Conv2d, norm=BatchNorm).eval()
    assert type(given.conv) is torch.nn.Conv2d and given.conv.padding == (1, 1)
    given.load_state_dict(named.state_dict())
    x = torch.randn(2, 3, 9, 9)
    torch.testing.assert_close(given(x), named(x))
    with pytest.raises(LayerArgumentError, match=r"^conv_norm_act: conv must name a registered"):
        ConvNormAct(3, 4, conv=3)  # type: ignore[arg-type]


def test_rank_twins_pickle_and_deepcopy() -> None:
    import copy
    import io

    conv = convzoo.create("conv", in_channels=2, out_channels=3, kernel_size=3, dims=3)
    buffer = io.BytesIO()
    torch.save(conv, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    clone = copy.deepcopy(conv)
    x = torch.randn(1, 2, 4, 5, 6)
    assert type(loaded) is type(conv) is type(clone)
    torch.testing.assert_close(loaded(x), conv(x))
    torch.testing.assert_close(clone(x), conv(x))
