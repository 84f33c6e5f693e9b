"""Cost rules of the ops autograd's backward runs (:mod:`convzoo.analysis.backward`).

MACs: ``convolution_backward`` costs one forward convolution per gradient it computes
(``output_mask``: the input's, the weight's), the matrix products of a linear layer's
backward are the ordinary ``mm``/``bmm`` rules. A gradient of the input runs the forward's
multiply-adds transposed (every ``x[i] * w[j]`` term of the forward becomes one
``grad_y[o] * w[j]`` term), and so does the weight's, groups included (FlopCounterMode's
weight-gradient formula swaps batch and channels and so counts a grouped convolution's
weight gradient ``groups`` times: the tests say so and count it by hand). The bias's
gradient is a sum over ``grad_output`` (one element-wise op per value read, fused).

Element-wise: the backward of norms, softmax, pooling, resampling and activations without a
pointwise tag counts one op per value of the first gradient it returns, as their forwards
count one per output value.
"""

from __future__ import annotations

import torch

from convzoo.analysis import formulas as f
from convzoo.analysis.ops.call import OpCall
from convzoo.analysis.ops.elementwise import per_output
from convzoo.analysis.ops.table import TABLE

aten = torch.ops.aten


def _mask(call: OpCall) -> list[bool]:
    return [bool(m) for m in call.arg("output_mask")]


def conv_backward(call: OpCall) -> int:
    """``convolution_backward(grad_output, input, weight, ..., transposed, ..., output_mask)``:
    the forward's MACs once per gradient computed of the input and the weight."""
    forward = f.conv_macs(
        call.shape("input"),
        call.shape("weight"),
        call.shape("grad_output"),
        bool(call.arg("transposed")),
    )
    return forward * sum(_mask(call)[:2])


def conv_bias_grad(call: OpCall) -> int:
    """The bias's gradient: ``grad_output`` summed over all but the channel axis."""
    return call.arg("grad_output").numel() if _mask(call)[2] else 0


TABLE.register(aten.convolution_backward, macs=conv_backward, fused=conv_bias_grad)

PER_GRADIENT = (
    aten.native_batch_norm_backward, aten.native_layer_norm_backward,
    aten.native_group_norm_backward, aten._softmax_backward_data,
    aten._log_softmax_backward_data, aten.hardswish_backward, aten.hardsigmoid_backward,
    aten.max_pool2d_with_indices_backward, aten.max_pool3d_with_indices_backward,
    aten.avg_pool2d_backward, aten.avg_pool3d_backward,
    aten._adaptive_avg_pool2d_backward, aten._adaptive_avg_pool3d_backward,
    aten.adaptive_max_pool2d_backward, aten.adaptive_max_pool3d_backward,
    aten.upsample_nearest1d_backward, aten.upsample_nearest2d_backward,
    aten.upsample_nearest3d_backward, aten.upsample_linear1d_backward,
    aten.upsample_bilinear2d_backward, aten.upsample_trilinear3d_backward,
    aten.upsample_bicubic2d_backward, aten.embedding_dense_backward, aten.mish_backward,
    aten.elu_backward, aten.leaky_relu_backward, aten.glu_backward,
    aten.log_sigmoid_backward, aten.softplus_backward, aten.hardtanh_backward,
    aten._prelu_kernel_backward, aten.grid_sampler_2d_backward, aten.grid_sampler_3d_backward,
)  # fmt: skip
for _op in PER_GRADIENT:
    TABLE.register(_op, elementwise=per_output)

SCATTERED = (aten.select_backward, aten.slice_backward, aten.diagonal_backward)
"""Backward of a view: the gradient placed into zeros of the input's shape."""
for _op in SCATTERED:
    TABLE.register(_op, free="the gradient of a view placed into zeros (values moved)")
