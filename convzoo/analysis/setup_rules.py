"""Fast shape rules for the ops a layer runs to set itself up and the FFT: ``remainder``,
``arange``, ``stack``, ``cat``, ``complex``, ``_fft_r2c`` and ``_fft_c2r`` (``fft_conv``
builds its DFT matrices on every forward, with int64 arithmetic that
:mod:`convzoo.analysis.meta_kernels` answers).

Registered into :data:`convzoo.analysis.meta_kernels.RULES`, under the same contract: a
rule answers only what the real meta kernel gives (shape, strides, dtype, device) and
returns None otherwise (``tests/test_meta_kernels.py`` checks each against the kernel).
Their meta kernels are torch's Python references, whose first call imports
``torch._dynamo`` and sympy (1 s of the command's start-up). :data:`RULES` is the table
with these rules in it.
"""

from __future__ import annotations

from typing import Any

import torch

from convzoo.analysis import meta_kernels
from convzoo.analysis import meta_strides as strides
from convzoo.analysis.meta_kernels import META, int_meta, shape_rule

aten = torch.ops.aten
RULES = meta_kernels.RULES
_INT = torch.int64
_COMPLEX = {torch.float32: torch.complex64, torch.float64: torch.complex128}


def _int_number(v: Any) -> bool:
    return type(v) is int


@shape_rule(aten.remainder.Scalar)
def _remainder(args: tuple, kwargs: dict) -> Any:
    """``remainder(x, n)``: an int64 ``x`` with an int ``n``, or a float ``x`` with a
    non-zero int or float ``n``; the output like ``x``."""
    if kwargs or len(args) != 2:
        return None
    x, n = args
    if int_meta(x) and _int_number(n) and n != 0:
        return strides.elementwise_out([x], _INT)
    floats = isinstance(x, torch.Tensor) and x.is_meta and x.dtype.is_floating_point
    if floats and x.dtype in (torch.float32, torch.float64) and type(n) in (int, float):
        return strides.elementwise_out([x], x.dtype)
    return None


@shape_rule(aten.arange.default)
def _arange(args: tuple, kwargs: dict) -> Any:
    """``arange(end, dtype=int64 or None, device=meta)`` for an int ``end >= 0``."""
    if len(args) != 1 or not _int_number(args[0]) or args[0] < 0:
        return None
    if any(k not in ("dtype", "layout", "device", "pin_memory") for k in kwargs):
        return None
    device = kwargs.get("device")
    if device is None or torch.device(device) != META or kwargs.get("pin_memory"):
        return None
    if kwargs.get("dtype") not in (None, _INT) or kwargs.get("layout") not in (
        None,
        torch.strided,
    ):
        return None
    return torch.empty((args[0],), dtype=_INT, device=META)


def _joined(tensors: Any, dim: Any, new_axis: bool) -> Any:
    """``cat`` (``new_axis``: ``stack``) of non-empty tensors of one floating dtype and
    one shape (but along ``dim`` for ``cat``), in any layout, to an output of 1-3 or 6+
    dims: no channels-last layout to choose, so a contiguous output."""
    if not isinstance(tensors, (list, tuple)) or not tensors or type(dim) is not int:
        return None
    first = tensors[0]
    if not all(isinstance(t, torch.Tensor) and t.is_meta for t in tensors):
        return None
    if first.dtype not in (torch.float32, torch.float64) or first.dim() == 0:
        return None
    if any(t.dtype != first.dtype or 0 in t.shape for t in tensors):
        return None
    n = first.dim() + new_axis
    if n in (4, 5) or not -n <= dim < n:
        return None
    dim %= n
    if new_axis:
        if any(t.shape != first.shape for t in tensors):
            return None
        shape = [*first.shape[:dim], len(tensors), *first.shape[dim:]]
    else:
        rest = [list(t.shape[:dim]) + list(t.shape[dim + 1 :]) for t in tensors]
        if any(t.dim() != n or r != rest[0] for t, r in zip(tensors, rest, strict=True)):
            return None
        shape = [*first.shape[:dim], sum(t.shape[dim] for t in tensors), *first.shape[dim + 1 :]]
    return torch.empty(shape, dtype=first.dtype, device=META)


@shape_rule(aten.stack.default)
def _stack(args: tuple, kwargs: dict) -> Any:
    if kwargs or not 1 <= len(args) <= 2:
        return None
    return _joined(args[0], args[1] if len(args) == 2 else 0, True)


@shape_rule(aten.cat.default)
def _cat(args: tuple, kwargs: dict) -> Any:
    if kwargs or not 1 <= len(args) <= 2:
        return None
    return _joined(args[0], args[1] if len(args) == 2 else 0, False)


@shape_rule(aten.complex.default)
def _complex(args: tuple, kwargs: dict) -> Any:
    """``complex(real, imag)`` of one floating dtype: element-wise, complex."""
    if kwargs or len(args) != 2 or not all(isinstance(t, torch.Tensor) for t in args):
        return None
    real, imag = args
    if not (real.is_meta and imag.is_meta) or real.dtype != imag.dtype:
        return None
    dtype = _COMPLEX.get(real.dtype)
    return None if dtype is None else strides.elementwise_out([real, imag], dtype)


def _trailing(x: torch.Tensor, dim: Any) -> list[int] | None:
    """``dim`` as the last 1-3 axes of ``x`` in order (the meta kernels' plain FFT path:
    not two or more axes from axis 0), else None."""
    if not isinstance(dim, (list, tuple)) or not 1 <= len(dim) <= 3:
        return None
    if not all(type(d) is int for d in dim) or (len(dim) > 1 and len(dim) >= x.dim()):
        return None
    axes = list(range(x.dim() - len(dim), x.dim()))
    return axes if list(dim) == axes else None


@shape_rule(aten._fft_r2c.default)
def _fft_r2c(args: tuple, kwargs: dict) -> Any:
    """``_fft_r2c(x, dim, normalization, onesided)`` of a contiguous float ``x`` over its
    last axes: contiguous, complex, the last axis halved (``n // 2 + 1``) when onesided."""
    if kwargs or len(args) != 4:
        return None
    x, dim, _norm, onesided = args
    if not (isinstance(x, torch.Tensor) and x.is_meta and strides.standard(x)):
        return None
    dtype = _COMPLEX.get(x.dtype)
    axes = _trailing(x, dim)
    if dtype is None or axes is None or type(onesided) is not bool or 0 in x.shape:
        return None
    shape = list(x.shape)
    if onesided:
        shape[axes[-1]] = shape[axes[-1]] // 2 + 1
    return torch.empty(shape, dtype=dtype, device=META)


@shape_rule(aten._fft_c2r.default)
def _fft_c2r(args: tuple, kwargs: dict) -> Any:
    """``_fft_c2r(x, dim, normalization, last_size)`` of a complex ``x`` over its last
    axes, in any layout (the kernel works on a contiguous copy): contiguous, real, the last
    axis ``last_size`` long."""
    if kwargs or len(args) != 4:
        return None
    x, dim, _norm, last = args
    if not (isinstance(x, torch.Tensor) and x.is_meta) or type(last) is not int or last < 1:
        return None
    dtype = {v: k for k, v in _COMPLEX.items()}.get(x.dtype)
    axes = _trailing(x, dim)
    if dtype is None or axes is None or 0 in x.shape:
        return None
    shape = list(x.shape)
    shape[axes[-1]] = last
    return torch.empty(shape, dtype=dtype, device=META)
