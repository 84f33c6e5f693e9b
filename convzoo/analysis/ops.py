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

import functools
from collections.abc import Callable
from typing import Any

import torch

from convzoo.analysis import formulas as f

aten = torch.ops.aten
Rule = Callable[[tuple, dict, Any], int]
MAC_RULES: dict[Any, Rule] = {}
ELEMENTWISE_RULES: dict[Any, Rule] = {}
FUSED_RULES: dict[Any, Callable[[Any, tuple, dict, Any], int]] = {}
"""Element-wise work fused into a MAC kernel (the gates of a fused LSTM step, the softmax
of fused attention): counted as ``elementwise_ops`` so that a fused kernel on real tensors
counts what its decomposition on meta tensors counts."""


def argument(func: Any, args: tuple, kwargs: dict, name: str, default: Any = None) -> Any:
    """The argument called ``name`` in ``func``'s schema, positional or keyword."""
    if name in kwargs:
        return kwargs[name]
    for i, a in enumerate(func._schema.arguments):
        if a.name == name:
            return args[i] if i < len(args) and not a.kwarg_only else default
    return default


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


@macs_rule(aten.mm, aten.bmm, aten.matmul, aten.dot, aten.vdot, aten.mv)
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


def _sdpa_softmax(func: Any, args: tuple, kwargs: dict, out: Any) -> int:
    """What the unfused (meta) attention counts besides its matmuls: q and k scaled, the
    softmax, the mask added when there is one (a causal mask is built, ``L * S``, then
    applied): ``|q| + |k| + B * L * S * (1 + masked) [+ L * S]``."""
    q, k = args[0], args[1]
    scores = q.numel() // q.shape[-1] * k.shape[-2]
    given = any(argument(func, args, kwargs, n) is not None for n in ("attn_mask", "attn_bias"))
    causal = bool(argument(func, args, kwargs, "is_causal", False))
    mask = scores if given or causal else 0
    built = q.shape[-2] * k.shape[-2] if causal and not given else 0
    return q.numel() + k.numel() + scores + mask + built


for _op in (
    aten._scaled_dot_product_flash_attention_for_cpu,
    aten._scaled_dot_product_efficient_attention,
    aten._scaled_dot_product_flash_attention,
    aten._scaled_dot_product_cudnn_attention,
):
    FUSED_RULES[_op] = _sdpa_softmax


@macs_rule(aten._native_multi_head_attention)
def _mha(args: tuple, kwargs: dict, out: Any) -> int:
    """Fused eval-mode attention (query, key, value, E, heads, W_qkv, b_qkv, W_out, ...):
    the q/k/v projections, the attention products and the output projection."""
    q, k, v, w_qkv, w_out = args[0], args[1], args[2], args[5], args[7]
    embed = q.shape[-1]
    proj = (q.numel() + k.numel() + v.numel()) // embed * embed * w_qkv.shape[0] // 3
    attention = f.attention_macs(shape(q), shape(k), shape(v))
    return proj + attention + q.numel() // embed * w_out.shape[0] * w_out.shape[1]


@macs_rule(aten.mkldnn_rnn_layer)
def _rnn_layer(args: tuple, kwargs: dict, out: Any) -> int:
    """One direction of one layer of a fused LSTM/GRU/RNN on CPU (``input, w_ih, w_hh, ...``):
    every time step of every sequence multiplies the input by ``w_ih`` and the hidden state
    by ``w_hh``, as the unfused (meta) path counts them."""
    x, w_ih, w_hh = args[0], args[1], args[2]
    steps = x.numel() // x.shape[-1]  # time steps x batch (packed: total valid steps)
    return steps * (w_ih.numel() + w_hh.numel())


LSTM_MODE = 2  # mkldnn_rnn_layer's ``mode`` for LSTM (cuDNN's numbering)
LSTM_ELEMENTWISE_PER_UNIT = 13  # gates: 4 adds, 3 sigmoids, 2 tanh, 3 muls, 1 add (meta path)


def _rnn_gates(func: Any, args: tuple, kwargs: dict, out: Any) -> int:
    x = args[0]
    if argument(func, args, kwargs, "mode") != LSTM_MODE:
        return 0
    steps = x.numel() // x.shape[-1]
    return steps * LSTM_ELEMENTWISE_PER_UNIT * int(argument(func, args, kwargs, "hidden_size"))


FUSED_RULES[aten.mkldnn_rnn_layer] = _rnn_gates


@macs_rule(aten._trilinear)
def _trilinear(args: tuple, kwargs: dict, out: Any) -> int:
    """``nn.Bilinear``'s ``sum(i1 * i2 * i3)`` over broadcast axes: one MAC per term of the
    fully expanded product (``B * out * in1 * in2`` for ``nn.Bilinear``)."""
    sizes = [
        f.unsqueezed(shape(t), list(expand)) for t, expand in zip(args[:3], args[3:6], strict=True)
    ]
    return f.prod(f.broadcast_all(sizes))


@macs_rule(aten._cdist_forward)
def _cdist(args: tuple, kwargs: dict, out: Any) -> int:
    """``cdist(x1 [.., P, M], x2 [.., R, M])``: one MAC per coordinate of every pair."""
    return f.prod(shape(first(out))) * args[0].shape[-1]


