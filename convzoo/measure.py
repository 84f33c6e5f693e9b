"""Rows of a design comparison: each named module analysed on one input (params, MACs,
receptive field) and, on request, timed, with every ratio against the first (the
baseline); and the rows as a table, JSON or CSV (see :mod:`convzoo.compare`)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from convzoo.analysis.analyzer import analyze
from convzoo.analysis.guard import Guard, rehearse
from convzoo.analysis.isolation import private_copy
from convzoo.analysis.render import human_bytes
from convzoo.analysis.resident import give_back
from convzoo.errors import ConvZooError
from convzoo.limits import MAX_PARAMS
from convzoo.real import seeded


@dataclass
class Row:
    """One design's theory (and measurements when benchmarked)."""

    design: str
    params: int
    macs: int
    receptive_field: int | None
    params_ratio: float
    macs_ratio: float
    forward_ms: float | None = None
    speedup: float | None = None
    efficiency: float | None = None
    train_ms: float | None = None
    estimated_ms: float | None = None  # the roofline estimate (compare --latency)
    train_macs: int | None = None  # forward + backward of the timed step (input with grad)
    step_bytes: int | None = None  # its memory: params, gradients, saved tensors

    def to_dict(self) -> dict[str, Any]:
        """Every field; ``estimated_ms`` only when estimated (``compare --latency``)."""
        out = asdict(self)
        if self.estimated_ms is None:
            del out["estimated_ms"]
        return out


def _field_size(report: Any) -> int | None:
    rf = report.receptive_field
    if rf is None or not rf.spatial or rf.size is None:
        return None
    return int(max(v for v in rf.size if v is not None))


def _statement(module: nn.Module, x: torch.Tensor, train: bool) -> tuple[str, dict[str, Any], Any]:
    """What one timed run executes: ``(statement, its globals, its autograd context)``; a
    forward, or with ``train`` a forward and backward from an input that needs gradients.
    Sets ``module``'s mode."""
    module.train(train)
    if train:
        x = x.clone().requires_grad_(True)
        return "m(x).sum().backward()", {"m": module, "x": x}, torch.enable_grad()
    return "m(x)", {"m": module, "x": x}, torch.no_grad()


def measure_ms(
    module: nn.Module,
    x: torch.Tensor,
    train: bool,
    min_run_time: float,
    guard: Guard | None = None,
) -> float:
    """Median time of a forward (or forward + backward) after a warm-up, in ms.

    With a ``guard`` the first warm-up run is guarded (every allocation checked against
    the memory budget before it is made); the timed runs repeat it unguarded.
    """
    # torch.utils.benchmark imports cpp_extension, which warns about CUDA on CPU machines
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    from torch.utils.benchmark import Timer

    with guard or contextlib.nullcontext():
        stmt, names, context = _statement(module, x, train)
        with context:
            eval(stmt, names)  # the first warm-up
    give_back()  # what the allocator kept from it: the timed runs start from the live tensors
    with context:
        eval(stmt, names)
        timer = Timer(stmt, globals=names)
        return timer.blocked_autorange(min_run_time=min_run_time).median * 1e3


def rehearse_bench(
    modules: Mapping[str, nn.Module],
    input_size: tuple[int, ...],
    batch: int,
    train: bool,
    max_memory: int | None,
) -> int | None:
    """Refuse, before any real tensor exists, a benchmark whose real tensors would cross
    ``max_memory`` (None: the default budget): every design's weights, the input, and each
    design's timed statement in turn (gradients kept, as the real run keeps them), run on
    meta copies of the designs, plus the allocator's margin for unguarded runs. Returns
    the bytes needed, or None when a design cannot run on meta tensors (the real run is
    guarded op by op all the same)."""
    copies = {name: private_copy(m, meta=True) for name, m in modules.items()}
    x = torch.empty(batch, *input_size, device="meta")

    def step() -> None:
        for module in copies.values():
            stmt, names, context = _statement(module, x, train)
            with context:
                eval(stmt, names)

    weights = [t for m in copies.values() for t in [*m.parameters(), *m.buffers()]]
    what = f"benchmarking at batch {batch:,}"
    return rehearse(step, max_memory, what, [weights, x], unguarded=True)


