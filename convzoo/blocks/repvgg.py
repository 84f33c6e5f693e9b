"""RepVGG: a 3x3 + 1x1 + identity training block re-parameterised into one 3x3 conv
(Ding, Zhang, Ma, Han, Ding & Sun 2021, "RepVGG: Making VGG-style ConvNets Great Again")."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from convzoo.blocks.conv_norm_act import ConvNormAct
from convzoo.layers import checks as C
from convzoo.layers import geometry as G
from convzoo.layers.basic import BatchNorm
from convzoo.layers.standard import Conv, layer_name
from convzoo.registry import register


def fold(weight: torch.Tensor, norm: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """A bias-free conv ``weight`` followed by ``norm`` (eval mode) as one weight and bias."""
    assert norm.running_var is not None and norm.running_mean is not None
    std = torch.sqrt(norm.running_var + norm.eps)
    gain = norm.weight / std if norm.weight is not None else 1 / std
    shift = norm.bias if norm.bias is not None else torch.zeros_like(std)
    return weight * gain.view(-1, *(1,) * (weight.dim() - 1)), shift - norm.running_mean * gain


@register("repvgg_block", category="block")
class RepVGGBlock(nn.Module):
    """RepVGG training block: ``relu(bn(conv3x3(x)) + bn(conv1x1(x)) [+ bn(x)])``.

    ``Tensor[B, C_in, *S] -> Tensor[B, C_out, *ceil(S / s)]`` with ``dims`` spatial axes ``S``
    (1, 2 or 3; "3x3" is 3 per axis); children ``conv_3x3`` and ``conv_1x1`` (``conv_norm_act``
    without activation), ``identity`` (a batch norm, only when ``C_in == C_out`` and
    ``s == 1``), ``act``. :meth:`fuse` returns the single 3x3 ``conv`` (with bias) equal to the
    sum before the ReLU in eval mode: ``block(x) == relu(block.fuse()(x))``; the analyzer shows
    both costs.
    """

    params_formula = "9·C_in·C_out/g + C_in·C_out/g + 4·C_out [+ 2·C_in]"

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        groups: int = 1,
        *,
        dims: int = 2,
    ) -> None:
        super().__init__()
        name = layer_name(self)
        C.channels(name, in_channels, out_channels, groups)
        s = self.stride = C.positive_int(stride, name, "stride")
        n = self.dims = C.dims(dims, name)
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.conv_3x3 = ConvNormAct(
            in_channels, out_channels, 3, s, groups=groups, activation=None, dims=n
        )
        self.conv_1x1 = ConvNormAct(
            in_channels, out_channels, 1, s, groups=groups, activation=None, dims=n
        )
        same = in_channels == out_channels and s == 1
        self.identity = BatchNorm(in_channels, dims=n) if same else None
        self.act = nn.ReLU()

    def branches(self, x: torch.Tensor) -> torch.Tensor:
        """The sum before the activation."""
        y = self.conv_3x3(x) + self.conv_1x1(x)
        return y if self.identity is None else y + self.identity(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``Tensor[B, C_in, *S] -> Tensor[B, C_out, *S_out]``."""
        G.check_input(x, layer_name(self), self.in_channels, self.dims)
        return self.act(self.branches(x))

    @torch.no_grad()
    def fuse(self) -> Conv:
        """One 3x3 ``conv`` (3 per axis, padding 1, the block's stride, groups and dims)
        equal to the branch sum in eval mode (batch norms folded with their running
        statistics)."""
        big, small = self.conv_3x3, self.conv_1x1
        w3, b3 = fold(big.conv.weight, big.norm)  # type: ignore[union-attr, arg-type]
        w1, b1 = fold(small.conv.weight, small.norm)  # type: ignore[union-attr, arg-type]
        weight, bias = w3 + F.pad(w1, (1, 1) * self.dims), b3 + b1
        if self.identity is not None:
            per_group = self.in_channels // self.groups
            eye = torch.zeros_like(w3)
            channels = torch.arange(self.in_channels)
            centre: tuple[Any, ...] = (channels, channels % per_group) + (1,) * self.dims
            eye[centre] = 1  # the centre tap of each channel's own input
            wi, bi = fold(eye, self.identity)
            weight, bias = weight + wi, bias + bi
        conv = Conv(
            self.in_channels, self.out_channels, 3, self.stride, 1, 1, self.groups, dims=self.dims
        )
        conv.to(weight.dtype)
        conv.weight.copy_(weight)
        assert conv.bias is not None
        conv.bias.copy_(bias)
        return conv
