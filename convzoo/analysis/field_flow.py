"""The receptive fields of the tensors one traced forward makes, op by op and module by
module: what :class:`~convzoo.analysis.counting.Tracer` asks after every op and module call.

The field of an op's output comes from the op's field rule (:mod:`convzoo.analysis.receptive`);
three kinds of call, most of a network's, are answered here without it, each giving what the
rule would (``tests/test_fast_paths.py`` checks it on whole models):

* no traced operand: no field;
* one traced operand whose field passes on unchanged (element-wise ops, normalisations) to
  an output of its shape, or only global operands of a rule that keeps them global;
* one traced operand whose axes move to other dims (views, permutes, channels-last
  matrix products): the layout the rule gave for the same op, operand layout, shapes and
  arguments earlier in this forward (networks repeat their blocks), with the same spans.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from convzoo.analysis import receptive
from convzoo.analysis.memory import TensorMap
from convzoo.analysis.ops.table import is_inplace
from convzoo.analysis.receptive import Field

_RULED: dict[type, bool] = {}


def _has_module_rule(cls: type) -> bool:
    """Whether a module class (or a base) has a receptive-field module rule (cached)."""
    if cls not in _RULED:
        _RULED[cls] = any(c in receptive.MODULE_RULES for c in cls.__mro__)
    return _RULED[cls]


@dataclass(frozen=True)
class FieldFacts:
    """What this module needs to know of one op's field rule (looked up once per op)."""

    passes: bool  # a single operand's field passes on (receptive.passes_through)
    keeps_global: bool  # global operands give a global output (receptive.keeps_global_field)
    moves_axes: bool  # the output has the operand's axes, moved (receptive.moves_axes)
    writes: bool  # writes its first argument, which may be a view of another tensor

    @classmethod
    def of(cls, func: Any) -> FieldFacts:
        return cls(
            receptive.passes_through(func),
            receptive.keeps_global_field(func),
            receptive.moves_axes(func),
            is_inplace(func),
        )


def _key(value: Any) -> Any:
    """A stand-in for an op argument (tensors by shape, lists as tuples)."""
    if isinstance(value, torch.Tensor):
        return ("tensor", tuple(value.shape))
    if isinstance(value, (list, tuple)):
        return tuple(_key(v) for v in value)
    return value


