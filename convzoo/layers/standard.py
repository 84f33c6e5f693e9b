"""Standard convolution and the variants that are the same op with other arguments:
pointwise (1x1), depthwise, grouped and dilated (atrous)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from convzoo.errors import require
from convzoo.layers import padding as P
from convzoo.registry import register


def layer_name(module: nn.Module) -> str:
    """The registered name of ``module``'s class (its class name if unregistered)."""
    return getattr(type(module), "registry_name", type(module).__name__)


def check_channels(layer: str, in_channels: int, out_channels: int, groups: int) -> None:
    """Positive channel counts that ``groups`` divides, or a clear error."""
    for arg, value in (
        ("in_channels", in_channels),
        ("out_channels", out_channels),
        ("groups", groups),
    ):
        require(
            isinstance(value, int) and not isinstance(value, bool) and value > 0,
            layer,
            arg,
            f"must be a positive int, got {value!r}",
        )
    require(
        in_channels % groups == 0,
        layer,
        "groups",
        f"must divide in_channels={in_channels}, got groups={groups}",
    )
    require(
        out_channels % groups == 0,
        layer,
        "groups",
        f"must divide out_channels={out_channels}, got groups={groups}",
    )


@register("conv", category="conv")
class Conv(nn.Conv2d):
    """Standard 2-D convolution with valid/same/full or explicit zero padding.

    ``Tensor[B, C_in, H, W] -> Tensor[B, C_out, H_out, W_out]``; the weight is
    ``Tensor[C_out, C_in / groups, k_h, k_w]`` exactly as in ``nn.Conv2d`` (it is one).
    """

    params_formula = "C_out·C_in·k_h·k_w/g + C_out"
    # nn.Conv2d stores these as 2-tuples; its stubs say tuple[int, ...]
    kernel_size: P.Pair
    stride: P.Pair
    dilation: P.Pair

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | P.Pair,
        stride: int | P.Pair = 1,
        padding: P.PaddingSpec = "valid",
        dilation: int | P.Pair = 1,
        groups: int = 1,
        bias: bool = True,
    ) -> None:
        name = layer_name(self)
        check_channels(name, in_channels, out_channels, groups)
        k = P.pair(kernel_size, name, "kernel_size")
        s = P.pair(stride, name, "stride")
        d = P.pair(dilation, name, "dilation")
        spec = P.check_padding(padding, name)
        static = (0, 0)
        if P.is_static(spec, s):
            static, _ = P.split_symmetric(P.resolve(spec, (0, 0), k, s, d))
        super().__init__(in_channels, out_channels, k, s, static, d, groups, bias)
        self.pad_spec = spec

    def resolve_padding(self, size: P.Pair) -> tuple[P.AxisPad, P.AxisPad]:
        """``((top, bottom), (left, right))`` zeros for an input of spatial ``size``."""
        return P.resolve(self.pad_spec, size, self.kernel_size, self.stride, self.dilation)

    def output_size(self, size: P.Pair) -> P.Pair:
        """Spatial output size for an input of spatial ``size``."""
        return P.output_size(self.pad_spec, size, self.kernel_size, self.stride, self.dilation)

    def prepare_input(self, x: torch.Tensor) -> tuple[torch.Tensor, P.Pair]:
        """Check ``x``, apply the asymmetric part of the padding; return it and the rest."""
        name = layer_name(self)
        P.check_input(x, name, self.in_channels)
        pads = self.resolve_padding((x.shape[-2], x.shape[-1]))
        P.check_fits((x.shape[-2], x.shape[-1]), pads, self.kernel_size, self.dilation, name)
        sym, rest = P.split_symmetric(pads)
        return P.zero_pad(x, rest), sym

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``Tensor[B, C_in, H, W] -> Tensor[B, C_out, H_out, W_out]``."""
        x, sym = self.prepare_input(x)
        return F.conv2d(x, self.weight, self.bias, self.stride, sym, self.dilation, self.groups)

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
        stride: int | P.Pair = 1,
        groups: int = 1,
        bias: bool = True,
    ) -> None:
        super().__init__(in_channels, out_channels, 1, stride, "valid", 1, groups, bias)


@register("depthwise", category="conv")
class Depthwise(Conv):
    """Depthwise convolution: ``depth_multiplier`` filters per input channel, no channel mixing."""

    params_formula = "C_in·m·k_h·k_w + C_in·m"

    def __init__(
        self,
        in_channels: int,
        kernel_size: int | P.Pair = 3,
        stride: int | P.Pair = 1,
        padding: P.PaddingSpec = "valid",
        dilation: int | P.Pair = 1,
        bias: bool = True,
        depth_multiplier: int = 1,
        out_channels: int | None = None,
    ) -> None:
        name = layer_name(self)
        require(
            isinstance(depth_multiplier, int) and depth_multiplier > 0,
            name,
            "depth_multiplier",
            f"must be a positive int, got {depth_multiplier!r}",
        )
        expected = in_channels * depth_multiplier
        require(
            out_channels is None or out_channels == expected,
            name,
            "out_channels",
            f"must be in_channels * depth_multiplier = {expected}, got {out_channels}",
        )
        super().__init__(
            in_channels, expected, kernel_size, stride, padding, dilation, in_channels, bias
        )
        self.depth_multiplier = depth_multiplier


@register("grouped", category="conv")
class Grouped(Conv):
    """Grouped convolution: ``groups`` independent convolutions over channel slices."""

    params_formula = "C_out·C_in·k_h·k_w/g + C_out"

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | P.Pair = 3,
        stride: int | P.Pair = 1,
        padding: P.PaddingSpec = "valid",
        dilation: int | P.Pair = 1,
        groups: int = 2,
        bias: bool = True,
    ) -> None:
        super().__init__(
            in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias
        )


@register("dilated", category="conv")
class Dilated(Conv):
    """Dilated (atrous) convolution: the kernel samples every ``dilation``-th pixel."""

    params_formula = "C_out·C_in·k_h·k_w/g + C_out"

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | P.Pair = 3,
        stride: int | P.Pair = 1,
        padding: P.PaddingSpec = "valid",
        dilation: int | P.Pair = 2,
        groups: int = 1,
        bias: bool = True,
    ) -> None:
        super().__init__(
            in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias
        )
