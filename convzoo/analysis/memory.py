"""Activation memory by tensor liveness, and the memory of one training step.

Definitions (bytes; the same on meta and real tensors):

- **activation bytes** (``totals.activation_bytes``, a row's ``activation_bytes``): the
  outputs of the leaf modules (those without children), each output by its own bytes and
  summed over calls, in the leaf's row and its ancestors' (:mod:`convzoo.analysis.owners`).
  An output written in place (``ReLU(inplace=True)``) counts like a fresh one, so the figure
  does not change when an op is made in place; an input returned unchanged (``Identity``,
  dropout in eval mode) counts nothing. It is the data the layers produce, not memory held
  at once: in-place ops and freed tensors show in the inference peak below.
- **live activation bytes**: the storages that the model's inputs and the ops of the forward
  allocated and that are still alive. A storage counts once, whatever number of tensors or
  views share it (``view``, ``detach``, ``_unsafe_view``, in-place ops return no new storage),
  from the op that allocates it until Python (or autograd) frees it; parameters, buffers and
  their views are never activations. ``peak_activation_bytes`` is the largest value right
  after an op's outputs exist (its inputs still alive), so the temporaries a kernel frees
  before it returns (im2col, weight reorders) are not in it.
- **saved bytes**: the storages that autograd saves for backward during one forward in
  train mode with gradients on (what ``torch.autograd.graph.saved_tensors_hooks`` sees),
  each storage once; parameters and buffers are not counted (they are ``param_bytes``), the
  model's inputs are when an op saves them (the first convolution keeps the batch for its
  weight gradient). A save belongs to the innermost module running the op and to that
  module's ancestors by name (:mod:`convzoo.analysis.owners`), so a layer's ``saved_bytes``
  is the sum over its subtree (a storage saved by two layers counts in the first).
- **a training step**: parameters + their gradients (trainable ones) + the optimizer's state
  (:data:`OPTIMIZER_STATES` copies of the trainable parameters; Adam's step counters, one
  scalar per parameter tensor held on the CPU, are left out) + saved bytes. Buffers
  (batch-norm statistics) are left out too; the backward pass's transient gradients of
  activations are not in it either (see ``scripts/gpu_memory_check.py`` for a measured peak).
"""

from __future__ import annotations

import weakref
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

from convzoo.errors import ConvZooError

OPTIMIZER_STATES: dict[str, int] = {"sgd": 0, "sgd-momentum": 1, "adam": 2, "adamw": 2}
"""Copies of the trainable parameters an optimizer keeps between steps (torch.optim:
momentum buffer; Adam's ``exp_avg`` and ``exp_avg_sq``)."""


def check_optimizer(name: Any) -> str | None:
    """``name`` if it is None or a known optimizer; a one-line ConvZooError otherwise."""
    if name is None or (isinstance(name, str) and name in OPTIMIZER_STATES):
        return name
    shown = repr(name)[:40] if isinstance(name, str) else type(name).__name__
    raise ConvZooError(f"optimizer must be one of {', '.join(OPTIMIZER_STATES)}, got {shown}")


def strided_tensors(values: Any) -> list[torch.Tensor]:
    """The strided, non-nested tensors in ``values``: a tensor, or lists, tuples and dicts of
    them at any depth (op arguments and outputs; cheaper than a pytree flatten)."""
    found: list[torch.Tensor] = []
    todo = [values]
    while todo:
        v = todo.pop()
        if isinstance(v, torch.Tensor):
            if not v.is_nested and v.layout is torch.strided:
                found.append(v)
        elif isinstance(v, (list, tuple)):
            todo.extend(v)
        elif isinstance(v, dict):
            todo.extend(v.values())
    return found


def storage_keys(tensors: Any) -> set[int]:
    """Identities of the storages behind ``tensors`` (StorageImpl addresses: meta and real)."""
    return {t.untyped_storage()._cdata for t in strided_tensors(tensors)}


_ALIASES: dict[Any, bool] = {}


def _aliases(func: Any) -> bool:
    """Whether op ``func`` returns an alias of an argument (its schema says so; cached)."""
    hit = _ALIASES.get(func)
    if hit is None:
        schema = getattr(func, "_schema", None)
        returns = schema.returns if schema is not None else []
        hit = _ALIASES[func] = any(r.alias_info is not None for r in returns)
    return hit


