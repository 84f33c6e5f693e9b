"""Depthwise-separable convolution: a depthwise k x k then a pointwise 1x1 (MobileNet)."""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from convzoo.layers import checks as C
from convzoo.layers import geometry as G
from convzoo.layers.basic import Activation
from convzoo.layers.ranked import Ranked
from convzoo.layers.standard import Depthwise, Pointwise, layer_name
from convzoo.registry import create, register


@register("depthwise_separable", category="conv")
class DepthwiseSeparable(Ranked, nn.Sequential):
    """Depthwise k x k per channel, then a pointwise 1x1 that mixes channels.

    ``Tensor[B, C_in, *S] -> Tensor[B, C_out, *S_out]``; children ``depthwise``,
    optional ``norm`` and ``act`` (between the two convolutions), ``pointwise``. Its cost
    relative to a full k x k convolution is ``1/C_out + 1/(k_h·k_w)`` (Howard et al. 2017).
    """

    params_formula = "C_in·m·k_h·k_w + C_in·m·C_out (+ C_in·m + C_out biases)"

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | G.Ints = 3,
        stride: int | G.Ints = 1,
        padding: G.PaddingSpec = "valid",
        dilation: int | G.Ints = 1,
        bias: bool = True,
        depth_multiplier: int = 1,
        norm: str | None = None,
        activation: str | None = None,
        *,
        dims: int = 2,
    ) -> None:
        name = layer_name(self)
        mid = C.positive_int(in_channels, name, "in_channels") * C.positive_int(
            depth_multiplier, name, "depth_multiplier"
        )
        depthwise = Depthwise(
            in_channels,
            kernel_size,
            stride,
            padding,
            dilation,
            bias and norm is None,
            depth_multiplier,
            dims=self.dims,
        )
        parts: OrderedDict[str, nn.Module] = OrderedDict(depthwise=depthwise)
        if norm is not None:
            parts["norm"] = create(norm, in_channels=mid, dims=self.dims)
        if activation is not None:
            parts["act"] = Activation(activation)
        parts["pointwise"] = Pointwise(mid, out_channels, bias=bias, dims=self.dims)
        nn.Sequential.__init__(self, parts)
