"""The op table: one :class:`OpEntry` per op (or overload), keyed by qualified name.

An entry holds every aspect convzoo knows of an op:

* its *kind* and cost rule: ``macs`` (linear algebra -> MACs), ``elementwise`` (one op per
  value, see :mod:`.elementwise`) or ``free`` (no arithmetic, with the reason);
* ``fused``: element-wise work fused into a MAC kernel, counted besides its MACs;
* ``field``: its receptive-field rule (:mod:`convzoo.analysis.receptive`).

Ops are keyed by qualified name (``"aten::convolution"``, an overload
``"aten::add.Tensor"``), so an op is registered without importing the library that
defines it (``"torchvision::deform_conv2d"``) and found when the tracer first meets it.
An overload's entry wins over its packet's, aspect by aspect, so registering an aspect
that the op's own entry, its packet's entry or (for a packet) one of its overloads' entries
already has is refused: it would replace or shadow a rule, or be shadowed by one
(``replace=True`` overrides: the new rule then applies wherever it is registered, and a
packet's replaces its overloads' rules of that aspect). The built-in rules
(:mod:`.builtin`, the one module that imports every rule module) are loaded on the first
lookup, or before a user's registration so a clash is refused. A user's cost rules are
wrapped by :func:`checked` (its result must be a non-negative int); the built-in ones are
trusted (tested) and called bare, on the tracer's hot path.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from typing import Any

import torch

from convzoo.analysis.ops.call import OpCall
from convzoo.errors import ConvZooError, first_line, render

CostRule = Callable[[OpCall], int]
FieldRule = Callable[[Any], Any]  # receptive.table.Call -> (Field | None, notes)
KINDS = ("macs", "elementwise", "free")
BUILTIN = "convzoo.analysis.ops.builtin"
VIEW_REASON = "view (aliases its input)"
NO_TENSOR_REASON = "touches no tensor (no tensor argument or result: a query such as a version)"
ASPECT_NAMES = {
    "macs": "a MAC rule",
    "elementwise": "an element-wise rule",
    "free": "a free reason",
    "fused": "a fused element-wise rule",
    "field": "a receptive-field rule",
}


@dataclass(slots=True)
class OpEntry:
    """What convzoo knows of one op packet or overload (see the module docstring).

    ``kind`` is None for an entry with a field rule only; ``cost`` is set for ``macs`` and
    ``elementwise``, ``free`` (the reason) for ``free``.
    """

    name: str
    kind: str | None = None
    cost: CostRule | None = None
    free: str | None = None
    fused: CostRule | None = None
    field: FieldRule | None = None


@dataclass(frozen=True, slots=True)
class Resolved:
    """The table's answer for one overload: its entry's aspects merged over its packet's,
    with the kind views and ``torch.Tag.pointwise`` ops get without an entry.

    ``kind`` is ``"uncounted"`` for an op with arithmetic and no rule; ``cost`` None for
    element-wise ops counted one per output value; ``field_exact`` says the field rule was
    registered for this very overload (it then wins over the element-wise default).
    """

    kind: str
    cost: CostRule | None
    free: str | None
    fused: CostRule | None
    field: FieldRule | None
    field_exact: bool


def op_key(op: Any) -> str:
    """The qualified name of an op packet (``aten::mm``), overload (``aten::add.Tensor``)
    or a string naming either."""
    if isinstance(op, torch._ops.OpOverload):
        return f"{op.overloadpacket._qualified_op_name}.{op._overloadname}"
    if isinstance(op, torch._ops.OpOverloadPacket):
        return str(op._qualified_op_name)
    if isinstance(op, str) and "::" in op and all(op.split("::", 1)):
        return op
    raise ConvZooError(
        f"an op is a torch.ops packet or overload or a 'namespace::name' string, got {op!r:.60}"
    )


def packet_of(key: str) -> str | None:
    """The packet's key of an overload's key (``aten::add.Tensor`` -> ``aten::add``);
    None for a packet's own key."""
    namespace, _, name = key.partition("::")
    head, dot, _ = name.partition(".")
    return f"{namespace}::{head}" if dot else None


