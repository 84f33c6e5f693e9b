"""Op-level counting attributed to modules: one TorchDispatchMode plus module hooks.

Every aten op the forward runs is classified (:mod:`convzoo.analysis.ops`), costed and
added to the innermost module running it and to that module's ancestors by name (the one
attribution rule, :mod:`convzoo.analysis.owners`), so functional calls inside a user's
``forward`` count too, and every row, a container that never runs included, holds the sum
of its subtree. The same pass
propagates receptive fields tensor by tensor (:mod:`convzoo.analysis.receptive`).
"""

from __future__ import annotations

import gc
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils._pytree import tree_flatten

from convzoo.analysis import ops, owners, traffic
from convzoo.analysis.field_flow import FieldFlow
from convzoo.analysis.guard import Guard
from convzoo.analysis.memory import LiveBytes, strided_tensors
from convzoo.analysis.modes import PlainMode
from convzoo.analysis.op_facts import OpFacts, imports_running
from convzoo.errors import user_code

aten = torch.ops.aten


_ABSENT = object()  # a module without an instance-level forward
_HOOK_NAMES = frozenset({"_forward_hooks", "_forward_pre_hooks"})
_AWARE: dict[type, bool] = {}


def _mentions_hooks(code: Any) -> bool:
    """Whether a code object (or one nested in it) names a module's forward hooks."""
    if _HOOK_NAMES & set(code.co_names) or _HOOK_NAMES & {
        c for c in code.co_consts if isinstance(c, str)
    }:
        return True
    return any(_mentions_hooks(c) for c in code.co_consts if hasattr(c, "co_names"))


def _hook_aware(module: nn.Module) -> bool:
    """Whether ``type(module)``'s ``forward`` (a class's own, not nn.Module's) inspects
    forward hooks (cached per class)."""
    cls = type(module)
    if cls not in _AWARE:
        code = getattr(getattr(cls, "forward", None), "__code__", None)
        _AWARE[cls] = code is not None and _mentions_hooks(code)
    return _AWARE[cls]


def _inside(name: str, outer: str) -> bool:
    """Whether module ``name`` lies strictly inside module ``outer`` ('' is the root)."""
    return name != outer and (outer == "" or name.startswith(f"{outer}."))


@dataclass
class ModuleStats:
    """Accumulated per module (by its first name, :mod:`convzoo.analysis.owners`) over all
    its calls.

    ``macs``/``elementwise`` count every op owned by the module's subtree (run while a
    module whose first name lies under this one is the innermost);
    ``self_macs``/``self_elementwise`` only those run while it is the innermost module (its
    own forward, outside its children), so the self counts of all rows add up to the total.
    ``activation_bytes``: the outputs of the leaf modules of its subtree (a leaf: its own),
    each output by its own bytes unless it is an input passed on unchanged.
    ``bytes_moved``: the bytes its ops read and write (:mod:`convzoo.analysis.traffic`).
    """

    macs: int = 0
    elementwise: int = 0
    self_macs: int = 0
    self_elementwise: int = 0
    calls: int = 0
    output_shape: list[int] | None = None
    activation_bytes: int = 0
    rf: Any = None
    bytes_moved: int = 0


@dataclass
class OpTally:
    """One operator of one op class inside one module (the innermost on the call stack when
    it ran): ``kind`` is "macs", "elementwise", "free" or "uncounted"; ``macs``/``elementwise``
    its cost over all ``calls`` (a fused kernel has both), ``bytes`` what they move."""

    kind: str
    calls: int = 0
    macs: int = 0
    elementwise: int = 0
    bytes: int = 0


