"""Answers about a report's fields for the ``rf`` command and its plot: which layer to show
by default (:func:`pick_layer`), what a layer's field is in words (:func:`field_line`) and as
plain data (:func:`field_data`, ``rf --format json``), and the exact field of one unit
(:func:`unit_text`, :func:`unit_data`).

Words for the four kinds of field a traced output can have (:func:`convzoo.analysis.render.
field_kind`): *local* (each unit sees only part of the input: a size, stride, start and period
per axis), *global* (every unit sees the whole input), *unknown* (traced to the input, but
through an op the tracer could not follow; the reason is given) and *none* (no input pixel
could be traced into the output). None of them is ever printed as Python's ``None``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from convzoo.analysis.render import field_kind, field_text, shape_text
from convzoo.analysis.report import in_subtree
from convzoo.errors import ConvZooError

if TYPE_CHECKING:  # pragma: no cover
    from convzoo.analysis.report import LayerStats, Report

AXIS_NAMES = {1: ("l",), 2: ("h", "w"), 3: ("d", "h", "w")}
LOCAL = "whose units each see only part of the input"
"""What :func:`pick_layer` looks for, in the words its remark uses."""


def axis_names(n: int) -> tuple[str, ...]:
    """``('h', 'w')`` for 2 axes (``l`` for 1, ``d, h, w`` for 3, ``axis0..`` beyond)."""
    return AXIS_NAMES.get(n, tuple(f"axis{k}" for k in range(n)))


def spatial(row: LayerStats) -> bool:
    """Whether ``row``'s output has a known, non-global field (some units see part of the input)."""
    return row.receptive_field is not None and row.receptive_field.spatial


def feature_map(shape: Sequence[int] | None, axes: int) -> bool:
    """Whether an output of ``shape`` is a feature map ``(N, C, *spatial)`` with ``axes``
    spatial axes, at least one longer than 1 (``1x2048x1x1`` after global pooling is not)."""
    dims = tuple(shape or ())
    return axes > 0 and len(dims) == axes + 2 and max(dims[2:]) > 1


def gridded(row: LayerStats) -> bool:
    """A local field on a feature map: its axes alone in the last dims (not e.g. capsules)."""
    rf = row.receptive_field
    if rf is None or not rf.spatial or rf.size is None:
        return False
    field = rf.field
    return (
        field is not None
        and field.layout is None
        and len(row.output_shape or []) == len(rf.size) + 2
    )


def pick_layer(report: Report, layer: str) -> tuple[LayerStats, str]:
    """The row to show and a remark saying why, '' when it is the one asked for.

    A named ``layer`` is that row. The model's output (``layer`` '') is shown when it is a
    feature map with a local field (:func:`gridded`). Otherwise (a classifier's vector, a
    segmentation map whose every unit sees the whole input, an unknown field) the row shown
    is the *last* gridded row in module order (``named_modules``, the order a model
    registers its layers: most run them in that order), taken at its outermost gridded
    ancestor (the block, not its last norm). The remark says why the output was passed
    over, which layer is shown and on what rule, and when feature maps further on exist whose
    fields are global. Without any gridded row the output is shown, and the remark says so.
    """
    row = report.layer(layer)
    if layer or gridded(row):
        return row, ""
    if all(field_kind(r.receptive_field) == "none" for r in report.layers):
        return row, "no input pixel could be traced into any layer's output"
    why = _passed_over(report, row)
    candidates = [r for r in report.layers if r.name and gridded(r)]
    if not candidates:
        return row, f"{why}; no layer's output has units that each see only part of the input"
    names = {r.name: r for r in candidates}
    last = candidates[-1]
    parts = last.name.split(".")
    shown = next(
        (names[p] for p in (".".join(parts[:i]) for i in range(1, len(parts))) if p in names),
        last,
    )
    remark = f"{why}; showing '{shown.name}', the last layer (in module order) {LOCAL}"
    n = len(shown.receptive_field.size or ()) if shown.receptive_field else 0
    later = report.layers[report.layers.index(shown) + 1 :]
    if any(
        feature_map(r.output_shape, n) and field_kind(r.receptive_field) == "global"
        for r in later
        if not in_subtree(r.name, shown.name)
    ):
        remark += "; later feature maps have global fields (each unit sees the whole input)"
    return shown, remark


def _passed_over(report: Report, row: LayerStats) -> str:
    """Why the model's output is not shown: it is not a feature map, or its field is not local."""
    shape = f"the model's output ({shape_text(row.output_shape)})"
    axes = len(report.input_shape[0]) - 2 if report.input_shape else 0
    if not feature_map(row.output_shape, axes):
        return f"{shape} is not a feature map"
    kind = field_kind(row.receptive_field)
    if kind == "global":
        return f"every unit of {shape} sees the whole input (a global field)"
    if kind == "unknown":
        return f"the field of {shape} is unknown"
    if kind == "none":
        return f"no input pixel could be traced into {shape}"
    return f"{shape} has its axes out of the standard layout"  # a local field, e.g. capsules


def output_text(row: LayerStats) -> str:
    """``'output 1x64x16x16'``; a module that did not run or returned no tensor says so."""
    if row.calls == 0:
        return "not called by the forward"
    return f"output {shape_text(row.output_shape)}" if row.output_shape else "output not a tensor"


