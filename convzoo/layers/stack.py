"""A stack of 3x3 convolutions that replaces one k x k with the same receptive field (VGG)."""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from convzoo.errors import require
from convzoo.layers import geometry as G
from convzoo.layers.basic import Activation
from convzoo.layers.ranked import Ranked
from convzoo.layers.standard import Conv, layer_name
from convzoo.registry import register

MAX_KERNEL = 129  # 64 layers of 3x3


def stack_depth(kernel: int) -> int:
    """Number of 3x3 layers whose receptive field equals one ``kernel`` x ``kernel``: (k-1)/2."""
    return (kernel - 1) // 2


@register("conv_stack", category="conv")
class ConvStack(G.Windowed, Ranked, nn.Sequential):
    """(k-1)/2 stacked 3x3 convolutions with the receptive field of one k x k (VGG).

    ``Tensor[B, C_in, *S] -> Tensor[B, C_out, *S_out]`` with the output size of the
    k x k convolution it replaces: the first layer maps ``C_in -> C_out``, the rest keep
    ``C_out``; the stride sits on the last layer (so the field stays ``k``), each layer
    has the given dilation (field ``dilation·(k-1)+1``). Padding: ``valid``, ``same`` and
    ``full`` apply per layer; explicit ints pad the input of the first layer only.
    Children ``conv1``, ``act1``, ``conv2``, ...; ``activation`` (default none, so the
    stack stays linear like the kernel it replaces) goes between the convolutions.
    In 1-D and 3-D the small kernel is 3 and 3x3x3.
    """

    params_formula = "9·C_out·(C_in + (n-1)·C_out) + n·C_out, n = (k-1)/2"

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | G.Ints = 7,
        stride: int | G.Ints = 1,
        padding: G.PaddingSpec = "valid",
        dilation: int | G.Ints = 1,
        bias: bool = True,
        activation: str | None = None,
        *,
        dims: int = 2,
    ) -> None:
        name = layer_name(self)
        geo = G.Geometry.parse(name, self.dims, kernel_size, stride, padding, dilation)
        k = geo.kernel
        require(
            len(set(k)) == 1 and k[0] % 2 == 1 and 3 <= k[0] <= MAX_KERNEL,
            name,
            "kernel_size",
            f"must be a square odd size from 3 to {MAX_KERNEL} (a stack of 3x3 has an odd "
            f"field), got {k}",
        )
        n = stack_depth(k[0])
        parts: OrderedDict[str, nn.Module] = OrderedDict()
        for i in range(1, n + 1):
            pad = geo.padding if isinstance(geo.padding, str) or i == 1 else "valid"
            parts[f"conv{i}"] = Conv(
                in_channels if i == 1 else out_channels,
                out_channels,
                3,
                geo.stride if i == n else 1,
                pad,
                geo.dilation,
                bias=bias,
                dims=self.dims,
            )
            if activation is not None and i < n:
                parts[f"act{i}"] = Activation(activation)
        nn.Sequential.__init__(self, parts)
        self.geometry = geo
        self.kernel_size, self.stride = k, geo.stride
