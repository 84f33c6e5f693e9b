"""Human renderings of a :class:`~convzoo.analysis.report.Report`: units, tables, csv.

Pure functions of the report's data; :class:`Report` exposes them as ``to_table`` and
``to_csv``. Tables go through ``tabulate`` with per-call options only (no global state).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tabulate import tabulate

from convzoo.errors import ConvZooError

if TYPE_CHECKING:  # pragma: no cover
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
    "activation_bytes",
    "calls",
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


def field_text(field: dict[str, Any] | None) -> str:
    """``{"size": [7, 7], "stride": [2, 2], ...} -> '7x7 /2'`` (one size per axis, the
    stride once when equal on every axis); units that repeat only every ``period`` units
    add ``' (period 2)'``; global -> ``'global'``; a field the tracer could not follow ->
    ``'unknown'`` (``notes`` say why); no field (no spatial input behind it) -> ``'-'``."""
    if not field:
        return "-"
    if not field.get("global") and field.get("size") is None:
        return "unknown"
    if field.get("global"):
        return "global"
    sizes = "x".join(str(v) for v in field["size"])
    text = f"{sizes} /{_axes_text(field['stride'])}"
    periods = field.get("period") or [1]
    if any(p != 1 for p in periods):
        text += f" (period {_axes_text(periods)})"
    return text


def _axes_text(values: Sequence[Any]) -> str:
    """One value when equal on every axis, else all joined by 'x'."""
    return str(values[0]) if len(set(values)) == 1 else "x".join(str(v) for v in values)


def _type_text(row: LayerStats) -> str:
    if row.calls == 0:
        return f"{row.type} (not called)"
    return f"{row.type} ({row.calls} calls)" if row.calls > 1 else row.type


def _name_text(row: LayerStats, target: str, indent: str) -> str:
    if not row.name:
        return target or "(model)"
    return indent * row.depth + row.name.rsplit(".", 1)[-1]


def layer_rows(report: Report, depth: int | None = None, indent: str = "  ") -> list[list[str]]:
    """One table row per layer with ``depth <= depth`` (all rows when ``depth`` is None)."""
    if depth is not None and (not isinstance(depth, int) or depth < 0):
        raise ConvZooError(f"depth must be a non-negative int, got {depth!r}")
    return [
        [
            _name_text(row, report.target, indent),
            _type_text(row),
            shape_text(row.output_shape),
            human(row.params),
            human(row.macs),
            human(row.self_macs),
            field_text(row.receptive_field),
            human_bytes(row.activation_bytes),
        ]
        for row in report.layers
        if depth is None or row.depth <= depth
    ]


def total_row(report: Report) -> list[str]:
    """The totals row: params, MACs and the activation memory of all leaf outputs."""
    t = report.totals
    return [
        "total",
        "",
        "",
        human(t["params"]),
        human(t["macs"]),
        "",
        "",
        human_bytes(t["activation_bytes"]),
    ]


def summary_lines(report: Report) -> list[tuple[str, str]]:
    """``(label, text)`` pairs shown under the table."""
    t = report.totals
    inputs = ", ".join(shape_text(s) for s in report.input_shape)
    lines = [
        ("input shape", inputs or "-"),
        ("output shape", shape_text(report.output_shape)),
        ("receptive field", field_text(report.receptive_field)),
        ("params", f"{human(t['params'])} ({t['params']:,}; trainable {t['trainable_params']:,})"),
        ("MACs", f"{human(t['macs'])} ({t['macs']:,})"),
        ("FLOPs", f"{human(t['flops'])} ({t['flops']:,}; 2 FLOPs per MAC)"),
        ("elementwise ops", f"{human(t['elementwise_ops'])} ({t['elementwise_ops']:,})"),
        ("param bytes", f"{human_bytes(t['param_bytes'])} ({t['param_bytes']:,})"),
        ("activation bytes", f"{human_bytes(t['activation_bytes'])} ({t['activation_bytes']:,})"),
    ]
    if report.complete:
        lines.append(("counts complete", "yes"))
    else:
        lines.append(("counts complete", f"no: {len(report.uncounted_ops)} uncounted op(s)"))
    for op in report.uncounted_ops:
        lines.append(("uncounted op", f"{op.op} in {op.module} ({op.calls} calls)"))
    lines.extend(("note", note) for note in report.notes)
    return lines


def to_table(report: Report, fmt: str = "table", depth: int | None = None) -> str:
    """The per-layer table, a totals row and the summary lines, as text or markdown."""
    if fmt not in FORMATS:
        raise ConvZooError(f"table format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    markdown = fmt == "markdown"
    rows = layer_rows(report, depth, indent="\u00a0\u00a0" if markdown else "  ")
    rows.append(total_row(report))
    table = tabulate(
        rows,
        headers=HEADERS,
        tablefmt=FORMATS[fmt],
        colalign=ALIGN,
        disable_numparse=True,
        preserve_whitespace=True,
    )
    summary = summary_lines(report)
    if markdown:
        text = [f"- **{label}**: {value}" for label, value in summary]
    else:
        width = max(len(label) for label, _ in summary) + 1
        text = [f"{label + ':':<{width}} {value}" for label, value in summary]
    return "\n".join([table, "", *text])


def csv_row(row: LayerStats) -> dict[str, Any]:
    """A layer flattened to :data:`CSV_FIELDS` (receptive field per axis; None -> '')."""
    field = row.receptive_field or {}
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
    }
    for key in ("size", "stride", "start"):
        values = list(field.get(key) or [])[-2:]  # 3-D: h and w; 1-D: its axis as h
        flat[f"rf_{key}_h"], flat[f"rf_{key}_w"] = (values + ["", ""])[:2]
    flat["rf_global"] = "" if not field else str(bool(field.get("global"))).lower()
    return flat


def to_csv(report: Report) -> str:
    """One csv row per layer (header :data:`CSV_FIELDS`), readable by ``csv.DictReader``."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in report.layers:
        writer.writerow(csv_row(row))
    return out.getvalue()