def aspects_of(entry: OpEntry) -> dict[str, str]:
    """The aspects ``entry`` has, as (``"kind"``, ``"fused"``, ``"field"``) -> their name
    in messages (``"a MAC rule"``)."""
    found = {"kind": ASPECT_NAMES[entry.kind]} if entry.kind else {}
    if entry.fused is not None:
        found["fused"] = ASPECT_NAMES["fused"]
    if entry.field is not None:
        found["field"] = ASPECT_NAMES["field"]
    return found


def tagged(func: torch._ops.OpOverload, tag: str) -> bool:
    """Whether ``func`` carries ``torch.Tag.<tag>``; False where this torch has no such tag
    (``inplace`` is newer than the oldest torch convzoo supports)."""
    found = getattr(torch.Tag, tag, None)
    return found is not None and found in func.tags


def is_inplace(func: torch._ops.OpOverload) -> bool:
    """Whether ``func`` writes its first argument and returns it (``relu_``, ``add_``): the
    ``inplace`` tag where torch has it, else the schema (a trailing ``_`` and a written
    first argument)."""
    if getattr(torch.Tag, "inplace", None) is not None:
        return tagged(func, "inplace")
    return inplace_by_schema(func)


def inplace_by_schema(func: torch._ops.OpOverload) -> bool:
    """:func:`is_inplace` from the schema alone (torch without the ``inplace`` tag)."""
    written = next(iter(func._schema.arguments), None)  # the first argument
    alias = written.alias_info if written is not None else None
    return func.overloadpacket.__name__.endswith("_") and alias is not None and alias.is_write


def is_view(func: torch._ops.OpOverload) -> bool:
    """Ops whose output aliases an input (view, reshape, transpose, select, ...), in place
    ones included (``transpose_``, ``squeeze_``: tagged ``inplace_view``)."""
    if tagged(func, "inplace_view"):
        return True
    returns = func._schema.returns
    return bool(returns) and returns[0].alias_info is not None and not func._schema.is_mutable


def _may_hold_tensors(kind: Any) -> bool:
    """Whether a schema type may carry tensors: ``Tensor`` in any form (``Tensor?``,
    ``Tensor[]``), ``Any``, or a TorchScript class (packed weights hold tensors)."""
    text = str(kind)
    return "Tensor" in text or "Any" in text or "__torch__" in text


def takes_tensors(func: torch._ops.OpOverload) -> bool:
    """Whether an argument of ``func`` may carry tensors (its schema): factories
    (``zeros``, ``empty``) and queries (``torchvision::_cuda_version``) take none."""
    return any(_may_hold_tensors(a.type) for a in func._schema.arguments)


def touches_tensors(func: torch._ops.OpOverload) -> bool:
    """Whether ``func`` takes or returns anything that may carry tensors (by its schema).
    One that does neither (``torchvision::_cuda_version() -> int``, ``aten::can_cast``)
    does no arithmetic on tensors: it is free."""
    return takes_tensors(func) or any(_may_hold_tensors(r.type) for r in func._schema.returns)


def kind_of(entry: OpEntry, func: torch._ops.OpOverload) -> str:
    """MAC rules first, then free ops, views and ops that touch no tensor, then element-wise
    ones (by rule or tag)."""
    kind = entry.kind
    if kind == "macs":
        return kind
    if kind == "free" or is_view(func) or not touches_tensors(func):
        return "free"
    if kind == "elementwise" or tagged(func, "pointwise"):
        return "elementwise"
    return "uncounted"


