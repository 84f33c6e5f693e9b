"""Depthwise-separable convolution: a depthwise k x k then a pointwise 1x1 (MobileNet)."""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from convzoo.layers import padding as P
from convzoo.layers.basic import Activation
from convzoo.layers.standard import Depthwise, Pointwise
from convzoo.registry import create, register


@register("depthwise_separable", category="conv")
class DepthwiseSeparable(nn.Sequential):
    """Depthwise k x k per channel, then a pointwise 1x1 that mixes channels.

    ``Tensor[B, C_in, H, W] -> Tensor[B, C_out, H_out, W_out]``; children ``depthwise``,
    optional ``norm`` and ``act`` (between the two convolutions), ``pointwise``. Its cost
    relative to a full k x k convolution is ``1/C_out + 1/(k_h·k_w)`` (Howard et al. 2017).
    """

    params_formula = "C_in·m·k_h·k_w + C_in·m·C_out (+ C_in·m + C_out biases)"

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | P.Pair = 3,
        stride: int | P.Pair = 1,
        padding: P.PaddingSpec = "valid",
        dilation: int | P.Pair = 1,
        bias: bool = True,
        depth_multiplier: int = 1,
        norm: str | None = None,
        activation: str | None = None,
    ) -> None:
        mid = in_channels * depth_multiplier
        parts: list[tuple[str, nn.Module]] = [
            (
                "depthwise",
                Depthwise(
                    in_channels,
                    kernel_size,
                    stride,
                    padding,
                    dilation,
                    bias and norm is None,
                    depth_multiplier,
                ),
            ),
        ]
        if norm is not None:
            parts.append(("norm", create(norm, in_channels=mid)))
        if activation is not None:
            parts.append(("act", Activation(activation)))
        parts.append(("pointwise", Pointwise(mid, out_channels, bias=bias)))
        super().__init__(OrderedDict(parts))
