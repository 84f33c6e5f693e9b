"""Documented resource limits: every input that enters convzoo is checked against these.

One place for the numbers, so the README, the CLI, the builder and the analyzer agree.
"""

from __future__ import annotations

GiB = 2**30

MEMORY_BUDGET = 4 * GiB
"""Bytes of real tensors that real-tensor work (the analyzer's fallback, ``rf --plot``,
``compare --bench``) may allocate before it is refused; raise it with ``max_memory=`` in
Python or ``--max-memory`` on the command line."""

MAX_PARAMS = 2_000_000_000
"""Parameters a model built from a config may have, counted on meta tensors first."""


def _human(n: int) -> str:
    for unit, size in (("GiB", GiB), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


def check_memory(needed: int, budget: int | None, what: str) -> None:
    """Refuse real-tensor work estimated at ``needed`` bytes above ``budget`` (None: the
    default :data:`MEMORY_BUDGET`) with a one-line :class:`~convzoo.errors.ConvZooError`."""
    from convzoo.errors import ConvZooError

    limit = MEMORY_BUDGET if budget is None else budget
    if needed > limit:
        raise ConvZooError(
            f"{what} needs about {_human(needed)} of real tensors, over the memory budget of "
            f"{_human(limit)}; raise it with max_memory= (Python) or --max-memory (CLI)"
        )
