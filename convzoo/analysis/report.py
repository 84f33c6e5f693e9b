"""Report and LayerStats: what ``analyze`` returns, and its renderings.

Units: ``macs`` are multiply-adds (1 MAC = one multiply and one add); ``flops`` is
``FLOPS_PER_MAC * macs``, defined in :mod:`convzoo.analysis.formulas` only.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from convzoo.analysis import render


@dataclass
class LayerStats:
    """One row per module in ``named_modules()`` order (containers included).

    ``params`` counts the module's parameters (its whole subtree, each tensor once);
    ``macs`` and ``elementwise_ops`` count every op run inside the module (all calls);
    ``self_macs`` only the MACs of ops its own ``forward`` runs outside its children (so
    the ``self_macs`` of all rows add up to the total; a module reachable under several
    names has a row under each, with the same counts);
    ``receptive_field`` is that of the module's (last) output, per axis, or None where
    the output has no spatial axes it could be traced to; ``activation_bytes`` is the size
    of the module's output(s) summed over its calls.
    """

    name: str
    type: str
    depth: int
    output_shape: list[int] | None
    params: int
    macs: int
    elementwise_ops: int
    receptive_field: dict[str, Any] | None
    activation_bytes: int
    calls: int = 1
    self_macs: int = 0
    saved_bytes: int | None = None  # tensors autograd saves for backward (training only)


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


@dataclass
class UncountedOp:
    """An op with arithmetic that convzoo has no formula for (so ``complete`` is False)."""

    op: str
    module: str
    calls: int


@dataclass
class Report:
    """What ``convzoo.analyze`` returns: totals, per-layer rows and honesty flags."""

    target: str
    input_shape: list[list[int]]
    totals: dict[str, int]
    output_shape: list[int] | None
    receptive_field: dict[str, Any] | None
    layers: list[LayerStats]
    uncounted_ops: list[UncountedOp] = field(default_factory=list)
    complete: bool = True
    notes: list[str] = field(default_factory=list)
    training: TrainingMemory | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain data: exactly the keys of :meth:`to_json`."""
        return asdict(self)

    def to_json(self, indent: int | None = 2) -> str:
        """JSON text of :meth:`to_dict`."""
        return json.dumps(self.to_dict(), indent=indent)

    def layer(self, name: str) -> LayerStats:
        """The row of the module called ``name`` ('' is the whole model)."""
        for row in self.layers:
            if row.name == name:
                return row
        raise KeyError(name)

    def to_table(self, fmt: str = "table", depth: int | None = None) -> str:
        """Per-layer table (``fmt`` "table" or "markdown"), a totals row and summary lines.

        Columns: name (indented by depth), type, output shape, params, MACs, receptive
        field ("7x7 /2" = size and stride), activations. ``depth`` keeps the rows with
        ``depth <= depth`` (0: just the model row); None keeps all.
        """
        return render.to_table(self, fmt, depth)

    def __str__(self) -> str:
        """``print(report)``: the table of :meth:`to_table` (the repr stays the dataclass's)."""
        return self.to_table()

    def _repr_html_(self) -> str:
        """Jupyter's rendering: the per-layer table and the summary lines as HTML (escaped)."""
        from html import escape

        from tabulate import tabulate

        rows = [*render.layer_rows(self, indent="\u00a0\u00a0"), render.total_row(self)]
        table = tabulate(
            rows,
            headers=render.HEADERS,
            tablefmt="html",
            colalign=render.ALIGN,
            disable_numparse=True,
            preserve_whitespace=True,
        )
        items = "".join(
            f"<li><b>{escape(label)}</b>: {escape(text)}</li>"
            for label, text in render.summary_lines(self)
        )
        return f"<div>{table}<ul>{items}</ul></div>"

    def to_csv(self) -> str:
        """CSV text, one row per layer with every field flattened (see ``render.CSV_FIELDS``)."""
        return render.to_csv(self)