class OpTable:
    """The registry of :class:`OpEntry` by qualified name, with lookups cached per overload."""

    def __init__(self) -> None:
        self._entries: dict[str, OpEntry] = {}
        self._overloads: dict[str, set[str]] = {}  # packet key -> its overloads' keys
        self._resolved: dict[Any, Resolved] = {}
        self._loaded = False

    def load(self) -> None:
        """Fill the table with convzoo's own rules (once; see :mod:`.builtin`)."""
        if not self._loaded:
            self._loaded = True
            importlib.import_module(BUILTIN)

    def register(
        self,
        op: Any,
        *,
        macs: CostRule | None = None,
        elementwise: CostRule | None = None,
        free: str | None = None,
        fused: CostRule | None = None,
        field: FieldRule | None = None,
        replace: bool = False,
    ) -> OpEntry:
        """Set aspects of ``op``'s entry; an aspect that would replace, shadow or be
        shadowed by a rule (see the module docstring) is refused unless ``replace``.
        ``macs``, ``elementwise`` and ``free`` (a reason) exclude each other."""
        key = op_key(op)
        given = {"macs": macs, "elementwise": elementwise, "free": free}
        kinds = [k for k, v in given.items() if v is not None]
        if len(kinds) > 1:
            raise ConvZooError(f"{key}: give one of macs=, elementwise=, free=, not {kinds}")
        if not kinds and fused is None and field is None:
            raise ConvZooError(f"{key}: nothing to register (give macs=, elementwise=, ...)")
        if free is not None and (not isinstance(free, str) or not free.strip()):
            raise ConvZooError(f"{key}: free= takes the reason the op has no arithmetic")
        for aspect, rule in (("macs", macs), ("elementwise", elementwise), ("fused", fused)):
            if rule is not None and not callable(rule):
                raise ConvZooError(f"{key}: {aspect}= takes a function of one OpCall")
        if field is not None and not callable(field):
            raise ConvZooError(f"{key}: field= takes a function of one receptive-field Call")
        given_aspects = {a for a, v in (("kind", kinds), ("fused", fused), ("field", field)) if v}
        if not replace:
            self._refuse_clash(key, given_aspects)
        else:
            for other in list(self._overloads.get(key, ())):  # a packet's rule replaces theirs
                self._drop(other, given_aspects)
        entry = self._entries.get(key) or OpEntry(key)
        if kinds:
            entry.kind, entry.cost, entry.free = kinds[0], macs or elementwise, free
        entry.fused = fused or entry.fused
        entry.field = field or entry.field
        self._entries[key] = entry
        packet = packet_of(key)
        if packet is not None:
            self._overloads.setdefault(packet, set()).add(key)
        self._resolved.clear()
        return entry

    def _refuse_clash(self, key: str, given: set[str]) -> None:
        """A one-line error naming the entry whose rule a registration of ``given`` aspects
        under ``key`` would replace (the same key), shadow (its packet's) or be shadowed by
        (one of its overloads')."""
        packet = packet_of(key)
        others = [packet] if packet is not None else sorted(self._overloads.get(key, ()))
        for other in [key, *others]:
            entry = self._entries.get(other)
            held = aspects_of(entry) if entry is not None else {}
            both = [held[a] for a in ("kind", "fused", "field") if a in given and a in held]
            if not both:
                continue
            what = both[0]
            if other == key:
                clash = f"{key} already has {what}"
            elif other == packet:
                clash = f"{key}: its packet {other} already has {what}, which this would shadow"
            else:
                clash = f"{key}: its overload {other} already has {what}, which would shadow this"
            raise ConvZooError(f"{clash}; pass replace=True to replace it")

    def _drop(self, key: str, aspects: set[str]) -> None:
        """Remove ``aspects`` from ``key``'s entry (the entry too once it has none)."""
        entry = self._entries[key]
        if "kind" in aspects:
            entry.kind = entry.cost = entry.free = None
        if "fused" in aspects:
            entry.fused = None
        if "field" in aspects:
            entry.field = None
        if not aspects_of(entry):
            self.remove(key)

    def remove(self, op: Any) -> None:
        """Drop ``op``'s entry, every aspect (a test's way to undo a registration)."""
        key = op_key(op)
        self._entries.pop(key, None)
        packet = packet_of(key)
        if packet is not None:
            self._overloads.get(packet, set()).discard(key)
        self._resolved.clear()

    def get(self, op: Any) -> OpEntry | None:
        """The entry registered under ``op``'s own key (no packet fallback)."""
        self.load()
        return self._entries.get(op_key(op))

    def __iter__(self) -> Iterator[OpEntry]:
        self.load()
        return iter(list(self._entries.values()))

    def __len__(self) -> int:
        self.load()
        return len(self._entries)

    def resolve(self, func: torch._ops.OpOverload) -> Resolved:
        """What the table says about the overload ``func`` (cached until a registration)."""
        found = self._resolved.get(func)
        if found is not None:
            return found
        self.load()
        packet = self._entries.get(str(func.overloadpacket._qualified_op_name))
        exact = self._entries.get(op_key(func))
        merged = OpEntry("merged")
        for source in (packet, exact):
            for f in fields(OpEntry)[1:] if source else ():
                value = getattr(source, f.name)
                if value is not None:
                    setattr(merged, f.name, value)
        kind = kind_of(merged, func)
        free = merged.free if merged.kind == "free" else None
        if kind == "free" and free is None:
            free = VIEW_REASON if is_view(func) else NO_TENSOR_REASON
        found = Resolved(
            kind=kind,
            cost=merged.cost if kind in ("macs", "elementwise") else None,
            free=free,
            fused=merged.fused,
            field=merged.field,
            field_exact=exact is not None and exact.field is not None,
        )
        self._resolved[func] = found
        return found


