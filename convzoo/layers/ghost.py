"""The Ghost module: half the feature maps from a conv, the rest from cheap depthwise ops."""

from __future__ import annotations

import math

import torch
from torch import nn

from convzoo.layers import checks as C
from convzoo.layers import geometry as G
from convzoo.layers.basic import BatchNorm
from convzoo.layers.standard import Conv, layer_name
from convzoo.registry import register


@register("ghost", category="conv")
class Ghost(nn.Module):
    """Ghost module: a conv makes ``C_out / ratio`` maps, cheap depthwise convs the rest.

    ``C_init = ceil(C_out / ratio)`` maps by a conv, ``(ratio - 1)·C_init`` more by a
    depthwise ``cheap_kernel`` conv on them, concatenated and cut to ``C_out`` (Han, Wang,
    Tian, Guo, Xu & Xu 2020, "GhostNet: More Features from Cheap Operations").
    ``Tensor[B, C_in, *S] -> Tensor[B, C_out, *S_out]`` with ``dims`` spatial axes ``S``
    (1, 2 or 3; kernels are ``k`` per axis); ``primary`` and ``cheap``
    are conv-BN(-ReLU) (``relu=False`` drops both ReLUs, as the second module of a Ghost
    bottleneck does); the primary conv pads ``k // 2``, as GhostNet's.
    """

    params_formula = "C_init·C_in·k² + C_init·(r-1)·d² + 2·r·C_init"

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 1,
        ratio: int = 2,
        cheap_kernel: int = 3,
        stride: int = 1,
        relu: bool = True,
        *,
        dims: int = 2,
    ) -> None:
        super().__init__()
        name = layer_name(self)
        n = self.dims = C.dims(dims, name)
        c_out = C.positive_int(out_channels, name, "out_channels")
        r = C.int_at_least(ratio, 2, name, "ratio")
        k = C.positive_int(kernel_size, name, "kernel_size")
        d = C.positive_int(cheap_kernel, name, "cheap_kernel")
        init = math.ceil(c_out / r)
        act = [nn.ReLU()] if C.boolean(relu, name, "relu") else []
        primary = Conv(in_channels, init, k, stride, k // 2, bias=False, dims=n)
        cheap = Conv(init, init * (r - 1), d, 1, d // 2, groups=init, bias=False, dims=n)
        self.primary = nn.Sequential(primary, BatchNorm(init, dims=n), *act)
        self.cheap = nn.Sequential(cheap, BatchNorm(init * (r - 1), dims=n), *act)
        self.in_channels, self.out_channels = primary.in_channels, c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``Tensor[B, C_in, *S] -> Tensor[B, C_out, *S_out]``."""
        G.check_input(x, layer_name(self), self.in_channels, self.dims)
        y = self.primary(x)
        return torch.cat([y, self.cheap(y)], 1)[:, : self.out_channels]
