"""Human renderings of a :class:`~convzoo.analysis.report.Report`: units, tables, csv.

Pure functions of the report's data; :class:`Report` exposes them as ``to_table`` and
``to_csv``. Tables go through ``tabulate`` with per-call options only (no global state).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from html import escape
from typing import TYPE_CHECKING, Any

from tabulate import tabulate

from convzoo.analysis.report_types import ReceptiveField
from convzoo.errors import ConvZooError

if TYPE_CHECKING:  # only annotations: report.py imports this module
    from convzoo.analysis.report import LayerStats, Report

DECIMAL_UNITS = ("", "K", "M", "G", "T", "P", "E")
BINARY_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")
FORMATS = {"table": "simple", "markdown": "pipe"}
HEADERS = [
    "name",
    "type",
    "output shape",
    "params",
    "MACs",
    "self MACs",
    "receptive field",
    "activations",
]
ALIGN = ("left", "left", "left", "right", "right", "right", "left", "right")
SAVED = "saved"  # the extra column of a training-step analysis: tensors saved for backward
CSV_FIELDS = [
    "name",
    "type",
    "depth",
    "output_shape",
    "params",
    "macs",
    "self_macs",
    "elementwise_ops",
    "rf_size_h",
    "rf_size_w",
    "rf_stride_h",
    "rf_stride_w",
    "rf_start_h",
    "rf_start_w",
    "rf_global",
    "rf_kind",
    "activation_bytes",
    "calls",
    "saved_bytes",
    "training_step_bytes",
    "alias_of",
]


def _decimals(value: float) -> str:
    """2 decimals below 100 (after rounding), 1 decimal from 100 up."""
    text = f"{value:.2f}"
    return text if float(text) < 100 else f"{value:.1f}"


def _scaled(n: int, base: int, units: Sequence[str], sep: str) -> str:
    """``n`` in the largest unit that keeps it >= 1: 2 decimals below 100, 1 above."""
    if not isinstance(n, int) or isinstance(n, bool):
        raise ConvZooError(f"human units need an int, got {n!r}")
    sign, n = ("-", -n) if n < 0 else ("", n)
    if n < base:
        return f"{sign}{n}{sep}{units[0]}".rstrip()
    value, unit = float(n), 0
    while unit < len(units) - 1 and value >= base:
        value, unit = value / base, unit + 1
    text = _decimals(value)
    if float(text) >= base and unit < len(units) - 1:  # 999.96K rounds to 1.00M
        value, unit = value / base, unit + 1
        text = _decimals(value)
    return f"{sign}{text}{sep}{units[unit]}"


def human(n: int) -> str:
    """Counts in decimal units: ``999 -> '999'``, ``1500 -> '1.50K'``, ``148557824 -> '148.6M'``.

    Exact below 1000; otherwise K/M/G/T (powers of 1000) with 2 decimals below 100 of the
    unit and 1 decimal from 100 up.
    """
    return _scaled(n, 1000, DECIMAL_UNITS, "")


def human_bytes(n: int) -> str:
    """Bytes in binary units: ``608 -> '608 B'``, ``28800 -> '28.12 KiB'``."""
    return _scaled(n, 1024, BINARY_UNITS, " ")


def shape_text(shape: Sequence[int] | None) -> str:
    """``[1, 64, 56, 56] -> '1x64x56x56'``; ``None -> '-'``."""
    return "x".join(str(v) for v in shape) if shape else "-"


NO_FIELD = "-"
"""The field cell of an output no input pixel could be traced into (no spatial input
behind it: a vector input, a module not called, a tensor built afresh)."""
NOT_COMPUTED = "not computed"
"""The field cell when fields were skipped (``analyze(..., receptive_fields=False)``,
``convzoo report --no-fields``)."""
FIELD_KINDS = ("local", "global", "unknown", "none", NOT_COMPUTED)
"""What a field cell can say, as :func:`field_kind` names it."""


def _as_field(field: ReceptiveField | Mapping[str, Any] | None) -> ReceptiveField | None:
    if field is not None and not isinstance(field, ReceptiveField):
        return ReceptiveField.from_dict(dict(field)) if field else None
    return field


def field_kind(field: ReceptiveField | Mapping[str, Any] | None, computed: bool = True) -> str:
    """One of :data:`FIELD_KINDS`: ``'local'`` (each unit sees part of the input),
    ``'global'`` (every unit sees all of it), ``'unknown'`` (traced to the input, but through
    an op the tracer could not follow), ``'none'`` (no input pixel traced into it) or
    ``'not computed'`` (fields skipped: ``computed`` False)."""
    field = _as_field(field)
    if not computed:
        return NOT_COMPUTED
    if field is None:
        return "none"
    return "global" if field.is_global else "local" if field.spatial else "unknown"


def field_text(field: ReceptiveField | Mapping[str, Any] | None, computed: bool = True) -> str:
    """The field cell: ``ReceptiveField(size=(7, 7), stride=(2, 2), ...) -> '7x7 /2'`` (see
    ``ReceptiveField.__str__``: also ``'global'`` and ``'unknown'``); no field (no input
    pixel traced into it) -> :data:`NO_FIELD` (``'-'``); fields not ``computed`` ->
    :data:`NOT_COMPUTED`. A plain dict in the JSON form (``{"size": [7, 7], ...}``) works
    too."""
    field = _as_field(field)
    if not computed:
        return NOT_COMPUTED
    return NO_FIELD if field is None else str(field)


def _type_text(row: LayerStats) -> str:
    if row.alias_of is not None:
        return f"{row.type} (alias of {row.alias_of})"
    if row.calls == 0:
        return f"{row.type} (not called)"
    return f"{row.type} ({row.calls} calls)" if row.calls > 1 else row.type


def model_name(report: Report) -> str:
    """What the table and the CSV call the model's own row: its target, else ``(model)``."""
    return report.target or "(model)"


