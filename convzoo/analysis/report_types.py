"""The leaf value types of a :class:`~convzoo.analysis.report.Report`: :class:`Totals` and
:class:`ReceptiveField` (typed replacements of dicts, still readable dict-style with a
DeprecationWarning through :class:`DictAccess`)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, fields, replace
from dataclasses import field as _field
from typing import TYPE_CHECKING, Any, ClassVar

from convzoo.analysis import formulas
from convzoo.errors import ConvZooError

if TYPE_CHECKING:  # pragma: no cover
    from convzoo.analysis.receptive import Field

Axes = tuple[int | float | None, ...]
"""One value per spatial axis (``(h, w)`` for images); None for an axis without a field."""


class DictAccess:
    """Deprecated dict-style reads (``totals["macs"]``) of the typed objects that replaced
    plain dicts: each warns once per call site with a DeprecationWarning and returns what
    the old dict held (lists, not tuples). Use attributes (``totals.macs``) instead."""

    RENAMED: ClassVar[dict[str, str]] = {}

    def to_dict(self) -> dict[str, Any]:  # pragma: no cover - every subclass has its own
        raise NotImplementedError

    def _old(self, key: str) -> dict[str, Any]:
        attr = self.RENAMED.get(key, key)
        warnings.warn(
            f"dict-style access {type(self).__name__}[{key!r}] is deprecated: use the "
            f"attribute .{attr}",
            DeprecationWarning,
            stacklevel=3,
        )
        return self.to_dict()

    def __getitem__(self, key: str) -> Any:
        return self._old(key)[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self._old(key).get(key, default)

    def __contains__(self, key: object) -> bool:
        return key in self._old(str(key))


@dataclass
class Totals(DictAccess):
    """Whole-model (or whole-subtree) figures; ``flops`` is derived from ``macs``."""

    params: int
    trainable_params: int
    macs: int
    elementwise_ops: int
    activation_bytes: int  # the outputs of all leaf modules (in place or not), over their calls
    param_bytes: int
    peak_activation_bytes: int | None = None  # inference peak by liveness (memory analysis)

    @property
    def flops(self) -> int:
        """``FLOPS_PER_MAC * macs`` (:func:`convzoo.analysis.formulas.flops`)."""
        return formulas.flops(self.macs)

    def to_dict(self) -> dict[str, Any]:
        """Plain data, ``flops`` after ``macs``."""
        out: dict[str, Any] = {}
        for f in fields(self):
            out[f.name] = getattr(self, f.name)
            if f.name == "macs":
                out["flops"] = self.flops
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Totals:
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})


@dataclass(frozen=True)
class ReceptiveField(DictAccess):
    """A layer's receptive field, per spatial axis, in input pixels (Araujo et al. 2019).

    ``size``: the largest theoretical (unclipped) field; ``stride``: the average distance
    between adjacent units' fields (a float after upsampling); ``start``: the centre of unit
    0's field; ``period``: units it takes for the pattern to repeat (1: all alike).
    ``is_global`` (JSON key ``global``): every unit sees the whole input, and ``size`` is
    the input size; an unknown field (not followed, ``notes`` say why) has None everywhere.
    ``field`` is the exact per-unit data behind it (not serialised): :meth:`unit`.
    """

    size: Axes | None
    stride: Axes | None
    start: Axes | None
    period: Axes | None = None
    is_global: bool = False
    field: Field | None = _field(default=None, compare=False, repr=False)

    RENAMED: ClassVar[dict[str, str]] = {"global": "is_global"}
    KEYS: ClassVar[tuple[str, ...]] = ("size", "stride", "start", "period")

    @classmethod
    def of(cls, value: Field, input_size: Any = None) -> ReceptiveField:
        """The summary of a traced :class:`~convzoo.analysis.receptive.Field`; a global
        field reports ``input_size`` (the input's spatial sizes) as its size."""
        return replace(cls.from_dict(value.to_dict(input_size)), field=value)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReceptiveField:
        """From ``{"size": [..], "stride": [..], "start": [..], "period": [..], "global": b}``."""
        size, stride, start, period = (
            None if data.get(k) is None else tuple(data[k]) for k in cls.KEYS
        )
        return cls(size, stride, start, period, is_global=bool(data.get("global")))

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: per-axis lists, ``global`` for ``is_global``."""
        out: dict[str, Any] = {k: _list(getattr(self, k)) for k in self.KEYS}
        out["global"] = self.is_global
        return out

    @property
    def known(self) -> bool:
        """False when the tracer could not follow the field (``notes`` say why)."""
        return self.is_global or self.size is not None

    @property
    def spatial(self) -> bool:
        """Known and not global: some units see only part of the input."""
        return not self.is_global and self.size is not None

    @property
    def bound(self) -> bool:
        """The per-unit fields are an upper bound, not exact (see ``notes``)."""
        return self.field is not None and self.field.bound

    def unit(self, *index: int, channel: int | None = None) -> list[tuple[int, int] | None]:
        """The exact input pixels ``(first, last)`` per axis that unit ``index`` (one int per
        axis, e.g. ``(i, j)``) depends on, clipped to the input; None on every axis when it
        sees only padding. Without ``channel``: the union over the output's channels (the
        same for all channels unless they have different fields, e.g. after a concatenation
        along channels); with it, that channel's own field."""
        if self.field is None:
            raise ConvZooError("this receptive field carries no per-unit data (read from JSON)")
        return self.field.unit(*index, channel=channel)

    def __str__(self) -> str:
        """The table's text: ``'7x7 /2'`` (one size per axis, the stride once when equal
        on every axis); units that repeat only every ``period`` units add
        ``' (period 2)'``; ``'global'``; ``'unknown'`` for a field the tracer could not
        follow (``notes`` say why)."""
        if self.is_global:
            return "global"
        if self.size is None or self.stride is None:
            return "unknown"
        text = f"{'x'.join(str(v) for v in self.size)} /{_axes_text(self.stride)}"
        periods = self.period or (1,)
        if any(p != 1 for p in periods):
            text += f" (period {_axes_text(periods)})"
        return text


def _axes_text(values: Axes) -> str:
    """One value when equal on every axis, else all joined by 'x'."""
    return str(values[0]) if len(set(values)) == 1 else "x".join(str(v) for v in values)


def _list(values: Axes | None) -> list[Any] | None:
    return None if values is None else list(values)
