"""Sub-pixel convolution: upsampling by a conv to ``r²`` times the channels and a pixel shuffle."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from convzoo.layers import checks as C
from convzoo.layers import geometry as G
from convzoo.layers.standard import Conv, layer_name
from convzoo.registry import register


@register("sub_pixel", category="conv")
class SubPixel(Conv):
    """Sub-pixel convolution: a conv to ``r²·C_out`` channels, then a pixel shuffle (ICNR init).

    Shi et al. 2016, "Real-Time Single Image and Video Super-Resolution Using an
    Efficient Sub-Pixel Convolutional Neural Network".
    ``Tensor[B, C_in, H, W] -> Tensor[B, C_out, r·H_out, r·W_out]``: a ``conv`` to
    ``C_out·r²`` channels (``weight`` ``Tensor[C_out·r², C_in, k_h, k_w]``), then
    ``pixel_shuffle(r)``: channel ``c·r² + i·r + j`` becomes pixel ``(i, j)`` of each
    ``r x r`` block of channel ``c``. Initialised with ICNR (Aitken et al. 2017): the ``r²``
    sub-kernels of each output channel are equal, so a fresh layer equals a conv followed
    by nearest-neighbour upsampling (no checkerboard artefacts).
    """

    params_formula = "r²·(C_out·C_in·k_h·k_w + C_out)"

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | G.Ints = 3,
        scale: int = 2,
        padding: G.PaddingSpec = "same",
        bias: bool = True,
    ) -> None:
        name = layer_name(self)
        r = C.positive_int(scale, name, "scale")
        c_out = C.positive_int(out_channels, name, "out_channels")
        super().__init__(in_channels, c_out * r * r, kernel_size, 1, padding, bias=bias)
        self.scale, self.upsampled_channels = r, c_out
        self.icnr_()

    def icnr_(self) -> None:
        """ICNR: copy each output channel's first sub-kernel (and bias) to all ``r²``."""
        r2 = self.scale**2
        with torch.no_grad():
            w = self.weight.view(self.upsampled_channels, r2, *self.weight.shape[1:])
            w.copy_(w[:, :1].expand_as(w))
            if self.bias is not None:
                b = self.bias.view(self.upsampled_channels, r2)
                b.copy_(b[:, :1].expand_as(b))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``Tensor[B, C_in, H, W] -> Tensor[B, C_out, r·H_out, r·W_out]``."""
        return F.pixel_shuffle(super().forward(x), self.scale)
