"""What the CPU's recurrent kernels save for backward, reproduced on meta tensors.

On the CPU, ``nn.LSTM`` (``torch._VF.lstm``, unpacked input) runs oneDNN's fused kernel,
``aten::mkldnn_rnn_layer``, once per layer and direction, when :func:`takes_onednn` says so
(float32; bfloat16 where the CPU has the instructions; no ``proj_size``; oneDNN enabled).
Its autograd formula saves the layer's input, weights (zeros shaped like the weights stand
in for absent biases), initial ``h`` and ``c``, its output, final ``h`` and ``c``, and a
workspace of :func:`workspace_bytes`. Meta tensors cannot take that path (its condition is
"a CPU tensor"), so their forward is the unfused decomposition, which saves something else
(a 2-layer bidirectional LSTM 16->32: 39,040 bytes where the kernel saves 174,208).
GRU, RNN and the other LSTMs run unfused on the CPU too, but project the first layer's
whole sequence at once (:func:`unfused`), where meta tensors go step by step.

:func:`cpu_kernel_saves` makes a meta forward take the CPU's path instead: for the fused
LSTM, the same sequence of ops as ATen's ``mkldnn_rnn`` (contiguous input, per-layer and
per-direction ``mkldnn_rnn_layer`` through its meta kernel, ``cat``, dropout between
layers, ``stack``) plus a workspace of the kernel's size saved beside each layer. The
saved storages are then the real run's, shared with neighbouring ops exactly as there (a
``Linear`` after the LSTM saves the same output storage). A GPU runs cuDNN, which saves a
reserve space of its own: not modelled (docs/memory.md).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

PAGE = 4096
"""oneDNN aligns each region of an RNN workspace to a page."""
LSTM_MODE = 2  # ideep::rnn_kind::LSTM


def _page(size: int) -> int:
    return -(-size // PAGE) * PAGE


def _good_ld(dim: int, size: int) -> int:
    """oneDNN's ``get_good_ld``: ``dim`` rounded up to 64 bytes, not a multiple of 256."""
    step = 64 // size
    ld = -(-dim // step) * step
    return ld + step if ld % 256 == 0 else ld


def workspace_bytes(seq: int, batch: int, inputs: int, hidden: int, size: int) -> int:
    """Bytes of the workspace oneDNN's LSTM forward (training) saves for one layer and one
    direction: ``seq`` steps of ``batch`` rows, ``inputs`` features in, ``hidden`` out,
    ``size`` bytes per element (4: float32, 2: bfloat16). The regions of oneDNN's
    ``set_workspace_sizes``, each page-aligned: gates, ``h_t``, the layer/iteration states,
    the ``c`` states, and the gradient states (accumulated in float32)."""
    states = 2 * (seq + 1) * batch  # (layers + 1) x (steps + 1) rows of each state
    wide = max(inputs, hidden)
    return (
        _page(seq * batch * _good_ld(4 * hidden, size) * size)  # gates
        + _page(seq * batch * _good_ld(hidden, size) * size)  # h_t
        + _page(states * _good_ld(wide, size) * size)  # layer and iteration states
        + _page(states * hidden * size)  # c states
        + 2 * _page(states * _good_ld(wide, 4) * 4)  # gradient states: layer, iteration
        + _page(states * hidden * 4)  # gradient of the c states
    )


def takes_onednn(x: torch.Tensor, hx: Sequence[torch.Tensor]) -> bool:
    """Whether ATen's ``lstm`` on the CPU, given input ``x`` (``Tensor[T, B, I]`` or
    batch-first) and ``hx = (h0, c0)`` of these dtypes and sizes, runs oneDNN (its
    ``use_mkldnn``, with grad mode as it is now)."""
    if not (torch.backends.mkldnn.is_available() and torch._C._get_mkldnn_enabled()):
        return False
    if x.numel() == 0 or len(hx) != 2 or hx[0].size(-1) != hx[1].size(-1):
        return False  # no input, or projections (proj_size): the unfused path
    if x.dtype == torch.float32:
        return True
    if x.dtype == torch.bfloat16:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    if x.dtype == torch.float16:
        return not torch.is_grad_enabled() and bool(torch.ops.mkldnn._is_mkldnn_fp16_supported())
    return False


class _Saves(torch.autograd.Function):
    """The identity on ``out`` that saves ``extra`` for backward: what a CPU kernel saves
    beside what the meta forward saves (a workspace; a second copy of the input)."""

    @staticmethod
    def forward(ctx: Any, out: torch.Tensor, extra: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(extra)
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad, None


def onednn_lstm(
    x: torch.Tensor,
    hx: Sequence[torch.Tensor],
    params: Sequence[torch.Tensor],
    has_biases: bool,
    num_layers: int,
    dropout: float,
    train: bool,
    bidirectional: bool,
    batch_first: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """ATen's ``mkldnn_rnn`` (the arguments of ``torch._VF.lstm``): ``x`` is
    ``Tensor[T, B, I]`` (``[B, T, I]`` batch-first), ``hx`` two ``Tensor[L*D, B, H]``;
    returns the output ``Tensor[T, B, D*H]`` and the final ``h`` and ``c``."""
    layer_input = (x.transpose(0, 1) if batch_first else x).contiguous()
    h0, c0 = hx[0].contiguous(), hx[1].contiguous()
    directions = 2 if bidirectional else 1
    stride = 4 if has_biases else 2
    hidden = h0.size(2)
    hy: list[torch.Tensor] = []
    cy: list[torch.Tensor] = []
    for layer in range(num_layers):
        outputs = []
        for direction in range(directions):
            index = layer * directions + direction
            w = params[index * stride : (index + 1) * stride]
            if not has_biases:  # ATen passes zeros shaped like the weights
                w = [*w, torch.zeros_like(w[0]), torch.zeros_like(w[1])]
            out, h, c, _ = torch.ops.aten.mkldnn_rnn_layer(
                layer_input, w[0], w[1], w[2], w[3], h0[index], c0[index], direction > 0, [],
                LSTM_MODE, hidden, num_layers, has_biases, bidirectional, False, train,
            )  # fmt: skip
            if train:
                seq, batch, inputs = layer_input.shape
                size = workspace_bytes(seq, batch, inputs, hidden, layer_input.element_size())
                workspace = torch.empty(size, dtype=torch.uint8, device=x.device)
                out = _Saves.apply(out, workspace)
            outputs.append(out)
            hy.append(h)
            cy.append(c)
        layer_input = outputs[0] if directions == 1 else torch.cat(outputs, -1)
        if dropout and train and layer < num_layers - 1:
            layer_input = torch.dropout(layer_input, dropout, True)
    output = layer_input.transpose(0, 1) if batch_first else layer_input
    return output, torch.stack(hy), torch.stack(cy)


def _viewable(seq: torch.Tensor) -> bool:
    """Whether ``Tensor[T, B, I]`` views as ``[T*B, I]`` (else reshaping it copies)."""
    try:
        seq.view(-1, seq.size(-1))
    except RuntimeError:
        return False
    return True


def unfused(func: Any, args: tuple) -> Any:
    """``func`` (``torch._VF.gru``, ``rnn_tanh``, ``rnn_relu`` or ``lstm`` off oneDNN; its
    unpacked arguments) as the CPU runs it. The CPU projects the whole sequence of the first
    layer at once, per direction (``linear`` over ``Tensor[T, B, I]``); when that does not
    view as a matrix (batch-first input), it copies it, and saves the copy, once per
    direction, instead of the input; meta tensors go step by step and save the input. The
    same call, given the first copy, saves it; the second direction's is saved beside."""
    x, params, bidirectional, batch_first = args[0], args[2], args[7], args[8]
    seq = x.transpose(0, 1) if batch_first else x
    if x.dim() != 3 or _viewable(seq):
        return func(*args)
    copy = seq.contiguous()
    result = func(copy.transpose(0, 1) if batch_first else copy, *args[1:])
    reverse_weight = params[len(params) // (2 * args[4])] if bidirectional else None
    if reverse_weight is not None and reverse_weight.requires_grad and torch.is_grad_enabled():
        first = _Saves.apply(result[0], torch.empty_like(copy))
        result = (first, *result[1:])
    return result


_RECURRENT = frozenset(
    getattr(torch._C._VariableFunctions, name) for name in ("lstm", "gru", "rnn_tanh", "rnn_relu")
)


class _CpuRecurrent(TorchFunctionMode):
    """Sends recurrent layers on meta tensors (``torch._VF.lstm``, ``gru``, ``rnn_tanh``,
    ``rnn_relu``; unpacked input) down the path the CPU takes: :func:`onednn_lstm` when
    :func:`takes_onednn`, else :func:`unfused`; every other call runs as it is."""

    def __torch_function__(
        self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None
    ) -> Any:
        kwargs = kwargs or {}
        if (
            func in _RECURRENT
            and not kwargs
            and len(args) == 9
            and isinstance(args[0], torch.Tensor)
            and args[0].device.type == "meta"
            and isinstance(args[2], (list, tuple))  # the packed overloads: batch_sizes, hx
            and isinstance(args[3], bool)
        ):
            lstm = func is torch._C._VariableFunctions.lstm
            if lstm and takes_onednn(args[0], args[1]):
                return onednn_lstm(*args)
            return unfused(func, args)
        return func(*args, **kwargs)


def cpu_kernel_saves(model: nn.Module) -> contextlib.AbstractContextManager[Any]:
    """A context in which a meta forward of ``model`` saves for backward what a CPU forward
    saves (nothing to do, and no mode installed, unless it holds a recurrent layer)."""
    if any(isinstance(m, nn.RNNBase) for m in model.modules()):
        return _CpuRecurrent()
    return contextlib.nullcontext()