def _name_text(row: LayerStats, report: Report, indent: str) -> str:
    if not row.name:
        return model_name(report)
    return indent * row.depth + row.name.rsplit(".", 1)[-1]


def columns(report: Report) -> tuple[list[str], tuple[str, ...]]:
    """The table's headers and alignments: :data:`HEADERS`, plus a "saved" column (tensors
    saved for backward) when the report has a training-step analysis."""
    if report.training is None:
        return HEADERS, ALIGN
    return [*HEADERS, SAVED], (*ALIGN, "right")


def _saved_text(n: int | None) -> str:
    return "-" if n is None else human_bytes(n)


def layer_rows(report: Report, depth: int | None = None, indent: str = "  ") -> list[list[str]]:
    """One table row per layer with ``depth <= depth`` (all rows when ``depth`` is None)."""
    if depth is not None and (not isinstance(depth, int) or depth < 0):
        raise ConvZooError(f"depth must be a non-negative int, got {depth!r}")
    training = report.training is not None
    return [
        [
            _name_text(row, report, indent),
            _type_text(row),
            shape_text(row.output_shape),
            human(row.params),
            human(row.macs),
            human(row.self_macs),
            field_text(row.receptive_field, report.fields_computed),
            human_bytes(row.activation_bytes),
            *([_saved_text(row.saved_bytes)] if training else []),
        ]
        for row in report.layers
        if depth is None or row.depth <= depth
    ]


def total_row(report: Report) -> list[str]:
    """The totals row: params, MACs and the activation memory of all leaf outputs."""
    t = report.totals
    cells = [
        "total",
        "",
        "",
        human(t.params),
        human(t.macs),
        "",
        "",
        human_bytes(t.activation_bytes),
    ]
    if report.training is not None:
        cells.append(human_bytes(report.training.saved_bytes))
    return cells


def _bytes(n: int) -> str:
    return f"{human_bytes(n)} ({n:,})"


def training_text(report: Report) -> str:
    """``'178.4 MiB = params 44.59 MiB + gradients 44.59 MiB + optimizer state (adam)
    89.18 MiB + saved tensors 2.00 MiB'``: one training step's memory."""
    m = report.training
    if m is None:
        raise ConvZooError("the report has no training-step analysis")
    return (
        f"{_bytes(m.total_bytes)} = params {human_bytes(m.param_bytes)} + gradients "
        f"{human_bytes(m.gradient_bytes)} + optimizer state ({m.optimizer}) "
        f"{human_bytes(m.optimizer_bytes)} + saved tensors {human_bytes(m.saved_bytes)}"
    )


def summary_lines(report: Report) -> list[tuple[str, str]]:
    """``(label, text)`` pairs shown under the table."""
    t = report.totals
    inputs = ", ".join(shape_text(s) for s in report.input_shape)
    lines = [
        ("input shape", inputs or "-"),
        ("output shape", shape_text(report.output_shape)),
        ("receptive field", field_text(report.receptive_field, report.fields_computed)),
        ("params", f"{human(t.params)} ({t.params:,}; trainable {t.trainable_params:,})"),
        ("MACs", f"{human(t.macs)} ({t.macs:,})"),
        ("FLOPs", f"{human(t.flops)} ({t.flops:,}; 2 FLOPs per MAC)"),
        ("elementwise ops", f"{human(t.elementwise_ops)} ({t.elementwise_ops:,})"),
        ("param bytes", _bytes(t.param_bytes)),
        ("activation bytes", _bytes(t.activation_bytes)),
    ]
    if t.peak_activation_bytes is not None:
        lines.append(("inference peak", f"{_bytes(t.peak_activation_bytes)}, by tensor liveness"))
    if report.training is not None:
        lines.append(("training step", training_text(report)))
    if report.complete:
        lines.append(("counts complete", "yes"))
    else:
        lines.append(("counts complete", f"no: {len(report.uncounted_ops)} uncounted op(s)"))
    for op in report.uncounted_ops:
        lines.append(("uncounted op", f"{op.op} in {op.module} ({op.calls} calls)"))
    lines.extend(("note", note) for note in report.notes)
    return lines


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise ConvZooError(f"table format must be one of {', '.join(FORMATS)}, got {fmt!r}")