class FieldFlow:
    """Tensor -> receptive field for one forward, kept weakly (a tensor's entry goes when
    it dies); notes go to ``notes`` prefixed by ``where()`` (the innermost module)."""

    def __init__(self, notes: list[str], where: Callable[[], str]) -> None:
        self.map = TensorMap()
        self.notes = notes
        self.where = where
        self.layouts: dict[Any, Any] = {}  # see _moved

    def __len__(self) -> int:
        return len(self.map)

    def __contains__(self, t: object) -> bool:
        return t in self.map

    def get(self, t: Any) -> Field | None:
        return self.map.get(t) if isinstance(t, torch.Tensor) else None

    def set(self, t: Any, value: Field | None) -> None:
        if isinstance(t, torch.Tensor):
            self.map[t] = value

    # -- per op ---------------------------------------------------------------------------
    def step(self, func: Any, facts: FieldFacts, args: tuple, kwargs: dict, out: Any) -> None:
        """Set the fields of ``func``'s outputs from its operands'; an op that writes into
        a view of another tensor (``out[..., 1:-1] = x``) changes that tensor's field."""
        wrote = facts.writes and args and out is args[0] and out._base is not None
        before = self.map.get(out) if wrote else None
        if not self._shortcut(func, facts, args, kwargs, out):
            self.propagate(func, args, kwargs, out)
        if wrote and (self.map.get(out) is not before or out not in self.map):
            self._wrote(out)

    def _wrote(self, view: torch.Tensor) -> None:
        """The field of ``view``'s base after a write into ``view``."""
        base = view._base
        assert base is not None
        try:
            field, notes = receptive.into_view(base, self.map.get(base), view, self.map.get(view))
        except Exception as exc:  # a field rule must never break counting
            reason = f"receptive field rule for a write into a view failed: {exc}"
            field, notes = Field.unknown(reason), [reason]
        self.set(base, field)
        if notes:
            where = self.where() or "(model)"
            self.notes.extend(f"{where}: {n}" for n in notes)

    def _shortcut(self, func: Any, facts: FieldFacts, args: tuple, kwargs: dict, out: Any) -> bool:
        """The calls answered without the op's rule (see the module docstring); False:
        :meth:`propagate` gives the field."""
        if kwargs or not (facts.passes or facts.keeps_global or facts.moves_axes):
            return False
        traced: list[tuple[int, torch.Tensor, Field]] = []
        for i, a in enumerate(args):
            if isinstance(a, torch.Tensor):
                f = self.map.get(a)
                if f is not None:
                    traced.append((i, a, f))
            elif isinstance(a, (list, tuple)) and any(isinstance(v, torch.Tensor) for v in a):
                return False
        if not traced:
            return True  # no field to propagate (a None field reads as none)
        first = out[0] if isinstance(out, (tuple, list)) and out else out
        if not isinstance(first, torch.Tensor):
            return False
        _, tensor, field = traced[0]
        passes = facts.passes and len(traced) == 1 and first.shape == tensor.shape
        stays_global = facts.keeps_global and first is out and all(f.is_global for *_, f in traced)
        if passes or stays_global:
            if first is not tensor:
                self.map[first] = field
            return True
        if facts.moves_axes and len(traced) == 1 and first is out and field.known:
            if field.channels is not None:  # the channels move too: the rule follows them
                return False
            return self._moved(func, traced[0], args, out)
        return False

    def _moved(
        self, func: Any, traced: tuple[int, torch.Tensor, Field], args: tuple, out: Any
    ) -> bool:
        """An op that moves the axes of its one traced operand: the layout is looked up
        by (op, operand position and layout, argument shapes and values, output shape),
        or found by :meth:`propagate` and remembered when the rule kept the spans and
        gave no note."""
        index, _, field = traced
        try:
            key = (func, index, field.layout, len(field.axes), _key(args), tuple(out.shape))
            hash(key)  # an unhashable argument: no reuse
        except TypeError:
            return False
        layout = self.layouts.get(key, self)  # self: not seen yet
        if layout is not self:
            self.map[out] = Field(field.axes, False, layout, field.reason, field.bound)
            return True
        noted = len(self.notes)
        self.propagate(func, args, {}, out)
        got = self.map.get(out)
        kept = (
            isinstance(got, Field)
            and not got.is_global
            and len(got.axes) == len(field.axes)
            and all(a is b for a, b in zip(got.axes, field.axes, strict=True))
            and (got.reason, got.bound) == (field.reason, field.bound)
        )
        if kept and len(self.notes) == noted:
            self.layouts[key] = got.layout
        return True

    def _traced(self, values: Any) -> bool:
        """Whether any tensor among ``values`` (or in a list among them) has a field entry."""
        for v in values:
            if isinstance(v, torch.Tensor):
                if v in self.map:
                    return True
            elif isinstance(v, (list, tuple)) and self._traced(v):
                return True
        return False

    def propagate(self, func: Any, args: tuple, kwargs: dict, out: Any) -> None:
        """The general path: the op's field rule (:func:`receptive.propagate_outputs`)."""
        if not (self._traced(args) or self._traced(kwargs.values())):
            return  # no traced operand: the output has no field (absent = None)
        try:
            values, notes = receptive.propagate_outputs(func, args, kwargs, out, self.get)
        except Exception as exc:  # a field rule must never break counting
            values, notes = [], [f"receptive field rule for {func} failed: {exc}"]
        outs = out if isinstance(out, (tuple, list)) else [out]
        for tensor, value in zip(outs, values, strict=False):
            self.set(tensor, value)
        if notes:
            where = self.where() or "(model)"
            self.notes.extend(f"{where}: {n}" for n in notes)

    # -- per module call ------------------------------------------------------------------
    def module(self, module: nn.Module, inputs: tuple, out: torch.Tensor) -> None:
        """A zoo module whose ops do not show its geometry sets its output's field by its
        module rule (:func:`receptive.module_field`)."""
        if not inputs or not isinstance(inputs[0], torch.Tensor):
            return
        if not _has_module_rule(type(module)):
            return
        try:
            value = receptive.module_field(
                module, self.get(inputs[0]), tuple(inputs[0].shape), tuple(out.shape)
            )
        except Exception as exc:
            self.notes.append(f"receptive field rule for {type(module).__name__} failed: {exc}")
            return
        if value is not NotImplemented:
            self.set(out, value)
