"""Fast shape rules: the outputs of common aten ops on meta tensors without their meta kernels.

Many meta kernels are Python references (``torch._refs``) that cost 0.4-3 ms a call
(``native_layer_norm``, ``addmm``, ``_safe_softmax``, broadcasting ``mul``); the analyzer
runs thousands of ops, so :class:`convzoo.analysis.counting.Tracer` asks ``RULES`` first.

A rule ``rule(args, kwargs) -> output | None`` answers only when it is sure of the result
the real meta kernel gives (shape, strides, dtype and device of every output) and returns
None otherwise, so the real kernel runs (and raises its own error on bad arguments).
``tests/test_meta_kernels.py`` checks every rule against the real kernel on many shapes,
strides (contiguous, channels-last, permuted, expanded) and dtypes.

The element-wise rules take their stride order from :mod:`convzoo.analysis.meta_strides`
(torch's own logic on plain ints).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from convzoo.analysis import meta_strides as strides

aten = torch.ops.aten
Rule = Callable[[tuple, dict], Any]
RULES: dict[Any, Rule] = {}
META = torch.device("meta")
_FLOATS = (torch.float32, torch.float64, torch.float16, torch.bfloat16)


def shape_rule(*ops: Any) -> Callable[[Rule], Rule]:
    """Register a fast shape rule for op overloads; registering an op twice is an error."""

    def decorator(fn: Rule) -> Rule:
        for op in ops:
            if op in RULES:
                raise ValueError(f"fast shape rule for {op} registered twice")
            RULES[op] = fn
        return fn

    return decorator


def _float_meta(t: Any) -> bool:
    """Whether ``t`` is a floating meta tensor (the only kind the rules answer for)."""
    return isinstance(t, torch.Tensor) and t.is_meta and t.dtype in _FLOATS


def _numbers_ok(values: Sequence[Any]) -> bool:
    """Python scalars that leave a floating tensor's dtype as it is (no complex)."""
    return all(type(v) in (int, float, bool) for v in values)


# -- element-wise ------------------------------------------------------------------------
UNARY = [
    aten.relu.default,
    aten.hardtanh.default,
    aten.silu.default,
    aten.gelu.default,
    aten.sigmoid.default,
    aten.tanh.default,
    aten.hardswish.default,
    aten.hardsigmoid.default,
    aten.neg.default,
    aten.exp.default,
    aten.sqrt.default,
    aten.rsqrt.default,
    aten.erf.default,
    aten.leaky_relu.default,
    aten.elu.default,
    aten.relu6.default,
    aten.mish.default,
    aten.cos.default,
    aten.sin.default,
]
BINARY = [
    aten.add.Tensor,
    aten.sub.Tensor,
    aten.mul.Tensor,
    aten.div.Tensor,
    aten.add.Scalar,
    aten.sub.Scalar,
    aten.mul.Scalar,
    aten.div.Scalar,
]
KEEPING = [aten.add.Tensor, aten.sub.Tensor, aten.mul.Tensor]
"""Binary ops whose result keeps an int64 operand's dtype (``div`` does not)."""
INPLACE = [
    aten.relu_.default,
    aten.hardtanh_.default,
    aten.silu_.default,
    aten.sigmoid_.default,
    aten.hardswish_.default,
    aten.hardsigmoid_.default,
    aten.add_.Tensor,
    aten.sub_.Tensor,
    aten.mul_.Tensor,
    aten.div_.Tensor,
    aten.add_.Scalar,
    aten.mul_.Scalar,
]


@shape_rule(*UNARY)
def _unary(args: tuple, kwargs: dict) -> Any:
    x = args[0]
    if (
        not _float_meta(x)
        or not _numbers_ok(args[1:])
        or any(
            k not in ("approximate", "negative_slope", "alpha", "scale", "input_scale")
            for k in kwargs
        )
    ):
        return None
    return strides.elementwise_out([x], x.dtype)


def int_meta(t: Any) -> bool:
    """Whether ``t`` is an int64 meta tensor."""
    return isinstance(t, torch.Tensor) and t.is_meta and t.dtype == torch.int64