def field_note(row: LayerStats, input_size: Sequence[int] | None = None) -> str | None:
    """What a field that is not local means (``input_size``: the input's spatial sizes);
    None for a local field, whose numbers say it all."""
    kind = field_kind(row.receptive_field)
    if kind == "global":
        whole = f"{'x'.join(map(str, input_size))} " if input_size else ""
        return f"every unit sees the whole {whole}input"
    if kind == "unknown":
        rf = row.receptive_field
        reason = rf.field.reason if rf is not None and rf.field is not None else ""
        return "the tracer could not follow it" + (f" ({reason})" if reason else "")
    if kind == "none":
        return "no input pixel could be traced into it"
    return None


def field_line(row: LayerStats, input_size: Sequence[int] | None = None) -> str:
    """What ``row``'s field is, in words: the summary per axis of a local field, or what a
    global, unknown or absent field means (:func:`field_note`)."""
    rf = row.receptive_field
    note = field_note(row, input_size)
    if note is None and rf is not None:
        return (
            f"receptive field {field_text(rf)}; size {_values(rf.size)}, stride "
            f"{_values(rf.stride)}, start {_values(rf.start)}, period {_values(rf.period)} "
            "(input pixels, per axis)"
        )
    lead = {"global": "receptive field global", "unknown": "receptive field unknown"}
    return f"{lead.get(field_kind(rf), 'no receptive field')}: {note}"


def _values(values: Sequence[Any] | None) -> str:
    """``[18, 18]``; an axis without a value shows ``-`` (never ``None``)."""
    return "[" + ", ".join("-" if v is None else str(v) for v in values or ()) + "]"


def _list(values: Sequence[Any] | None) -> list[Any] | None:
    return None if values is None else list(values)


def field_data(row: LayerStats, input_size: Sequence[int] | None = None) -> dict[str, Any]:
    """``row``'s field as plain data: ``kind`` (local, global, unknown, none), ``axes``
    (their names), per-axis lists ``size``, ``stride``, ``start``, ``period`` (a global
    field's ``size`` is the whole input and the rest null; an unknown or absent field is
    null throughout), ``exact`` (a local field: False when per-unit fields are an upper
    bound) and ``note`` (what a field that is not local means, :func:`field_note`)."""
    rf = row.receptive_field
    kind = field_kind(rf)
    if kind == "local" and rf is not None:
        size, stride, start, period = rf.size, rf.stride, rf.start, rf.period
        exact: bool | None = not rf.bound
    else:
        size = tuple(input_size) if kind == "global" and input_size else None
        stride = start = period = exact = None
    return {
        "kind": kind,
        "axes": list(axis_names(len(size))) if size else [],
        "size": _list(size),
        "stride": _list(stride),
        "start": _list(start),
        "period": _list(period),
        "exact": exact,
        "note": field_note(row, input_size),
    }


def parse_unit(text: str) -> tuple[int, ...]:
    """``"3,4"`` -> ``(3, 4)``; a clear error otherwise."""
    try:
        unit = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise ConvZooError(f"--unit must look like 3,4 (one int per axis), got {text!r}") from None
    return unit


def centre_unit(row: LayerStats) -> tuple[int, ...]:
    """The middle unit of ``row``'s output, one index per axis of its field."""
    rf = row.receptive_field
    if rf is None or rf.size is None:
        raise ConvZooError(f"layer '{row.name}' has no spatial field")
    n = len(rf.size)
    shape = row.output_shape or []
    return tuple(s // 2 for s in shape[-n:])


def _unit_field(row: LayerStats, unit: Sequence[int]) -> list[tuple[int, int] | None]:
    """The exact input pixels of ``unit``; a one-line error when ``row`` has no local field."""
    rf = row.receptive_field
    if rf is None or not rf.spatial:
        what = f"layer '{row.name}'" if row.name else "the model's output"
        kind = field_kind(rf)
        raise ConvZooError(
            f"--unit: {what} has no local field to query a unit of (its field is "
            f"{'absent' if kind == 'none' else kind}); pick a layer with --layer"
        )
    return rf.unit(*unit)


def unit_text(row: LayerStats, unit: Sequence[int]) -> str:
    """``unit (3, 4): input h 25..42, w 23..40`` (the exact pixels it depends on)."""
    got = _unit_field(row, unit)
    names = axis_names(len(got))
    where = ", ".join(f"{n} {a[0]}..{a[1]}" for n, a in zip(names, got, strict=True) if a)
    rf = row.receptive_field
    exact = "an upper bound: see notes" if rf is not None and rf.bound else "exact"
    return (
        f"unit {tuple(unit)}: input {where} ({exact})"
        if where
        else f"unit {tuple(unit)}: sees no input pixel (only padding)"
    )


def unit_data(row: LayerStats, unit: Sequence[int]) -> dict[str, Any]:
    """``{"index": [3, 4], "input": {"h": [25, 42], "w": [23, 40]}, "exact": true}``;
    ``input`` is null when the unit sees only padding."""
    got = _unit_field(row, unit)
    rf = row.receptive_field
    seen = None if None in got else dict(zip(axis_names(len(got)), got, strict=True))
    return {
        "index": list(unit),
        "input": None if seen is None else {k: list(v) for k, v in seen.items() if v},
        "exact": not (rf is not None and rf.bound),
    }
