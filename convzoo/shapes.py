"""Output shapes by running a module on meta tensors (no arithmetic, no memory)."""

from __future__ import annotations

import itertools

import torch
from torch import nn
from torch.func import functional_call

from convzoo.analysis.modes import ShapeRules


def meta_state(module: nn.Module) -> dict[str, torch.Tensor]:
    """Meta twins (same shape, strides and dtype) of every parameter and buffer of
    ``module`` that is not on the meta device already, by qualified name."""
    named = itertools.chain(
        module.named_parameters(remove_duplicate=False),
        module.named_buffers(remove_duplicate=False),
    )
    return {name: _meta_twin(t) for name, t in named if not t.is_meta}


def _meta_twin(t: torch.Tensor) -> torch.Tensor:
    """``torch.empty_like(t, device="meta")`` for a dense ``t`` by a C++ kernel
    (``empty_like`` on meta is a Python reference that imports sympy, 0.3 s)."""
    return torch.empty_strided(t.shape, t.stride(), dtype=t.dtype, device="meta")


def output_shape(module: nn.Module, shape: tuple[int, ...], batch: int = 1) -> tuple[int, ...]:
    """Shape of ``module(x)`` without the batch axis, for ``x`` of shape ``(batch, *shape)``.

    Runs on meta tensors in eval mode (parameters and buffers replaced by meta copies, the
    module's own mode flags restored), each op answered by the analyzer's fast shape rules
    where they know it (:class:`~convzoo.analysis.modes.ShapeRules`); a module whose ops
    have no meta kernel runs on zeros.
    """
    flags = [(m, m.training) for m in module.modules()]
    module.eval()  # batch statistics need more than one value per channel; shapes do not
    try:
        x = torch.empty((batch, *shape), device="meta")
        state = meta_state(module)  # none when the module is on meta already
        with ShapeRules():
            y = functional_call(module, state, (x,)) if state else module(x)
    except NotImplementedError:
        with torch.no_grad():
            y = module(torch.zeros((batch, *shape)))
    finally:
        for m, flag in flags:
            m.training = flag
    return tuple(y.shape[1:])
