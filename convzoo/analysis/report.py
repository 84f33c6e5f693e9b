"""What ``analyze`` returns: a typed :class:`Report` and its parts.

Units: ``macs`` are multiply-adds (1 MAC = one multiply and one add); ``flops`` is
``FLOPS_PER_MAC * macs``, defined in :mod:`convzoo.analysis.formulas` only.

JSON schema (``Report.to_json()``, version :data:`SCHEMA_VERSION`), keys in this order:

- ``schema_version`` (int): bumped whenever a key is renamed or removed or changes meaning;
- ``target`` (str), ``input_shape`` (list of shapes), ``output_shape`` (shape or null);
- ``totals``: ``params``, ``trainable_params``, ``macs``, ``flops`` (2 x macs),
  ``elementwise_ops``, ``activation_bytes`` (sum of leaf outputs), ``param_bytes``,
  ``peak_activation_bytes`` (inference peak by tensor liveness, or null);
- ``receptive_field``: that of the model's output, see :class:`ReceptiveField`, or null;
- ``fields_computed`` (bool): false when fields were skipped (``receptive_fields=False``,
  ``--no-fields``): every ``receptive_field`` is then null for that reason, not because no
  input pixel could be traced into the output;
- ``layers``: one object per :class:`LayerStats` field, ``receptive_field`` as above
  (version 2: ``alias_of``, and a container's ``activation_bytes`` sums its leaves'
  outputs; version 1 gave a container its own output and every name of a shared module
  the same counts);
- ``operators``: one object per :class:`OperatorStats` (one op in one module);
- ``uncounted_ops``: ``op``, ``module``, ``calls``; ``complete`` (bool: no uncounted op);
- ``notes`` (list of str); ``training``: :class:`TrainingMemory` fields and
  ``total_bytes``, or null.

:meth:`Report.from_dict` reads it back (derived keys such as ``flops`` are recomputed).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields, replace
from dataclasses import field as _field
from typing import Any, ClassVar, Final

from convzoo.analysis import render
from convzoo.analysis.report_types import Axes, DictAccess, ReceptiveField, Totals
from convzoo.errors import ConvZooError

SORT_KEYS: Final = ("macs", "params")
"""What :meth:`Report.top` (``--sort``) orders rows by, largest first: a LayerStats field."""

__all__ = [
    "SCHEMA_VERSION",
    "Axes",
    "DictAccess",
    "LayerStats",
    "OperatorStats",
    "ReceptiveField",
    "Report",
    "Totals",
    "TrainingMemory",
    "UncountedOp",
    "in_subtree",
]

SCHEMA_VERSION: Final = 2
"""Version of :meth:`Report.to_dict`'s layout (the first key of the JSON)."""


@dataclass
class LayerStats:
    """One row per module name in ``named_modules(remove_duplicate=False)`` order
    (containers included).

    Every cost has one owner (:mod:`convzoo.analysis.owners`): a module reachable under
    several names belongs to its first name; the rows of its other names say ``alias_of``
    that name and hold no counts (zero, as do the rows below them; they show the module's
    output shape and receptive field). So each row equals its own part plus its children's
    rows, and the rows' own parts add up to the totals; a container that never runs
    (``nn.ModuleList``) shows its children's sums.

    ``params`` counts the parameters of the module's subtree, each tensor once, in the
    first module holding it; ``macs`` and ``elementwise_ops`` count every op its subtree
    owns (all calls); ``self_macs`` only the MACs of ops its own ``forward`` runs outside
    its children (so the ``self_macs`` of all rows add up to the total);
    ``receptive_field`` is that of the module's (last) output, per axis, or None where
    the output has no spatial axes it could be traced to; ``activation_bytes`` is the size
    of the outputs of the leaf modules in its subtree (a leaf: its own), summed over calls,
    an output written in place counted as a fresh one (:mod:`convzoo.analysis.memory`);
    ``saved_bytes`` the tensors autograd saves for backward in its subtree's ops
    (training-step analysis only, else None).
    """

    name: str
    type: str
    depth: int
    output_shape: list[int] | None
    params: int
    macs: int
    elementwise_ops: int
    receptive_field: ReceptiveField | None
    activation_bytes: int
    calls: int = 1
    self_macs: int = 0
    saved_bytes: int | None = None
    alias_of: str | None = None  # the first name of a module reachable under several

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["receptive_field"] = self.receptive_field and self.receptive_field.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LayerStats:
        rf = data.get("receptive_field")
        items = {f.name: data[f.name] for f in fields(cls) if f.name in data}
        return cls(**{**items, "receptive_field": rf and ReceptiveField.from_dict(rf)})


