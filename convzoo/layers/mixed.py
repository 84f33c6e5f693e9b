"""Convolutions over channel groups: mixed depthwise kernels (MixConv) and the grouped
convolution followed by a channel shuffle (ShuffleNet)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from convzoo.errors import require
from convzoo.layers import checks as C
from convzoo.layers import geometry as G
from convzoo.layers.ranked import defaults
from convzoo.layers.standard import Conv, layer_name
from convzoo.registry import register


def split_channels(channels: int, parts: int) -> list[int]:
    """``parts`` near-equal channel counts, the remainder on the first (as MixNet does)."""
    split = [channels // parts] * parts
    split[0] += channels - sum(split)
    return split


@register("mix_conv", category="conv")
class MixConv(nn.Module):
    """MixConv: channels split into groups, each a depthwise conv with its own kernel size.

    Tan & Le 2019, "MixConv: Mixed Depthwise Convolutional Kernels".
    ``Tensor[B, C, *S] -> Tensor[B, C·m, *S_out]`` with ``dims`` spatial axes ``S`` (1, 2
    or 3): group ``i`` (``split_channels``,
    remainder first) goes through a depthwise ``kernel_sizes[i]`` conv (children ``conv0``,
    ``conv1``, ...), the outputs are concatenated. ``padding`` applies to every group
    (``"same"`` keeps the groups' output sizes equal).
    """

    params_formula = "sum_i C_i·m·k_i² (+ C·m biases)"

    def __init__(
        self,
        in_channels: int,
        kernel_sizes: Sequence[int] = (3, 5, 7),
        stride: int | G.Ints = 1,
        padding: G.PaddingSpec = "same",
        dilation: int | G.Ints = 1,
        depth_multiplier: int = 1,
        bias: bool = True,
        *,
        dims: int = 2,
    ) -> None:
        super().__init__()
        name = layer_name(self)
        self.dims = C.dims(dims, name)
        c = C.positive_int(in_channels, name, "in_channels")
        m = C.positive_int(depth_multiplier, name, "depth_multiplier")
        require(
            isinstance(kernel_sizes, (list, tuple)) and 1 <= len(kernel_sizes) <= c,
            name,
            "kernel_sizes",
            f"must be a list of 1 to in_channels={c} kernel sizes, got {kernel_sizes!r}",
        )
        self.splits = split_channels(c, len(kernel_sizes))
        for i, (k, part) in enumerate(zip(kernel_sizes, self.splits, strict=True)):
            conv = Conv(part, part * m, k, stride, padding, dilation, part, bias, dims=self.dims)
            self.add_module(f"conv{i}", conv)
        self.in_channels, self.out_channels = c, c * m

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``Tensor[B, C, *S] -> Tensor[B, C·m, *S_out]``."""
        G.check_input(x, layer_name(self), self.in_channels, self.dims)
        parts = torch.split(x, self.splits, dim=1)
        return torch.cat([conv(p) for conv, p in zip(self.children(), parts, strict=True)], 1)


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """``Tensor[B, g·n, *S]``: channel ``i·n + j`` moves to ``j·g + i`` (a transpose)."""
    b, c = x.shape[:2]
    return x.view(b, groups, c // groups, *x.shape[2:]).transpose(1, 2).reshape(x.shape)


@register("shuffle_conv", category="conv")
@defaults(kernel_size=3, groups=2)
class ShuffleConv(Conv):
    """Grouped convolution, then a channel shuffle so the next grouped layer mixes groups.

    Zhang, Zhou, Lin & Sun 2018, "ShuffleNet". ``Tensor[B, C_in, *S] ->
    Tensor[B, C_out, *S_out]``; same weight and cost as ``grouped``, the output channels
    reordered by :func:`channel_shuffle` (free: a view and a copy).
    """

    params_formula = "C_out·C_in·k_h·k_w/g + C_out"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``Tensor[B, C_in, *S] -> Tensor[B, C_out, *S_out]``."""
        return channel_shuffle(super().forward(x), self.groups)
