"""MAC rules: convolutions, matrix products, FFTs, fused attention and recurrent layers,
and the element-wise work fused into those kernels (counted besides their MACs so that a
fused kernel on real tensors counts what its decomposition on meta tensors counts)."""

from __future__ import annotations

import torch

from convzoo.analysis import formulas as f
from convzoo.analysis.ops.call import OpCall
from convzoo.analysis.ops.table import TABLE

aten = torch.ops.aten


def complex_factor(*tensors: torch.Tensor) -> int:
    return f.COMPLEX_MAC if any(t.is_complex() for t in tensors) else 1


def conv(call: OpCall) -> int:
    """``convolution(input, weight, ..., transposed, ...)``, any rank and groups."""
    transposed = bool(call.arg("transposed"))
    return f.conv_macs(
        call.shape("input"), call.shape("weight"), list(call.result.shape), transposed
    )


for _op in (aten.convolution, aten._convolution):
    TABLE.register(_op, macs=conv)

OPERANDS = {  # op -> the names of its two matrix operands (addbmm sums the batch: same MACs)
    aten.mm: ("self", "mat2"),
    aten.bmm: ("self", "mat2"),
    aten.matmul: ("self", "other"),
    aten.dot: ("self", "tensor"),
    aten.vdot: ("self", "other"),
    aten.mv: ("self", "vec"),
    aten.addmm: ("mat1", "mat2"),
    aten.baddbmm: ("batch1", "batch2"),
    aten.addmv: ("mat", "vec"),
    aten.addbmm: ("batch1", "batch2"),
}


def matmul(call: OpCall) -> int:
    """Matrix products (``a [.., n, k] @ b [.., k, m]``: ``n * k * m`` per batch)."""
    a, b = (call.arg(name) for name in OPERANDS[call.func.overloadpacket])
    return f.matmul_macs(list(a.shape), list(b.shape)) * complex_factor(a, b)


for _op in OPERANDS:
    TABLE.register(_op, macs=matmul)


def rfft(call: OpCall) -> int:
    return f.fft_macs(call.shape("self"), call.arg("dim"), real=True)


def irfft(call: OpCall) -> int:
    return f.fft_macs(list(call.result.shape), call.arg("dim"), real=True)


def fft(call: OpCall) -> int:
    return f.fft_macs(call.shape("self"), call.arg("dim"), real=False)


TABLE.register(aten._fft_r2c, macs=rfft)
TABLE.register(aten._fft_c2r, macs=irfft)
TABLE.register(aten._fft_c2c, macs=fft)


def sdpa(call: OpCall) -> int:
    """Fused scaled dot-product attention: ``q @ k^T`` and ``scores @ v``."""
    return f.attention_macs(call.shape("query"), call.shape("key"), call.shape("value"))


def sdpa_softmax(call: OpCall) -> int:
    """What the unfused (meta) attention counts besides its matmuls: q and k scaled, the
    softmax, the mask added when there is one (a causal mask is built, ``L * S``, then
    applied): ``|q| + |k| + B * L * S * (1 + masked) [+ L * S]``."""
    q, k = call.arg("query"), call.arg("key")
    scores = q.numel() // q.shape[-1] * k.shape[-2]
    given = any(call.arg(name) is not None for name in ("attn_mask", "attn_bias"))
    causal = bool(call.arg("is_causal", False))
    mask = scores if given or causal else 0
    built = q.shape[-2] * k.shape[-2] if causal and not given else 0
    return q.numel() + k.numel() + scores + mask + built


for _op in (
    aten._scaled_dot_product_flash_attention_for_cpu,
    aten._scaled_dot_product_efficient_attention,
    aten._scaled_dot_product_flash_attention,
    aten._scaled_dot_product_cudnn_attention,
):
    TABLE.register(_op, macs=sdpa, fused=sdpa_softmax)


