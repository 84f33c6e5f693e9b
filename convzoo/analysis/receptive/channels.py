"""Fields that differ across channels: a :class:`Channels` says which per-axis spans (a
*part*) each channel of a tensor has.

Most tensors have one field for all their channels (``Field.channels`` is None, and costs
nothing). Concatenating branches with different fields, pixel unshuffle, or a write into
some channels of a tensor give channels different fields; slicing, selecting, splitting,
shuffling and grouped convolutions then keep exactly the channels' own fields, and an op
that mixes channels (a dense convolution, a matrix product over them) takes the union.

The channel index runs row-major over ``dims``, one or more consecutive tensor dims (one
for ``(N, C, H, W)``; two while a channel shuffle holds ``(N, g, C/g, H, W)``), or sits
inside one dim merged with others, at place value ``inner`` (``(N·C·H, W)`` while a linear
layer runs on the last dim of a feature map; views and matrix products follow it there).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from convzoo.analysis.receptive.intervals import union_spans
from convzoo.analysis.receptive.span import Span, empty_units

Axes = tuple[Span | None, ...]
Part = Axes | None  # None: these channels see no input pixel


@dataclass(frozen=True, eq=False)
class Channels:
    """Channel ``c`` (flat, row-major over the negative, consecutive ``dims``) has the
    spans ``parts[ids[c]]``; a part None sees no input pixel. ``inner``: the place value of
    the channel index inside ``dims[0]`` when that one dim also holds others (1: alone).
    Made by :func:`normalise`, which keeps at least two distinct parts."""

    dims: tuple[int, ...]
    ids: np.ndarray  # int64[C]
    parts: tuple[Part, ...]
    inner: int = 1

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Channels):
            return NotImplemented
        return (
            (self.dims, self.inner) == (other.dims, other.inner)
            and np.array_equal(self.ids, other.ids)
            and len(self.parts) == len(other.parts)
            and all(same_part(a, b) for a, b in zip(self.parts, other.parts, strict=True))
        )

    __hash__ = object.__hash__

    def part(self, channel: int) -> Part:
        """The spans of channel ``channel`` (flat index over :attr:`dims`)."""
        return self.parts[int(self.ids[channel])]

    def fits(self, shape: Sequence[int]) -> bool:
        """Whether a tensor of ``shape`` has these channel dims, of the right sizes."""
        if not self.dims or -self.dims[0] > len(shape):
            return False
        if self.inner != 1:
            return len(self.dims) == 1 and shape[self.dims[0]] % (self.inner * len(self.ids)) == 0
        return math.prod(shape[d] for d in self.dims) == len(self.ids)

    @property
    def alone(self) -> bool:
        """Whether the channel dims hold the channels only (not merged with other dims)."""
        return self.inner == 1

    def grid(self, shape: Sequence[int]) -> np.ndarray:
        """``ids`` shaped as the channel dims of a tensor of ``shape``."""
        return self.ids.reshape([shape[d] for d in self.dims])


def same_span(a: Span | None, b: Span | None) -> bool:
    """Whether two spans give every unit the same interval (and period)."""
    return a is b or (a is not None and b is not None and len(a) == len(b) and a == b)


def same_part(a: Part, b: Part) -> bool:
    if a is None or b is None:
        return a is b
    return len(a) == len(b) and all(same_span(x, y) for x, y in zip(a, b, strict=True))


def union_axes(parts: Sequence[Part]) -> Axes | None:
    """Per axis, unit by unit, the union of the parts' spans (None: no part sees anything)."""
    seen = [p for p in parts if p is not None]
    if not seen:
        return None
    axes: list[Span | None] = []
    for k in range(max(len(p) for p in seen)):
        present = [p[k] for p in seen if k < len(p) and p[k] is not None]
        axes.append(union_spans(present) if present else None)  # type: ignore[arg-type]
    return tuple(axes)


