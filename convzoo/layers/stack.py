"""A stack of 3x3 convolutions that replaces one k x k with the same receptive field (VGG)."""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from convzoo.errors import require
from convzoo.layers import padding as P
from convzoo.layers.basic import Activation
from convzoo.layers.standard import Conv
from convzoo.registry import register

MAX_KERNEL = 129  # 64 layers of 3x3


def stack_depth(kernel: int) -> int:
    """Number of 3x3 layers whose receptive field equals one ``kernel`` x ``kernel``: (k-1)/2."""
    return (kernel - 1) // 2


@register("conv_stack", category="conv")
class ConvStack(nn.Sequential):
    """(k-1)/2 stacked 3x3 convolutions with the receptive field of one k x k (VGG).

    ``Tensor[B, C_in, H, W] -> Tensor[B, C_out, H_out, W_out]`` with the output size of the
    k x k convolution it replaces: the first layer maps ``C_in -> C_out``, the rest keep
    ``C_out``; the stride sits on the last layer (so the field stays ``k``), each layer
    has the given dilation (field ``dilation·(k-1)+1``). Padding: ``valid``, ``same`` and
    ``full`` apply per layer; explicit ints pad the input of the first layer only.
    Children ``conv1``, ``act1``, ``conv2``, ...; ``activation`` (default none, so the
    stack stays linear like the kernel it replaces) goes between the convolutions.
    """

    params_formula = "9·C_out·(C_in + (n-1)·C_out) + n·C_out, n = (k-1)/2"

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | P.Pair = 7,
        stride: int | P.Pair = 1,
        padding: P.PaddingSpec = "valid",
        dilation: int | P.Pair = 1,
        bias: bool = True,
        activation: str | None = None,
    ) -> None:
        name = "conv_stack"
        k = P.pair(kernel_size, name, "kernel_size")
        require(
            k[0] == k[1] and k[0] % 2 == 1 and 3 <= k[0] <= MAX_KERNEL,
            name,
            "kernel_size",
            f"must be a square odd size from 3 to {MAX_KERNEL} (a stack of 3x3 has an odd "
            f"field), got {k}",
        )
        s = P.pair(stride, name, "stride")
        spec = P.check_padding(padding, name)
        n = stack_depth(k[0])
        parts: list[tuple[str, nn.Module]] = []
        for i in range(1, n + 1):
            pad = spec if isinstance(spec, str) or i == 1 else "valid"
            parts.append(
                (
                    f"conv{i}",
                    Conv(
                        in_channels if i == 1 else out_channels,
                        out_channels,
                        3,
                        s if i == n else 1,
                        pad,
                        dilation,
                        bias=bias,
                    ),
                )
            )
            if activation is not None and i < n:
                parts.append((f"act{i}", Activation(activation)))
        super().__init__(OrderedDict(parts))
        self.kernel_size, self.stride, self.pad_spec = k, s, spec
