"""Sub-pixel convolution: upsampling by a conv to ``r^d`` times the channels and a pixel
shuffle, for ``d = dims`` spatial axes (1, 2 or 3)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from convzoo.layers import checks as C
from convzoo.layers import geometry as G
from convzoo.layers.standard import Conv, layer_name
from convzoo.registry import register


def shuffle_nd(x: torch.Tensor, r: int, dims: int) -> torch.Tensor:
    """Pixel shuffle over the last ``dims`` axes by a reshape and a permute.

    ``Tensor[B, C·r^d, *S] -> Tensor[B, C, *(r·S)]``: channel ``c·r^d + flat(i_1, ..., i_d)``
    (row-major offsets ``i_a < r``) becomes position ``(s_1·r + i_1, ..., s_d·r + i_d)`` of
    channel ``c``; at ``dims=2`` exactly ``F.pixel_shuffle(x, r)``.
    """
    b, size = x.shape[0], tuple(x.shape[2:])
    c = x.shape[1] // r**dims
    y = x.reshape(b, c, *(r,) * dims, *size)  # [B, C, i_1..i_d, s_1..s_d]
    order = [0, 1, *(p for a in range(dims) for p in (2 + dims + a, 2 + a))]  # s_1, i_1, ...
    return y.permute(order).reshape(b, c, *(n * r for n in size))


def pixel_shuffle(x: torch.Tensor, r: int, dims: int) -> torch.Tensor:
    """:func:`shuffle_nd`; torch's own ``pixel_shuffle`` op for images (``dims=2``)."""
    return F.pixel_shuffle(x, r) if dims == 2 else shuffle_nd(x, r, dims)


@register("sub_pixel", category="conv")
class SubPixel(Conv):
    """Sub-pixel convolution: a conv to ``r²·C_out`` channels, then a pixel shuffle (ICNR init).

    Shi et al. 2016, "Real-Time Single Image and Video Super-Resolution Using an
    Efficient Sub-Pixel Convolutional Neural Network".
    ``Tensor[B, C_in, *S] -> Tensor[B, C_out, *(r·S_out)]`` with ``d = dims`` spatial axes
    ``S`` (``r^d`` in place of ``r²`` below for 1-D and 3-D): a ``conv`` to ``C_out·r²``
    channels (``weight`` ``Tensor[C_out·r², C_in, k_h, k_w]``), then the pixel shuffle
    (:func:`pixel_shuffle`): channel ``c·r² + i·r + j`` becomes pixel ``(i, j)`` of each
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
        *,
        dims: int = 2,
    ) -> None:
        name = layer_name(self)
        r = C.positive_int(scale, name, "scale")
        c_out = C.positive_int(out_channels, name, "out_channels")
        blocks = r**self.dims  # self.dims is the rank the twin class was made for
        super().__init__(in_channels, c_out * blocks, kernel_size, 1, padding, bias=bias, dims=dims)
        self.scale, self.upsampled_channels = r, c_out
        self.icnr_()

    def icnr_(self) -> None:
        """ICNR: copy each output channel's first sub-kernel (and bias) to all ``r^d``."""
        blocks = self.scale**self.dims
        with torch.no_grad():
            w = self.weight.view(self.upsampled_channels, blocks, *self.weight.shape[1:])
            w.copy_(w[:, :1].expand_as(w))
            if self.bias is not None:
                b = self.bias.view(self.upsampled_channels, blocks)
                b.copy_(b[:, :1].expand_as(b))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``Tensor[B, C_in, *S] -> Tensor[B, C_out, *(r·S_out)]``."""
        return pixel_shuffle(super().forward(x), self.scale, self.dims)