def _mha_elementwise(func: Any, args: tuple, kwargs: dict, out: Any) -> int:
    """What the unfused (meta) attention module counts besides its matmuls: the q/k/v
    bias adds, the scaling (q and k; q alone when the weights are returned), the softmax,
    the mask when there is one, and the average over heads of returned weights."""
    q, k, bias = args[0], args[1], argument(func, args, kwargs, "qkv_bias")
    embed, heads = q.shape[-1], int(argument(func, args, kwargs, "num_head"))
    tokens_q, tokens_k = q.numel() // embed, k.numel() // embed
    scores = tokens_q * k.shape[-2] * heads
    masked = argument(func, args, kwargs, "mask") is not None
    adds = (2 * tokens_q + tokens_k) * embed if bias is not None else 0  # q, k, v biases
    if argument(func, args, kwargs, "need_weights", True):  # explicit weights: q scaled,
        mean = scores if argument(func, args, kwargs, "average_attn_weights", True) else 0
        return adds + tokens_q * embed + scores + mean  # mask by masked_fill (free), averaged
    return adds + (tokens_q + tokens_k) * embed + scores * (2 if masked else 1)


FUSED_RULES[aten._native_multi_head_attention] = _mha_elementwise


def _deform(args: tuple, kwargs: dict, out: Any) -> int:
    x, w, mask, use_mask = args[0], args[1], args[3], bool(args[13])
    return f.deform_conv_macs(shape(x), shape(w), shape(first(out)), use_mask and mask.numel())


try:  # torchvision registers its ops on import; the analyzer must work without it
    import torchvision  # noqa: F401

    macs_rule(torch.ops.torchvision.deform_conv2d)(_deform)
    _tv = torch.ops.torchvision
    elementwise_rule(_tv.roi_align, _tv.ps_roi_align, _tv.roi_pool, _tv.ps_roi_pool)(
        lambda args, kwargs, out: first(out).numel()  # one per output value, as upsampling
    )
    elementwise_rule(_tv.nms)(lambda args, kwargs, out: args[0].numel())  # per value read
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
    aten.upsample_nearest1d,
    aten.upsample_nearest2d,
    aten.upsample_nearest3d,
    aten._upsample_nearest_exact1d,
    aten._upsample_nearest_exact2d,
    aten._upsample_nearest_exact3d,
    aten.upsample_linear1d,
    aten.upsample_bilinear2d,
    aten._upsample_bilinear2d_aa,
    aten.upsample_trilinear3d,
    aten.upsample_bicubic2d,
    aten._upsample_bicubic2d_aa,
    aten.native_dropout,
    aten.col2im,
    aten.grid_sampler_2d,
    aten.grid_sampler_3d,
    aten.bernoulli_,
    aten.bernoulli,
)
def _per_output(args: tuple, kwargs: dict, out: Any) -> int:
    return first(out).numel()


@elementwise_rule(
    aten._adaptive_avg_pool2d,
    aten._adaptive_avg_pool3d,
    aten.adaptive_max_pool1d,
    aten.adaptive_max_pool2d,
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


def _pool_cost(args: tuple, kwargs: dict, out: Any, axes: int) -> int:
    """Pooling over ``axes`` axes: ``prod(kernel)`` reads per output value (overlapping
    windows read a value several times); an int or one-element kernel is square."""
    kernel = args[1] if len(args) > 1 else kwargs["kernel_size"]  # a required argument
    kernel = list(kernel) if isinstance(kernel, (list, tuple)) else [kernel]
    if len(kernel) == 1:
        kernel = kernel * axes
    return first(out).numel() * f.prod(kernel)


for _op, _axes in (
    (aten.max_pool1d_with_indices, 1),
    (aten.max_pool1d, 1),
    (aten.avg_pool1d, 1),
    (aten.max_pool2d_with_indices, 2),
    (aten.avg_pool2d, 2),
    (aten.max_pool3d_with_indices, 3),
    (aten.avg_pool3d, 3),
):
    elementwise_rule(_op)(functools.partial(_pool_cost, axes=_axes))


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
    aten.reflection_pad1d,
    aten.reflection_pad2d,
    aten.reflection_pad3d,
    aten.replication_pad1d,
    aten.replication_pad2d,
    aten.replication_pad3d,
    aten.unsafe_split,
    aten.unsafe_split_with_sizes,
    aten.unsafe_chunk,
    aten.split_with_sizes,
    aten.embedding,
    aten._linalg_check_errors,
    aten.complex,
    aten.index_put,
    aten.index_put_,
    aten.masked_fill,
    aten.masked_fill_,
    aten.masked_scatter,
    aten.index_copy,
    aten.index_fill,
    aten.index_fill_,
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
    aten._unique2,
    aten.unique_dim,
    aten.unique_consecutive,
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
    """Ops whose output aliases an input (view, reshape, transpose, select, ...), in place
    ones included (``transpose_``, ``squeeze_``: tagged ``inplace_view``)."""
    if torch.Tag.inplace_view in func.tags:
        return True
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