class LiveBytes:
    """Bytes of the storages op outputs allocated that are alive now, and their peak.

    Call :meth:`add` with the inputs first, then :meth:`op` after every op. A storage is
    released by a weak-reference callback when its last tensor (or autograd's saved copy)
    dies. ``where()`` names the place of a new peak (the innermost module).
    """

    def __init__(self, where: Callable[[], str] = lambda: "") -> None:
        self.live = 0
        self.peak = 0
        self.peak_at = ""
        self.where = where
        self._refs: dict[int, tuple[weakref.KeyedRef, int]] = {}

    def add(self, tensors: Any) -> None:
        """Count the storages of ``tensors`` (e.g. the model's inputs) not counted yet."""
        for t in strided_tensors(tensors):
            self._count(t.untyped_storage())

    def op(self, func: Any, out: Any) -> None:
        """After one op ``func``: count its outputs' new storages. An op whose schema says
        it returns an alias of an argument (views, ``detach``, in-place and ``out=`` ops)
        allocates none; other outputs on a counted storage (``_unsafe_view``) add nothing."""
        if _aliases(func):
            return
        if isinstance(out, torch.Tensor):
            if not out.is_nested and out.layout is torch.strided:
                self._count(out.untyped_storage())
            return
        for t in strided_tensors(out):
            self._count(t.untyped_storage())

    def fresh(self, out: Any) -> int:
        """Bytes of the storages behind ``out`` not counted yet (what :meth:`op` would add
        for an op that returns no alias)."""
        new: dict[int, int] = {}
        for t in strided_tensors(out):
            storage = t.untyped_storage()
            if storage._cdata not in self._refs:
                new[storage._cdata] = storage.nbytes()
        return sum(new.values())

    def _count(self, storage: torch.UntypedStorage) -> None:
        key = storage._cdata
        if key in self._refs:
            return
        size = storage.nbytes()
        self._refs[key] = (weakref.KeyedRef(storage, self._release, key), size)
        self.live += size
        if self.live > self.peak:
            self.peak, self.peak_at = self.live, self.where()

    def _release(self, ref: weakref.KeyedRef) -> None:
        entry = self._refs.get(ref.key)
        if entry is not None and entry[0] is ref:
            del self._refs[ref.key]
            self.live -= entry[1]


class TensorMap:
    """A map from tensors (by identity) to values that keeps no tensor alive: an entry goes
    when its tensor dies. Faster than ``torch.utils.weak.WeakIdKeyDictionary`` (plain ``id``
    keys and C-level weak references, dereferenced only to confirm a hit)."""

    def __init__(self) -> None:
        self._data: dict[int, tuple[weakref.KeyedRef, Any]] = {}

    def get(self, t: torch.Tensor, default: Any = None) -> Any:
        hit = self._data.get(id(t))
        return hit[1] if hit is not None and hit[0]() is t else default

    def __setitem__(self, t: torch.Tensor, value: Any) -> None:
        self._data[id(t)] = (weakref.KeyedRef(t, self._drop, id(t)), value)

    def __contains__(self, t: object) -> bool:
        hit = self._data.get(id(t))
        return hit is not None and hit[0]() is t

    def __len__(self) -> int:
        return len(self._data)

    def _drop(self, ref: weakref.KeyedRef) -> None:
        hit = self._data.get(ref.key)
        if hit is not None and hit[0] is ref:
            del self._data[ref.key]


class SavedBytes:
    """Counts the storages autograd saves for backward, each once, per owning module.

    Use as a context manager around a forward with gradients on; ``owners()`` names the
    modules a save made now belongs to (the tracer's :meth:`~convzoo.analysis.counting.
    Tracer.owner_names`: the innermost module and its prefixes, by the one attribution rule).
    Saved storages are held until the context exits, so that no address is reused meanwhile.
    """

    def __init__(self, exclude: set[int], owners: Callable[[], Iterable[str]]) -> None:
        self.exclude = exclude
        self.owners = owners
        self.total = 0
        self.by_name: Counter[str] = Counter()
        self._held: dict[int, Any] = {}
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t)

    def _pack(self, t: torch.Tensor) -> torch.Tensor:
        if t.is_nested or t.layout is not torch.strided:
            return t
        storage = t.untyped_storage()
        key = storage._cdata
        if key in self.exclude or key in self._held:
            return t
        self._held[key] = storage
        size = storage.nbytes()
        self.total += size
        for name in self.owners():
            self.by_name[name] += size
        return t

    def __enter__(self) -> SavedBytes:
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._hooks.__exit__(*exc)
        self._held.clear()


def trainable_bytes(model: nn.Module) -> tuple[int, int]:
    """(bytes of all parameters, bytes of trainable ones), each shared tensor once."""
    params = {id(p): p for p in model.parameters()}.values()
    total = sum(p.numel() * p.element_size() for p in params)
    return total, sum(p.numel() * p.element_size() for p in params if p.requires_grad)


def measured_saved_bytes(model: nn.Module, args: tuple) -> int:
    """The reference for :class:`SavedBytes`, written apart from it: a plain forward of
    ``model`` on real tensors, in train mode with gradients on, counting the distinct data
    pointers that ``saved_tensors_hooks`` sees (parameters and buffers excluded, each
    allocation by its storage size). Changes ``model``'s mode and batch-norm statistics:
    pass a copy."""
    own = {t.untyped_storage().data_ptr() for t in [*model.parameters(), *model.buffers()]}
    seen: dict[int, int] = {}
    kept: list[torch.Tensor] = []

    def pack(t: torch.Tensor) -> torch.Tensor:
        ptr = t.untyped_storage().data_ptr()
        if ptr not in own and t.untyped_storage().nbytes():
            seen.setdefault(ptr, t.untyped_storage().nbytes())
            kept.append(t)
        return t

    model.train()
    with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(*args)
    return sum(seen.values())
