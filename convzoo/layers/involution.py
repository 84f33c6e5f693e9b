"""Involution: a kernel generated from each position, shared across the channels of a group."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from convzoo.layers import checks as C
from convzoo.layers import geometry as G
from convzoo.layers.basic import BatchNorm
from convzoo.layers.standard import Pointwise, layer_name
from convzoo.registry import register

POOL = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}
SPATIAL = "xyz"
"""einsum letters of the spatial axes (the other letters: b, g, c, k)."""


def windows_nd(x: torch.Tensor, kernel: G.Ints, stride: G.Ints) -> torch.Tensor:
    """The windows of ``x`` by ``Tensor.unfold`` on each spatial axis (no padding).

    ``Tensor[B, C, *S] -> Tensor[B, C, K, *S_out]`` with ``K = prod(kernel)`` taps in
    row-major order and ``S_out = (S - kernel) // stride + 1``: at ``dims=2`` exactly
    ``F.unfold(x, kernel, stride=stride)`` viewed as ``[B, C, K, H_out, W_out]``.
    """
    n = len(kernel)
    cols = x
    for a in range(n):  # each adds a tap axis at the end: [B, C, *S_out, *kernel]
        cols = cols.unfold(2 + a, kernel[a], stride[a])
    return cols.flatten(2 + n).movedim(-1, 2)


def windows(x: torch.Tensor, kernel: G.Ints, stride: G.Ints) -> torch.Tensor:
    """:func:`windows_nd`; torch's own ``F.unfold`` (im2col) for images."""
    if len(kernel) != 2:
        return windows_nd(x, kernel, stride)
    out = [(n - k) // s + 1 for n, k, s in zip(x.shape[2:], kernel, stride, strict=True)]
    return F.unfold(x, kernel, 1, 0, stride).view(*x.shape[:2], -1, *out)


@register("involution", category="attention")
class Involution(nn.Module):
    """Involution: a k x k kernel per pixel and channel group, generated from that pixel.

    Li, Hu, Wang, Hu, Fan, Huang, Zhang & Chen 2021, "Involution: Inverting the Inherence
    of Convolution for Visual Recognition".
    ``Tensor[B, C, *S] -> Tensor[B, C, *S_out]`` with ``dims`` spatial axes ``S`` (1, 2 or
    3; written here for images). At output pixel ``(i, j)`` a
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
        *,
        dims: int = 2,
    ) -> None:
        super().__init__()
        name = layer_name(self)
        c = C.positive_int(in_channels, name, "in_channels")
        self.groups = C.positive_int(groups, name, "groups")
        C.divides(self.groups, c, name, "groups", "in_channels")
        n = self.dims = C.dims(dims, name)
        self.geometry = G.Geometry.parse(name, n, kernel_size, stride, "same")
        hidden = max(c // C.positive_int(reduction, name, "reduction"), 1)
        taps = math.prod(self.geometry.kernel)
        self.in_channels = self.out_channels = c
        self.reduce = nn.Sequential(
            Pointwise(c, hidden, bias=False, dims=n), BatchNorm(hidden, dims=n), nn.ReLU()
        )
        self.span = Pointwise(hidden, taps * self.groups, dims=n)

    def kernels(self, x: torch.Tensor) -> torch.Tensor:
        """The generated kernels ``Tensor[B, G, K, *ceil(S / s)]`` (``K = k^dims`` taps)."""
        s = self.geometry.stride
        source = x if all(v == 1 for v in s) else POOL[self.dims](x, s, s, ceil_mode=True)
        h = self.span(self.reduce(source))
        return h.view(x.shape[0], self.groups, -1, *h.shape[2:])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``Tensor[B, C, *S] -> Tensor[B, C, *S_out]``."""
        G.check_input(x, layer_name(self), self.in_channels, self.dims)
        g = self.geometry
        pads = g.check_fits(G.spatial(x, self.dims), layer_name(self))
        out = g.output_size(G.spatial(x, self.dims))
        cols = windows(G.zero_pad(x, pads), g.kernel, g.stride)  # [B, C, K, *S_out]
        b = x.shape[0]
        cols = cols.view(b, self.groups, self.in_channels // self.groups, *cols.shape[2:])
        h = G.crop(self.kernels(x), (0,) * self.dims, out)  # [B, G, K, *S_out]
        axes = SPATIAL[: self.dims]
        # a batched matmul per position: counted as MACs
        y = torch.einsum(f"bgck{axes},bgk{axes}->bgc{axes}", cols, h)
        return y.reshape(b, self.in_channels, *out)
