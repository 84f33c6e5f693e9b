"""Op-level counting attributed to modules: one TorchDispatchMode plus module hooks.

Every aten op the forward runs is classified (:mod:`convzoo.analysis.ops`), costed and
added to every module on the current call stack, so functional calls inside a user's
``forward`` count too, and containers hold the sum of their subtree. The same pass
propagates receptive fields tensor by tensor (:mod:`convzoo.analysis.receptive`).
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils._pytree import tree_flatten

from convzoo.analysis import meta_kernels, ops
from convzoo.analysis.field_flow import FieldFacts, FieldFlow
from convzoo.analysis.guard import Guard
from convzoo.analysis.memory import LiveBytes
from convzoo.analysis.modes import PlainMode
from convzoo.errors import user_code

aten = torch.ops.aten


@dataclass(frozen=True)
class OpFacts:
    """What the tracer needs to know of one op overload, looked up once per analysis:
    its class (:func:`ops.classify`), packet name, fast shape rule, cost rule, fused rule,
    and what :mod:`convzoo.analysis.field_flow` needs of its field rule."""

    kind: str
    name: str
    shape_rule: Any
    cost: Any
    fused: Any
    field: FieldFacts

    @classmethod
    def of(cls, func: Any) -> OpFacts:
        entry = ops.TABLE.resolve(func)
        return cls(
            entry.kind,
            str(func.overloadpacket.__name__),
            meta_kernels.RULES.get(func),
            entry.cost,
            ops.fused(func),
            FieldFacts.of(func),
        )


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
    """Accumulated per module (by qualified name) over all its calls.

    ``macs``/``elementwise`` count every op run while the module is on the call stack;
    ``self_macs``/``self_elementwise`` only those run while it is the innermost module (its
    own forward, outside its children), so the self counts of all rows add up to the total.
    """

    macs: int = 0
    elementwise: int = 0
    self_macs: int = 0
    self_elementwise: int = 0
    calls: int = 0
    output_shape: list[int] | None = None
    activation_bytes: int = 0
    rf: Any = None


@dataclass
class OpTally:
    """One operator inside one module (the innermost on the call stack when it ran):
    ``kind`` is "macs", "elementwise", "free" or "uncounted"; ``macs``/``elementwise``
    its cost over all ``calls`` (a fused kernel has both)."""

    kind: str
    calls: int = 0
    macs: int = 0
    elementwise: int = 0


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
        self.stack: list[str] = []
        self.stats: dict[str, ModuleStats] = {}
        self.uncounted: Counter[tuple[str, str]] = Counter()  # (op, module) -> calls
        self.per_op: dict[tuple[str, str], OpTally] = {}  # (innermost module, op) -> tally
        self.notes: list[str] = []
        self.fields = FieldFlow(self.notes, lambda: self.stack[-1] if self.stack else "")
        self.failed_in = ""  # innermost module an exception passed through
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
        out = None
        if self.fast and facts.shape_rule is not None:
            out = facts.shape_rule(args, kwargs)  # meta tensors only (None otherwise)
        if out is None:
            guard = self.guard
            out = func(*args, **kwargs) if guard is None else guard.run(func, args, kwargs)
        self.memory.op(func, out)
        kind, name = facts.kind, facts.name
        key = (self.stack[-1] if self.stack else "", name)
        tally = self.per_op.get(key)
        if tally is None:
            tally = self.per_op[key] = OpTally(kind)
        tally.calls += 1
        if kind == "uncounted":
            self.uncounted[key[::-1]] += 1
        elif kind != "free":
            amount = ops.charge(facts.cost, func, args, kwargs, out)
            self._add(amount, kind == "macs")
            if kind == "macs":
                tally.macs += amount
            else:
                tally.elementwise += amount
            if facts.fused is not None:
                extra = facts.fused(func, args, kwargs, out)
                self._add(extra, False)
                tally.elementwise += extra
        if self.with_fields:
            self.fields.step(func, facts.field, args, kwargs, out)
        return out

    def _add(self, amount: int, macs: bool) -> None:
        """Add one op's cost to every module on the stack, and to the innermost as self."""
        if not self.stack or not amount:
            return
        attr = "macs" if macs else "elementwise"
        for name in self.stack:
            stats = self.stats[name]
            setattr(stats, attr, getattr(stats, attr) + amount)
        top = self.stats[self.stack[-1]]
        setattr(top, "self_" + attr, getattr(top, "self_" + attr) + amount)

    # -- module hooks --------------------------------------------------------------------
    def run(self, model: nn.Module, args: tuple, kwargs: dict | None = None) -> Any:
        """``model(*args, **kwargs)`` under this mode with every submodule hooked; the root
        row ('') is recorded here, so a TorchScript model gets its totals too. The forward
        is the user's code: a ``sys.exit`` or other ``BaseException`` in it (hooks included)
        is raised as :class:`~convzoo.errors.UserCodeError`, an ``Exception`` as it was."""
        kwargs = kwargs or {}
        self.stats.setdefault("", ModuleStats())
        self.memory.add([args, kwargs])  # the inputs are live activations
        with self.hooks(model), self:
            self.stack.append("")
            self.stats[""].calls += 1
            try:
                with user_code():
                    out = model(*args, **kwargs)
            finally:
                self.stack.pop()
            self._record("", model, args, out)
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
        that it runs as it always did under the analysis. A module reachable under several names is
        followed once, under its first name; the other names share its statistics.
        TorchScript modules run no Python hooks: their cost is in the nearest Python
        ancestor (a note says so).
        """
        handles = []
        wrapped: list[tuple[nn.Module, Any]] = []
        primary: dict[int, str] = {id(model): ""}
        scripted = [""] if isinstance(model, torch.jit.ScriptModule) else []
        try:
            for name, module in model.named_modules(remove_duplicate=False):
                if id(module) in primary:
                    self.stats[name] = self.stats.setdefault(primary[id(module)], ModuleStats())
                    continue
                primary[id(module)] = name
                self.stats.setdefault(name, ModuleStats())
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
            try:
                out = forward(*args, **kwargs)
            except BaseException:
                self.failed_in = self.failed_in or name
                raise
            finally:
                if stack and stack[-1] == name:
                    stack.pop()
            self._record(name, module, args, out)
            return out

        return call

    def _enter(self, name: str) -> Any:
        def hook(module: nn.Module, inputs: tuple) -> None:
            self.stack.append(name)
            self.stats[name].calls += 1

        return hook

    def _exit(self, name: str, module: nn.Module) -> Any:
        def hook(mod: nn.Module, inputs: tuple, output: Any) -> None:
            if self.stack and self.stack[-1] == name:
                self.stack.pop()
            if sys.exc_info()[1] is not None:  # called while an exception propagates
                self.failed_in = self.failed_in or name
                return
            self._record(name, module, inputs, output)

        return hook

    def _record(self, name: str, module: nn.Module, inputs: tuple, output: Any) -> None:
        """Output shape, activation bytes and receptive field of one call of ``name``."""
        stats = self.stats[name]
        if isinstance(output, torch.Tensor):
            tensors = [output]
        else:
            tensors = [t for t in tree_flatten(output)[0] if isinstance(t, torch.Tensor)]
        tensors = [t for t in tensors if not t.is_nested]
        if not tensors:
            return
        stats.output_shape = list(tensors[0].shape)
        given = {id(t) for t in inputs if isinstance(t, torch.Tensor)}
        stats.activation_bytes += sum(
            t.numel() * t.element_size() for t in tensors if id(t) not in given
        )  # not an input passed on
        if self.with_fields:
            self.fields.module(module, inputs, tensors[0])
            stats.rf = self.fields.get(tensors[0])
