"""The backward of one training step, counted op by op (autograd on the private copy).

:class:`StepTracer` is a :class:`~convzoo.analysis.counting.Tracer` whose forward also
labels every autograd node with the module stack of the op that made it (in the node's
``metadata``); :meth:`StepTracer.backward` then runs autograd's real backward from the
outputs (a gradient of ones for each floating output that requires grad) on the same
tensors (meta ones by default) and charges each op it runs, by the op table's rules
(:mod:`convzoo.analysis.ops.backward`), to the modules of the node running it
(``torch._C._current_autograd_node()``). So the count is what autograd runs: a frozen
parameter (``requires_grad=False``) gets no weight gradient, an input without grad no
input gradient, a gradient that meets another is added (charged to the node that
produced it), and a checkpointed region (:mod:`torch.utils.checkpoint`) re-runs its forward
inside the backward: those ops are charged to the modules they run in, and their MACs are
``recompute_macs`` as well.
"""

from __future__ import annotations

import fnmatch
import weakref
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from convzoo.analysis import ops
from convzoo.analysis.counting import OpTally, Tracer
from convzoo.analysis.guard import Guard
from convzoo.analysis.memory import strided_tensors
from convzoo.analysis.op_facts import OpFacts
from convzoo.analysis.owners import chain
from convzoo.analysis.report import OperatorStats
from convzoo.errors import ConvZooError
from convzoo.registry import close_matches

_LABEL = "convzoo_stack"  # the key of a node's metadata holding its module stack


@dataclass
class Backward:
    """What one backward ran: per module name (subtree sums over its ops) its MACs and
    element-wise ops, per (innermost module, op) a tally, the ops with arithmetic and no
    rule (``(op, module) -> calls``), and the MACs of recomputed (checkpointed) forwards."""

    macs: Counter[str] = field(default_factory=Counter)
    elementwise: Counter[str] = field(default_factory=Counter)
    per_op: dict[tuple[str, str], OpTally] = field(default_factory=dict)
    uncounted: Counter[tuple[str, str]] = field(default_factory=Counter)
    recompute_macs: int = 0
    recompute: Counter[str] = field(default_factory=Counter)  # MACs per checkpointed module
    failure: str = ""  # why the backward could not run ('' when it ran)

    def operators(self, order: list[str]) -> list[OperatorStats]:
        """The tallies as rows, in module order (``order``), then by op name."""
        rank = {name: i for i, name in reversed(list(enumerate(order)))}
        return [
            OperatorStats(module, op, t.kind, t.calls, t.macs, t.elementwise)
            for (module, op), t in sorted(
                self.per_op.items(), key=lambda kv: (rank.get(kv[0][0], len(rank)), kv[0])
            )
        ]


