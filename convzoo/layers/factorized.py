"""Spatially factorized (separable) convolution: 1 x k then k x 1 instead of k x k."""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from convzoo.layers import padding as P
from convzoo.layers.standard import Conv
from convzoo.registry import register


def axis_only(spec: P.PaddingSpec, axis: int) -> P.PaddingSpec:
    """The padding spec restricted to one axis (0 = h, 1 = w); modes pass through unchanged.

    A mode resolves to no padding along an axis whose kernel is 1, so only explicit
    ``(p_h, p_w)`` padding needs splitting.
    """
    if isinstance(spec, str):
        return spec
    return (spec[0], 0) if axis == 0 else (0, spec[1])  # type: ignore[index]


@register("factorized", category="conv")
class Factorized(nn.Sequential):
    """Spatially factorized k x k: a 1 x k convolution (``row``) then a k x 1 (``col``).

    ``Tensor[B, C_in, H, W] -> Tensor[B, C_mid, H, W_out] -> Tensor[B, C_out, H_out, W_out]``,
    the same output size as the k x k convolution with the same arguments. With no
    non-linearity between them, the pair equals a k x k convolution whose kernel has rank
    ``C_mid`` across channels: ``W[o, i, y, x] = sum_m col[o, m, y] * row[m, i, x]``.
    Only the ``col`` convolution has a bias (a bias on ``row`` would leak through the
    zero padding of ``col``).
    """

    params_formula = "C_mid·C_in·k_w + C_out·C_mid·k_h + C_out"

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | P.Pair = 3,
        stride: int | P.Pair = 1,
        padding: P.PaddingSpec = "valid",
        dilation: int | P.Pair = 1,
        bias: bool = True,
        mid_channels: int | None = None,
    ) -> None:
        name = "factorized"
        k = P.pair(kernel_size, name, "kernel_size")
        s = P.pair(stride, name, "stride")
        d = P.pair(dilation, name, "dilation")
        spec = P.check_padding(padding, name)
        mid = out_channels if mid_channels is None else mid_channels
        super().__init__(
            OrderedDict(
                [
                    (
                        "row",
                        Conv(
                            in_channels,
                            mid,
                            (1, k[1]),
                            (1, s[1]),
                            axis_only(spec, 1),
                            (1, d[1]),
                            bias=False,
                        ),
                    ),
                    (
                        "col",
                        Conv(
                            mid,
                            out_channels,
                            (k[0], 1),
                            (s[0], 1),
                            axis_only(spec, 0),
                            (d[0], 1),
                            bias=bias,
                        ),
                    ),
                ]
            )
        )
        self.kernel_size, self.stride, self.dilation, self.pad_spec = k, s, d, spec
