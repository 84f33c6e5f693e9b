"""Merges: the field of an element-wise op or a copy of several traced tensors, unit by
unit the union of theirs (channel by channel when their channels differ), with notes when
the branches' units are spaced or centred differently and a flag when the union is only
an upper bound."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from convzoo.analysis.receptive import channels as ch
from convzoo.analysis.receptive.field import Field, number
from convzoo.analysis.receptive.intervals import union_spans
from convzoo.analysis.receptive.span import Span, summary


def merge_fields(fields: list[Field]) -> tuple[Field, list[str]]:
    """The field of a merge (add, mul, concat on channels) of tensors with ``fields`` whose
    axes sit in the same places: unit by unit the hull of the branches' intervals.

    Global if any branch is global, else unknown if any branch is. Branches whose units
    are spaced differently or centred differently are merged exactly and noted.
    """
    distinct = list({id(f): f for f in fields}.values())
    if len(distinct) == 1:
        return distinct[0], []
    if any(f.is_global for f in distinct):
        return Field.global_field(), []
    if not all(f.known for f in distinct):
        return Field.unknown(), []
    notes: list[str] = []
    axes: list[Span | None] = []
    done: dict[tuple[int, ...], tuple[Span, list[str]]] = {}  # axes sharing spans stay shared
    for k in range(len(distinct[0].axes)):
        present = [
            a for a in (f.axes[k] if k < len(f.axes) else None for f in distinct) if a is not None
        ]
        if len(present) < len(distinct):
            notes.append(f"axis {k}: some merged tensors have no field along it")
        if not present:
            axes.append(None)
            continue
        key = tuple(id(a) for a in present)
        if key not in done:
            done[key] = union_spans(present), alignment(present)
        span, misaligned = done[key]
        notes.extend(f"axis {k}: {n}" for n in misaligned)
        axes.append(span)
    bound = any(f.bound for f in distinct) or ch.partly_empty([f.axes for f in distinct])
    if bound:
        notes.append(
            "a merged branch sees only padding at some units along one axis: the per-unit "
            "fields there are an upper bound (the union over the branches), not exact"
        )
    first = distinct[0]
    merged = Field(tuple(axes), first.is_global, first.layout, first.reason, bound)
    if any(f.channels is not None for f in distinct):
        return merge_channels(distinct, merged, notes)
    return merged, notes


def merge_channels(fields: list[Field], merged: Field, notes: list[str]) -> tuple[Field, list[str]]:
    """:func:`merge_fields` of branches some of which have channel segments: channel by
    channel the union (the segmented branches must hold their channels in the same dims)."""
    segs = [f.channels for f in fields if f.channels is not None]
    if len({(c.dims, c.inner, len(c.ids)) for c in segs}) > 1:
        note = "merged tensors hold their channel segments differently: union over channels"
        return replace(merged, bound=True), [*notes, f"{note}, an upper bound"]
    combos, inverse = np.unique(np.stack([c.ids for c in segs]), axis=1, return_inverse=True)
    plain = [f.axes for f in fields if f.channels is None]
    parts = [
        ch.union_axes([*(c.parts[i] for c, i in zip(segs, column, strict=True)), *plain])
        for column in combos.T.tolist()
    ]
    out = merged.segmented(segs[0].dims, inverse.reshape(-1), parts, None, segs[0].inner)
    return (merged if out is None else out), notes


def alignment(spans: list[Span]) -> list[str]:
    """Notes when branches' units are spaced or centred differently (merged anyway)."""
    pairs = [s.pair for s in spans]
    if all(p is not None for p in pairs):  # period 1: integers, no Fractions
        doubled = {p[0] + p[1] for p in pairs if p[0] <= p[1]}  # type: ignore[index]
        if len({s.shift for s in spans}) == 1 and len(doubled) <= 1:
            return []
    sums = [summary(s) for s in spans]
    strides = sorted({s.stride for s in sums if s.stride is not None})
    notes = []
    if len(strides) > 1:
        shown = ", ".join(str(number(s)) for s in strides)
        notes.append(f"strides differ ({shown}): the union is taken unit by unit")
    centres = sorted({s.start for s in sums if s.start is not None})
    if len(centres) > 1:
        shown = ", ".join(str(number(c)) for c in centres)
        notes.append(f"centres misaligned ({shown}): the union is taken unit by unit")
    return notes