class StepTracer(Tracer):
    """A :class:`Tracer` for a train-mode forward followed by :meth:`backward`.

    ``checkpoint`` names modules whose forward runs under :func:`torch.utils.checkpoint.
    checkpoint` (non-reentrant) while gradients are on: they save no tensors for backward
    but their inputs (which the checkpoint saves for its re-run, as autograd saves
    tensors: the saved-tensor hooks see them) and run again inside the backward. ``kept``
    holds those inputs' bytes per module (none for a module inside another checkpointed
    one: the outer re-run makes its inputs again); ``wrapped`` the modules it could
    checkpoint (not one with forward hooks of its own, nor TorchScript).
    """

    def __init__(
        self, fast: bool = True, guard: Guard | None = None, checkpoint: Collection[str] = ()
    ) -> None:
        super().__init__(fast=fast, fields=False, guard=guard)
        self.checkpoint = frozenset(checkpoint)
        self.kept: Counter[str] = Counter()
        self.wrapped: set[str] = set()  # of ``checkpoint``: those it could wrap
        self._checkpointing = 0  # checkpointed modules running now (nested ones included)
        self.grad = Backward()
        self._in_backward = False
        self._made: list[weakref.ref] = []  # outputs of the last op: autograd labels them next
        self._made_stack: tuple[str, ...] = ()
        self.output: Any = None

    # -- labelling the forward's autograd nodes -------------------------------------------
    def _label(self) -> None:
        """Put the module stack of the last op on the nodes autograd gave its outputs."""
        for ref in self._made:
            t = ref()
            node = None if t is None else t.grad_fn
            if node is not None:
                _metadata(node).setdefault(_LABEL, self._made_stack)
        self._made = []

    def _stack_now(self) -> tuple[str, ...]:
        """The rows an op running now is charged to (the innermost module's first name and
        its prefixes, :mod:`convzoo.analysis.owners`): those of the module running it in the
        forward or a recomputed (checkpointed) forward, else those of the autograd node
        running."""
        if self.stack:  # the forward, or a checkpointed forward running again
            return chain(self.stack[-1])  # its owners (convzoo.analysis.owners)
        if not self._in_backward:
            return ()
        node = torch._C._current_autograd_node()
        label = None if node is None else _metadata(node).get(_LABEL)
        return label if label is not None else ("",)

    def __torch_dispatch__(
        self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None
    ) -> Any:
        if self._made:
            self._label()
        stack = self._stack_now()
        if self._in_backward:
            out = self._count_backward(func, args, kwargs or {}, stack)
        else:
            out = super().__torch_dispatch__(func, types, args, kwargs)
        if torch.is_grad_enabled():
            self._made = [weakref.ref(t) for t in strided_tensors(out) if _grad_able(t)]
            self._made_stack = stack
        return out

    def run(self, model: nn.Module, args: tuple, kwargs: dict | None = None) -> Any:
        """The forward (:meth:`Tracer.run`), its output kept for :meth:`backward`."""
        self.output = super().run(model, args, kwargs)
        return self.output

    def _wrap(self, name: str, module: nn.Module, forward: Any) -> Any:
        """The tracer's wrapper of ``forward``, run under a checkpoint for a module named in
        ``checkpoint`` (its re-run then pushes the module's name again)."""
        call = super()._wrap(name, module, forward)
        if name not in self.checkpoint:
            return call
        self.wrapped.add(name)

        def checkpointed(*args: Any, **kwargs: Any) -> Any:
            if not torch.is_grad_enabled():
                return call(*args, **kwargs)
            if not self._in_backward and not self._checkpointing:  # the outermost
                self.kept[name] += _input_bytes(args, kwargs)
            self._checkpointing += 1
            try:
                return checkpoint(call, *args, use_reentrant=False, **kwargs)
            finally:
                self._checkpointing -= 1

        return checkpointed

    # -- the backward --------------------------------------------------------------------
    def backward(self, model: nn.Module) -> None:
        """Autograd's backward from ``out`` (the forward's output, on ``model``: the copy
        the forward ran on, hooked again so that a checkpointed forward's modules are known)
        under this mode; a gradient of ones for each floating output tensor with a node."""
        self._label()
        out, self.output = self.output, None
        roots = [t for t in strided_tensors(out) if _grad_able(t) and t.grad_fn is not None]
        if not roots:
            return
        grads = [torch.ones_like(t) for t in roots]  # before the mode: not the backward's
        self._in_backward = True
        try:
            with self.hooks(model), self, torch.enable_grad():
                torch.autograd.backward(roots, grads)
        finally:
            self._in_backward = False
            self._made = []

    def _count_backward(self, func: Any, args: tuple, kwargs: dict, stack: tuple[str, ...]) -> Any:
        facts = self.facts.get(func) or self.facts.setdefault(func, OpFacts.of(func))
        out = self._call(func, args, kwargs)
        grad = self.grad
        key = (stack[-1], facts.name)
        tally = grad.per_op.get(key)
        if tally is None:
            tally = grad.per_op[key] = OpTally(facts.kind)
        tally.calls += 1
        if facts.kind == "uncounted":
            grad.uncounted[key[::-1]] += 1
            return out
        if facts.kind == "free":
            return out
        amount = ops.charge(facts.cost, func, args, kwargs, out)
        extra = facts.fused(func, args, kwargs, out) if facts.fused is not None else 0
        macs, elementwise = (amount, extra) if facts.kind == "macs" else (0, amount + extra)
        tally.macs += macs
        tally.elementwise += elementwise
        for name in set(stack):
            grad.macs[name] += macs
            grad.elementwise[name] += elementwise
        if self.stack and macs:  # a recomputed forward
            grad.recompute_macs += macs
            for name in set(stack):
                grad.recompute[name] += macs
        return out


def checkpointed(model: nn.Module, patterns: Any) -> list[str]:
    """The names of ``model``'s submodules that ``patterns`` (a name or fnmatch pattern,
    or a list of them: ``"layer*"``, ``"features.*"``, ``["features.3", "features.4"]``;
    a wildcard does not cross a dot) pick, in module order, the model itself never; a
    one-line ConvZooError for a pattern that picks none."""
    if isinstance(patterns, str):
        patterns = [patterns]
    if not isinstance(patterns, (list, tuple)) or not all(isinstance(p, str) for p in patterns):
        raise ConvZooError(
            f"checkpoint must be a module name or pattern or a list of them, got "
            f"{type(patterns).__name__}"
        )
    names = [name for name, _ in model.named_modules() if name]
    picked: dict[str, None] = {}
    for pattern in patterns:
        depth = pattern.count(".")  # a wildcard stays within one level, as in a path
        found = [n for n in names if n.count(".") == depth and fnmatch.fnmatchcase(n, pattern)]
        if not found:
            hints = close_matches(pattern, names)
            hint = f"; did you mean {', '.join(map(repr, hints))}?" if hints else ""
            raise ConvZooError(f"checkpoint: no module matches {pattern!r:.60}{hint}")
        picked.update(dict.fromkeys(found))
    return [n for n in names if n in picked]


def _input_bytes(args: tuple, kwargs: dict) -> int:
    """Bytes of the tensors among ``args`` and ``kwargs``, each storage once."""
    storages = {t.untyped_storage()._cdata: t for t in strided_tensors([args, kwargs])}
    return sum(t.untyped_storage().nbytes() for t in storages.values())


def _metadata(node: Any) -> dict[str, Any]:
    """An autograd node's own dict of annotations (kept with the node)."""
    return node.metadata


def _grad_able(t: torch.Tensor) -> bool:
    return t.is_floating_point() or t.is_complex()
