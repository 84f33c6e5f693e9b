"""CoordConv: a convolution that also sees each pixel's coordinates."""

from __future__ import annotations

import torch

from convzoo.layers import geometry as G
from convzoo.layers.ranked import defaults
from convzoo.layers.standard import Conv, layer_name
from convzoo.registry import register


def coordinates(x: torch.Tensor) -> torch.Tensor:
    """``Tensor[B, C, *S] -> Tensor[B, C + n, *S]``: one channel per spatial axis holding
    that axis' coordinate, linearly from -1 (first) to 1 (last; 0 for a size-1 axis)."""
    b, n, sizes = x.shape[0], x.dim() - 2, x.shape[2:]
    grids = torch.meshgrid(
        *(torch.linspace(-1, 1, s, dtype=x.dtype, device=x.device) if s > 1 else
          torch.zeros(1, dtype=x.dtype, device=x.device) for s in sizes),
        indexing="ij",
    )  # fmt: skip
    coords = torch.stack(grids).expand(b, n, *sizes)
    return torch.cat([x, coords], 1)


@register("coord_conv", category="conv")
@defaults(kernel_size=3, padding="same")
class CoordConv(Conv):
    """CoordConv: ``conv`` on the input with ``dims`` coordinate channels appended.

    Liu et al. 2018, "An Intriguing Failing of Convolutional Neural Networks and the
    CoordConv Solution". ``Tensor[B, C_in, *S] -> Tensor[B, C_out, *S_out]``; the weight is
    ``Tensor[C_out, C_in + dims, *k]`` (the coordinate channels last).
    """

    params_formula = "C_out·(C_in + 2)·k_h·k_w + C_out"

    def __init__(self, in_channels: int, *args: object, **kwargs: object) -> None:
        self.data_channels = in_channels
        super().__init__(in_channels + kwargs.get("dims", 2), *args, **kwargs)  # type: ignore[arg-type, operator]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``Tensor[B, C_in, *S] -> Tensor[B, C_out, *S_out]``."""
        G.check_input(x, layer_name(self), self.data_channels, self.dims)
        return super().forward(coordinates(x))
