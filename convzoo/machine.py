"""Machine profiles: what the latency model knows of a machine, as data (no torch here).

A :class:`Profile` holds a memory bandwidth (bytes/s), a dispatch overhead per op (s) and
throughputs: ``rates`` per op class (MAC/s for ``conv``, ``depthwise_conv``, ``matmul``;
element-wise ops/s for ``elementwise`` and ``reduction``), measured in one dtype by
``convzoo machine`` (:mod:`convzoo.machine_bench`), and/or ``peak`` FLOP/s by dtype from a
datasheet (a MAC is :data:`~convzoo.analysis.formulas.FLOPS_PER_MAC` FLOPs, an element-wise
op one). Profiles come from two places: the ones shipped with convzoo
(``convzoo/profiles/*.json``, each naming its source) and the ones ``convzoo machine``
measured, in the user's cache directory (``$XDG_CACHE_HOME/convzoo/machines``, by default
``~/.cache/convzoo/machines``). A name not found there may be a path to a profile's JSON.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

from convzoo.errors import ConvZooError, render

SHIPPED: Final = Path(__file__).with_name("profiles")
LOCAL: Final = "local"
"""The name ``convzoo machine`` saves this machine's profile under (and ``--latency`` reads
without ``--machine``)."""
MAC_CLASSES: Final = ("conv", "depthwise_conv", "matmul")
RATE_CLASSES: Final = (*MAC_CLASSES, "elementwise", "reduction")
"""The op classes a profile has a throughput for (:mod:`convzoo.analysis.traffic`)."""
FLOPS_PER_MAC: Final = 2  # formulas.FLOPS_PER_MAC, without importing the analysis (torch)


@dataclass(frozen=True)
class Profile:
    """One machine: see the module docstring for the units."""

    name: str
    description: str
    source: str
    device: str
    bandwidth: float
    overhead: float
    rates: dict[str, float] = field(default_factory=dict)
    dtype: str = "float32"
    peak: dict[str, float] = field(default_factory=dict)
    threads: int | None = None
    notes: str = ""

    def rate(self, op_class: str, dtype: str) -> float:
        """Attainable throughput of ``op_class`` in ``dtype``: MAC/s for a MAC class,
        element-wise ops/s otherwise; measured where the profile has it, else the peak."""
        if dtype == self.dtype and op_class in self.rates:
            return self.rates[op_class]
        if dtype in self.peak:
            flops = self.peak[dtype]
            return flops / FLOPS_PER_MAC if op_class in MAC_CLASSES else flops
        known = sorted({*self.peak, *([self.dtype] if self.rates else [])})
        raise ConvZooError(
            f"machine profile {self.name} has no throughput for {dtype} (it has "
            f"{', '.join(known) or 'none'})"
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any, where: str) -> Profile:
        """A profile from its JSON form; a one-line error naming ``where`` otherwise."""
        if not isinstance(data, dict):
            raise ConvZooError(f"{where}: a machine profile is a JSON object")
        try:
            profile = cls(**data)
        except TypeError as exc:
            raise ConvZooError(f"{where}: not a machine profile ({exc})") from None
        for key in ("rates", "peak"):
            if not isinstance(getattr(profile, key), dict):
                raise ConvZooError(f"{where}: {key} must be an object of numbers")
        numbers = {"bandwidth": profile.bandwidth, **profile.rates, **profile.peak}
        for key, value in numbers.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ConvZooError(f"{where}: {key} must be a positive number, got {render(value)}")
        if not isinstance(profile.overhead, (int, float)) or profile.overhead < 0:
            raise ConvZooError(f"{where}: overhead must be >= 0 seconds")
        unknown = sorted(set(profile.rates) - set(RATE_CLASSES))
        if unknown:
            raise ConvZooError(f"{where}: unknown op class {unknown[0]!r} in rates")
        if not profile.rates and not profile.peak:
            raise ConvZooError(f"{where}: a machine profile needs rates or peak")
        return profile


def cache_dir() -> Path:
    """Where measured profiles live: ``$XDG_CACHE_HOME/convzoo/machines`` (default
    ``~/.cache/convzoo/machines``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "convzoo" / "machines"


def _files() -> dict[str, Path]:
    """Every profile's file by name: shipped ones, then measured ones (which shadow them)."""
    found = {p.stem: p for p in sorted(SHIPPED.glob("*.json"))}
    cached = cache_dir()
    if cached.is_dir():
        found.update({p.stem: p for p in sorted(cached.glob("*.json"))})
    return found


def read(path: Path) -> Profile:
    """The profile in the JSON file ``path``."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ConvZooError(f"cannot read machine profile {render(str(path))}: {exc}") from None
    return Profile.from_dict(data, str(path))


def names() -> list[str]:
    """The names of every profile: shipped and measured."""
    return sorted(_files())


def load(name: str) -> Profile:
    """The profile called ``name`` (shipped or measured), or the one in the file ``name``
    (a path ending in ``.json``); a one-line error listing the known names otherwise."""
    files = _files()
    if name in files:
        return read(files[name])
    if name.endswith(".json") and Path(name).is_file():
        return read(Path(name))
    if name == LOCAL:
        raise ConvZooError(
            "no profile of this machine yet: run `convzoo machine` (a few seconds), or "
            f"choose one with --machine ({', '.join(sorted(files))})"
        )
    from convzoo.registry import close_matches

    hints = close_matches(name, sorted(files))
    hint = f"; did you mean {', '.join(map(repr, hints))}?" if hints else ""
    raise ConvZooError(
        f"unknown machine {render(name)}{hint} (known: {', '.join(sorted(files))}; or a "
        "profile's .json path)"
    )


def save(profile: Profile, path: Path | None = None) -> Path:
    """Write ``profile`` as JSON to ``path`` (default: the cache, under its name)."""
    if path is None:
        path = cache_dir() / f"{profile.name}.json"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(profile.to_dict(), indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        what = f"cannot write the machine profile to {render(str(path))}"
        raise ConvZooError(f"{what}: {exc}") from None
    return path


def si(value: float, unit: str) -> str:
    """``3.35e12, 'B/s' -> '3.35 TB/s'`` (decimal prefixes, 3 significant digits)."""
    for scale, prefix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")):
        if value >= scale:
            return f"{value / scale:.3g} {prefix}{unit}"
    return f"{value:.3g} {unit}"


def list_table() -> str:
    """``convzoo machine --list``: one line per profile (name, kind, description)."""
    from tabulate import tabulate

    rows = []
    for name, path in _files().items():
        profile = read(path)
        kind = "measured" if profile.rates else "datasheet"
        rows.append([name, kind, profile.device, profile.description])
    headers = ["name", "kind", "device", "description"]
    return tabulate(rows, headers=headers, tablefmt="simple", disable_numparse=True)


def show_text(profile: Profile) -> str:
    """``convzoo machine --show NAME``: the profile's figures, one per line."""
    lines = [
        ("machine", f"{profile.name}: {profile.description} ({profile.device})"),
        ("source", profile.source),
        ("bandwidth", si(profile.bandwidth, "B/s")),
        ("overhead", f"{profile.overhead * 1e6:.3g} us per op"),
    ]
    if profile.threads is not None:
        lines.append(("threads", str(profile.threads)))
    for op_class, rate in profile.rates.items():
        unit = "MAC/s" if op_class in MAC_CLASSES else "op/s"
        lines.append((op_class, f"{si(rate, unit)} ({profile.dtype}, measured)"))
    for dtype, flops in profile.peak.items():
        lines.append((f"peak {dtype}", si(flops, "FLOP/s")))
    if profile.notes:
        lines.append(("notes", profile.notes))
    width = max(len(label) for label, _ in lines) + 2
    return "\n".join(f"{label + ':':<{width}}{value}" for label, value in lines)
