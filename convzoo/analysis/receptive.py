"""Receptive fields per axis (h, w): the pure algebra, the ``Field`` of a tensor and merges.

Conventions (Araujo, Norris and Sim, "Computing Receptive Fields of Convolutional Neural
Networks", Distill 2019), per axis, in input pixels, where input pixel ``i`` has centre ``i``:

* ``size``: how many input pixels one unit can see, theoretical and unclipped (it may
  exceed the input; padding counts as pixels outside it);
* ``stride``: the jump, the distance between the field centres of adjacent units; a
  :class:`~fractions.Fraction` below 1 after upsampling or transposed convolution;
* ``start``: the centre of the first unit's field; negative with padding.

Unit ``n`` along an axis sees ``[start + n·stride - (size-1)/2, start + n·stride + (size-1)/2]``
(:meth:`Axis.bounds`). That is exact for convolutions and pooling with integer strides. After
upsampling, transposed convolution or adaptive pooling the fields are no longer all alike;
the rules then use a linear model: ``stride`` is the average jump, ``start`` the average
centre offset (each unit's true centre is within half a pre-upsampling unit of it; for a
dilated transposed convolution within ``dilation`` halves, see :func:`transposed_axis`) and
``size`` the largest field (see :func:`transposed_axis`, :func:`adaptive_axis`,
:func:`linear_axis`). Normalisation statistics (batch, layer, group norm) are treated as
constants, as is conventional. Global operations give :meth:`Field.global_field`, reported as
the whole input.

The op rules that apply this algebra to traced tensors are in
:mod:`convzoo.analysis.receptive_rules` (with :mod:`~convzoo.analysis.receptive_spatial`),
the module rules in :mod:`convzoo.analysis.receptive_modules` (:func:`module_field` is
re-exported here).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Any


def frac(value: float | int | Fraction) -> Fraction:
    """``value`` as an exact Fraction (floats via ``limit_denominator(10**6)``)."""
    if isinstance(value, float):
        return Fraction(value).limit_denominator(10**6)
    return Fraction(value)


@dataclass(frozen=True)
class Axis:
    """Receptive field along one axis: ``size``, ``stride`` (jump) and ``start`` (first centre)."""

    size: Fraction
    stride: Fraction
    start: Fraction

    def bounds(self, index: int = 0) -> tuple[Fraction, Fraction]:
        """First and last input coordinate seen by unit ``index`` (unclipped)."""
        centre = self.start + index * self.stride
        half = (self.size - 1) / 2
        return centre - half, centre + half


IDENTITY_AXIS = Axis(Fraction(1), Fraction(1), Fraction(0))


@dataclass(frozen=True)
class Place:
    """Where a spatial axis lives in a tensor.

    ``dim``: the (negative) tensor dim holding it, or None when the axis has a single
    position and no dim of its own; ``extent``: its number of positions; ``inner``: the
    place value of the axis inside ``dim`` when that dim merges several axes (row-major,
    e.g. ``inner = W`` for h after ``[B, C, H, W] -> [B, C, H·W]``), 1 when the dim holds
    the axis alone, 0 when the order of its positions has been lost (gathered or sliced
    after a merge).
    """

    dim: int | None
    inner: int = 1
    extent: int = 1


ABSENT = Place(None, 1, 1)


def standard_places(shape: tuple[int, ...]) -> tuple[Place, Place]:
    """The NCHW layout: h alone in dim -2 and w alone in dim -1 (absent when of extent 1)."""

    def place(dim: int) -> Place:
        if len(shape) < -dim or shape[dim] == 1:
            return ABSENT
        return Place(dim, 1, int(shape[dim]))

    return place(-2), place(-1)


@dataclass(frozen=True)
class Field:
    """The receptive field of every unit of a tensor: one :class:`Axis` per spatial axis.

    ``layout`` says which tensor dims hold h and w (see :class:`Place`); None is the
    standard NCHW layout (h in dim -2, w in dim -1), the only one the rules store as None.
    For a tensor whose h and w were flattened away (``layout`` not None), ``size`` is still
    the field of each element, and ``stride``/``start`` refer to the original grid.
    """

    h: Axis | None
    w: Axis | None
    is_global: bool = False
    layout: tuple[Place, Place] | None = None

    @staticmethod
    def identity() -> Field:
        """The field of the input image itself: size 1, stride 1, start 0 on both axes."""
        return Field(IDENTITY_AXIS, IDENTITY_AXIS)

    @staticmethod
    def global_field() -> Field:
        """Every unit sees the whole input (global pooling, flatten + linear, routing)."""
        return Field(None, None, True)

    @staticmethod
    def unknown() -> Field:
        """The field could not be followed (an op without a rule): poisons merges."""
        return Field(None, None)

    @property
    def known(self) -> bool:
        return self.is_global or self.h is not None or self.w is not None

    @property
    def axes(self) -> tuple[Axis | None, Axis | None]:
        return self.h, self.w

    def places(self, shape: tuple[int, ...]) -> tuple[Place, Place]:
        """Where h and w live in a tensor of ``shape`` carrying this field."""
        return self.layout if self.layout is not None else standard_places(shape)

    def with_axes(self, axes: tuple[Axis | None, Axis | None], places: Any, shape: Any) -> Field:
        """A copy with new ``axes`` and ``places``, normalised for a tensor of ``shape``."""
        places = tuple(ABSENT if p.extent == 1 and p.inner != 0 else p for p in places)
        layout = None if places == standard_places(tuple(shape)) else places
        return replace(self, h=axes[0], w=axes[1], layout=layout)

    def to_dict(self, input_hw: tuple[int, int] | None = None) -> dict[str, Any]:
        """``{"size": [h, w], "stride": [h, w], "start": [h, w], "global": bool}``.

        Numbers are ints when integral, else floats rounded to 4 places. A global field
        reports ``size`` as ``input_hw`` (the whole input; None if not given) and no stride
        or start; an unknown field (:meth:`unknown`) reports None everywhere.
        """
        if self.is_global or not self.known:
            size = list(input_hw) if input_hw is not None and self.is_global else None
            return {"size": size, "stride": None, "start": None, "global": self.is_global}

        def pick(attr: str) -> list[int | float | None]:
            return [None if a is None else number(getattr(a, attr)) for a in self.axes]

        return {
            "size": pick("size"),
            "stride": pick("stride"),
            "start": pick("start"),
            "global": False,
        }


def number(value: Fraction) -> int | float:
    """An int when integral, else a float rounded to 4 places."""
    return int(value) if value.denominator == 1 else round(float(value), 4)


# -- algebra ------------------------------------------------------------------------------


def conv_axis(a: Axis, kernel: int, stride: int, pad_before: int, dilation: int) -> Axis:
    """A convolution or pooling window along one axis, applied to units with field ``a``.

    With ``k_eff = dilation·(kernel-1) + 1``: ``size += (k_eff-1)·a.stride``,
    ``stride = a.stride·stride`` and ``start += ((k_eff-1)/2 - pad_before)·a.stride``.
    """
    span = dilation * (kernel - 1)
    return Axis(
        a.size + span * a.stride,
        a.stride * stride,
        a.start + (Fraction(span, 2) - pad_before) * a.stride,
    )


def transposed_axis(
    a: Axis, kernel: int, stride: int, pad: int, dilation: int, output_padding: int = 0
) -> Axis:
    """A transposed convolution (``F.conv_transpose2d`` with symmetric ``pad``) along one axis.

    Output ``o`` receives input ``i`` through tap ``j`` when ``o = i·stride - pad + j·dilation``.
    How many inputs one output sees depends on ``o mod stride``; ``size`` is that of the
    unit with the LARGEST field. ``stride`` is ``a.stride / stride`` and ``start`` the average
    centre, ``a.start + a.stride·(pad - (k_eff-1)/2) / stride``: every unit's true centre is
    within ``a.stride / 2`` of ``start + n·stride`` without dilation, and within
    ``dilation·a.stride / 2`` with it (e.g. kernel 3, stride 3, dilation 2: off by 2/3 of a
    unit; no linear model fits these phases better). ``output_padding`` only adds units at
    the end and does not change any field.
    """
    del output_padding
    span = 0
    for r in range(stride):  # one output phase per residue; the inner loop is over taps
        taps = [r + pad - j * dilation for j in range(kernel)]
        hit = [t // stride for t in taps if t % stride == 0]
        span = max(span, max(hit) - min(hit)) if hit else span
    k_span = dilation * (kernel - 1)
    return Axis(
        a.size + span * a.stride,
        a.stride / stride,
        a.start + a.stride * (pad - Fraction(k_span, 2)) / stride,
    )


def adaptive_axis(a: Axis, in_size: int, out_size: int) -> Axis:
    """Adaptive pooling from ``in_size`` to ``out_size`` positions along one axis.

    Window ``o`` is ``[floor(o·n/m), ceil((o+1)·n/m))``; windows differ by one pixel when
    ``m`` does not divide ``n``. ``size`` uses the largest window, ``stride`` is ``n/m`` and
    ``start`` the average centre ``(n/m - 1)/2`` (exact when ``m`` divides ``n``).
    """
    n, m = in_size, out_size
    ratio = Fraction(n, m)
    largest = widest_window(n, m)
    return Axis(
        a.size + (largest - 1) * a.stride, a.stride * ratio, a.start + a.stride * (ratio - 1) / 2
    )


def widest_window(n: int, m: int) -> int:
    """The largest adaptive-pooling window from ``n`` to ``m`` positions, in closed form.

    Window ``o`` has length ``ceil((o+1)n/m) - floor(on/m)``; with ``g = gcd(n, m)`` the
    fractional parts of ``on/m`` take the values ``0, g/m, 2g/m, ...``, so the length is
    ``n/m`` rounded up plus one exactly when some ``on/m`` has a fractional part above
    ``1 - frac(n/m)``.
    """
    if n % m == 0:
        return n // m
    g = math.gcd(n, m)
    rest = Fraction(n % m, m)  # frac(n/m) > 0
    top = Fraction(m - g, m)  # the largest fractional part of o·n/m
    return n // m + (2 if top + rest > 1 else 1)


def nearest_axis(a: Axis, ratio: Fraction, exact: bool = False) -> Axis:
    """Nearest-neighbour resampling, output ``o`` reads input ``floor(o·ratio + c)``.

    ``ratio`` is input/output size (1/scale); ``c`` is 0 for PyTorch's ``nearest`` and
    ``ratio/2`` for ``nearest-exact``. ``size`` is unchanged, ``stride`` is ``a.stride·ratio``;
    ``start`` is the average centre: ``c`` minus the mean of ``frac(o·ratio + c)``, which is
    ``((q-1)/2 + frac(c·q)) / q`` for ``ratio = p/q``.
    """
    c = ratio / 2 if exact else Fraction(0)
    q = ratio.denominator
    phase = c * q - math.floor(c * q)
    offset = c - (Fraction(q - 1, 2) + phase) / q
    return Axis(a.size, a.stride * ratio, a.start + a.stride * offset)


def linear_axis(a: Axis, ratio: Fraction, align_corners: bool, taps: int = 2) -> Axis:
    """(Bi)linear (``taps=2``) or bicubic (``taps=4``) resampling along one axis.

    Output ``o`` samples input coordinate ``src = (o + 1/2)·ratio - 1/2`` (``o·ratio`` with
    ``align_corners``, where ``ratio = (n-1)/(m-1)``) and reads the ``taps`` pixels around it,
    or only one when ``src`` is an integer. ``stride = a.stride·ratio``, ``start`` is the
    sampled coordinate of unit 0 (border clamping ignored), and ``size`` grows by
    ``taps - 1`` units unless every ``src`` is an integer.
    """
    offset = Fraction(0) if align_corners else (ratio - 1) / 2
    integral = ratio.denominator == 1 and offset.denominator == 1
    grow = 0 if integral else taps - 1
    return Axis(a.size + grow * a.stride, a.stride * ratio, a.start + a.stride * offset)


def shift_axis(a: Axis, units: int | Fraction) -> Axis:
    """Drop the first ``units`` units (negative: add padding): ``start += units·stride``."""
    return replace(a, start=a.start + units * a.stride)


# -- layout: where h and w live after views and dim moves ---------------------------------


def remap(
    places: tuple[Place, Place], n_in: int, n_out: int, mapping: Any
) -> tuple[Place, Place] | None:
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
    return out[0], out[1]


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


def view_places(
    places: tuple[Place, Place], a: tuple[int, ...], b: tuple[int, ...]
) -> tuple[Place, Place] | None:
    """Follow h and w through a view (reshape) from shape ``a`` to ``b``.

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
    return out[0], out[1]