def _operands(args: tuple, kwargs: dict, integers: bool = False) -> list[torch.Tensor] | None:
    """The tensor operands of a binary op whose result keeps their (common floating)
    dtype, or None; ``alpha`` must be absent or 1 (the reference scales ``other`` first).
    With ``integers`` (``add``, ``sub``, ``mul``), int64 with int64 or a Python int too."""
    if any(k != "alpha" for k in kwargs) or kwargs.get("alpha", 1) != 1 or len(args) != 2:
        return None
    x, other = args
    if integers and int_meta(x):
        if isinstance(other, torch.Tensor):
            return [x, other] if int_meta(other) else None
        return [x] if type(other) is int else None
    if not _float_meta(x):
        return None
    if isinstance(other, torch.Tensor):
        return [x, other] if _float_meta(other) and other.dtype == x.dtype else None
    return [x] if _numbers_ok([other]) else None


@shape_rule(*(op for op in BINARY if op not in KEEPING))
def _binary(args: tuple, kwargs: dict) -> Any:
    tensors = _operands(args, kwargs)
    return None if tensors is None else strides.elementwise_out(tensors, args[0].dtype)


@shape_rule(*KEEPING)
def _binary_keeping(args: tuple, kwargs: dict) -> Any:
    tensors = _operands(args, kwargs, integers=True)
    return None if tensors is None else strides.elementwise_out(tensors, args[0].dtype)


@shape_rule(*INPLACE)
def _inplace(args: tuple, kwargs: dict) -> Any:
    x = args[0]
    if len(args) == 2 or kwargs:
        tensors = _operands(args, kwargs)
        if tensors is None or strides.broadcast([t.shape for t in tensors]) != list(x.shape):
            return None
    elif not _float_meta(x) or not _numbers_ok(args[1:]):
        return None
    return x


# -- matmuls -----------------------------------------------------------------------------
def _same_float(*tensors: Any) -> bool:
    return all(_float_meta(t) for t in tensors) and len({t.dtype for t in tensors}) == 1


@shape_rule(aten.mm.default)
def _mm(args: tuple, kwargs: dict) -> Any:
    a, b = args
    if kwargs or not _same_float(a, b) or a.dim() != 2 or b.dim() != 2:
        return None
    if a.shape[1] != b.shape[0]:
        return None
    return torch.empty((a.shape[0], b.shape[1]), dtype=a.dtype, device=META)


@shape_rule(aten.addmm.default)
def _addmm(args: tuple, kwargs: dict) -> Any:
    bias, a, b = args[:3]
    scalars = [*args[3:], *kwargs.values()]
    if any(k not in ("beta", "alpha") for k in kwargs) or not _numbers_ok(scalars):
        return None
    if not _same_float(bias, a, b) or a.dim() != 2 or b.dim() != 2 or bias.dim() > 2:
        return None
    shape = [a.shape[0], b.shape[1]]
    if a.shape[1] != b.shape[0] or strides.broadcast([bias.shape, shape]) != shape:
        return None
    return torch.empty(shape, dtype=a.dtype, device=META)


@shape_rule(aten.bmm.default)
def _bmm(args: tuple, kwargs: dict) -> Any:
    a, b = args
    if kwargs or not _same_float(a, b) or a.dim() != 3 or b.dim() != 3:
        return None
    if a.shape[0] != b.shape[0] or a.shape[2] != b.shape[1]:
        return None
    return torch.empty((a.shape[0], a.shape[1], b.shape[2]), dtype=a.dtype, device=META)


# -- normalisation, softmax, reductions ----------------------------------------------------
def _with_statistics(x: Any, stat: Sequence[int]) -> tuple[Any, Any, Any]:
    """A normalisation's outputs: a tensor like ``x`` (contiguous) and two statistics of
    shape ``stat`` (mean and inverse standard deviation)."""
    return (
        torch.empty(x.shape, dtype=x.dtype, device=META),
        torch.empty(stat, dtype=x.dtype, device=META),
        torch.empty(stat, dtype=x.dtype, device=META),
    )


