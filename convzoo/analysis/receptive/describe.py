"""Human answers about a report's fields: which layer to show for a model whose output is
not spatial, the summary line of a layer and the exact field of one unit (the ``rf``
command and its plot use these)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from convzoo.errors import ConvZooError

if TYPE_CHECKING:  # pragma: no cover
    from convzoo.analysis.report import LayerStats, Report

AXIS_NAMES = {1: ("l",), 2: ("h", "w"), 3: ("d", "h", "w")}


def spatial(row: LayerStats) -> bool:
    """Whether ``row``'s output has a known, non-global field (some units see part of the input)."""
    return row.receptive_field is not None and row.receptive_field.spatial


def gridded(row: LayerStats) -> bool:
    """Spatial, with its axes alone in the last dims (a feature map, not e.g. capsules)."""
    rf = row.receptive_field
    if rf is None or not rf.spatial or rf.size is None:
        return False
    n, field = len(rf.size), rf.field
    return (
        n > 0
        and field is not None
        and field.layout is None
        and len(row.output_shape or []) == n + 2
    )


def pick_layer(report: Report, layer: str) -> tuple[LayerStats, str]:
    """The row to show and a remark: ``layer`` itself, or for the model's output ('') when
    that is not a feature map (a classifier) the deepest layer whose output is one."""
    row = report.layer(layer)
    if layer or gridded(row):
        return row, ""
    candidates = [r for r in report.layers if r.name and gridded(r)]
    if not candidates:
        return row, ""
    deepest = candidates[-1]  # then its outermost spatial ancestor (the block, not its last norm)
    names = {r.name: r for r in candidates}
    parts = deepest.name.split(".")
    for i in range(1, len(parts)):
        prefix = ".".join(parts[:i])
        if prefix in names:
            deepest = names[prefix]
            break
    return deepest, (
        f"the model's output is not spatial; showing the deepest layer with a spatial "
        f"output, '{deepest.name}'"
    )


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


def unit_text(row: LayerStats, unit: Sequence[int]) -> str:
    """``unit (3, 4): input h 25..42, w 23..40`` (the exact pixels it depends on)."""
    rf = row.receptive_field
    if rf is None or not rf.spatial:
        raise ConvZooError(f"layer '{row.name}' has no spatial field to query a unit of")
    got = rf.unit(*unit)
    names = AXIS_NAMES.get(len(got), tuple(f"axis{k}" for k in range(len(got))))
    where = ", ".join(f"{n} {a[0]}..{a[1]}" for n, a in zip(names, got, strict=True) if a)
    exact = "an upper bound: see notes" if rf.bound else "exact"
    return (
        f"unit {tuple(unit)}: input {where} ({exact})"
        if where
        else f"unit {tuple(unit)}: sees no input pixel (only padding)"
    )
