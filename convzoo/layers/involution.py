"""Involution: a kernel generated from each pixel, shared across the channels of a group."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from convzoo.layers import checks as C
from convzoo.layers import geometry as G
from convzoo.layers.basic import BatchNorm
from convzoo.layers.standard import Pointwise, layer_name
from convzoo.registry import register


@register("involution", category="attention")
class Involution(nn.Module):
    """Involution: a k x k kernel per pixel and channel group, generated from that pixel.

    Li, Hu, Wang, Hu, Fan, Huang, Zhang & Chen 2021, "Involution: Inverting the Inherence
    of Convolution for Visual Recognition".
    ``Tensor[B, C, H, W] -> Tensor[B, C, H_out, W_out]``. At output pixel ``(i, j)`` a
    ``k x k`` kernel per channel group is generated from the input pixel ``(i·s, j·s)``
    (an average pool of stride ``s`` when ``s > 1``): ``span(relu(bn(reduce(x))))``,
    ``reduce: C -> C/r`` and ``span: C/r -> k²·G`` (1x1 convs). Channel ``c`` of group
    ``g = c // (C/G)``: ``y[c, i, j] = sum_{u,v} H[g, u, v, i, j] x_pad[c, i·s + u, j·s + v]``
    with "same" padding. The weights depend on the input, so the receptive field is the
    ``k x k`` window plus the generating pixel (inside it).
    """

    params_formula = "C·C/r + 2·C/r + C/r·k²·G + k²·G"

    def __init__(
        self,
        in_channels: int,
        kernel_size: int = 7,
        stride: int = 1,
        groups: int = 1,
        reduction: int = 4,
    ) -> None:
        super().__init__()
        name = layer_name(self)
        c = C.positive_int(in_channels, name, "in_channels")
        self.groups = C.positive_int(groups, name, "groups")
        C.divides(self.groups, c, name, "groups", "in_channels")
        self.geometry = G.Geometry.parse(name, 2, kernel_size, stride, "same")
        hidden = max(c // C.positive_int(reduction, name, "reduction"), 1)
        k = self.geometry.kernel
        self.in_channels = self.out_channels = c
        self.reduce = nn.Sequential(Pointwise(c, hidden, bias=False), BatchNorm(hidden), nn.ReLU())
        self.span = Pointwise(hidden, k[0] * k[1] * self.groups)

    def kernels(self, x: torch.Tensor) -> torch.Tensor:
        """The generated kernels ``Tensor[B, G, k·k, H_out, W_out]``."""
        s = self.geometry.stride
        source = x if s == (1, 1) else F.avg_pool2d(x, s, s, ceil_mode=True)
        h = self.span(self.reduce(source))
        return h.view(x.shape[0], self.groups, -1, *h.shape[2:])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``Tensor[B, C, H, W] -> Tensor[B, C, H_out, W_out]``."""
        G.check_input(x, layer_name(self), self.in_channels)
        g = self.geometry
        pads = g.check_fits(G.spatial(x, 2), layer_name(self))
        out = g.output_size(G.spatial(x, 2))
        cols = F.unfold(G.zero_pad(x, pads), g.kernel, 1, 0, g.stride)  # [B, C·k², L]
        b = x.shape[0]
        cols = cols.view(b, self.groups, self.in_channels // self.groups, -1, *out)
        h = self.kernels(x)[..., : out[0], : out[1]]  # [B, G, k², H, W]
        y = torch.einsum("bgckhw,bgkhw->bgchw", cols, h)  # a batched matmul: counted as MACs
        return y.reshape(b, self.in_channels, *out)
