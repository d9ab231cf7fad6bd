"""Give the C heap's free pages back to the operating system (glibc's `malloc_trim`).

Python hands freed memory back to malloc, and glibc keeps freed pages inside its heap
mapped for reuse: after the start-up (the config parse, built and dropped) and after each
`/metrics` body (3 MB at 1,000 connections) several MB of free pages stayed in the
bridge's RSS, ~7 MB in scenario D (docs/benchmarks.md). `malloc_trim(0)` returns them to
the system and changes nothing else. Where there is no glibc (musl, macOS, Windows) this
does nothing.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import cache


@cache
def _malloc_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes  # noqa: PLC0415  (only where it can help)

        trim = ctypes.CDLL(None).malloc_trim  # the process's own C library
    except (OSError, AttributeError, ImportError):  # not glibc
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


def release_free_memory() -> None:
    """Return the C heap's free pages to the system (about a millisecond at 100 MB)."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
