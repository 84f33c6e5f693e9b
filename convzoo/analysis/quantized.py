"""Costs of PyTorch's quantized kernels (``torch.ops.quantized``), as for their float twins.

Quantized convolutions and linear layers keep their weights packed in a script object; the
rules unpack the weight's shape (``conv2d_unpack`` / ``linear_unpack``) and apply the same
formulas as :mod:`convzoo.analysis.ops` (1 MAC per int8 multiply-add). Element-wise
quantized ops count one op per output value; concatenation is free. Quantized models
cannot run on meta tensors, so these rules meet real tensors on the fallback.
"""

from __future__ import annotations

from typing import Any

import torch

from convzoo.analysis import formulas as f
from convzoo.analysis.ops import FREE, elementwise_rule, first, macs_rule, shape

_q = torch.ops.quantized
_UNPACK = {1: "conv1d_unpack", 2: "conv2d_unpack", 3: "conv3d_unpack"}


def _conv(args: tuple, kwargs: dict, out: Any) -> int:
    """``quantized::conv{1,2,3}d[_relu](qx, packed_weight, scale, zero_point)``."""
    x, packed = args[0], args[1]
    weight, _ = getattr(_q, _UNPACK[x.dim() - 2])(packed)
    return f.conv_macs(shape(x), shape(weight), shape(first(out)), transposed=False)


def _linear(args: tuple, kwargs: dict, out: Any) -> int:
    """``quantized::linear[_relu](X, packed_weight, scale, zero_point)``: X [.., in]."""
    weight, _ = _q.linear_unpack(args[1])
    return first(out).numel() * weight.shape[1]


macs_rule(_q.conv1d, _q.conv2d, _q.conv3d, _q.conv1d_relu, _q.conv2d_relu, _q.conv3d_relu)(_conv)
macs_rule(_q.linear, _q.linear_relu)(_linear)
elementwise_rule(
    _q.add,
    _q.add_relu,
    _q.add_scalar,
    _q.mul,
    _q.mul_relu,
    _q.mul_scalar,
    _q.hardswish,
    _q.relu6,
    _q.leaky_relu,
    _q.sigmoid,
    _q.batch_norm2d,
    _q.layer_norm,
    torch.ops.aten.quantize_per_tensor,
    torch.ops.aten.quantize_per_channel,
    torch.ops.aten.dequantize,
)(lambda args, kwargs, out: first(out).numel())
elementwise_rule(torch.ops.aten.quantized_max_pool2d, torch.ops.aten.quantized_max_pool1d)(
    lambda args, kwargs, out: first(out).numel() * f.prod(args[1])
)
FREE.update({_q.cat, _q.cat_relu})
