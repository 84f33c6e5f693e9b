"""``convzoo report --latency``: the rows of a report with their bytes moved, arithmetic
intensity and roofline latency (:mod:`convzoo.analysis.latency`), in every format; and the
roofline plot (``--plot``: each layer a point under the machine's roof)."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from pathlib import Path

from tabulate import tabulate

from convzoo.analysis import render
from convzoo.analysis.latency import Estimate, Latency, estimate
from convzoo.analysis.report import LayerStats, Report
from convzoo.machine import MAC_CLASSES, Profile, si

HEADERS = ["name", "type", "MACs", "bytes moved", "MAC/B", "bound", "est. time", "share"]
ALIGN = ("left", "left", "right", "right", "right", "left", "right", "right")
CSV_FIELDS = ["name", "type", "depth", "macs", "bytes_moved", "intensity", "bound", "seconds"]
CAVEAT = "a roofline estimate: no fusion, ideal caches, one op at a time (docs/latency.md)"


def seconds_text(seconds: float) -> str:
    """``0.00123 -> '1.23 ms'`` (3 significant digits; s, ms or us)."""
    for scale, unit in ((1.0, "s"), (1e-3, "ms")):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds * 1e6:.3g} us"


def intensity_text(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def selected(report: Report, sort: str | None, top: int | None, depth: int | None) -> Report:
    """The rows ``--sort``/``--top``/``--depth`` pick, as for the layer table."""
    if sort is not None or top is not None:
        return report.top(top, sort or "macs", depth)
    if depth is not None:
        return dataclasses.replace(report, layers=[r for r in report.layers if r.depth <= depth])
    return report


def _cells(row: LayerStats, one: Estimate, total: float, indent: bool) -> list[str]:
    name = ("  " * row.depth if indent else "") + (row.name or "(model)")
    share = f"{100 * one.seconds / total:.1f}%" if total else "-"
    return [
        name,
        row.type,
        render.human(row.macs),
        render.human_bytes(row.bytes_moved),
        intensity_text(row.intensity),
        one.bound,
        seconds_text(one.seconds),
        share,
    ]


def summary(report: Report, latency: Latency, profile: Profile) -> list[str]:
    """The lines under the table: the total and its parts, the traffic, the machine."""
    t = latency.total
    return [
        f"estimated latency: {seconds_text(t.seconds)} on {profile.name} ({latency.dtype}): "
        f"roofline {seconds_text(t.roofline)} (compute {seconds_text(t.compute)}, memory "
        f"{seconds_text(t.memory)}) + dispatch {seconds_text(t.overhead)}",
        f"bytes moved:       {render.human_bytes(report.totals.bytes_moved)} (a lower bound), "
        f"{intensity_text(report.totals.intensity)} MACs per byte",
        f"machine:           {profile.description}; {profile.source}",
        f"note:              {CAVEAT}",
    ]


def latency_text(
    report: Report,
    profile: Profile,
    fmt: str,
    dtype: str,
    sort: str | None = None,
    top: int | None = None,
    depth: int | None = None,
) -> str:
    """``report --latency`` in ``fmt`` (table, markdown, json, csv)."""
    latency = estimate(report, profile, dtype)
    shown = selected(report, sort, top, depth)
    rows = [(row, latency.layers.get(row.name, Estimate())) for row in shown.layers]
    if fmt == "json":  # the rows shown, as for the layer table; each with its estimate
        lat = {**latency.to_dict(), "layers": [{"name": r.name, **e.to_dict()} for r, e in rows]}
        return json.dumps({**shown.to_dict(), "latency": lat}, indent=2)
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(CSV_FIELDS)
        for row, one in rows:
            writer.writerow(
                [row.name or render.model_name(report), row.type, row.depth, row.macs,
                 row.bytes_moved, row.intensity, one.bound, one.seconds]
            )  # fmt: skip
        return out.getvalue()
    total = latency.total.seconds
    tree = sort is None and top is None
    cells = [_cells(row, one, total, tree) for row, one in rows]
    table = tabulate(
        cells, headers=HEADERS, tablefmt=render.FORMATS[fmt], colalign=ALIGN,
        disable_numparse=True,
    )  # fmt: skip
    return "\n".join([table, "", *summary(report, latency, profile)])


def roofline_points(report: Report, latency: Latency) -> list[tuple[str, str, float, float]]:
    """``(name, op class, MACs per byte, attained MAC/s)`` of each leaf row with MACs, its
    class the one of most MACs in its subtree."""
    names = [row.name for row in report.layers]
    points = []
    for row in report.layers:
        leaf = not any(n.startswith(row.name + ".") for n in names if row.name)
        one = latency.layers.get(row.name)
        if not row.name or not leaf or one is None or not row.macs or not row.bytes_moved:
            continue
        by_class: dict[str, int] = {}
        for o in report.operators:
            if o.module == row.name or o.module.startswith(row.name + "."):
                by_class[o.op_class] = by_class.get(o.op_class, 0) + o.macs
        op_class = max(by_class, key=by_class.__getitem__) if by_class else "matmul"
        points.append((row.name, op_class, row.macs / row.bytes_moved, one.attained or 0.0))
    return points


def plot_roofline(
    report: Report, profile: Profile, dtype: str, path: str | Path, title: str
) -> Path:
    """Each leaf layer with MACs at its intensity (x, MACs per byte) and estimated attained
    throughput (y, MAC/s), under the machine's roofs: bandwidth x intensity, capped by each
    MAC class's rate. Log-log axes."""
    from convzoo.plots import _pyplot, save_titled

    plt = _pyplot()
    latency = estimate(report, profile, dtype)
    points = roofline_points(report, latency)
    fig, ax = plt.subplots(figsize=(7.5, 5), layout="constrained")
    xs = [p[2] for p in points] or [1.0]
    lo, hi = min(xs) / 4, max(xs) * 4
    colours = {"conv": "#3b7dd8", "depthwise_conv": "#d8543b", "matmul": "#3ba858"}
    roofs: dict[float, list[str]] = {}  # a datasheet's classes share one roof
    for op_class in MAC_CLASSES:
        roofs.setdefault(profile.rate(op_class, dtype), []).append(op_class)
    for rate, classes in roofs.items():
        knee = rate / profile.bandwidth
        grid = [lo, *([knee] if lo < knee < hi else []), hi]
        ax.plot(grid, [min(rate, x * profile.bandwidth) for x in grid],
                color=colours[classes[0]] if len(classes) == 1 else "#555555", linewidth=1.2,
                label=f"roof: {', '.join(classes)} ({si(rate, 'MAC/s')})")  # fmt: skip
    for op_class in MAC_CLASSES:
        picked = [p for p in points if p[1] == op_class]
        if picked:
            ax.scatter([p[2] for p in picked], [p[3] for p in picked], s=14,
                       color=colours[op_class], alpha=0.75, label=f"{op_class} layers")  # fmt: skip
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (MACs per byte moved)")
    ax.set_ylabel("attained throughput (MAC/s, estimated)")
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(True, which="both", alpha=0.2)
    caption = f"{title}\nroofline on {profile.name} ({dtype}): {len(points)} layers with MACs"
    return save_titled(fig, path, caption, 7.5, fontsize=9)


def estimated_seconds(report: Report, profile: Profile, dtype: str = "float32") -> float:
    """The whole model's estimate (for ``compare``'s column and the benchmark)."""
    return estimate(report, profile, dtype).total.seconds