@dataclass
class OperatorStats:
    """One aten operator (by op packet name: ``convolution``, ``addmm``, ``add_``) inside one
    module: the innermost module on the call stack when it ran, by its first qualified name
    ('' for the model's own forward). ``kind`` is "macs", "elementwise", "free" (no
    arithmetic: views, copies) or "uncounted" (arithmetic without a formula); ``macs`` and
    ``elementwise_ops`` are its cost over all ``calls`` (a fused kernel has both)."""

    module: str
    op: str
    kind: str
    calls: int
    macs: int = 0
    elementwise_ops: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass
class TrainingMemory:
    """Memory of one training step (bytes): parameters, their gradients, the optimizer's
    state (``optimizer``: "sgd" none, "sgd-momentum" one buffer, "adam" two buffers per
    trainable parameter) and the tensors autograd saves for backward."""

    optimizer: str
    param_bytes: int
    gradient_bytes: int
    optimizer_bytes: int
    saved_bytes: int

    @property
    def total_bytes(self) -> int:
        return self.param_bytes + self.gradient_bytes + self.optimizer_bytes + self.saved_bytes

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        out["total_bytes"] = self.total_bytes
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainingMemory:
        return cls(**{f.name: data[f.name] for f in fields(cls)})


@dataclass
class UncountedOp:
    """An op with arithmetic that convzoo has no formula for (so ``complete`` is False)."""

    op: str
    module: str
    calls: int

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def in_subtree(name: str, module: str) -> bool:
    """Whether module ``name`` is ``module`` or lies in its subtree ('' is the whole model)."""
    return not module or name == module or name.startswith(module + ".")


