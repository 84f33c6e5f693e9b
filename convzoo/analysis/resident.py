"""The process's resident memory, and handing back what the allocator keeps.

glibc's ``malloc`` keeps freed memory for reuse (below its mmap threshold, up to 32 MiB a
block), so after tensors die the resident set can stay above the tensors alive, and a
later allocation of another size may not reuse it. :class:`convzoo.analysis.guard.Guard`
reads the resident set before each real op and hands the freed pages back
(``malloc_trim``) once they pass :data:`RETAINED`: its budget then bounds the peak RSS.
Elsewhere (no ``/proc``, no glibc) both are no-ops and that retention is outside the budget.
"""

from __future__ import annotations

import os
from collections.abc import Callable

RETAINED = 16 * 2**20
"""Bytes of freed memory the allocator may keep resident before the guard hands it back."""


def _libc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim`` (None on other platforms)."""
    try:
        import ctypes

        trim: Callable[[int], int] = ctypes.CDLL(None).malloc_trim
        return trim
    except Exception:
        return None


def _page_size() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE")
    except Exception:
        return 4096


_PAGE = _page_size()
_TRIM = _libc_trim()


def resident_bytes() -> int | None:
    """The process's resident set size (Linux ``/proc/self/statm``), None where unknown."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE
    except Exception:
        return None


def give_back() -> None:
    """Return the pages of freed memory that glibc's allocator keeps to the system
    (``malloc_trim``; nothing on other platforms)."""
    if _TRIM is not None:
        _TRIM(0)