# -- merges -------------------------------------------------------------------------------


def union_axis(axes: list[Axis]) -> tuple[Axis, list[str]]:
    """The smallest interval holding every branch's unit-0 field, with alignment notes."""
    lows, highs = zip(*(a.bounds() for a in axes), strict=True)
    lo, hi = min(lows), max(highs)
    notes = []
    strides = sorted({a.stride for a in axes})
    if len(strides) > 1:
        notes.append(
            f"strides differ ({', '.join(str(number(s)) for s in strides)}): the union of "
            "unit 0's fields is reported; other units' fields drift apart"
        )
    centres = sorted({a.start for a in axes})
    if len(centres) > 1:
        notes.append(
            f"centres misaligned ({', '.join(str(number(c)) for c in centres)}): the "
            "union of the branches' fields is reported"
        )
    return Axis(hi - lo + 1, max(strides), (lo + hi) / 2), notes


def union(fields: list[Field]) -> tuple[Field, list[str]]:
    """The field of a merge (add, mul, concat on channels) of tensors with ``fields``.

    Global if any branch is global, else unknown if any branch is. Otherwise, per axis,
    the smallest interval holding every branch's field; branches with different strides or
    centres are merged anyway and reported in a note (as are different layouts, for which
    the first is kept).
    """
    distinct = list(dict.fromkeys(fields))
    if len(distinct) == 1:
        return distinct[0], []
    if any(f.is_global for f in distinct):
        return Field.global_field(), []
    if not all(f.known for f in distinct):
        return Field.unknown(), []
    notes: list[str] = []
    if len({f.layout for f in distinct}) > 1:
        notes.append("merged tensors carry their spatial axes in different dims")
    axes: list[Axis | None] = []
    for i, name in enumerate("hw"):
        present = [a for a in (f.axes[i] for f in distinct) if a is not None]
        if len(present) < len(distinct):
            notes.append(f"{name}: some merged tensors have no {name} field")
        if not present:
            axes.append(None)
            continue
        axis, axis_notes = union_axis(present)
        axes.append(axis)
        notes.extend(f"{name}: {n}" for n in axis_notes)
    return replace(distinct[0], h=axes[0], w=axes[1]), notes


# -- re-exports (lazy: the rules module imports this one) ---------------------------------


def module_field(module: Any, in_field: Any, input_shape: Any, output_shape: Any) -> Any:
    """See :func:`convzoo.analysis.receptive_modules.module_field`."""
    from convzoo.analysis.receptive_rules import receptive_modules

    rule = receptive_modules.module_field

    return rule(module, in_field, input_shape, output_shape)
