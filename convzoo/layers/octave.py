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


@register("octave_conv", category="conv")
class OctaveConv(nn.Module):
    """Octave convolution: a share ``alpha`` of the channels processed at half resolution.

    Chen, Fan, Xu, Yan, Kalantidis, Rohrbach, Yan & Feng 2019, "Drop an Octave", packaged
    as one tensor in, one tensor out.
    ``Tensor[B, C_in, H, W] -> Tensor[B, C_out, H, W]`` (H, W even). The last
    ``round(alpha·C)`` channels are the low-frequency part, average-pooled 2x2 on entry:
    ``X_h`` (full size) and ``X_l`` (half size). With four k x k "same" convs
    ``Y_h = f_hh(X_h) + up(f_lh(X_l))`` and ``Y_l = f_ll(X_l) + f_hl(pool(X_h))``
    (``up``: nearest x2, ``pool``: average 2x2); the output is ``[Y_h, up(Y_l)]`` on the
    channels. The low-frequency convs run at a quarter of the positions: MACs about
    ``1 - 3/4·(2·alpha - alpha²)`` of a plain conv's.
    """

    params_formula = "C_out·C_in·k_h·k_w (split in four) + C_out"

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        alpha: float = 0.5,
        bias: bool = True,
    ) -> None:
        super().__init__()
        name = layer_name(self)
        c_in = C.positive_int(in_channels, name, "in_channels")
        c_out = C.positive_int(out_channels, name, "out_channels")
        a = C.number_in(alpha, 0, 1, name, "alpha")
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
        self.hh = Conv(hi_in, hi_out, *spec, bias=bias)
        self.lh = Conv(self.low_in, hi_out, *spec, bias=False)
        self.ll = Conv(self.low_in, self.low_out, *spec, bias=bias)
        self.hl = Conv(hi_in, self.low_out, *spec, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``Tensor[B, C_in, H, W] -> Tensor[B, C_out, H, W]``."""
        name = layer_name(self)
        G.check_input(x, name, self.in_channels)
        size = G.spatial(x, 2)
        require(size[0] % 2 == 0 and size[1] % 2 == 0, name, "input",
                f"spatial size must be even (a half-resolution part), got {size}")  # fmt: skip
        x_h = x[:, : self.in_channels - self.low_in]
        x_l = F.avg_pool2d(x[:, self.in_channels - self.low_in :], 2)
        up = lambda t: F.interpolate(t, scale_factor=2, mode="nearest")  # noqa: E731
        y_h = self.hh(x_h) + up(self.lh(x_l))
        y_l = self.ll(x_l) + self.hl(F.avg_pool2d(x_h, 2))
        return torch.cat([y_h, up(y_l)], 1)
