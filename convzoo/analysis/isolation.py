"""The analyzer's private copy of a user's model: the user's own model is never touched.

``private_copy(model, dtype, meta)`` returns a structural deep copy (copier.py), its memo
pre-filled so that every parameter and buffer maps to a meta tensor of the same shape
(``meta=True``, no data copied) or to a clone cast to ``dtype`` (``meta=False``, the
real-tensor fallback). Sharing is kept: a tensor or module reachable under two names stays
one object in the copy. Everything else the forward may mutate (plain-attribute tensors
such as detection anchors, caches, counters, locks, mode flags, hooks) belongs to the copy,
so the analysis can run, fail or be interrupted at any point while other threads run or
analyse the same model. What cannot be copied (an open file, a generator) is refused with
a one-line error naming the attribute, never shared.

Lazy parameters (``nn.LazyConv2d``) are replaced by uninitialised parameters on the meta
device, so the copy materialises on meta and initialises without drawing random numbers.
TorchScript modules keep their C++ structure: their tensors are swapped in the copy only.
"""

from __future__ import annotations

import copy
import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from convzoo.analysis.copier import Copier, Uncopyable
from convzoo.errors import ConvZooError

_LAZY: type = nn.parameter.UninitializedTensorMixin  # type: ignore[attr-defined]


def is_script(model: nn.Module) -> bool:
    """Whether ``model`` is a TorchScript module (``torch.jit.script`` or ``trace``)."""
    return isinstance(model, torch.jit.ScriptModule)


def _stand_in(t: torch.Tensor, dtype: torch.dtype | None, meta: bool) -> torch.Tensor:
    """The copy's version of parameter or buffer ``t``: meta (shape only) or a real clone,
    floating tensors cast to ``dtype`` when given."""
    cast = dtype if dtype is not None and t.is_floating_point() else t.dtype
    if isinstance(t, _LAZY):
        device = "meta" if meta else t.device
        kind = nn.UninitializedParameter if isinstance(t, nn.Parameter) else nn.UninitializedBuffer
        return kind(requires_grad=t.requires_grad, device=device, dtype=cast)  # type: ignore[call-arg]
    if meta:
        new = torch.empty(t.shape, dtype=cast, device="meta")
    else:
        new = t.detach().to(dtype=cast, copy=True)
    if isinstance(t, nn.Parameter):
        return nn.Parameter(new, requires_grad=t.requires_grad)
    return new


def is_lazy(t: torch.Tensor) -> bool:
    """Whether ``t`` is an uninitialised (lazy) parameter or buffer."""
    return isinstance(t, _LAZY)


def tensor_bytes(model: nn.Module, dtype: torch.dtype | None = None) -> int:
    """Bytes of every parameter and buffer of ``model`` once (cast to ``dtype`` when given);
    lazy (uninitialised) tensors count 0."""
    seen: set[int] = set()
    total = 0
    for t in [*model.parameters(), *model.buffers()]:
        if id(t) in seen or isinstance(t, _LAZY):
            continue
        seen.add(id(t))
        size = (
            torch.empty((), dtype=dtype).element_size()
            if dtype and t.is_floating_point()
            else t.element_size()
        )
        total += t.numel() * size
    return total


def _memo(model: nn.Module, dtype: torch.dtype | None, meta: bool) -> dict[int, Any]:
    memo: dict[int, Any] = {}
    for module in model.modules():  # each shared tensor once
        for tensors in (module._parameters, module._buffers):
            for t in tensors.values():
                if t is not None and id(t) not in memo:
                    memo[id(t)] = _stand_in(t, dtype, meta)
    return memo


def _script_copy(model: nn.Module, dtype: torch.dtype | None, meta: bool) -> nn.Module:
    """A TorchScript module's copy, with its own parameters and buffers swapped in."""
    clone = copy.deepcopy(model)
    for module in clone.modules():
        for name, t in [
            *module.named_parameters(recurse=False),
            *module.named_buffers(recurse=False),
        ]:
            module._c.setattr(name, _stand_in(t, dtype, meta))  # type: ignore[union-attr,operator]
    return clone


def private_copy(
    model: nn.Module, dtype: torch.dtype | None = None, meta: bool = True
) -> nn.Module:
    """A copy of ``model`` that shares nothing mutable with it (see the module docstring);
    :class:`ConvZooError` naming the attribute when something in it cannot be copied.

    ``meta=True``: parameters and buffers are meta tensors of the same shape; ``False``:
    real clones. Floating tensors are cast to ``dtype`` when it is given.
    """
    if is_script(model):
        return _script_copy(model, dtype, meta)
    copier = Copier(_memo(model, dtype, meta), lambda t: _stand_in(t, dtype, meta))
    try:
        return copier.copy(model)
    except Uncopyable as exc:
        raise ConvZooError(
            f"model{exc.path}: cannot copy a {exc.kind} ({exc.reason}) into the private "
            "copy the analysis runs on, and sharing it would let the analysis change the "
            "model; keep it outside the model, or give its class a __deepcopy__"
        ) from None


@contextmanager
def rng_kept() -> Iterator[None]:
    """Put the global CPU random generator back if the forward drew from it.

    Restores only when the state changed, so numbers drawn meanwhile by other threads are
    not replayed when the analysis itself drew none (the usual case on meta tensors).
    """
    before = torch.random.get_rng_state()
    try:
        yield
    finally:
        after = torch.random.get_rng_state()
        if not torch.equal(before, after):
            torch.random.set_rng_state(before)


_GC_LOCK = threading.Lock()
_gc_pausers = 0  # threads' pauses in force (each thread counts once per gc_paused level)
_gc_we_disabled = False  # whether the first pause found the collector on and turned it off
_gc_depth = threading.local()  # this thread's nesting of gc_paused


def _pause() -> None:
    global _gc_pausers, _gc_we_disabled
    with _GC_LOCK:
        if _gc_pausers == 0:
            _gc_we_disabled = gc.isenabled()
            if _gc_we_disabled:
                gc.disable()
        _gc_pausers += 1


def _unpause() -> None:
    global _gc_pausers, _gc_we_disabled
    with _GC_LOCK:
        _gc_pausers -= 1
        if _gc_pausers == 0 and _gc_we_disabled:
            _gc_we_disabled = False
            gc.enable()


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while an analysis runs.

    The private copy and the traced forward allocate tens of thousands of container
    objects, which trigger collections that walk all of them again and again (a third of
    an analysis's time). Reference counting still frees everything that is not in a
    cycle; cycles made meanwhile are collected once the collector runs again. Callers
    drop the copy before the pause ends, so the collection that follows finds it freed.

    Safe with threads: a module-level lock guards a count of the pauses in force; the
    first one in turns the collector off only if it was on, the last one out turns it
    back on only if the first turned it off, so overlapping analyses in several threads
    never re-enable it early, and a collector the user had disabled stays disabled.
    Nested use (``analyze`` calling ``trace``) just counts.
    """
    _pause()
    _gc_depth.n = getattr(_gc_depth, "n", 0) + 1
    try:
        yield
    finally:
        _gc_depth.n -= 1
        _unpause()


@contextmanager
def gc_resumed() -> Iterator[None]:
    """Inside :func:`gc_paused`, let the collector run again for a while (the real-tensor
    fallback, where a cycle could hold real memory); elsewhere nothing."""
    depth = getattr(_gc_depth, "n", 0)
    for _ in range(depth):
        _unpause()
    _gc_depth.n = 0
    try:
        yield
    finally:
        for _ in range(depth):
            _pause()
        _gc_depth.n = depth