@dataclass
class Report:
    """What ``convzoo.analyze`` returns: totals, per-layer rows, per-operator tallies and
    honesty flags. ``report["layer4"]`` is a row; ``print(report)`` the table."""

    target: str
    input_shape: list[list[int]]
    totals: Totals
    output_shape: list[int] | None
    receptive_field: ReceptiveField | None
    layers: list[LayerStats]
    operators: list[OperatorStats] = _field(default_factory=list)
    uncounted_ops: list[UncountedOp] = _field(default_factory=list)
    notes: list[str] = _field(default_factory=list)
    training: TrainingMemory | None = None
    fields_computed: bool = True  # False: receptive fields skipped, every one None

    schema_version: ClassVar[int] = SCHEMA_VERSION

    @property
    def complete(self) -> bool:
        """True when every op with arithmetic had a formula (``uncounted_ops`` is empty)."""
        return not self.uncounted_ops

    def layer(self, name: str) -> LayerStats:
        """The row of the module called ``name`` ('' is the whole model); KeyError with
        the closest names otherwise."""
        for row in self.layers:
            if row.name == name:
                return row
        from convzoo.registry import close_matches

        hints = close_matches(name, [r.name for r in self.layers if r.name])
        hint = f"; did you mean {', '.join(map(repr, hints))}?" if hints else ""
        raise KeyError(f"no layer named {name!r} in {self.target or 'the model'}{hint}")

    def top(self, n: int | None = None, sort: str = "macs", depth: int | None = None) -> Report:
        """This report with only its ``n`` heaviest rows by ``sort`` ("macs" or "params"),
        heaviest first, at most ``depth`` deep (the model's own row left out; all rows when
        ``n`` is None); totals unchanged. ``convzoo report --sort SORT --top N --depth D``
        shows the same rows in every format."""
        if sort not in SORT_KEYS:
            raise ConvZooError(f"sort must be one of {', '.join(SORT_KEYS)}, got {sort!r:.40}")
        rows = [r for r in self.layers if r.depth > 0 and (depth is None or r.depth <= depth)]
        rows.sort(key=lambda r: getattr(r, sort), reverse=True)
        return replace(self, layers=rows[:n] if n is not None else rows)

    def __getitem__(self, name: str) -> LayerStats:
        """``report["layer4"]``: :meth:`layer`."""
        return self.layer(name)

    def by_operator(self, module: str | None = None) -> list[OperatorStats]:
        """Per-operator totals over all modules, or over ``module``'s subtree (the module
        and its descendants), heaviest first (MACs, then element-wise ops, then calls).

        Each op is attributed to the innermost module that ran it, so over the whole model
        the ``macs`` (``elementwise_ops``) add up to ``totals.macs`` (``elementwise_ops``).
        A module reachable under several names counts under its first name only.
        """
        if module is not None and module:
            self.layer(module)  # KeyError with suggestions for an unknown name
        merged: dict[str, OperatorStats] = {}
        for o in self.operators:
            if not in_subtree(o.module, module or ""):
                continue
            got = merged.setdefault(o.op, OperatorStats(module or "", o.op, o.kind, 0))
            got.calls += o.calls
            got.macs += o.macs
            got.elementwise_ops += o.elementwise_ops
        return sorted(merged.values(), key=lambda o: (-o.macs, -o.elementwise_ops, -o.calls, o.op))

    # -- plain data ------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain data (exactly the keys of :meth:`to_json`; the schema is in this module's
        docstring), ``schema_version`` first."""
        return {
            "schema_version": self.schema_version,
            "target": self.target,
            "input_shape": self.input_shape,
            "totals": self.totals.to_dict(),
            "output_shape": self.output_shape,
            "receptive_field": self.receptive_field and self.receptive_field.to_dict(),
            "fields_computed": self.fields_computed,
            "layers": [row.to_dict() for row in self.layers],
            "operators": [o.to_dict() for o in self.operators],
            "uncounted_ops": [u.to_dict() for u in self.uncounted_ops],
            "complete": self.complete,
            "notes": list(self.notes),
            "training": self.training and self.training.to_dict(),
        }

    def to_json(self, indent: int | None = 2) -> str:
        """JSON text of :meth:`to_dict`."""
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Report:
        """The report :meth:`to_dict` wrote (receptive fields without per-unit data)."""
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise ConvZooError(
                f"report schema_version {version!r} is not supported (this convzoo reads "
                f"{SCHEMA_VERSION})"
            )
        rf, training = data.get("receptive_field"), data.get("training")
        return cls(
            target=data["target"],
            input_shape=data["input_shape"],
            totals=Totals.from_dict(data["totals"]),
            output_shape=data["output_shape"],
            receptive_field=rf and ReceptiveField.from_dict(rf),
            layers=[LayerStats.from_dict(row) for row in data["layers"]],
            operators=[OperatorStats(**o) for o in data.get("operators", [])],
            uncounted_ops=[UncountedOp(**u) for u in data.get("uncounted_ops", [])],
            notes=list(data.get("notes", [])),
            training=training and TrainingMemory.from_dict(training),
            fields_computed=bool(data.get("fields_computed", True)),
        )

    @classmethod
    def from_json(cls, text: str) -> Report:
        """:meth:`from_dict` of JSON text."""
        return cls.from_dict(json.loads(text))

    # -- renderings (convzoo.analysis.render) ----------------------------------------------
    def to_table(self, fmt: str = "table", depth: int | None = None) -> str:
        """Per-layer table (``fmt`` "table" or "markdown"), a totals row and summary lines.

        Columns: name (indented by depth), type, output shape, params, MACs, receptive
        field ("7x7 /2" = size and stride), activations. ``depth`` keeps the rows with
        ``depth <= depth`` (0: just the model row); None keeps all.
        """
        return render.to_table(self, fmt, depth)

    def operator_table(self, fmt: str = "table", module: str | None = None) -> str:
        """:meth:`by_operator` as a table: op, kind, calls, MACs, share of MACs, element-wise
        ops (``fmt`` "table" or "markdown"); free ops on one line under it."""
        return render.operator_table(self, fmt, module)

    def __str__(self) -> str:
        """``print(report)``: the table of :meth:`to_table` (the repr stays the dataclass's)."""
        return self.to_table()

    def _repr_html_(self) -> str:
        """Jupyter's rendering: the per-layer table and the summary lines as HTML (escaped)."""
        return render.to_html(self)

    def to_csv(self) -> str:
        """CSV text, one row per layer with every field flattened (see ``render.CSV_FIELDS``)."""
        return render.to_csv(self)
