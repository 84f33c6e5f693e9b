"""What each aten op costs: handler tables keyed by op, filled by decorators.

Every op lands in exactly one class:

* ``MAC_RULES``: linear algebra (convolutions, matmuls, FFTs, deformable conv) -> MACs;
* element-wise work (``torch.Tag.pointwise`` ops, norms, pooling, reductions, softmax)
  -> ``elementwise_ops`` (one per output value; pooling and reductions one per input
  value they read);
* ``FREE``: ops without arithmetic (views, copies, padding, concatenation, allocation);
* anything else is *uncounted*: reported by name, and the report is not ``complete``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from convzoo.analysis import formulas as f

aten = torch.ops.aten
Rule = Callable[[tuple, dict, Any], int]
MAC_RULES: dict[Any, Rule] = {}
ELEMENTWISE_RULES: dict[Any, Rule] = {}


def macs_rule(*ops: Any) -> Callable[[Rule], Rule]:
    """Register a MAC formula for the given op packets."""

    def decorator(rule: Rule) -> Rule:
        for op in ops:
            MAC_RULES[op] = rule
        return rule

    return decorator


def elementwise_rule(*ops: Any) -> Callable[[Rule], Rule]:
    """Register an element-wise op count for the given op packets."""

    def decorator(rule: Rule) -> Rule:
        for op in ops:
            ELEMENTWISE_RULES[op] = rule
        return rule

    return decorator


def shape(t: Any) -> list[int]:
    return list(t.shape)


def first(out: Any) -> torch.Tensor:
    return out[0] if isinstance(out, (tuple, list)) else out


def complex_factor(*tensors: Any) -> int:
    return f.COMPLEX_MAC if any(t.is_complex() for t in tensors) else 1


@macs_rule(aten.convolution, aten._convolution)
def _conv(args: tuple, kwargs: dict, out: Any) -> int:
    x, w, transposed = args[0], args[1], bool(args[6])
    return f.conv_macs(shape(x), shape(w), shape(first(out)), transposed)


@macs_rule(aten.mm, aten.bmm, aten.matmul, aten.dot, aten.mv)
def _mm(args: tuple, kwargs: dict, out: Any) -> int:
    a, b = args[0], args[1]
    return f.matmul_macs(shape(a), shape(b)) * complex_factor(a, b)


@macs_rule(aten.addmm, aten.baddbmm, aten.addmv, aten.addbmm)
def _addmm(args: tuple, kwargs: dict, out: Any) -> int:
    a, b = args[1], args[2]
    batch_sum = f.matmul_macs(shape(a), shape(b))  # addbmm sums the batch: same MACs
    return batch_sum * complex_factor(a, b)


@macs_rule(aten._fft_r2c)
def _rfft(args: tuple, kwargs: dict, out: Any) -> int:
    return f.fft_macs(shape(args[0]), args[1], real=True)


@macs_rule(aten._fft_c2r)
def _irfft(args: tuple, kwargs: dict, out: Any) -> int:
    return f.fft_macs(shape(first(out)), args[1], real=True)


@macs_rule(aten._fft_c2c)
def _fft(args: tuple, kwargs: dict, out: Any) -> int:
    return f.fft_macs(shape(args[0]), args[1], real=False)


@macs_rule(
    aten._scaled_dot_product_flash_attention_for_cpu,
    aten._scaled_dot_product_efficient_attention,
    aten._scaled_dot_product_flash_attention,
    aten._scaled_dot_product_cudnn_attention,
)
def _sdpa(args: tuple, kwargs: dict, out: Any) -> int:
    return f.attention_macs(shape(args[0]), shape(args[1]), shape(args[2]))


@macs_rule(aten._native_multi_head_attention)
def _mha(args: tuple, kwargs: dict, out: Any) -> int:
    """Fused eval-mode attention (query, key, value, E, heads, W_qkv, b_qkv, W_out, ...):
    the q/k/v projections, the attention products and the output projection."""
    q, k, v, w_qkv, w_out = args[0], args[1], args[2], args[5], args[7]
    embed = q.shape[-1]
    proj = (q.numel() + k.numel() + v.numel()) // embed * embed * w_qkv.shape[0] // 3
    attention = f.attention_macs(shape(q), shape(k), shape(v))
    return proj + attention + q.numel() // embed * w_out.shape[0] * w_out.shape[1]


def _deform(args: tuple, kwargs: dict, out: Any) -> int:
    x, w, mask, use_mask = args[0], args[1], args[3], bool(args[13])
    return f.deform_conv_macs(shape(x), shape(w), shape(first(out)), use_mask and mask.numel())


try:  # torchvision registers its ops on import; the analyzer must work without it
    import torchvision  # noqa: F401

    macs_rule(torch.ops.torchvision.deform_conv2d)(_deform)
except Exception:  # pragma: no cover - torchvision is a core dependency
    pass


@elementwise_rule(
    aten.native_batch_norm,
    aten._native_batch_norm_legit,
    aten._native_batch_norm_legit_no_training,
    aten.native_layer_norm,
    aten.native_group_norm,
    aten._softmax,
    aten._log_softmax,
    aten._safe_softmax,
    aten.hardswish,
    aten.hardswish_,
    aten.hardsigmoid,
    aten.hardsigmoid_,
    aten.gelu_,
    aten.mish_,
    aten._prelu_kernel,
    aten.glu,
    aten.threshold_,
    aten.log_sigmoid_forward,
    aten.upsample_nearest2d,
    aten.upsample_bilinear2d,
    aten._upsample_bilinear2d_aa,
    aten.native_dropout,
    aten.col2im,
    aten.bernoulli_,
    aten.bernoulli,
)
def _per_output(args: tuple, kwargs: dict, out: Any) -> int:
    return first(out).numel()


@elementwise_rule(
    aten._adaptive_avg_pool2d,
    aten.adaptive_max_pool2d,
    aten._adaptive_avg_pool3d,
    aten.adaptive_max_pool3d,
    aten.mean,
    aten.sum,
    aten.amax,
    aten.amin,
    aten.var,
    aten.std,
    aten.linalg_vector_norm,
    aten.norm,
    aten.max,
    aten.min,
    aten.var_mean,
    aten.prod,
    aten.cumsum,
    aten.logsumexp,
    aten.argmax,
    aten.argmin,
    aten.any,
    aten.all,
)
def _per_input(args: tuple, kwargs: dict, out: Any) -> int:
    """Adaptive pooling and reductions: one op per input value read."""
    x = args[0]
    return x.numel() if isinstance(x, torch.Tensor) else 0


@elementwise_rule(aten.max_pool2d_with_indices, aten.avg_pool2d)
def _pool(args: tuple, kwargs: dict, out: Any) -> int:
    """k_h * k_w reads per output value (overlapping windows read a value several times)."""
    kernel = args[1] if len(args) > 1 else kwargs["kernel_size"]  # a required argument
    kh, kw = (kernel[0], kernel[-1]) if isinstance(kernel, (list, tuple)) else (kernel, kernel)
    return first(out).numel() * int(kh) * int(kw)


@elementwise_rule(aten.max_pool3d_with_indices, aten.avg_pool3d)
def _pool3d(args: tuple, kwargs: dict, out: Any) -> int:
    """k_d * k_h * k_w reads per output value (3-D pooling)."""
    kernel = args[1] if len(args) > 1 else kwargs["kernel_size"]
    k = list(kernel) * (3 // len(kernel)) if isinstance(kernel, (list, tuple)) else [kernel] * 3
    return first(out).numel() * int(k[0]) * int(k[1]) * int(k[2])


FREE = {
    aten.empty,
    aten.empty_like,
    aten.empty_strided,
    aten.zeros,
    aten.zeros_like,
    aten.ones,
    aten.ones_like,
    aten.full,
    aten.full_like,
    aten.new_empty,
    aten.new_zeros,
    aten.new_ones,
    aten.new_full,
    aten.new_empty_strided,
    aten.arange,
    aten.scalar_tensor,
    aten.rand,
    aten.randn,
    aten.randint,
    aten.rand_like,
    aten.randn_like,
    aten.randperm,
    aten.fill_,
    aten.zero_,
    aten.fill,
    aten.clone,
    aten.copy_,
    aten._to_copy,
    aten.copy,
    aten.cat,
    aten.stack,
    aten.constant_pad_nd,
    aten.reflection_pad2d,
    aten.replication_pad2d,
    aten.index_select,
    aten.gather,
    aten.index,
    aten.im2col,
    aten.flip,
    aten.roll,
    aten.lift_fresh,
    aten.lift_fresh_copy,
    aten.detach,
    aten._unsafe_view,
    aten.contiguous,
    aten.repeat,
    aten.tril,
    aten.triu,
    aten.scatter,
    aten.masked_select,
    aten.nonzero,
    aten.sort,
    aten.topk,
    aten._local_scalar_dense,
    aten.resize_,
    aten.set_,
    aten.alias,
    aten.eye,
    aten.linspace,
    aten.select_scatter,
    aten.slice_scatter,
    aten.view_as_real,
    aten.view_as_complex,
    aten.pad,
    aten._pad_enum,
    aten.split_with_sizes_copy,
    aten.unfold,
    aten.is_nonzero,
    aten.equal,
    aten.item,
    aten.as_strided_,
    aten.detach_,
    aten.pixel_shuffle,  # permutations of values: sub-pixel convolution, ShuffleNet
    aten.pixel_unshuffle,
    aten.channel_shuffle,
}


def is_view(func: torch._ops.OpOverload) -> bool:
    """Ops whose output aliases an input (view, reshape, transpose, select, ...)."""
    returns = func._schema.returns
    return bool(returns) and returns[0].alias_info is not None and not func._schema.is_mutable


def classify(func: torch._ops.OpOverload) -> str:
    """``"macs"``, ``"elementwise"``, ``"free"`` or ``"uncounted"`` for an op overload."""
    packet = func.overloadpacket
    if packet in MAC_RULES:
        return "macs"
    if packet in FREE or is_view(func):
        return "free"
    if packet in ELEMENTWISE_RULES or torch.Tag.pointwise in func.tags:
        return "elementwise"
    return "uncounted"


def cost(func: torch._ops.OpOverload, kind: str, args: tuple, kwargs: dict, out: Any) -> int:
    """MACs (``kind == "macs"``) or element-wise ops of one op call."""
    packet = func.overloadpacket
    if kind == "macs":
        return MAC_RULES[packet](args, kwargs, out)
    rule = ELEMENTWISE_RULES.get(packet)
    if rule is not None:
        return rule(args, kwargs, out)
    result = first(out)
    return result.numel() if isinstance(result, torch.Tensor) else 0
