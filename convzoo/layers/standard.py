"""Standard convolution and the variants that are the same op with other arguments:
pointwise (1x1), depthwise, grouped and dilated (atrous); each in 1, 2 or 3 dimensions."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.conv import _ConvNd

from convzoo.errors import require
from convzoo.layers import checks as C
from convzoo.layers import geometry as G
from convzoo.layers.ranked import Ranked, defaults
from convzoo.registry import register

CONV_OPS = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


def layer_name(module: object) -> str:
    """The registered name of ``module``'s class (its class name if unregistered)."""
    return getattr(type(module), "registry_name", type(module).__name__)


@register("conv", category="conv")
class Conv(G.Windowed, Ranked, _ConvNd):
    """Standard convolution with valid/same/full or explicit zero padding, 1-D/2-D/3-D.

    ``Tensor[B, C_in, *S] -> Tensor[B, C_out, *S_out]`` with ``dims`` spatial axes ``S``
    (``L``; ``H, W``; ``D, H, W``); the weight is ``Tensor[C_out, C_in / groups, *k]``
    exactly as in ``nn.Conv1d/2d/3d`` (it is one).
    """

    params_formula = "C_out·C_in·k_h·k_w/g + C_out"
    torch_bases = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
    kernel_size: G.Ints
    stride: G.Ints
    dilation: G.Ints

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | G.Ints,
        stride: int | G.Ints = 1,
        padding: G.PaddingSpec = "valid",
        dilation: int | G.Ints = 1,
        groups: int = 1,
        bias: bool = True,
        *,
        dims: int = 2,
    ) -> None:
        name = layer_name(self)
        C.channels(name, in_channels, out_channels, groups)
        C.boolean(bias, name, "bias")
        geo = G.Geometry.parse(name, self.dims, kernel_size, stride, padding, dilation)
        _ConvNd.__init__(
            self,
            in_channels,
            out_channels,
            geo.kernel,
            geo.stride,
            geo.static_padding(),
            geo.dilation,
            False,
            (0,) * self.dims,
            groups,
            bias,
            "zeros",
        )
        self.geometry = geo

    def prepare_input(self, x: torch.Tensor) -> tuple[torch.Tensor, G.Ints]:
        """Check ``x``, apply the asymmetric part of the padding; return it and the rest."""
        name = layer_name(self)
        G.check_input(x, name, self.in_channels, self.dims)
        pads = self.geometry.check_fits(G.spatial(x, self.dims), name)
        sym, rest = G.split_symmetric(pads)
        return G.zero_pad(x, rest), sym

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``Tensor[B, C_in, *S] -> Tensor[B, C_out, *S_out]``."""
        x, sym = self.prepare_input(x)
        op = CONV_OPS[self.dims]
        return op(x, self.weight, self.bias, self.stride, sym, self.dilation, self.groups)

    def extra_repr(self) -> str:
        text = super().extra_repr().replace(f", padding={self.padding}", "")
        return f"{text}, padding={self.pad_spec!r}"


@register("pointwise", category="conv")
class Pointwise(Conv):
    """1x1 convolution: mixes, reduces or expands channels at every pixel independently."""

    params_formula = "C_out·C_in/g + C_out"

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int | G.Ints = 1,
        groups: int = 1,
        bias: bool = True,
        *,
        dims: int = 2,
    ) -> None:
        super().__init__(in_channels, out_channels, 1, stride, "valid", 1, groups, bias, dims=dims)


@register("depthwise", category="conv")
class Depthwise(Conv):
    """Depthwise convolution: ``depth_multiplier`` filters per input channel, no channel mixing."""

    params_formula = "C_in·m·k_h·k_w + C_in·m"

    def __init__(
        self,
        in_channels: int,
        kernel_size: int | G.Ints = 3,
        stride: int | G.Ints = 1,
        padding: G.PaddingSpec = "valid",
        dilation: int | G.Ints = 1,
        bias: bool = True,
        depth_multiplier: int = 1,
        out_channels: int | None = None,
        *,
        dims: int = 2,
    ) -> None:
        name = layer_name(self)
        c_in = C.positive_int(in_channels, name, "in_channels")
        m = C.positive_int(depth_multiplier, name, "depth_multiplier")
        expected = c_in * m
        require(
            out_channels is None or out_channels == expected,
            name,
            "out_channels",
            f"must be in_channels * depth_multiplier = {expected}, got {out_channels}",
        )
        super().__init__(
            c_in, expected, kernel_size, stride, padding, dilation, c_in, bias, dims=dims
        )
        self.depth_multiplier = m


@register("grouped", category="conv")
@defaults(kernel_size=3, groups=2)
class Grouped(Conv):
    """Grouped convolution: ``groups`` independent convolutions over channel slices."""


@register("dilated", category="conv")
@defaults(kernel_size=3, dilation=2)
class Dilated(Conv):
    """Dilated (atrous) convolution: the kernel samples every ``dilation``-th pixel."""
