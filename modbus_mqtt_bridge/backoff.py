"""Capped, jittered exponential backoff: how long to wait after the n-th failure in a row."""

from __future__ import annotations

import random

BACKOFF_FIRST_S = 1.0
BACKOFF_MAX_S = 60.0


def backoff_delay(
    failures: int, first_s: float = BACKOFF_FIRST_S, cap_s: float = BACKOFF_MAX_S
) -> float:
    """Capped exponential backoff with full jitter in its upper half (never a tight loop)."""
    ceiling = min(cap_s, first_s * 2 ** max(0, failures - 1))
    return random.uniform(ceiling / 2, ceiling)  # noqa: S311  (jitter, not crypto)
