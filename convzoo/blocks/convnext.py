"""The ConvNeXt block (Liu, Mao, Wu, Feichtenhofer, Darrell & Xie 2022,
"A ConvNet for the 2020s")."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from convzoo.layers import checks as C
from convzoo.layers import geometry as G
from convzoo.layers.standard import Depthwise, layer_name
from convzoo.registry import register


@register("convnext_block", category="block")
class ConvNeXtBlock(nn.Module):
    """ConvNeXt block: depthwise 7x7, LayerNorm, MLP C -> 4C -> C, layer scale, plus input.

    ``Tensor[B, C, *S] -> Tensor[B, C, *S]`` with ``dims`` spatial axes ``S`` (1, 2 or 3);
    children ``dwconv`` ("same" padding), ``norm`` (over channels, eps 1e-6), ``pw1``,
    ``pw2`` (per-position linears, as 1x1 convs in channels-last), ``gamma``
    (``Tensor[C]``, initialised to ``layer_scale``).
    Stochastic depth is left out (identity at inference).
    """

    params_formula = "C·(49 + 1) + 2·C + 8·C² + 5·C + C"

    def __init__(
        self,
        in_channels: int,
        kernel_size: int = 7,
        expansion: int = 4,
        layer_scale: float = 1e-6,
        *,
        dims: int = 2,
    ) -> None:
        super().__init__()
        name = layer_name(self)
        c = C.positive_int(in_channels, name, "in_channels")
        hidden = c * C.positive_int(expansion, name, "expansion")
        self.in_channels = self.out_channels = c
        self.dims = C.dims(dims, name)
        self.dwconv = Depthwise(c, kernel_size, padding="same", dims=self.dims)
        self.norm = nn.LayerNorm(c, eps=1e-6)
        self.pw1 = nn.Linear(c, hidden)
        self.pw2 = nn.Linear(hidden, c)
        scale = C.positive_number(layer_scale, name, "layer_scale")
        self.gamma = nn.Parameter(torch.full((c,), scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``Tensor[B, C, *S] -> Tensor[B, C, *S]``."""
        G.check_input(x, layer_name(self), self.in_channels, self.dims)
        y = self.dwconv(x).movedim(1, -1)  # channels last for the norm and linears
        y = self.pw2(F.gelu(self.pw1(self.norm(y)))) * self.gamma
        return x + y.movedim(-1, 1)
