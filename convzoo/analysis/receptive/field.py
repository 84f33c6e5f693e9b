"""The ``Field`` of a tensor: one :class:`~.span.Span` per spatial axis, where each axis
lives in the tensor (:class:`Place`), merges, and the per-layer summary.

Conventions (Araujo, Norris and Sim, "Computing Receptive Fields of Convolutional Neural
Networks", Distill 2019), per axis, in input pixels (pixel ``i`` has centre ``i``). A field
has as many axes as the input has spatial dims: 1 for ``(N, C, L)``, 2 for ``(N, C, H, W)``,
3 for ``(N, C, D, H, W)``. :meth:`Field.unit` gives the exact input pixels of one unit;
:meth:`Field.to_dict` the summary that holds for all units (see
:class:`~.span.Summary`). Normalisation statistics (batch, layer, group norm) count as
constants, as is conventional. Global operations give :meth:`Field.global_field`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from typing import Any, NamedTuple

from convzoo.analysis.receptive import channels as ch
from convzoo.analysis.receptive.span import Span, summary
from convzoo.errors import ConvZooError


class Place(NamedTuple):
    """Where a spatial axis lives in a tensor (a named tuple: made, hashed and compared
    on every op).

    ``dim``: the (negative) tensor dim holding it, or None when the axis has a single
    position and no dim of its own; ``extent``: its number of positions; ``inner``: the
    place value of the axis inside ``dim`` when that dim merges several axes (row-major,
    e.g. ``inner = W`` for h after ``[B, C, H, W] -> [B, C, H·W]``), 1 when the dim holds
    the axis alone, 0 when the order of its positions has been lost (gathered or sliced
    after a merge; the axis' span is then one hull for all positions).
    """

    dim: int | None
    inner: int = 1
    extent: int = 1


ABSENT = Place(None, 1, 1)
Places = tuple[Place, ...]


def standard_places(shape: Sequence[int], n: int) -> Places:
    """``n`` axes alone in the last ``n`` dims (absent when of extent 1)."""
    return _standard_places(tuple(shape), n)


@lru_cache(maxsize=4096)  # every op asks it of the few shapes a network has
def _standard_places(shape: tuple[int, ...], n: int) -> Places:
    def place(dim: int) -> Place:
        if len(shape) < -dim or shape[dim] == 1:
            return ABSENT
        return Place(dim, 1, int(shape[dim]))

    return tuple(place(k - n) for k in range(n))


def number(value: Fraction) -> int | float:
    """An int when integral, else a float rounded to 4 places."""
    return int(value) if value.denominator == 1 else round(float(value), 4)


class FieldSummary(dict[str, Any]):
    """The summary dict of a layer's field (``size``, ``stride``, ``start``, ``period``,
    ``global``) that also answers per-unit queries: ``.unit(i, j)``."""

    field: Field | None = None

    def unit(self, *index: int, channel: int | None = None) -> list[tuple[int, int] | None]:
        """See :meth:`Field.unit`."""
        if self.field is None:
            raise ConvZooError("this receptive field carries no per-unit data (a copy)")
        return self.field.unit(*index, channel=channel)


@dataclass(frozen=True, eq=False)
class Field:
    """The receptive field of every unit of a tensor: one :class:`Span` per spatial axis.

    ``layout`` says which tensor dims hold the axes (see :class:`Place`); None is the
    standard layout (the axes alone in the last dims). ``reason`` says why an unknown
    field could not be followed. ``bound``: a merge had a branch that sees only padding
    along one axis at some units but not along another; those units' fields are then an
    upper bound (the per-axis union of every branch), not exact.

    ``channels``: None when every channel has this field (the common case); else which
    spans each channel has (:class:`~.channels.Channels`), and ``axes`` is their union
    over the channels (what the summary and :meth:`unit` describe; ``unit(..., channel=c)``
    gives one channel's).
    """

    axes: tuple[Span | None, ...]
    is_global: bool = False
    layout: Places | None = None
    reason: str = ""
    bound: bool = False
    channels: ch.Channels | None = None

    @staticmethod
    def identity(sizes: Sequence[int]) -> Field:
        """The field of an input with spatial ``sizes``: unit ``u`` sees pixel ``u``."""
        spans = {int(n): Span.identity(int(n)) for n in sizes}  # equal axes share one span
        return Field(tuple(spans[int(n)] for n in sizes))

    @staticmethod
    def global_field() -> Field:
        """Every unit sees the whole input (global pooling, flatten + linear, routing)."""
        return Field((), True)

    @staticmethod
    def unknown(reason: str = "") -> Field:
        """The field could not be followed (an op without a rule): poisons merges."""
        return Field((), False, None, reason)

    @property
    def known(self) -> bool:
        return self.is_global or any(a is not None for a in self.axes)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Field):
            return NotImplemented
        return (self.is_global, self.layout, self.axes, self.channels) == (
            other.is_global,
            other.layout,
            other.axes,
            other.channels,
        )

    __hash__ = object.__hash__

    def places(self, shape: tuple[int, ...]) -> Places:
        """Where the axes live in a tensor of ``shape`` carrying this field."""
        return self.layout if self.layout is not None else standard_places(shape, len(self.axes))

    def with_axes(self, axes: Sequence[Span | None], places: Sequence[Place], shape: Any) -> Field:
        """A copy with new ``axes`` and ``places``, normalised for a tensor of ``shape``."""
        kept = tuple(ABSENT if p.extent == 1 and p.inner != 0 else p for p in places)
        layout = None if kept == standard_places(shape, len(kept)) else kept
        return Field(tuple(axes), self.is_global, layout, self.reason, self.bound, self.channels)

    def uniform(self) -> Field:
        """This field for every channel: the union over channels (itself when uniform)."""
        if self.channels is None:
            return self
        cached = self.__dict__.get("_uniform")
        if cached is None:
            cached = Field(self.axes, self.is_global, self.layout, self.reason, self.bound)
            self.__dict__["_uniform"] = cached
        return cached

    def part(self, axes: ch.Part) -> Field | None:
        """A uniform field with ``axes`` in this field's layout (None: sees nothing)."""
        if axes is None:
            return None
        return Field(axes, False, self.layout, self.reason, self.bound)

    def channel(self, c: int) -> Field | None:
        """The field of channel ``c`` alone (flat index over the channel dims; any channel
        of a field without channel segments); None when that channel sees no input."""
        if self.channels is None:
            return self
        if not 0 <= c < len(self.channels.ids):
            raise ConvZooError(f"channel {c} out of range ({len(self.channels.ids)} channels)")
        return self.part(self.channels.part(c))

    def segmented(
        self,
        dims: Sequence[int],
        ids: Any,
        parts: Sequence[ch.Part],
        bound: bool | None = None,
        inner: int = 1,
    ) -> Field | None:
        """A field in this one's layout whose channel ``c`` (over ``dims``) has the spans
        ``parts[ids[c]]``; uniform when all channels have the same part, None when no
        channel sees anything."""
        keep = self.bound if bound is None else bound
        channels = ch.normalise(dims, ids, parts, inner)
        axes = ch.single(ids, parts) if channels is None else ch.union_axes(channels.parts)
        if channels is not None and ch.partly_empty(channels.parts):
            keep = True  # the union over channels overstates where a part sees nothing
        if axes is None:
            return None
        return Field(axes, False, self.layout, self.reason, keep, channels)

    def unit(self, *index: int, channel: int | None = None) -> list[tuple[int, int] | None]:
        """The exact input pixels ``(first, last)`` per axis that unit ``index`` (one index
        per axis, e.g. ``(i, j)`` for an image) depends on; None on every axis when it sees
        no input pixel (only padding along some axis). Raises for global and unknown fields.

        ``channel``: that channel's field (:meth:`channel`); without it, the union over
        the channels (the same for every channel unless :attr:`channels` is set)."""
        if channel is not None and self.channels is not None:
            one = self.channel(channel)
            if one is None:
                return [None] * len(self.axes)
            return one.unit(*index)
        if self.is_global or not self.known:
            what = "global: every unit sees the whole input" if self.is_global else "unknown"
            raise ConvZooError(
                f"the receptive field is {what}" + (f" ({self.reason})" if self.reason else "")
            )
        if len(index) != len(self.axes):
            raise ConvZooError(
                f"a unit needs {len(self.axes)} indices (one per axis), got {len(index)}"
            )
        got: list[tuple[int, int] | None] = []
        places = self.layout or (None,) * len(self.axes)
        for k, (span, i) in enumerate(zip(self.axes, index, strict=True)):
            if span is None:
                raise ConvZooError(f"axis {k} has no field")
            place = places[k]
            if place is not None and place.inner == 0:
                raise ConvZooError(f"axis {k}: the order of its units was lost (gathered)")
            if not -len(span) <= i < len(span):
                raise ConvZooError(f"unit index {i} out of range for axis {k} of {len(span)} units")
            got.append(span.unit(i % len(span)))
        return [None] * len(got) if None in got else got

    def to_dict(self, input_size: Sequence[int] | None = None) -> FieldSummary:
        """``{"size", "stride", "start", "period": [one per axis], "global": bool}``.

        ``size`` is the largest theoretical (unclipped) field, ``stride`` the average
        distance between adjacent units' fields, ``start`` the centre of unit 0's field,
        ``period`` how many units it takes for the pattern to repeat (1: every unit alike
        and evenly spaced; see :class:`~.span.Summary`). Numbers are ints when
        integral, else floats rounded to 4 places. A global field reports ``size`` as
        ``input_size`` (the whole input); an unknown field reports None everywhere. The
        result answers ``.unit(i, j)`` (:meth:`unit`).
        """
        result = FieldSummary(self._summary_items(input_size))
        result.field = self
        return result

    def _summary_items(self, input_size: Sequence[int] | None) -> dict[str, Any]:
        """The items of :meth:`to_dict`, computed once per field (rows share fields)."""
        key = f"_items{None if input_size is None else tuple(input_size)}"
        cached = self.__dict__.get(key)
        if cached is None:
            cached = self.__dict__[key] = self._compute_items(input_size)
        return {k: list(v) if isinstance(v, list) else v for k, v in cached.items()}

    def _compute_items(self, input_size: Sequence[int] | None) -> dict[str, Any]:
        result: dict[str, Any] = {}
        if self.is_global or not self.known:
            size = list(input_size) if input_size is not None and self.is_global else None
            result.update(
                size=size, stride=None, start=None, period=None, **{"global": self.is_global}
            )
            return result
        sums = [None if a is None else summary(a) for a in self.axes]

        def pick(attr: str) -> list[Any]:
            values = [None if s is None else getattr(s, attr) for s in sums]
            return [number(v) if isinstance(v, Fraction) else v for v in values]

        result.update(
            size=pick("size"), stride=pick("stride"), start=pick("start"), period=pick("period")
        )
        result["global"] = False
        return result


# -- layout: where the axes live after views and dim moves --------------------------------


def remap(places: Places, n_in: int, n_out: int, mapping: Any) -> Places | None:
    """Renumber the dims of ``places`` with ``mapping(positive in dim) -> positive out dim``.

    None when an axis with more than one position lands in a dropped dim (mapping gives None).
    """
    out = []
    for p in places:
        if p.dim is None:
            out.append(p)
            continue
        new = mapping(n_in + p.dim)
        if new is None:
            return None
        out.append(Place(new - n_out, p.inner, p.extent))
    return tuple(out)


def view_groups(a: tuple[int, ...], b: tuple[int, ...]) -> list[tuple[list[int], list[int]]]:
    """Split a view ``a -> b`` into groups of dims with equal products (row-major)."""
    groups: list[tuple[list[int], list[int]]] = []
    i = j = 0
    while i < len(a) and j < len(b):
        gi, gj, pa, pb = [i], [j], a[i], b[j]
        i, j = i + 1, j + 1
        while pa != pb:
            if pa < pb and i < len(a):
                pa, i = pa * a[i], i + 1
                gi.append(i - 1)
            elif pb < pa and j < len(b):
                pb, j = pb * b[j], j + 1
                gj.append(j - 1)
            else:
                raise ValueError(f"no view from {a} to {b}")
        groups.append((gi, gj))
    if groups:  # trailing size-1 dims
        groups[-1][0].extend(range(i, len(a)))
        groups[-1][1].extend(range(j, len(b)))
    return groups


def view_places(places: Places, a: tuple[int, ...], b: tuple[int, ...]) -> Places | None:
    """Follow the axes through a view (reshape) from shape ``a`` to ``b``.

    An axis occupies place values ``[inner, inner·extent)`` of the flat index of its group
    of dims; it lands in the output dim whose place values contain that range (merged,
    split back, or alone again), or is lost (None) when it straddles two output dims.
    """
    groups = view_groups(a, b)
    out = []
    for p in places:
        if p.dim is None:
            out.append(p)
            continue
        d = len(a) + p.dim
        gi, gj = next(g for g in groups if d in g[0])
        inner = p.inner * math.prod(a[k] for k in gi if k > d)
        top = inner * p.extent
        found = None
        for k in gj:
            below = math.prod(b[m] for m in gj if m > k)
            if p.inner == 0:  # order lost: only a group that stays one dim keeps it
                found = Place(k - len(b), 0, p.extent) if len(gj) == 1 else None
                break
            if inner % below == 0 and (below * b[k]) % top == 0:
                found = Place(k - len(b), inner // below, p.extent)
                break
        if found is None:
            return None
        out.append(found)
    return tuple(out)
