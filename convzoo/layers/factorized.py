"""Spatially factorized (separable) convolution: one 1-D kernel per axis instead of k x k."""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from convzoo.layers import checks as C
from convzoo.layers import geometry as G
from convzoo.layers.ranked import Ranked
from convzoo.layers.standard import Conv, layer_name
from convzoo.registry import register

AXIS_NAMES = ("depth", "col", "row")  # the conv along the last axis is ``row``


@register("factorized", category="conv")
class Factorized(G.Windowed, Ranked, nn.Sequential):
    """Spatially factorized k x k: one 1-D convolution per axis, last axis first.

    2-D: a 1 x k convolution (``row``) then a k x 1 (``col``):
    ``Tensor[B, C_in, H, W] -> Tensor[B, C_mid, H, W_out] -> Tensor[B, C_out, H_out, W_out]``,
    the same output size as the k x k convolution with the same arguments (3-D adds a
    ``depth`` convolution last; 1-D is a single ``row``). With no non-linearity between
    them, the pair equals a k x k convolution whose kernel has rank ``C_mid`` across
    channels: ``W[o, i, y, x] = sum_m col[o, m, y] * row[m, i, x]``. Only the last
    convolution has a bias (an earlier bias would leak through the next one's zero padding).
    """

    params_formula = "C_mid·C_in·k_w + C_out·C_mid·k_h + C_out"

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | G.Ints = 3,
        stride: int | G.Ints = 1,
        padding: G.PaddingSpec = "valid",
        dilation: int | G.Ints = 1,
        bias: bool = True,
        mid_channels: int | None = None,
        *,
        dims: int = 2,
    ) -> None:
        name = layer_name(self)
        geo = G.Geometry.parse(name, self.dims, kernel_size, stride, padding, dilation)
        mid = C.optional_positive_int(mid_channels, name, "mid_channels") or out_channels
        axes = list(reversed(range(self.dims)))
        parts: OrderedDict[str, nn.Module] = OrderedDict()
        for i, axis in enumerate(axes):
            last = i == len(axes) - 1
            g = geo.along(axis)
            parts[AXIS_NAMES[3 - self.dims + axis]] = Conv(
                in_channels if i == 0 else mid,
                out_channels if last else mid,
                g.kernel,
                g.stride,
                g.padding,
                g.dilation,
                bias=bias and last,
                dims=self.dims,
            )
        nn.Sequential.__init__(self, parts)
        self.geometry = geo
        self.kernel_size, self.stride, self.dilation = geo.kernel, geo.stride, geo.dilation