TABLE = OpTable()
"""The one op table: filled by the built-in rule modules and :func:`register_op`."""


def register_op(
    op: Any,
    *,
    macs: CostRule | None = None,
    elementwise: CostRule | None = None,
    free: str | None = None,
    fused: CostRule | None = None,
    field: FieldRule | None = None,
    replace: bool = False,
) -> OpEntry:
    """Teach the analyzer an op: its MACs, its element-wise ops, or that it is free.

    ``op`` is an op packet or overload (``torch.ops.mylib.scale``) or its qualified name
    (``"mylib::scale"``, ``"aten::add.Tensor"``). A cost rule takes one :class:`OpCall`
    (``call.arg("weight")``, ``call.result``) and returns an int; ``free`` is the reason
    the op has no arithmetic; ``fused`` counts element-wise work besides an op's MACs;
    ``field`` is a receptive-field rule (see :mod:`convzoo.analysis.receptive.table`).
    The built-in rules are loaded first: a rule that would replace one the op has, shadow
    its packet's (an overload's rule wins for that overload) or be shadowed by one of its
    overloads' raises :class:`~convzoo.ConvZooError` naming that rule's op, unless
    ``replace=True``. A cost rule's result is checked where it is used: anything but a
    non-negative int (a bool, a float, None, -5), or an exception inside the rule, stops the
    analysis with a one-line error naming the rule and the op.

    Example::

        register_op("mylib::scale", elementwise=lambda call: call.result.numel())
    """
    TABLE.load()
    key = op_key(op)
    macs, elementwise, fused = (
        checked(rule, key, aspect) if callable(rule) else rule
        for rule, aspect in ((macs, "macs"), (elementwise, "elementwise"), (fused, "fused"))
    )
    return TABLE.register(
        op, macs=macs, elementwise=elementwise, free=free, fused=fused, field=field,
        replace=replace,
    )  # fmt: skip


def checked(rule: CostRule, key: str, aspect: str) -> CostRule:
    """``rule`` (a user's cost rule of the op ``key``) with its result checked: a
    non-negative int (bools refused), else a one-line :class:`~convzoo.ConvZooError` naming
    the rule and the op; so is an exception the rule raises (a user's bug is a user error,
    and must not send the analysis to its real-tensor fallback)."""
    name = getattr(rule, "__name__", None) or type(rule).__name__
    what = f"the {ASPECT_NAMES[aspect].removeprefix('a ').removeprefix('an ')} {name} of {key}"

    @functools.wraps(rule)
    def run(call: OpCall) -> int:
        try:
            value = rule(call)
        except ConvZooError:
            raise
        except Exception as exc:
            raise ConvZooError(f"{what} raised {type(exc).__name__}: {first_line(exc)}") from None
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConvZooError(
                f"{what} returned {render(value)} ({type(value).__name__}); a cost rule "
                "returns a non-negative int"
            )
        return value

    return run
