"""Octave convolution: a share of the channels kept at half resolution."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from convzoo.errors import require
from convzoo.layers import checks as C
from convzoo.layers import geometry as G
from convzoo.layers.standard import Conv, layer_name
from convzoo.registry import register

HALVE = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}
"""Average pooling of each rank, used with window and stride 2 on every axis."""


@register("octave_conv", category="conv")
class OctaveConv(nn.Module):
    """Octave convolution: a share ``alpha`` of the channels processed at half resolution.

    Chen, Fan, Xu, Yan, Kalantidis, Rohrbach, Yan & Feng 2019, "Drop an Octave", packaged
    as one tensor in, one tensor out.
    ``Tensor[B, C_in, *S] -> Tensor[B, C_out, *S]`` with ``d = dims`` spatial axes ``S``
    (1, 2 or 3; every side even). The last ``round(alpha·C)`` channels are the
    low-frequency part, average-pooled by 2 on every axis on entry:
    ``X_h`` (full size) and ``X_l`` (half size). With four k x k "same" convs
    ``Y_h = f_hh(X_h) + up(f_lh(X_l))`` and ``Y_l = f_ll(X_l) + f_hl(pool(X_h))``
    (``up``: nearest x2, ``pool``: average by 2, on every axis); the output is
    ``[Y_h, up(Y_l)]`` on the channels. The low-frequency convs run at ``1/2^d`` of the
    positions: in 2-D, MACs about ``1 - 3/4·(2·alpha - alpha²)`` of a plain conv's.
    """

    params_formula = "C_out·C_in·k_h·k_w (split in four) + C_out"

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        alpha: float = 0.5,
        bias: bool = True,
        *,
        dims: int = 2,
    ) -> None:
        super().__init__()
        name = layer_name(self)
        c_in = C.positive_int(in_channels, name, "in_channels")
        c_out = C.positive_int(out_channels, name, "out_channels")
        a = C.number_in(alpha, 0, 1, name, "alpha")
        n = self.dims = C.dims(dims, name)
        self.low_in, self.low_out = round(a * c_in), round(a * c_out)
        require(
            0 < self.low_in < c_in and 0 < self.low_out < c_out,
            name,
            "alpha",
            f"must leave both parts non-empty for {c_in} -> {c_out} channels, got {alpha!r}",
        )
        hi_in, hi_out = c_in - self.low_in, c_out - self.low_out
        self.in_channels, self.out_channels, self.alpha = c_in, c_out, a
        spec = (kernel_size, 1, "same")
        self.hh = Conv(hi_in, hi_out, *spec, bias=bias, dims=n)
        self.lh = Conv(self.low_in, hi_out, *spec, bias=False, dims=n)
        self.ll = Conv(self.low_in, self.low_out, *spec, bias=bias, dims=n)
        self.hl = Conv(hi_in, self.low_out, *spec, bias=False, dims=n)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``Tensor[B, C_in, *S] -> Tensor[B, C_out, *S]``."""
        name = layer_name(self)
        G.check_input(x, name, self.in_channels, self.dims)
        size = G.spatial(x, self.dims)
        require(all(n % 2 == 0 for n in size), name, "input",
                f"spatial size must be even (a half-resolution part), got {size}")  # fmt: skip
        pool = HALVE[self.dims]
        x_h = x[:, : self.in_channels - self.low_in]
        x_l = pool(x[:, self.in_channels - self.low_in :], 2)
        up = lambda t: F.interpolate(t, scale_factor=2, mode="nearest")  # noqa: E731
        y_h = self.hh(x_h) + up(self.lh(x_l))
        y_l = self.ll(x_l) + self.hl(pool(x_h, 2))
        return torch.cat([y_h, up(y_l)], 1)
