"""Documented resource limits: every input that enters convzoo is checked against these.

One place for the numbers, so the docs (the table of docs/limits.md is made by
:func:`limits_table` and tested against it), the CLI, the builder and the analyzer agree.
"""

from __future__ import annotations

import math
import re

KiB, MiB, GiB, TiB = 2**10, 2**20, 2**30, 2**40

MEMORY_BUDGET = 4 * GiB
"""Bytes of real tensors that real-tensor work (the analyzer's fallback and any real tensor
a forward makes on the meta path, ``rf --plot``, ``compare --bench/--train``,
``report --check-fvcore``) may hold at once, checked before each allocation (kernel
workspaces included); raise it with ``max_memory=`` in Python or ``--max-memory``."""

MEMORY_SLACK = 64 * MiB
"""How far the peak resident memory of real-tensor work may go above the process's own peak
before it plus the budget: kernel workspaces without a rule, allocator bookkeeping, Python
objects (see :mod:`convzoo.analysis.guard`; measured with glibc on 2 cores)."""

MAX_PARAMS = 2_000_000_000
"""Parameters a model built from a config or a layer from :func:`convzoo.create` may have,
counted on meta tensors first (before anything real is allocated)."""

MAX_CONFIG_BYTES = 1 * MiB
"""Size of a config file; checked (on a regular file only) before it is read."""

MAX_YAML_NODES = 20_000
"""YAML nodes (scalars, lists, mappings; an alias counts as one) in one config file."""

MAX_SIZE = 2**20
"""Largest int accepted for any size or count: channels, kernel, stride, every input
dimension, ``batch_size`` / ``--batch``, ``--kernel``, ``--size``, and any int keyword of
a layer (in magnitude, ints inside a list keyword included), in configs, ``--kwargs`` and
:func:`convzoo.create` alike."""

MAX_INPUT_ELEMENTS = 2**40
"""Elements of one input tensor, batch included (analysis runs on meta tensors)."""

MAX_REPEAT = 1000
"""``repeat:`` of one layer spec."""

MAX_DEPTH = 32
"""Nesting of sequential / residual / parallel / block specs."""

MAX_LAYERS = 10_000
"""Layers a config expands to, repeats and block references included."""

MAX_NAME_CHARS = 64
"""Characters of a name: the config's ``name``, layer, block and design names."""

MAX_TEXT_CHARS = 10_000
"""Characters of a config's ``description`` or ``source``."""

MAX_SAMPLES = 10_000
"""``rf --samples``: random inputs averaged for the effective receptive field."""

LIMITS: dict[str, tuple[int, str]] = {
    "MEMORY_BUDGET": (MEMORY_BUDGET, "bytes of real tensors (raise with --max-memory)"),
    "MAX_PARAMS": (MAX_PARAMS, "parameters of one model, counted on meta tensors first"),
    "MAX_CONFIG_BYTES": (MAX_CONFIG_BYTES, "bytes of a config file (regular files only)"),
    "MAX_YAML_NODES": (MAX_YAML_NODES, "YAML nodes in one config file"),
    "MAX_SIZE": (MAX_SIZE, "any size or count: channels, kernel, input sides, batch, layer ints"),
    "MAX_INPUT_ELEMENTS": (MAX_INPUT_ELEMENTS, "elements of one input, batch included"),
    "MAX_REPEAT": (MAX_REPEAT, "repeat: of one layer spec"),
    "MAX_DEPTH": (MAX_DEPTH, "nesting of sequential/residual/parallel/block specs"),
    "MAX_LAYERS": (MAX_LAYERS, "layers a config expands to"),
    "MAX_NAME_CHARS": (MAX_NAME_CHARS, "characters of a config, layer, block or design name"),
    "MAX_TEXT_CHARS": (MAX_TEXT_CHARS, "characters of description: or source:"),
    "MAX_SAMPLES": (MAX_SAMPLES, "rf --samples"),
}
"""Every limit by name: (value, what it bounds); the docs' table is made from it."""


_BYTE_LIMITS = {"MEMORY_BUDGET", "MAX_CONFIG_BYTES"}


def limits_table() -> str:
    """The markdown table of :data:`LIMITS` that docs/limits.md shows."""
    lines = ["| limit | value | bounds |", "|---|---|---|"]
    for name, (value, what) in LIMITS.items():
        amount = f"{value:,} ({human(value)})" if name in _BYTE_LIMITS else f"{value:,}"
        lines.append(f"| `{name}` | {amount} | {what} |")
    return "\n".join(lines)


