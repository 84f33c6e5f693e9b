"""What a kernel allocates beyond its outputs, and bounds for ops with no meta kernel.

:class:`convzoo.analysis.guard.Guard` sizes every real op on meta tensors before it runs;
the meta kernel gives the outputs, and these rules add the memory the CPU kernel takes for
itself while it runs (measured on PyTorch 2.14 / torchvision 0.29, ``VmHWM`` of one op):

- ``convolution`` (and its backward) in float32 / bfloat16 runs oneDNN, which reorders its
  input and writes its output in a blocked layout (channels padded to 16) before copying it
  back: input + padded output (the backward: input, output gradient and the input gradient
  in the blocked layout). Other dtypes (float64 for ``rf --plot``, float16) take the
  slow path, which unfolds the input (im2col): ``B·C_in/g·prod(k)·prod(out)`` elements
  (one sample's ``C_out/g·prod(k)·prod(in)`` when transposed), plus the output again when
  groups are computed one at a time and concatenated, plus a contiguous copy of a
  non-contiguous input or output gradient (``out.sum().backward()`` expands its ones).
- ``_fft_c2r`` (``irfft``) copies its input, which it transforms in place, once per
  transformed axis: twice the input. ``_fft_r2c`` / ``_fft_c2c`` work in their output.
- ``torchvision::deform_conv2d`` (forward and backward) fills a column buffer of
  ``C_in·kh·kw × n·H_out·W_out`` values (``n``: the largest divisor of the batch up to 32),
  an output-sized buffer, and contiguous copies of input, offset and mask.

Ops that return a view of an argument without saying so in their schema allocate nothing
(:data:`VIEWS`). Ops whose output size depends on the data (``nonzero``, ``unique``,
``masked_select``; torchvision's ``nms``) have no meta kernel: :data:`BOUNDS` gives an
upper bound of their outputs, and any other op without a meta kernel is assumed to need
no more than the bytes of its tensor arguments (:func:`default_bound`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, TypeVar

import torch

Rule = Callable[[tuple, dict, Any], int]  # (args, kwargs, meta outputs) -> bytes
Bound = Callable[[tuple, dict], int]  # (args, kwargs) -> bytes
F = TypeVar("F", bound=Callable[..., int])
WORKSPACES: dict[str, Rule] = {}
"""Workspace rules by op name (``aten::convolution``: every overload)."""
BOUNDS: dict[str, Bound] = {}
"""Upper bounds of the outputs of data-dependent ops, by op name."""
VIEWS = frozenset({"aten::_unsafe_view", "aten::lift_fresh"})
ONEDNN_DTYPES = (torch.float32, torch.bfloat16)
"""Dtypes whose CPU convolution runs oneDNN; others unfold their input (im2col)."""


def _registrar(table: dict[str, F], what: str) -> Callable[..., Callable[[F], F]]:
    """A decorator factory filling ``table`` by op name (an op registered twice is an
    error); names, not op objects, so that torchvision is not imported to register its ops."""

    def register(*ops: str) -> Callable[[F], F]:
        def decorator(fn: F) -> F:
            for op in ops:
                if op in table:
                    raise ValueError(f"{what} for {op} registered twice")
                table[op] = fn
            return fn

        return decorator

    return register


workspace = _registrar(WORKSPACES, "workspace rule")
"""Register the workspace rule of ops by name."""
bound = _registrar(BOUNDS, "output bound")
"""Register an upper bound of the outputs of data-dependent ops by name."""


def nbytes(t: Any) -> int:
    """Bytes of the elements of tensor ``t`` (0 for anything else)."""
    return t.numel() * t.element_size() if isinstance(t, torch.Tensor) else 0


def tensors(values: Any) -> list[torch.Tensor]:
    """The tensors in ``values``: a tensor, or lists, tuples and dicts of them."""
    found, todo = [], [values]
    while todo:
        v = todo.pop()
        if isinstance(v, torch.Tensor):
            found.append(v)
        elif isinstance(v, (list, tuple)):
            todo.extend(v)
        elif isinstance(v, dict):
            todo.extend(v.values())
    return found


def default_bound(args: tuple, kwargs: dict) -> int:
    """An op without a meta kernel or a bound: at most the bytes of its tensor arguments."""
    return sum(nbytes(t) for t in tensors([args, kwargs]))


# -- convolution -------------------------------------------------------------------------
def conv_workspace(
    x: torch.Tensor, weight: torch.Tensor, out: torch.Tensor, transposed: bool, groups: int
) -> int:
    """Workspace of one CPU convolution (``x``: ``Tensor[B, C_in, *S]``, ``out``:
    ``Tensor[B, C_out, *S_out]``; for the backward pass, ``out`` is the output gradient)."""
    if x.dim() < 3 or out.dim() < 3:
        return 0
    if x.dtype in ONEDNN_DTYPES:
        channels = out.shape[1]
        padded = -(-channels // 16) * 16
        return nbytes(x) + nbytes(out) * padded // max(channels, 1)
    kernel = math.prod(weight.shape[2:])
    size = x.element_size()
    if transposed:
        columns = out.shape[1] // max(groups, 1) * kernel * math.prod(x.shape[2:]) * size
    else:
        columns = x.shape[0] * x.shape[1] // max(groups, 1) * kernel * math.prod(out.shape[2:])
        columns *= size
    copies = sum(nbytes(t) for t in (x, out) if not t.is_contiguous())  # e.g. an expanded grad
    return columns + copies + (nbytes(out) if groups > 1 else 0)


@workspace("aten::convolution")
def _convolution(args: tuple, kwargs: dict, out: Any) -> int:
    x, weight = args[0], args[1]
    transposed, groups = bool(args[6]), int(args[8])
    return conv_workspace(x, weight, out, transposed, groups)


@workspace("aten::convolution_backward")
def _convolution_backward(args: tuple, kwargs: dict, out: Any) -> int:
    grad, x, weight = args[0], args[1], args[2]
    transposed, groups = bool(args[7]), int(args[9])
    blocked = nbytes(x) if x.dtype in ONEDNN_DTYPES else 0  # the input gradient, blocked
    return conv_workspace(x, weight, grad, transposed, groups) + blocked


# -- FFT ---------------------------------------------------------------------------------
@workspace("aten::_fft_c2r")
def _fft_c2r(args: tuple, kwargs: dict, out: Any) -> int:
    return 2 * nbytes(args[0])


# -- torchvision's deformable convolution ------------------------------------------------
def _parallel_images(batch: int) -> int:
    """torchvision's ``n_parallel_imgs``: the largest divisor of ``batch`` up to 32."""
    return max((d for d in range(1, min(batch, 32) + 1) if batch % d == 0), default=1)