@shape_rule(aten.native_layer_norm.default)
def _layer_norm(args: tuple, kwargs: dict) -> Any:
    x, normalized, weight, bias, _eps = args
    k = len(normalized)
    if kwargs or k < 1 or x.dim() < k or list(x.shape[x.dim() - k :]) != list(normalized):
        return None
    params = [t for t in (weight, bias) if t is not None]
    if x.dtype not in (torch.float32, torch.float64) or not _same_float(x, *params):
        return None
    if any(list(t.shape) != list(normalized) for t in params):
        return None
    if not all(strides.standard(t) for t in params) or (
        x.is_contiguous() and not strides.standard(x)
    ):
        return None  # odd strides of size-1 dims leak into the output's
    return _with_statistics(x, [*x.shape[: x.dim() - k], *([1] * k)])


@shape_rule(aten._softmax.default, aten._log_softmax.default)
def _softmax(args: tuple, kwargs: dict) -> Any:
    x, dim, half_to_float = args
    if kwargs or half_to_float or not _float_meta(x) or not -x.dim() <= dim < max(x.dim(), 1):
        return None
    return torch.empty(x.shape, dtype=x.dtype, device=META) if strides.standard(x) else None


@shape_rule(aten._safe_softmax.default)
def _safe_softmax(args: tuple, kwargs: dict) -> Any:
    x, dim = args[:2]
    dtype = args[2] if len(args) > 2 else kwargs.get("dtype")
    if dtype is not None or any(k != "dtype" for k in kwargs):
        return None
    return _softmax((x, dim, False), {})


@shape_rule(aten.mean.dim, aten.sum.dim_IntList)
def _reduce(args: tuple, kwargs: dict) -> Any:
    x, dims = args[0], args[1]
    keepdim = args[2] if len(args) > 2 else kwargs.get("keepdim", False)
    dtype = args[3] if len(args) > 3 else kwargs.get("dtype")
    if dtype is not None or any(k not in ("keepdim", "dtype") for k in kwargs):
        return None
    if not _float_meta(x) or not strides.dense(x.shape, x.stride()) or x.dim() == 0 or not dims:
        return None
    n = x.dim()
    if not all(type(d) is int and -n <= d < n for d in dims):
        return None
    reduced = {d % n for d in dims}
    if len(reduced) != len(dims):
        return None
    shape = [1 if i in reduced else s for i, s in enumerate(x.shape) if keepdim or i not in reduced]
    return torch.empty(shape, dtype=x.dtype, device=META)


# -- convolution, batch norm (contiguous inputs) -------------------------------------------
@shape_rule(aten.convolution.default)
def _convolution(args: tuple, kwargs: dict) -> Any:
    """``aten.convolution`` from the size formulas, for a float input and a contiguous
    weight: the meta kernel then gives a contiguous output whatever the input's layout."""
    if kwargs or len(args) != 9:
        return None
    x, w, bias, stride, padding, dilation, transposed, output_padding, groups = args
    if not _same_float(x, w) or not strides.standard(w):
        return None  # a channels-last weight makes a channels-last output
    if bias is not None and not (_same_float(x, bias) and bias.dim() == 1):
        return None
    spatial_dims = x.dim() - 2
    if w.dim() != x.dim() or spatial_dims < 1 or type(groups) is not int or groups < 1:
        return None
    if any(len(v) != spatial_dims for v in (stride, padding, dilation, output_padding)):
        return None
    expected = w.shape[0] if transposed else w.shape[1] * groups
    channels = w.shape[1] * groups if transposed else w.shape[0]
    if (
        x.shape[1] != expected
        or channels % groups
        or (bias is not None and bias.shape[0] != channels)
    ):
        return None
    spatial = []
    for i, n in enumerate(x.shape[2:]):
        k_eff = dilation[i] * (w.shape[2 + i] - 1) + 1
        if transposed:
            size = (n - 1) * stride[i] - 2 * padding[i] + k_eff + output_padding[i]
        else:
            size = (n + 2 * padding[i] - k_eff) // stride[i] + 1
        if size < 1:
            return None  # let the real kernel raise its error
        spatial.append(size)
    return torch.empty((x.shape[0], channels, *spatial), dtype=x.dtype, device=META)


