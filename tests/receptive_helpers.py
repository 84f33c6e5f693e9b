"""Shared by the receptive-field tests: spans written by hand and a dispatch recorder that
propagates fields op by op (as the analyzer does, without counting)."""

from __future__ import annotations

from fractions import Fraction

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from convzoo.analysis.receptive import Field, Span, propagate_outputs
from convzoo.analysis.receptive.intervals import window
from convzoo.analysis.receptive.spatial import conv_span

ID = Field.identity((12, 10))
half = Fraction(1, 2)


def span_of(n_out: int, n_in: int, taps, period: int = 1, advance: int = 1) -> Span:  # noqa: ANN001
    return window(Span.identity(n_in), n_out, taps, period, advance)


def conv(n: int, k: int, s: int = 1, p: int = 0, d: int = 1, a: Span | None = None) -> Span:
    a = a if a is not None else Span.identity(n)
    return conv_span(a, (len(a) + 2 * p - d * (k - 1) - 1) // s + 1, k, s, p, d)


def units(a: Span) -> list[tuple[int, int] | None]:
    return [a.unit(u) for u in range(len(a))]


class Recorder(TorchDispatchMode):
    """Runs ops and keeps each output's field (the analyzer does the same, with counting)."""

    def __init__(self) -> None:
        super().__init__()
        self.fields: dict[int, tuple[torch.Tensor, Field | None]] = {}
        self.notes: list[str] = []

    def field_of(self, t: object) -> Field | None:
        hit = self.fields.get(id(t))
        return hit[1] if hit is not None and hit[0] is t else None

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        out = func(*args, **(kwargs or {}))
        fields, notes = propagate_outputs(func, args, kwargs or {}, out, self.field_of)
        outs = [t for t in (out if isinstance(out, (tuple, list)) else [out])]
        for t, f in zip(outs, fields, strict=False):
            self.fields[id(t)] = (t, f)
        self.notes += notes
        return out


def trace(fn, x: torch.Tensor) -> tuple[Field | None, list[str]]:  # noqa: ANN001
    rec = Recorder()
    rec.fields[id(x)] = (x, Field.identity(x.shape[2:]))
    with rec:
        y = fn(x)
    return rec.field_of(y), rec.notes