def _summary_text(summary: list[tuple[str, str]], markdown: bool) -> list[str]:
    if markdown:
        return [f"- **{label}**: {value}" for label, value in summary]
    width = max(len(label) for label, _ in summary) + 1
    return [f"{label + ':':<{width}} {value}" for label, value in summary]


def to_table(report: Report, fmt: str = "table", depth: int | None = None) -> str:
    """The per-layer table, a totals row and the summary lines, as text or markdown."""
    _check_format(fmt)
    markdown = fmt == "markdown"
    rows = layer_rows(report, depth, indent="\u00a0\u00a0" if markdown else "  ")
    rows.append(total_row(report))
    headers, align = columns(report)
    table = tabulate(
        rows,
        headers=headers,
        tablefmt=FORMATS[fmt],
        colalign=align,
        disable_numparse=True,
        preserve_whitespace=True,
    )
    return "\n".join([table, "", *_summary_text(summary_lines(report), markdown)])


def to_html(report: Report) -> str:
    """The per-layer table and the summary lines as HTML (every text escaped)."""
    rows = [*layer_rows(report, indent="\u00a0\u00a0"), total_row(report)]
    headers, align = columns(report)
    table = tabulate(
        rows,
        headers=headers,
        tablefmt="html",
        colalign=align,
        disable_numparse=True,
        preserve_whitespace=True,
    )
    items = "".join(
        f"<li><b>{escape(label)}</b>: {escape(text)}</li>" for label, text in summary_lines(report)
    )
    return f"<div>{table}<ul>{items}</ul></div>"


OP_HEADERS = ["op", "kind", "calls", "MACs", "share", "element-wise ops"]
OP_ALIGN = ("left", "left", "right", "right", "right", "right")


def operator_table(report: Report, fmt: str = "table", module: str | None = None) -> str:
    """``report.by_operator(module)`` as a table, heaviest first: op, kind, calls, MACs,
    share of the MACs shown, element-wise ops; ops without arithmetic (views, copies) are
    listed on one line under it, by calls."""
    _check_format(fmt)
    stats = report.by_operator(module)
    total = sum(o.macs for o in stats)
    rows = [
        [
            o.op,
            o.kind,
            f"{o.calls:,}",
            human(o.macs),
            f"{100 * o.macs / total:.1f}%" if o.macs else "-",
            human(o.elementwise_ops),
        ]
        for o in stats
        if o.kind != "free"
    ]
    rows.append(
        [
            "total",
            "",
            f"{sum(o.calls for o in stats if o.kind != 'free'):,}",
            human(total),
            "100.0%" if total else "-",
            human(sum(o.elementwise_ops for o in stats)),
        ]
    )
    table = tabulate(
        rows, headers=OP_HEADERS, tablefmt=FORMATS[fmt], colalign=OP_ALIGN, disable_numparse=True
    )
    where = f"{report.target or 'the model'}" + (f" / {module}" if module else "")
    free = sorted((o for o in stats if o.kind == "free"), key=lambda o: (-o.calls, o.op))
    lines = [("operators of", where)]
    if free:
        lines.append(("free ops", ", ".join(f"{o.op} x{o.calls}" for o in free)))
    return "\n".join([table, "", *_summary_text(lines, fmt == "markdown")])


def csv_row(row: LayerStats, computed: bool = True) -> dict[str, Any]:
    """A layer flattened to :data:`CSV_FIELDS` (receptive field per axis, None -> '';
    ``saved_bytes`` empty unless the report has a training step (``--optimizer``), and
    ``training_step_bytes`` filled only in the totals row;
    ``rf_kind`` is :func:`field_kind`, ``computed`` False when fields were skipped)."""
    rf = row.receptive_field
    flat: dict[str, Any] = {
        "name": row.name,
        "type": row.type,
        "depth": row.depth,
        "output_shape": shape_text(row.output_shape) if row.output_shape else "",
        "params": row.params,
        "macs": row.macs,
        "self_macs": row.self_macs,
        "elementwise_ops": row.elementwise_ops,
        "activation_bytes": row.activation_bytes,
        "calls": row.calls,
        "saved_bytes": "" if row.saved_bytes is None else row.saved_bytes,
        "alias_of": "" if row.alias_of is None else row.alias_of,
    }
    for key in ("size", "stride", "start"):
        values = list(getattr(rf, key, None) or [])[-2:]  # 3-D: h and w; 1-D: its axis as h
        flat[f"rf_{key}_h"], flat[f"rf_{key}_w"] = (values + ["", ""])[:2]
    flat["rf_global"] = "" if rf is None else str(rf.is_global).lower()
    flat["rf_kind"] = field_kind(rf, computed)
    return flat


def to_csv(report: Report) -> str:
    """One csv row per layer (header :data:`CSV_FIELDS`), readable by ``csv.DictReader``;
    the model's own row is named as in the table (:func:`model_name`)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in report.layers:
        named = {} if row.name else {"name": model_name(report)}
        writer.writerow({**csv_row(row, report.fields_computed), **named})
    return out.getvalue()
