"""Costs of PyTorch's quantized kernels (``torch.ops.quantized``), as for their float twins.

Quantized convolutions and linear layers keep their weights packed in a script object; the
rules unpack the weight's shape (``conv2d_unpack`` / ``linear_unpack``) and apply the same
formulas as :mod:`.linear` (1 MAC per int8 multiply-add). Element-wise quantized ops count
one op per output value; concatenation is free. Quantized models cannot run on meta
tensors, so these rules meet real tensors on the fallback.
"""

from __future__ import annotations

import torch

from convzoo.analysis import formulas as f
from convzoo.analysis.ops.call import OpCall
from convzoo.analysis.ops.elementwise import per_output
from convzoo.analysis.ops.table import TABLE

_UNPACK = {1: "conv1d_unpack", 2: "conv2d_unpack", 3: "conv3d_unpack"}


def packed(call: OpCall) -> object:
    """The packed weight (``packed_weight``; ``weight`` in the legacy overloads)."""
    weight = call.arg("packed_weight")
    return call.arg("weight") if weight is None else weight


def conv(call: OpCall) -> int:
    """``quantized::conv{1,2,3}d[_relu](qx, packed_weight, output_scale, output_zero_point)``."""
    x = call.arg("qx")
    weight, _ = getattr(torch.ops.quantized, _UNPACK[x.dim() - 2])(packed(call))
    return f.conv_macs(list(x.shape), list(weight.shape), list(call.result.shape), False)


def linear(call: OpCall) -> int:
    """``quantized::linear[_relu](X [.., in], W_prepack, Y_scale_i, Y_zero_point_i)``."""
    weight, _ = torch.ops.quantized.linear_unpack(call.arg("W_prepack"))
    return call.output_numel() * weight.shape[1]


def max_pool(call: OpCall) -> int:
    """``quantized_max_pool{1,2}d``: ``prod(kernel_size)`` reads per output value."""
    return call.output_numel() * f.prod(call.arg("kernel_size"))


for _n in (1, 2, 3):
    for _suffix in ("", "_relu"):
        TABLE.register(f"quantized::conv{_n}d{_suffix}", macs=conv)
for _name in ("linear", "linear_relu"):
    TABLE.register(f"quantized::{_name}", macs=linear)
for _name in (
    "quantized::add", "quantized::add_relu", "quantized::add_scalar", "quantized::mul",
    "quantized::mul_relu", "quantized::mul_scalar", "quantized::hardswish",
    "quantized::relu6", "quantized::leaky_relu", "quantized::sigmoid",
    "quantized::batch_norm2d", "quantized::layer_norm",
    "aten::quantize_per_tensor", "aten::quantize_per_channel", "aten::dequantize",
):  # fmt: skip
    TABLE.register(_name, elementwise=per_output)
for _name in ("aten::quantized_max_pool1d", "aten::quantized_max_pool2d"):
    TABLE.register(_name, elementwise=max_pool)
for _name in ("quantized::cat", "quantized::cat_relu"):
    TABLE.register(_name, free="concatenation or splitting")
