"""Convolutions for holes and free-form masks: partial convolution and gated convolution."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from convzoo.errors import require
from convzoo.layers import geometry as G
from convzoo.layers.ranked import defaults
from convzoo.layers.standard import CONV_OPS, Conv, layer_name
from convzoo.registry import register


@register("partial_conv", category="conv")
@defaults(kernel_size=3, padding="same")
class PartialConv(Conv):
    """Partial convolution: a conv over the valid pixels only, renormalised by their count.

    Liu, Reda, Shih, Wang, Tao & Catanzaro 2018, "Image Inpainting for Irregular Holes
    Using Partial Convolutions". With a mask ``M`` (``Tensor[B, 1, *S]``, 1 = valid):
    ``y = W·(X ⊙ M) · prod(k) / sum(M) + b`` where the window holds a valid pixel, else 0;
    the updated mask is 1 exactly there (:meth:`masked`). ``forward(x)`` uses an all-ones
    mask, so the zero padding is what gets renormalised (partial-conv padding, Liu et al.
    2018b). ``Tensor[B, C_in, *S] -> Tensor[B, C_out, *S_out]``.
    """

    def masked(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(y, new_mask)`` for ``x: Tensor[B, C_in, *S]`` and ``mask: Tensor[B, 1, *S]``."""
        name = layer_name(self)
        require(
            mask.shape == (x.shape[0], 1, *x.shape[2:]),
            name,
            "mask",
            f"must have shape {(x.shape[0], 1, *x.shape[2:])}, got {tuple(mask.shape)}",
        )
        G.check_input(x, name, self.in_channels, self.dims)
        sym, rest = G.split_symmetric(self.geometry.check_fits(G.spatial(x, self.dims), name))
        padded, m = G.zero_pad(x * mask, rest), G.zero_pad(mask, rest)
        op = CONV_OPS[self.dims]
        raw = op(padded, self.weight, None, self.stride, sym, self.dilation, self.groups)
        ones = torch.ones(1, 1, *self.kernel_size, dtype=x.dtype, device=x.device)
        count = op(m, ones, None, self.stride, sym, self.dilation)  # valid pixels per window
        new_mask = (count > 0).to(x.dtype)
        scale = math.prod(self.kernel_size) / count.clamp_min(1)
        y = raw * scale * new_mask
        if self.bias is not None:
            y = y + self.bias.view(-1, *(1,) * self.dims) * new_mask
        return y, new_mask

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``Tensor[B, C_in, *S] -> Tensor[B, C_out, *S_out]`` with an all-ones mask."""
        G.check_input(x, layer_name(self), self.in_channels, self.dims)
        return self.masked(x, x.new_ones(x.shape[0], 1, *x.shape[2:]))[0]


@register("gated_conv", category="conv")
@defaults(kernel_size=3, padding="same")
class GatedConv(Conv):
    """Gated convolution: ``elu(W_f * x) ⊙ sigmoid(W_g * x)``, a learned soft mask.

    Yu, Lin, Yang, Shen, Lu & Huang 2019, "Free-Form Image Inpainting with Gated
    Convolution". ``Tensor[B, C_in, *S] -> Tensor[B, C_out, *S_out]``; the weight is
    ``Tensor[2·C_out, C_in/g, *k]``: the feature filters first, the gate filters second.
    The feature activation is ELU, as in the paper.
    """

    params_formula = "2·(C_out·C_in·k_h·k_w/g + C_out)"

    def __init__(
        self, in_channels: int, out_channels: int, *args: object, **kwargs: object
    ) -> None:
        super().__init__(in_channels, 2 * out_channels, *args, **kwargs)  # type: ignore[arg-type]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``Tensor[B, C_in, *S] -> Tensor[B, C_out, *S_out]``."""
        feature, gate = super().forward(x).chunk(2, dim=1)
        return F.elu(feature) * torch.sigmoid(gate)
