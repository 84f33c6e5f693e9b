"""A bit-exact fingerprint of everything a model holds, to prove analysis never changes it.

``fingerprint(model)`` walks every module (each name of a shared one too) and records, per
module: its class, every plain attribute (tensors by identity, device, dtype, shape,
stride, requires_grad and bytes; containers and plain objects' attributes recursively;
locks with their held state, weak references with their referent, bound methods with
their object; other objects by identity and, for numbers and strings, value), the
identity and contents of every parameter and buffer (lazy ones by their uninitialised
class), every hook dict and the mode flag. Plus the global CPU random generator's state.
"""

from __future__ import annotations

import collections
import threading
import types
import weakref
from typing import Any

import torch
from torch import nn

ATOMS = (int, float, bool, str, bytes, type(None), torch.dtype, torch.device)
LOCKS = (type(threading.Lock()), type(threading.RLock()))
HANDLES = (type, types.FunctionType, types.ModuleType)


def _value(v: Any, depth: int = 0) -> Any:
    if depth > 6:
        return ("deep", id(v))
    if isinstance(v, torch.Tensor):
        return _tensor(v)
    if isinstance(v, ATOMS):
        return (type(v).__name__, v)
    if isinstance(v, nn.Module):
        return ("module", id(v))
    if isinstance(v, (list, tuple, collections.deque)):
        return (
            type(v).__name__,
            0 if isinstance(v, tuple) else id(v),
            [_value(x, depth + 1) for x in v],
        )
    if isinstance(v, dict):
        return (
            type(v).__name__,
            id(v),
            [(_value(k, depth + 1), _value(x, depth + 1)) for k, x in v.items()],
        )
    if isinstance(v, (set, frozenset)):
        return (type(v).__name__, id(v), sorted(repr(_value(x, depth + 1)) for x in v))
    return _handle(v, depth)


def _handle(v: Any, depth: int) -> Any:
    """Locks, weak references, bound methods and plain objects (their attributes)."""
    if isinstance(v, LOCKS):
        held = v.locked() if hasattr(v, "locked") else repr(v).startswith("<locked")
        return (type(v).__name__, id(v), held)
    if isinstance(v, weakref.ref):
        return ("weakref", id(v), _value(v(), depth + 1))
    if isinstance(v, (types.MethodType, types.BuiltinMethodType)):
        func = id(v.__func__) if isinstance(v, types.MethodType) else v.__name__
        return (type(v).__name__, func, _value(v.__self__, depth + 1))
    if isinstance(getattr(v, "__dict__", None), dict) and not isinstance(v, HANDLES):
        attributes = sorted(vars(v).items())
        return (type(v).__name__, id(v), [(k, _value(x, depth + 1)) for k, x in attributes])
    return (type(v).__name__, id(v))


def _tensor(t: torch.Tensor) -> tuple:
    if isinstance(t, nn.parameter.UninitializedTensorMixin):
        return ("lazy", type(t).__name__, id(t), t.device.type, t.dtype, t.requires_grad)
    data = (
        b""
        if t.device.type == "meta"
        else t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes()
    )
    return (
        type(t).__name__,
        id(t),
        t.device.type,
        t.dtype,
        tuple(t.shape),
        t.stride(),
        t.requires_grad,
        data,
    )


def fingerprint(model: nn.Module) -> list:
    """Everything about ``model`` that analysis must leave as it was (see module doc)."""
    out: list = [("rng", torch.random.get_rng_state().numpy().tobytes())]
    for name, module in model.named_modules(remove_duplicate=False):
        out.append((name, type(module).__name__, id(module)))
        for key, value in sorted(vars(module).items()):
            if key in ("_parameters", "_buffers", "_modules"):
                out.append((key, [(n, _value(v)) for n, v in value.items()]))
            else:
                out.append((key, _value(value)))
    return out
