"""Views of a :class:`~convzoo.analysis.report.Report` for ``convzoo report``: one subtree
(``--layer``), the rows ``--depth``, ``--sort`` and ``--top`` pick in every format, CSV with
a totals row and the per-operator totals (``--by-op``)."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from typing import TYPE_CHECKING

from tabulate import tabulate

from convzoo import errors
from convzoo.analysis import owners, render
from convzoo.analysis.report import OperatorStats, Totals, in_subtree
from convzoo.errors import ConvZooError
from convzoo.registry import close_matches

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

    from convzoo.analysis.report import Report


def subtree(report: Report, model: nn.Module, name: str) -> Report:
    """The rows of module ``name`` and its descendants, depths counted from it (0), with
    totals of that subtree: its params, MACs, element-wise ops, and the outputs of its leaves,
    each owned as in the rows (:mod:`convzoo.analysis.owners`)."""
    names = [row.name for row in report.layers]
    if name not in names or not name:
        hints = close_matches(name, [n for n in names if n])
        hint = f"; did you mean {', '.join(map(repr, hints))}?" if hints else ""
        raise ConvZooError(
            f"--layer: no layer named {errors.render(name)} in {report.target}{hint}"
        )
    root = report.layer(name)
    rows = [
        dataclasses.replace(row, depth=row.depth - root.depth)
        for row in report.layers
        if row.name == name or row.name.startswith(name + ".")
    ]
    owned = owners.parameter_owners(list(model.named_modules(remove_duplicate=False)))
    params = [p for owner, group in owned.items() if in_subtree(owner, name) for p in group]
    totals = Totals(
        params=root.params,
        trainable_params=sum(p.numel() for p in params if p.requires_grad),
        macs=root.macs,
        elementwise_ops=root.elementwise_ops,
        activation_bytes=root.activation_bytes,
        param_bytes=sum(p.numel() * p.element_size() for p in params),
    )
    return dataclasses.replace(
        report,
        target=f"{report.target} / {name}",
        totals=totals,
        output_shape=root.output_shape,
        receptive_field=root.receptive_field,
        layers=rows,
        operators=[o for o in report.operators if in_subtree(o.module, name)],
        uncounted_ops=[u for u in report.uncounted_ops if in_subtree(u.module, name)],
    )


def heaviest(report: Report, key: str, top: int | None, depth: int | None) -> tuple[Report, str]:
    """:meth:`Report.top` (the ``top`` rows of largest ``key``, at most ``depth`` deep) and
    a caption saying so: ``'top 3 of 98 layers by macs; total: the whole resnet18'``."""
    picked = report.top(top, key, depth)
    caption = (
        f"top {len(picked.layers)} of {len(report.layers) - 1} layers by {key}; "
        f"total: the whole {report.target or 'model'}"
    )
    return picked, caption


def layers_text(
    report: Report, fmt: str, sort: str | None, top: int | None, depth: int | None
) -> str:
    """``convzoo report`` in ``fmt`` (table, markdown, json, csv) with the rows that
    ``--sort``, ``--top`` and ``--depth`` pick, the same rows in every format: the tree
    down to ``depth``, or (with ``sort`` or ``top``) the heaviest rows by full name; the
    totals are always the report's."""
    caption = None
    if sort is not None or top is not None:
        report, caption = heaviest(report, sort or "macs", top, depth)
    elif depth is not None:
        report = dataclasses.replace(report, layers=[r for r in report.layers if r.depth <= depth])
    if fmt == "csv":
        return csv_with_totals(report)
    if fmt == "json":
        notes = [*report.notes, *([f"layers: {caption}"] if caption else [])]
        return dataclasses.replace(report, notes=notes).to_json()
    if caption is None:
        return report.to_table(fmt)
    cells = render.layer_rows(report, indent="")
    for cell, row in zip(cells, report.layers, strict=True):
        cell[0] = row.name
    cells.append(render.total_row(report))
    headers, align = render.columns(report)
    table = tabulate(
        cells,
        headers=headers,
        tablefmt=render.FORMATS[fmt],
        colalign=align,
        disable_numparse=True,
    )
    return f"{table}\n\n{caption}"


def csv_with_totals(report: Report) -> str:
    """``report.to_csv()`` plus a last row named ``(total)`` with the report's totals (and,
    with a training step, its saved bytes and the step's total bytes)."""
    out = io.StringIO(report.to_csv())
    out.seek(0, io.SEEK_END)
    writer = csv.DictWriter(out, fieldnames=render.CSV_FIELDS, lineterminator="\n")
    t, step = report.totals, report.training
    writer.writerow(
        {
            "name": "(total)",
            "type": "total",
            "output_shape": render.shape_text(report.output_shape) if report.output_shape else "",
            "params": t.params,
            "macs": t.macs,
            "elementwise_ops": t.elementwise_ops,
            "activation_bytes": t.activation_bytes,
            "saved_bytes": "" if step is None else step.saved_bytes,
            "training_step_bytes": "" if step is None else step.total_bytes,
        }
    )
    return out.getvalue()


def operators_text(report: Report, fmt: str) -> str:
    """``convzoo report --by-op``: :meth:`Report.by_operator` over the report's layers (the
    ``--layer`` subtree when one was picked) as a table, markdown, JSON or CSV (one record
    per op: ``op``, ``kind``, ``calls``, ``macs``, ``elementwise_ops``)."""
    if fmt in render.FORMATS:
        return render.operator_table(report, fmt)
    keys = [f.name for f in dataclasses.fields(OperatorStats) if f.name != "module"]
    records = [{k: getattr(o, k) for k in keys} for o in report.by_operator()]
    if fmt == "json":
        module = report.layers[0].name if report.layers else ""
        head = {"schema_version": report.schema_version, "target": report.target}
        return json.dumps({**head, "module": module, "operators": records}, indent=2)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=keys, lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    return out.getvalue()