def _pair(values: Any) -> tuple[int, int] | None:
    """A pooling argument of one or two ints as ``(h, w)``; None for any other form."""
    if not isinstance(values, (list, tuple)) or len(values) not in (1, 2):
        return None
    if not all(type(v) is int for v in values):
        return None
    return values[0], values[-1]


@shape_rule(aten.max_pool2d_with_indices.default)
def _max_pool2d(args: tuple, kwargs: dict) -> Any:
    """``(x, kernel_size, stride=(), padding=(0,), dilation=(1,), ceil_mode=False)`` on a
    4-D input contiguous in one layout only (not also channels-last): the output and its
    int64 indices, contiguous, sized by the meta kernel's formula (``ceil_mode`` included)."""
    if kwargs or not 2 <= len(args) <= 6:
        return None
    defaults: tuple[Any, ...] = ((), (0,), (1,), False)
    x, kernel, stride, padding, dilation, ceil = (*args, *defaults[len(args) - 2 :])
    if not _float_meta(x) or x.dim() != 4 or 0 in x.shape or not strides.standard(x):
        return None
    if x.is_contiguous(memory_format=torch.channels_last) or type(ceil) is not bool:
        return None  # the meta kernel may pick the channels-last layout
    k, p, d = _pair(kernel), _pair(padding), _pair(dilation)
    s = k if isinstance(stride, (list, tuple)) and len(stride) == 0 else _pair(stride)
    if k is None or s is None or p is None or d is None:
        return None
    size = []
    for n, ki, si, pi, di in zip(x.shape[2:], k, s, p, d, strict=True):
        if ki < 1 or si < 1 or di < 1 or not 0 <= pi <= ki // 2:
            return None
        out = (n + 2 * pi - di * (ki - 1) - 1 + (si - 1 if ceil else 0)) // si + 1
        if ceil and (out - 1) * si >= n + pi:
            out -= 1
        if out < 1:
            return None
        size.append(out)
    shape = (*x.shape[:2], *size)
    return torch.empty(shape, dtype=x.dtype, device=META), torch.empty(
        shape, dtype=torch.int64, device=META
    )


@shape_rule(aten.clone.default)
def _clone(args: tuple, kwargs: dict) -> Any:
    """``clone(x, memory_format=torch.contiguous_format)``: a contiguous tensor."""
    x = args[0]
    layout = args[1] if len(args) > 1 else kwargs.get("memory_format")
    if layout is not torch.contiguous_format or not _float_meta(x):
        return None
    return torch.empty(x.shape, dtype=x.dtype, device=META)


def _batch_norm(x: Any, params: Sequence[Any], training: bool) -> Any:
    """Batch norm on a contiguous input: the output like it, the saved statistics ``(C,)``
    in training mode and empty ``(0,)`` in eval mode, as the CPU and CUDA kernels return
    them (the meta kernel returns ``(C,)`` in eval mode too: the one place this table
    follows the real kernels rather than the meta ones, so that memory is counted as on a
    real device)."""
    if not _float_meta(x) or x.dim() < 2 or not strides.standard(x):
        return None
    if x.dtype not in (torch.float32, torch.float64):
        return None
    c = x.shape[1]
    given = [t for t in params if t is not None]
    if not _same_float(x, *given) or any(list(t.shape) != [c] or t.stride() != (1,) for t in given):
        return None
    if training and x.numel() <= c:
        return None  # one value per channel: the real kernel raises
    if not training and (params[2] is None or params[3] is None):
        return None  # eval mode needs the running statistics: the real kernel raises
    return _with_statistics(x, (c,) if training else (0,))


@shape_rule(aten.native_batch_norm.default, aten._native_batch_norm_legit.default)
def _batch_norm_train(args: tuple, kwargs: dict) -> Any:
    """``(x, w, b, running_mean, running_var, training, momentum, eps)``."""
    if kwargs or len(args) != 8:
        return None
    return _batch_norm(args[0], args[1:5], bool(args[5]))


@shape_rule(aten._native_batch_norm_legit_no_training.default)
def _batch_norm_eval(args: tuple, kwargs: dict) -> Any:
    """``(x, w, b, running_mean, running_var, momentum, eps)``."""
    if kwargs or len(args) != 7:
        return None
    return _batch_norm(args[0], args[1:5], False)
