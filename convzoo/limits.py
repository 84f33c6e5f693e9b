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