def _deform_workspace(x: Any, weight: Any, offset: Any, mask: Any, grad_or_out: Any) -> int:
    """Columns, an output-sized buffer and contiguous copies of the inputs."""
    if not all(isinstance(t, torch.Tensor) for t in (x, weight, grad_or_out)):
        return 0
    b, c = x.shape[0], x.shape[1]
    kernel = math.prod(weight.shape[2:])
    positions = math.prod(grad_or_out.shape[2:])
    columns = c * kernel * _parallel_images(b) * positions * x.element_size()
    return columns + nbytes(grad_or_out) + nbytes(x) + nbytes(offset) + nbytes(mask)


@workspace("torchvision::deform_conv2d")
def _deform_conv2d(args: tuple, kwargs: dict, out: Any) -> int:
    x, weight, offset, mask = args[0], args[1], args[2], args[3]
    return _deform_workspace(x, weight, offset, mask, out)


@workspace("torchvision::_deform_conv2d_backward")
def _deform_conv2d_backward(args: tuple, kwargs: dict, out: Any) -> int:
    grad, x, weight, offset, mask = args[0], args[1], args[2], args[3], args[4]
    return _deform_workspace(x, weight, offset, mask, grad)


# -- data-dependent outputs --------------------------------------------------------------
@bound("aten::nonzero")
def _nonzero(args: tuple, kwargs: dict) -> int:
    x = args[0]
    return x.numel() * max(x.dim(), 1) * 8  # int64 indices, one row per element at most


@bound("aten::masked_select")
def _masked_select(args: tuple, kwargs: dict) -> int:
    x, mask = args[0], args[1]
    return max(x.numel(), mask.numel()) * x.element_size()


@bound("aten::_unique2", "aten::unique_dim", "aten::unique_consecutive")
def _unique(args: tuple, kwargs: dict) -> int:
    x = args[0]
    return nbytes(x) + 16 * x.numel()  # values, int64 inverse indices and counts
