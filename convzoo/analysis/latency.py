"""A roofline latency estimate of a :class:`~convzoo.analysis.report.Report` on a machine.

Per operator row (one op of one class in one module, all its calls; see
:class:`~convzoo.analysis.report.OperatorStats`):

- compute time: its MACs at the machine's rate for its op class, plus its element-wise ops
  at the element-wise (or reduction) rate; ``data`` ops (copies, padding) compute nothing;
- memory time: its bytes moved (a lower bound, :mod:`convzoo.analysis.traffic`) at the
  machine's bandwidth;
- time: the larger of the two (the roofline) plus ``calls`` x the dispatch overhead; views
  and other ``free`` ops take no time.

A layer's estimate is the sum over the operators of its subtree. The machine profile is data
(:mod:`convzoo.machine`): nothing runs here. What the estimate leaves out (fusion, caches
between ops, threads, kernel choice) is in ``docs/latency.md``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from convzoo.analysis.report import OperatorStats, Report
from convzoo.machine import MAC_CLASSES, Profile

BOUNDS = ("compute", "memory", "overhead")
"""What limits an estimate: whichever of its three parts is largest."""


@dataclass
class Estimate:
    """Seconds of one operator row, one layer or the whole model, by part: ``compute`` and
    ``memory`` are the roofline's two sides summed over operators, ``roofline`` the sum of
    each operator's larger side, ``overhead`` the dispatch cost; :attr:`seconds` the total."""

    compute: float = 0.0
    memory: float = 0.0
    roofline: float = 0.0
    overhead: float = 0.0
    macs: int = 0
    bytes_moved: int = 0

    @property
    def seconds(self) -> float:
        return self.roofline + self.overhead

    @property
    def bound(self) -> str:
        """``compute``, ``memory`` or ``overhead``: the largest part (``-`` for no time)."""
        parts = {"compute": self.compute, "memory": self.memory, "overhead": self.overhead}
        return max(parts, key=parts.__getitem__) if self.seconds else "-"

    @property
    def attained(self) -> float | None:
        """MACs per second at the estimated time (None without MACs or time)."""
        return self.macs / self.seconds if self.macs and self.seconds else None

    def add(self, other: Estimate) -> None:
        self.compute += other.compute
        self.memory += other.memory
        self.roofline += other.roofline
        self.overhead += other.overhead
        self.macs += other.macs
        self.bytes_moved += other.bytes_moved

    def to_dict(self) -> dict[str, Any]:
        return {
            "seconds": self.seconds,
            "bound": self.bound,
            "compute_seconds": self.compute,
            "memory_seconds": self.memory,
            "overhead_seconds": self.overhead,
        }


@dataclass
class Latency:
    """The estimate of a report on ``machine`` in ``dtype``: ``total`` and one per layer
    row (by name)."""

    machine: str
    dtype: str
    total: Estimate
    layers: dict[str, Estimate] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "machine": self.machine,
            "dtype": self.dtype,
            **self.total.to_dict(),
            "layers": [{"name": n, **e.to_dict()} for n, e in self.layers.items()],
        }


def operator_estimate(op: OperatorStats, profile: Profile, dtype: str) -> Estimate:
    """The roofline of one operator row (see the module docstring)."""
    if op.op_class == "free":
        return Estimate()
    compute = 0.0
    if op.macs:
        compute += op.macs / profile.rate(
            op.op_class if op.op_class in MAC_CLASSES else "matmul", dtype
        )
    if op.elementwise_ops:
        cls = "reduction" if op.op_class == "reduction" else "elementwise"
        compute += op.elementwise_ops / profile.rate(cls, dtype)
    memory = op.bytes_moved / profile.bandwidth
    return Estimate(
        compute=compute,
        memory=memory,
        roofline=max(compute, memory),
        overhead=op.calls * profile.overhead,
        macs=op.macs,
        bytes_moved=op.bytes_moved,
    )


def prefixes(module: str) -> list[str]:
    """``"a.b.c" -> ["", "a", "a.b", "a.b.c"]``: the rows whose subtree holds ``module``."""
    parts = module.split(".") if module else []
    return ["", *(".".join(parts[: i + 1]) for i in range(len(parts)))]


def estimate(report: Report, profile: Profile, dtype: str = "float32") -> Latency:
    """The latency of ``report`` (its model's forward) on ``profile`` in ``dtype``: the
    total, and each layer row's subtree sum. Pure arithmetic on the report's counts."""
    rows = {row.name: Estimate() for row in report.layers}
    total = Estimate()
    for op in report.operators:
        one = operator_estimate(op, profile, dtype)
        total.add(one)
        for name in prefixes(op.module):
            if name in rows and name:
                rows[name].add(one)
    if "" in rows:
        rows[""] = total
    return Latency(profile.name, dtype, total, rows)
