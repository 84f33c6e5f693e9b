"""Mixed precision on the private meta copy: CPU ``torch.autocast`` semantics, emulated.

``torch.autocast`` casts only CPU (or CUDA) tensors, never meta ones, so :class:`Autocast`
applies its CPU policy itself, as a ``TorchFunctionMode`` above autograd (its casts are
autograd ops, as autocast's are, so the backward casts the gradients back and the saved
tensors are the low-precision copies):

- ops in :data:`LOWER` (convolutions, matrix products, ``linear``, attention) run in the
  low precision (``bf16`` or ``fp16``): their floating inputs are cast to it; a float32
  leaf that requires grad (a parameter) is cast once per analysis, as autocast caches it;
- :data:`PROMOTE` ops (``cat``, ``stack``, ``index_copy``) run in the widest input dtype;
- every other op with an ``AutocastCPU`` kernel in this torch (losses, FFTs, linear
  algebra, 3-D pooling, some padding) runs in float32; the rest run in their inputs' dtype.

Known gap: casts inside a Python-level function that handles torch functions itself (for
example ``F.multi_head_attention_forward``) are not seen; those ops keep their inputs'
dtype (the tests compare models without one).
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

from convzoo.analysis.memory import strided_tensors
from convzoo.errors import ConvZooError

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
"""``amp=`` (``--amp``) -> the low precision autocast runs its ``LOWER`` ops in."""

LOWER = frozenset(
    {
        "conv1d", "conv2d", "conv3d", "conv_tbc", "conv_transpose1d", "conv_transpose2d",
        "conv_transpose3d", "_convolution", "bmm", "mm", "linalg_vecdot", "baddbmm", "addmm",
        "addbmm", "_addmm_activation", "linear", "matmul", "mkldnn_rnn_layer", "prelu",
        "scaled_dot_product_attention", "_native_multi_head_attention",
    }
)  # fmt: skip
"""CPU autocast's ``lower_precision_fp`` ops (the ones run in bf16/fp16)."""
PROMOTE = frozenset({"cat", "stack", "index_copy"})
ALIASES = {"__matmul__": "matmul", "__rmatmul__": "matmul"}


def check_amp(name: Any) -> torch.dtype | None:
    """The dtype of ``amp`` (None: no autocast); a one-line ConvZooError otherwise."""
    if name is None:
        return None
    if isinstance(name, str) and name in AMP_DTYPES:
        return AMP_DTYPES[name]
    shown = repr(name)[:40] if isinstance(name, str) else type(name).__name__
    raise ConvZooError(f"amp must be one of {', '.join(AMP_DTYPES)}, got {shown}")


@functools.cache
def policy(name: str) -> str | None:
    """``"lower"``, ``"promote"``, ``"fp32"`` or None (no cast) for a torch function by name."""
    name = ALIASES.get(name, name)
    if name in LOWER:
        return "lower"
    if name in PROMOTE:
        return "promote"
    overloads = [
        n
        for n in torch._C._dispatch_get_all_op_names()
        if n == f"aten::{name}" or n.startswith(f"aten::{name}.")
    ]
    if any(torch._C._dispatch_has_kernel_for_dispatch_key(n, "AutocastCPU") for n in overloads):
        return "fp32"
    return None


def region(dtype: torch.dtype | None) -> Any:
    """A fresh :class:`Autocast` at ``dtype`` (its own cache of cast weights, as one
    autocast region has), or a context that does nothing for None."""
    return contextlib.nullcontext() if dtype is None else Autocast(dtype)


class Autocast(TorchFunctionMode):
    """CPU autocast's policy at ``dtype`` (``torch.bfloat16`` or ``torch.float16``) for the
    torch functions called while it is active (see the module docstring)."""

    def __init__(self, dtype: torch.dtype) -> None:
        super().__init__()
        self.dtype = dtype
        self._cache: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}  # id -> (param, cast)

    def __torch_function__(
        self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None
    ) -> Any:
        kwargs = kwargs or {}
        rule = policy(getattr(func, "__name__", ""))
        if rule is not None:
            target = self._target(rule, [args, kwargs])
            if target is not None:
                args, kwargs = self._cast([args, kwargs], target)
        return func(*args, **kwargs)

    def _target(self, rule: str, values: Any) -> torch.dtype | None:
        if rule == "lower":
            return self.dtype
        if rule == "fp32":
            return torch.float32
        dtypes = [t.dtype for t in strided_tensors(values) if t.is_floating_point()]
        widest = dtypes[0] if dtypes else None
        for d in dtypes[1:]:
            widest = torch.promote_types(widest, d)  # type: ignore[arg-type]
        return widest

    def _cast(self, value: Any, target: torch.dtype) -> Any:
        if isinstance(value, torch.Tensor):
            if not value.is_floating_point() or value.dtype == target:
                return value
            cache = (
                target == self.dtype
                and value.dtype == torch.float32
                and value.requires_grad
                and value.is_leaf
                and value._base is None
            )
            if not cache:
                return value.to(target)
            hit = self._cache.get(id(value))
            if hit is None or hit[0] is not value:
                hit = self._cache[id(value)] = (value, value.to(target))
            return hit[1]
        if isinstance(value, (list, tuple)):
            return type(value)(self._cast(v, target) for v in value)
        if isinstance(value, dict):
            return {k: self._cast(v, target) for k, v in value.items()}
        return value