def mha(call: OpCall) -> int:
    """Fused eval-mode ``nn.MultiheadAttention``: the q/k/v projections, the attention
    products and the output projection."""
    q, k, v = call.arg("query"), call.arg("key"), call.arg("value")
    w_qkv, w_out = call.arg("qkv_weight"), call.arg("proj_weight")
    embed = q.shape[-1]
    proj = (q.numel() + k.numel() + v.numel()) // embed * embed * w_qkv.shape[0] // 3
    attention = f.attention_macs(list(q.shape), list(k.shape), list(v.shape))
    return proj + attention + q.numel() // embed * w_out.shape[0] * w_out.shape[1]


def mha_elementwise(call: OpCall) -> int:
    """What the unfused (meta) attention module counts besides its matmuls: the q/k/v
    bias adds, the scaling (q and k; q alone when the weights are returned), the softmax,
    the mask when there is one, and the average over heads of returned weights."""
    q, k, bias = call.arg("query"), call.arg("key"), call.arg("qkv_bias")
    embed, heads = q.shape[-1], int(call.arg("num_head"))
    tokens_q, tokens_k = q.numel() // embed, k.numel() // embed
    scores = tokens_q * k.shape[-2] * heads
    masked = call.arg("mask") is not None
    adds = (2 * tokens_q + tokens_k) * embed if bias is not None else 0  # q, k, v biases
    if call.arg("need_weights", True):  # explicit weights: q scaled, mask by masked_fill
        mean = scores if call.arg("average_attn_weights", True) else 0
        return adds + tokens_q * embed + scores + mean
    return adds + (tokens_q + tokens_k) * embed + scores * (2 if masked else 1)


TABLE.register(aten._native_multi_head_attention, macs=mha, fused=mha_elementwise)

LSTM_MODE = 2  # mkldnn_rnn_layer's ``mode`` for LSTM (cuDNN's numbering)
LSTM_ELEMENTWISE_PER_UNIT = 13  # gates: 4 adds, 3 sigmoids, 2 tanh, 3 muls, 1 add (meta path)


def rnn_layer(call: OpCall) -> int:
    """One direction of one layer of a fused LSTM/GRU/RNN on CPU (``input [.., in]``,
    ``weight0 = w_ih``, ``weight1 = w_hh``): every time step of every sequence multiplies
    the input by ``w_ih`` and the hidden state by ``w_hh``, as the meta path counts them."""
    x = call.arg("input")
    steps = x.numel() // x.shape[-1]  # time steps x batch (packed: total valid steps)
    return steps * (call.arg("weight0").numel() + call.arg("weight1").numel())


def rnn_gates(call: OpCall) -> int:
    """The element-wise gate arithmetic of a fused LSTM step (13 ops per hidden unit)."""
    if call.arg("mode") != LSTM_MODE:
        return 0
    x = call.arg("input")
    steps = x.numel() // x.shape[-1]
    return steps * LSTM_ELEMENTWISE_PER_UNIT * int(call.arg("hidden_size"))


TABLE.register(aten.mkldnn_rnn_layer, macs=rnn_layer, fused=rnn_gates)


def trilinear(call: OpCall) -> int:
    """``nn.Bilinear``'s ``sum(i1 * i2 * i3)`` over broadcast axes: one MAC per term of the
    fully expanded product (``B * out * in1 * in2`` for ``nn.Bilinear``)."""
    sizes = [f.unsqueezed(call.shape(f"i{i}"), list(call.arg(f"expand{i}"))) for i in (1, 2, 3)]
    return f.prod(f.broadcast_all(sizes))


def cdist(call: OpCall) -> int:
    """``cdist(x1 [.., P, M], x2 [.., R, M])``: one MAC per coordinate of every pair."""
    return f.prod(list(call.result.shape)) * call.arg("x1").shape[-1]


TABLE.register(aten._trilinear, macs=trilinear)
TABLE.register(aten._cdist_forward, macs=cdist)