class Tracer(PlainMode):
    """Counts every op and attributes it to the modules on the call stack.

    ``memory`` follows the bytes of live activations (the inputs of :meth:`run` and the
    storages ops allocate, see :mod:`convzoo.analysis.memory`). With a ``guard``, every op
    that no fast shape rule answers runs through :meth:`Guard.run
    <convzoo.analysis.guard.Guard.run>`, which refuses it before it allocates real tensors
    over the memory budget. The tracer holds no tensor: fields are kept in weak storage, so
    tensors die when the forward drops them.
    """

    def __init__(self, fast: bool = True, fields: bool = True, guard: Guard | None = None) -> None:
        super().__init__()
        self.fast = fast
        self.guard = guard  # real tensors within the memory budget (None: unguarded)
        self.memory = LiveBytes(lambda: self.stack[-1] if self.stack else "")
        self.with_fields = fields
        self.stack: list[str] = []  # first names of the modules running, innermost last
        self.stats: dict[str, ModuleStats] = {}  # by first name (aliases have none)
        self.aliases: dict[str, str] = {}  # other names -> first names
        self.leaves: set[str] = set()  # first names of modules without children
        self._owners: dict[str, tuple[ModuleStats, ...]] = {}  # a name's stats and prefixes'
        self._given: list[dict[int, int]] = []  # per hooked module on the stack: _versions
        self.uncounted: Counter[tuple[str, str]] = Counter()  # (op, module) -> calls
        self.per_op: dict[tuple[str, str, str], OpTally] = {}  # (module, op, op class)
        self.notes: list[str] = []
        self.fields = FieldFlow(self.notes, lambda: self.stack[-1] if self.stack else "")
        self.failed_in = ""  # innermost module an exception passed through
        self.imports = 0  # imports running when the forward began (see imports_running)
        self.facts: dict[Any, OpFacts] = {}  # per op overload, for this analysis

    # -- receptive fields ----------------------------------------------------------------
    def field_of(self, t: Any) -> Any:
        return self.fields.get(t)

    def set_field(self, t: Any, value: Any) -> None:
        self.fields.set(t, value)

    # -- dispatch ------------------------------------------------------------------------
    def __torch_dispatch__(
        self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None
    ) -> Any:
        kwargs = kwargs or {}
        facts = self.facts.get(func)
        if facts is None:
            facts = self.facts[func] = OpFacts.of(func)
        if facts.outside and imports_running() > self.imports:  # an import's: count nothing
            return self._call(func, args, kwargs)
        if facts.operands.positions:  # meta kernels would mix dtypes a real one refuses
            facts.operands.check(func, args, kwargs)
        out = None
        if self.fast and facts.shape_rule is not None:
            out = facts.shape_rule(args, kwargs)  # meta tensors only (None otherwise)
        if out is None:
            out = self._call(func, args, kwargs)
        self.memory.op(func, out)
        kind, name, op_class = facts.kind, facts.name, facts.op_class
        if facts.refine is not None:
            op_class = facts.refine(args, kwargs)
        module = self.stack[-1] if self.stack else ""
        key = (module, name, op_class)
        tally = self.per_op.get(key)
        if tally is None:
            tally = self.per_op[key] = OpTally(kind)
        tally.calls += 1
        macs = elementwise = moved = 0
        if op_class != "free":
            moved = traffic.moved(args, kwargs, out, facts.first_output)
            tally.bytes += moved
        if kind == "uncounted":
            self.uncounted[(name, module)] += 1
        elif kind != "free":
            amount = ops.charge(facts.cost, func, args, kwargs, out)
            if kind == "macs":
                macs = amount
            else:
                elementwise = amount
            if facts.fused is not None:
                elementwise += facts.fused(func, args, kwargs, out)
            tally.macs += macs
            tally.elementwise += elementwise
        if self.stack and (macs or elementwise or moved):
            self._add(macs, elementwise, moved)
        if self.with_fields:
            self.fields.step(func, facts.field, args, kwargs, out)
        return out

    def owners(self, name: str) -> tuple[ModuleStats, ...]:
        """The stats a cost of module ``name`` (a first name) goes to: its own and those of
        its prefixes (:func:`convzoo.analysis.owners.chain`)."""
        found = self._owners.get(name)
        if found is None:
            found = tuple(self.stats.setdefault(n, ModuleStats()) for n in owners.chain(name))
            self._owners[name] = found
        return found

    def owner_names(self) -> tuple[str, ...]:
        """The names the cost of an op running now goes to (none outside the model)."""
        return owners.chain(self.stack[-1]) if self.stack else ()

    def _call(self, func: Any, args: tuple, kwargs: dict) -> Any:
        """Run one op, held to the memory budget when there is a guard.

        An op whose kernel imports modules (a Python decomposition importing
        ``torch._dynamo`` on its first call, as batch norm's does for a bfloat16 input
        under ``amp``) may leave reference cycles that reach the forward's frames and so
        its activations; the collector is paused (:func:`isolation.gc_paused`), so they
        would live to the end and the first analysis in a process would find a higher
        peak than the next ones. They are collected at once after such an op."""
        loaded = len(sys.modules)
        out = func(*args, **kwargs) if self.guard is None else self.guard.run(func, args, kwargs)
        if len(sys.modules) != loaded:
            gc.collect()
        return out

    def _add(self, macs: int, elementwise: int, moved: int) -> None:
        """Add one op's cost to the innermost module and its prefixes, and to it as self."""
        chain = self.owners(self.stack[-1])
        for one in chain:
            one.macs += macs
            one.elementwise += elementwise
            one.bytes_moved += moved
        top = chain[-1]
        top.self_macs += macs
        top.self_elementwise += elementwise

    # -- module hooks --------------------------------------------------------------------
    def run(self, model: nn.Module, args: tuple, kwargs: dict | None = None) -> Any:
        """``model(*args, **kwargs)`` under this mode with every submodule hooked; the root
        row ('') is recorded here, so a TorchScript model gets its totals too. The forward
        is the user's code: a ``sys.exit`` or other ``BaseException`` in it (hooks included)
        is raised as :class:`~convzoo.errors.UserCodeError`, an ``Exception`` as it was."""
        kwargs = kwargs or {}
        self.stats.setdefault("", ModuleStats())
        self.memory.add([args, kwargs])  # the inputs are live activations
        self.imports = imports_running()  # analyze() itself may run inside an import
        with self.hooks(model), self:
            self.stack.append("")
            self.stats[""].calls += 1
            given = _versions(args)
            try:
                with user_code():
                    out = model(*args, **kwargs)
            finally:
                self.stack.pop()
            self._record("", model, args, given, out)
        return out

    @contextmanager
    def hooks(self, model: nn.Module) -> Iterator[None]:
        """Follow every submodule's calls for the duration; always undone.

        ``model`` is the analysis's private copy, so each submodule's ``forward`` is wrapped
        in place (an instance attribute, removed afterwards): much cheaper per call than a
        pair of forward hooks, which force ``nn.Module.__call__`` onto its slow path. A
        module with hooks of its own is followed by hooks instead, so that its recorded
        output is the one its hooks return, and so is one whose ``forward`` looks for
        hooks (``nn.TransformerEncoderLayer`` takes its fused path only without them), so
        that it runs as it always did under the analysis. A module reachable under several
        names is followed once, under its first name; the others are :attr:`aliases`
        (:mod:`convzoo.analysis.owners`).
        TorchScript modules run no Python hooks: their cost is in the nearest Python
        ancestor (a note says so).
        """
        handles = []
        wrapped: list[tuple[nn.Module, Any]] = []
        named = list(model.named_modules(remove_duplicate=False))
        self.aliases = owners.aliases(named)
        scripted = [""] if isinstance(model, torch.jit.ScriptModule) else []
        try:
            for name, module in named:
                if name in self.aliases:
                    continue
                self.stats.setdefault(name, ModuleStats())
                if owners.is_leaf(module) or isinstance(module, torch.jit.ScriptModule):
                    self.leaves.add(name)  # TorchScript: its children run no hooks
                if not name:
                    continue  # the model itself: followed by run
                if isinstance(module, torch.jit.ScriptModule):
                    scripted.append(name)
                elif module._forward_hooks or module._forward_pre_hooks or _hook_aware(module):
                    handles.append(module.register_forward_pre_hook(self._enter(name)))
                    handles.append(
                        module.register_forward_hook(self._exit(name, module), always_call=True)
                    )
                else:
                    wrapped.append((module, module.__dict__.get("forward", _ABSENT)))
                    module.__dict__["forward"] = self._wrap(name, module, module.forward)
            for name in scripted:
                if not any(_inside(name, outer) for outer in scripted):
                    self.notes.append(
                        f"{name or '(model)'}: TorchScript runs no Python hooks, so its "
                        "submodules have no rows of their own (their cost is in this row)"
                    )
            yield
        finally:
            for handle in handles:
                handle.remove()
            for module, before in wrapped:
                if before is _ABSENT:
                    module.__dict__.pop("forward", None)
                else:
                    module.__dict__["forward"] = before

    def _wrap(self, name: str, module: nn.Module, forward: Any) -> Any:
        """``forward`` with ``name`` pushed on the module stack while it runs."""
        stack, stats = self.stack, self.stats[name]

        def call(*args: Any, **kwargs: Any) -> Any:
            stack.append(name)
            stats.calls += 1
            given = _versions(args)
            try:
                out = forward(*args, **kwargs)
            except BaseException:
                self.failed_in = self.failed_in or name
                raise
            finally:
                if stack and stack[-1] == name:
                    stack.pop()
            self._record(name, module, args, given, out)
            return out

        return call

    def _enter(self, name: str) -> Any:
        def hook(module: nn.Module, inputs: tuple) -> None:
            self.stack.append(name)
            self.stats[name].calls += 1
            self._given.append(_versions(inputs))

        return hook

    def _exit(self, name: str, module: nn.Module) -> Any:
        def hook(mod: nn.Module, inputs: tuple, output: Any) -> None:
            given: dict[int, int] = {}
            if self.stack and self.stack[-1] == name:  # its pre-hook ran (a user's may raise)
                self.stack.pop()
                given = self._given.pop()
            if sys.exc_info()[1] is not None:  # called while an exception propagates
                self.failed_in = self.failed_in or name
                return
            self._record(name, module, inputs, given, output)

        return hook

    def _record(
        self,
        name: str,
        module: nn.Module,
        inputs: tuple,
        given: dict[int, int],
        output: Any,
    ) -> None:
        """Output shape, activation bytes and receptive field of one call of ``name``;
        ``given`` holds the versions of the call's tensor arguments' storages before it ran
        (:func:`_versions`).

        A leaf's outputs count by their own bytes, in its row and its prefixes' rows, except
        an argument passed on unchanged or a view of one (``nn.Identity``, ``nn.Flatten``,
        dropout in eval mode: no new values). One written in place (``ReLU(inplace=True)``:
        its version moved) holds new values and counts as a fresh output would, so
        ``activation_bytes`` is the same whether an op runs in place or not.
        """
        stats = self.stats[name]
        if isinstance(output, torch.Tensor):
            tensors = [output]
        else:
            tensors = [t for t in tree_flatten(output)[0] if isinstance(t, torch.Tensor)]
        tensors = [t for t in tensors if not t.is_nested]
        if not tensors:
            return
        stats.output_shape = list(tensors[0].shape)
        if name in self.leaves:
            size = sum(t.numel() * t.element_size() for t in tensors if not _passed_on(t, given))
            for owner in self.owners(name):
                owner.activation_bytes += size
        if self.with_fields:
            self.fields.module(module, inputs, tensors[0])
            stats.rf = self.fields.get(tensors[0])


def _version(t: torch.Tensor) -> int:
    """``t``'s version counter (bumped by every in-place write); -1 for a tensor made in
    inference mode, which keeps none."""
    try:
        return int(t._version)
    except RuntimeError:
        return -1


def _versions(args: Any) -> dict[int, int]:
    """The version of each storage behind a call's tensor arguments, before it runs (views
    share their base's version counter, which every in-place write bumps)."""
    return {t.untyped_storage()._cdata: _version(t) for t in strided_tensors(args)}


def _passed_on(t: torch.Tensor, given: dict[int, int]) -> bool:
    """Whether output ``t`` is an argument (or a view of one) that the call left unwritten."""
    if t.layout is not torch.strided:
        return False
    return given.get(t.untyped_storage()._cdata, -2) == _version(t)
