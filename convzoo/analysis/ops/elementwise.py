"""Element-wise rules: ops counted as ``elementwise_ops``.

Ops tagged ``torch.Tag.pointwise`` need no entry (one op per output value); the entries
here cover the rest: norms, softmax, activations and resampling (one op per output value),
reductions and adaptive pooling (one per input value read) and pooling (one per value of
every window).
"""

from __future__ import annotations

from functools import partial

import torch

from convzoo.analysis import formulas as f
from convzoo.analysis.ops.call import OpCall
from convzoo.analysis.ops.table import TABLE

aten = torch.ops.aten


def per_output(call: OpCall) -> int:
    """One op per value of the first output."""
    return call.output_numel()


def per_input(call: OpCall) -> int:
    """Adaptive pooling and reductions: one op per value of ``self`` read."""
    x = call.arg("self")
    return x.numel() if isinstance(x, torch.Tensor) else 0


def pooling(call: OpCall, axes: int) -> int:
    """Pooling over ``axes`` axes: ``prod(kernel_size)`` reads per output value
    (overlapping windows read a value several times); a one-element kernel is square."""
    kernel = call.arg("kernel_size")
    kernel = list(kernel) if isinstance(kernel, (list, tuple)) else [kernel]
    if len(kernel) == 1:
        kernel = kernel * axes
    return call.output_numel() * f.prod(kernel)


PER_OUTPUT = (
    aten.native_batch_norm, aten._native_batch_norm_legit,
    aten._native_batch_norm_legit_no_training, aten.native_layer_norm, aten.native_group_norm,
    aten._softmax, aten._log_softmax, aten._safe_softmax,
    aten.hardswish, aten.hardswish_, aten.hardsigmoid, aten.hardsigmoid_, aten.gelu_,
    aten.mish_, aten._prelu_kernel, aten.glu, aten.threshold_, aten.log_sigmoid_forward,
    aten.upsample_nearest1d, aten.upsample_nearest2d, aten.upsample_nearest3d,
    aten._upsample_nearest_exact1d, aten._upsample_nearest_exact2d,
    aten._upsample_nearest_exact3d, aten.upsample_linear1d, aten.upsample_bilinear2d,
    aten._upsample_bilinear2d_aa, aten.upsample_trilinear3d, aten.upsample_bicubic2d,
    aten._upsample_bicubic2d_aa,
    aten.native_dropout, aten.col2im, aten.grid_sampler_2d, aten.grid_sampler_3d,
    aten.bernoulli_, aten.bernoulli,
)  # fmt: skip
PER_INPUT = (
    aten._adaptive_avg_pool2d, aten._adaptive_avg_pool3d, aten.adaptive_max_pool1d,
    aten.adaptive_max_pool2d, aten.adaptive_max_pool3d,
    aten.mean, aten.sum, aten.amax, aten.amin, aten.var, aten.std, aten.linalg_vector_norm,
    aten.norm, aten.max, aten.min, aten.var_mean, aten.prod, aten.cumsum, aten.logsumexp,
    aten.argmax, aten.argmin, aten.any, aten.all,
)  # fmt: skip
POOLING = {
    aten.max_pool1d_with_indices: 1, aten.max_pool1d: 1, aten.avg_pool1d: 1,
    aten.max_pool2d_with_indices: 2, aten.avg_pool2d: 2,
    aten.max_pool3d_with_indices: 3, aten.avg_pool3d: 3,
}  # fmt: skip

for _op in PER_OUTPUT:
    TABLE.register(_op, elementwise=per_output)
for _op in PER_INPUT:
    TABLE.register(_op, elementwise=per_input)
for _op, _axes in POOLING.items():
    TABLE.register(_op, elementwise=partial(pooling, axes=_axes))