def measure(
    modules: Mapping[str, nn.Module],
    input_size: tuple[int, ...],
    batch: int = 1,
    bench: bool = False,
    train: bool = False,
    min_run_time: float = 0.2,
    progress: bool = False,
    real: Callable[[], Mapping[str, nn.Module]] | None = None,
    max_memory: int | None = None,
    profile: Any = None,
) -> list[Row]:
    """Analyze (and optionally time) named modules on one input; the first is the baseline.

    With a machine ``profile`` (:class:`convzoo.machine.Profile`), each row gets the
    roofline estimate of its forward (``estimated_ms``; nothing runs for it).

    ``modules`` may be on the meta device; ``bench`` then times the ones ``real()`` builds,
    once a rehearsal on meta tensors (:func:`rehearse_bench`) is within ``max_memory``
    (None: the default budget); building them and the first run of each are guarded too.
    """
    total = sum(p.numel() for m in modules.values() for p in m.parameters())
    if total > MAX_PARAMS:
        raise ConvZooError(
            f"the designs have {total:,} parameters together, over the limit of {MAX_PARAMS:,}"
        )
    optimizer = "sgd" if train else None  # the timed step: no optimizer state, input with grad
    reports = {
        n: analyze(m, input_size, batch_size=batch, optimizer=optimizer, input_grad=train)
        for n, m in modules.items()
    }
    shapes = {n: r.output_shape for n, r in reports.items()}
    if len({str(s) for s in shapes.values()}) != 1:
        raise ConvZooError(
            "the designs must produce the same output shape to be compared: "
            + ", ".join(f"{n} {s}" for n, s in shapes.items())
        )
    base_name = next(iter(modules))
    base = reports[base_name].totals
    rows = [
        Row(
            n,
            r.totals.params,
            r.totals.macs,
            _field_size(r),
            r.totals.params / max(base.params, 1),
            r.totals.macs / max(base.macs, 1),
        )
        for n, r in reports.items()
    ]
    if profile is not None:
        from convzoo.latency_view import estimated_seconds

        for row, report in zip(rows, reports.values(), strict=True):
            row.estimated_ms = estimated_seconds(report, profile) * 1e3
    for row, report in zip(rows, reports.values(), strict=True):
        if report.training is not None:
            row.train_macs = report.training.step_macs
            row.step_bytes = report.training.total_bytes
    if bench:
        rehearse_bench(modules, input_size, batch, train, max_memory)
        guard = Guard(max_memory, f"benchmarking at batch {batch:,}")
        with guard:
            if real is not None:
                modules = seeded(real)  # real, seeded weights: the same on every run
            x = torch.randn(batch, *input_size)
        items = list(modules.items())
        if progress:
            from tqdm import tqdm

            items = tqdm(items, desc="benchmarking", unit="design", leave=False)
        times = {}
        for name, module in items:
            times[name] = measure_ms(module, x, False, min_run_time, guard)
            if train:
                row = rows[list(modules).index(name)]
                row.train_ms = measure_ms(module, x, True, min_run_time, guard)
        for row in rows:
            row.forward_ms = times[row.design]
            row.speedup = times[base_name] / times[row.design]
            row.efficiency = row.speedup * row.macs_ratio if row.macs else None
    return rows


def rows_table(rows: list[Row], fmt: str = "table") -> str:
    """Rows as a table (``table``/``markdown``), JSON or CSV, with human units in tables."""
    import csv
    import io
    import json

    from tabulate import tabulate

    if fmt == "json":
        return json.dumps([r.to_dict() for r in rows], indent=2)
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0].to_dict()), lineterminator="\n")
        writer.writeheader()
        writer.writerows(r.to_dict() for r in rows)
        return buffer.getvalue().rstrip("\n")
    timed = rows[0].forward_ms is not None
    headers = ["design", "params", "MACs", "field", "params ratio", "MACs ratio"]
    estimated = rows[0].estimated_ms is not None
    if estimated:
        headers.append("est. ms")
    if timed:
        headers += ["forward ms", "speed-up", "efficiency"]
    if rows[0].train_ms is not None:
        headers += ["fwd+bwd MACs", "step memory", "fwd+bwd ms"]
    table = []
    for r in rows:
        line = [
            r.design,
            f"{r.params:,}",
            f"{r.macs:,}",
            r.receptive_field or "-",
            f"{r.params_ratio:.3f}",
            f"{r.macs_ratio:.3f}",
        ]
        if estimated:
            line.append(f"{r.estimated_ms:.4g}")
        if timed:
            line += [f"{r.forward_ms:.3f}", f"{r.speedup:.2f}x", f"{r.efficiency:.2f}"]
        if r.train_ms is not None:
            line += [f"{r.train_macs:,}", human_bytes(r.step_bytes or 0), f"{r.train_ms:.3f}"]
        table.append(line)
    return tabulate(
        table,
        headers=headers,
        tablefmt="github" if fmt == "markdown" else "simple",
        disable_numparse=True,
    )