def partly_empty(parts: Sequence[Part]) -> bool:
    """Whether the units that see nothing along one axis differ between ``parts`` (then
    the per-axis union of the parts overstates the units where one of them contributes
    nothing: it is an upper bound there, not exact)."""
    seen = [p for p in parts if p is not None]
    if not seen or max(len(p) for p in seen) < 2:
        return False
    masks = {tuple(b"" if a is None else empty_units(a) for a in p) for p in seen}
    return len(masks) > 1  # b"": no empty unit, so masks differ only if some unit is empty


def normalise(
    dims: Sequence[int], ids: np.ndarray, parts: Sequence[Part], inner: int = 1
) -> Channels | None:
    """A :class:`Channels` with only the parts ``ids`` uses, identical parts shared; None
    when every channel has the same part (see :func:`single`)."""
    keys: dict[tuple[int, ...] | None, int] = {}
    remap = np.empty(len(parts), dtype=np.int64)
    kept: list[Part] = []
    used = np.unique(ids)
    for i in used:
        part = parts[int(i)]
        key = None if part is None else tuple(id(s) for s in part)
        if key not in keys:
            keys[key] = len(kept)
            kept.append(part)
        remap[int(i)] = keys[key]
    if len(kept) == 1:
        return None
    return Channels(tuple(dims), remap[ids], tuple(kept), inner)


def single(ids: np.ndarray, parts: Sequence[Part]) -> Part:
    """The part every channel has (call when :func:`normalise` gave None)."""
    return parts[int(ids[0])] if len(ids) else None


def move(
    channels: Channels, shape_in: Sequence[int], n_out: int, mapping: Callable[[int], int | None]
) -> Channels | None:
    """The channel dims renumbered by ``mapping`` (positive in -> positive out), reordering
    the channels when a permute changes their order; None when they do not stay together."""
    n_in = len(shape_in)
    if not channels.alone:
        new = mapping(n_in + channels.dims[0])
        return None if new is None else replace(channels, dims=(new - n_out,))
    mapped = [mapping(n_in + d) for d in channels.dims]
    found = [d for d in mapped if d is not None]
    if len(found) < len(mapped):
        return None
    order = np.argsort(found)
    ranked = sorted(found)
    if ranked != list(range(ranked[0], ranked[0] + len(ranked))):
        return None
    ids = channels.grid(shape_in).transpose(order).reshape(-1)
    return Channels(tuple(d - n_out for d in ranked), ids, channels.parts)


def regroup(
    channels: Channels, groups: list[tuple[list[int], list[int]]], n_in: int, n_out: int
) -> Channels | None:
    """The channel dims through a view whose groups of dims (positive, from
    :func:`~.field.view_groups`) merge or split them: kept when they are exactly whole
    groups (the flat channel order is the same), else None."""
    if not channels.alone:
        return None
    mine = {n_in + d for d in channels.dims}
    out: list[int] = []
    for gi, gj in groups:
        hit = mine.intersection(gi)
        if hit and hit != set(gi):
            return None
        if hit:
            out.extend(gj)
    if not out or sorted(out) != list(range(min(out), max(out) + 1)) or len(set(out)) != len(out):
        return None
    return Channels(tuple(d - n_out for d in sorted(out)), channels.ids, channels.parts)


def pick(
    channels: Channels, shape: Sequence[int], dim: int, index: np.ndarray | slice, drop: bool
) -> tuple[np.ndarray, tuple[int, ...]]:
    """The ids of the channels kept when tensor dim ``dim`` (negative, one of the channel
    dims) is indexed by ``index`` (``drop``: a single position, the dim goes), and the
    channel dims left (negative, numbered for the output)."""
    grid = channels.grid(shape)
    axis = channels.dims.index(dim)
    taken = grid[(slice(None),) * axis + (index,)]
    dims = channels.dims
    if drop:
        dims = tuple(d + (d < dim) for d in dims if d != dim)
    return taken.reshape(-1), dims