def human(n: int) -> str:
    """``4294967296`` -> ``4.0 GiB``."""
    for unit, size in (("TiB", TiB), ("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


_UNITS = {"": 1, "b": 1, "kib": KiB, "mib": MiB, "gib": GiB, "tib": TiB}
_UNITS.update({"kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12})
_BYTES = re.compile(r"(\d{1,15})(?:\.(\d{1,6}))?\s?([a-z]{0,3})")


def parse_bytes(text: str) -> int:
    """``"8GiB"`` -> 8589934592: an amount of memory, strictly parsed.

    Accepts plain bytes (``"1048576"``) or a number with a unit: B, KiB, MiB, GiB, TiB
    (powers of 2) or kB, MB, GB, TB (powers of 10), case-insensitive; anything else, a
    zero or a value above 1024 TiB, is a one-line :class:`~convzoo.errors.ConvZooError`.
    """
    from convzoo.errors import ConvZooError, render

    match = _BYTES.fullmatch(text.strip().lower()) if len(text) <= 40 else None
    unit = match and _UNITS.get(match.group(3))
    if not match or unit is None:
        raise ConvZooError(
            f"expected an amount of memory like 8GiB, 512MiB or 1000000 (bytes), got {render(text)}"
        )
    whole, fraction = match.group(1), match.group(2) or ""
    value = (int(whole + fraction) * unit) // 10 ** len(fraction)
    if not 1 <= value <= 1024 * TiB:
        raise ConvZooError(f"expected an amount of memory from 1 B to 1024 TiB, got {render(text)}")
    return value


def check_memory(needed: int, budget: int | None, what: str) -> None:
    """Refuse real-tensor work estimated at ``needed`` bytes above ``budget`` (None: the
    default :data:`MEMORY_BUDGET`) with a one-line
    :class:`~convzoo.errors.MemoryBudgetError` (a ``ConvZooError``)."""
    from convzoo.errors import MemoryBudgetError

    limit = MEMORY_BUDGET if budget is None else budget
    if needed > limit:
        raise MemoryBudgetError(
            f"{what} needs about {human(needed)} of real tensors, over the memory budget of "
            f"{human(limit)}; raise it with max_memory= (Python) or --max-memory (CLI)"
        )


def check_size(value: object, what: str, maximum: int = MAX_SIZE, minimum: int = 1) -> int:
    """``value`` as an int from ``minimum`` to ``maximum`` (bools refused), else a one-line
    :class:`~convzoo.errors.ConvZooError` naming ``what``."""
    from convzoo.errors import ConvZooError, render

    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise ConvZooError(
            f"{what} must be an int from {minimum:,} to {maximum:,}, got {render(value)}"
        )
    return value


def check_int(value: int) -> int:
    """An int keyword of a layer (or an int inside one): at most :data:`MAX_SIZE` in
    magnitude, else a :class:`~convzoo.errors.ConvZooError` its caller locates."""
    from convzoo.errors import ConvZooError, render

    if not -MAX_SIZE <= value <= MAX_SIZE:
        raise ConvZooError(
            f"expected an int of at most {MAX_SIZE:,} in magnitude (MAX_SIZE), "
            f"found {render(value)}"
        )
    return value


def check_input(size: tuple[int, ...], batch: int = 1) -> tuple[int, ...]:
    """``size`` (an input's ``(C, H, W)``-like sizes, positive ints, batch excluded) if each
    is at most :data:`MAX_SIZE` and ``batch`` such inputs have at most
    :data:`MAX_INPUT_ELEMENTS` elements, else a one-line :class:`~convzoo.errors.ConvZooError`.
    The one check of an input's size: configs, ``--input`` and ``analyze`` use it."""
    from convzoo.errors import ConvZooError, render

    if max(size, default=1) > MAX_SIZE:
        raise ConvZooError(
            f"input size {render(size)} has a size over the limit of {MAX_SIZE:,} (MAX_SIZE)"
        )
    elements = batch * math.prod(size)
    if elements > MAX_INPUT_ELEMENTS:
        shape = "x".join(str(v) for v in (batch, *size))
        raise ConvZooError(
            f"an input of {shape} has {elements:,} elements (batch included), over the limit "
            f"of {MAX_INPUT_ELEMENTS:,} (MAX_INPUT_ELEMENTS)"
        )
    return size


def check_params(total: int, what: str) -> None:
    """Refuse ``total`` parameters above :data:`MAX_PARAMS` (counted on meta tensors, before
    anything real exists): ``what`` starts the message (``"conv has"``)."""
    from convzoo.errors import ConvZooError

    if total > MAX_PARAMS:
        raise ConvZooError(
            f"{what} {total:,} parameters, over the limit of {MAX_PARAMS:,} (MAX_PARAMS)"
        )
