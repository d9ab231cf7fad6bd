"""Which queued readings go into which API request: order per key with several in flight.

Pure planning over rows the outbox has read (oldest first); the outbox owns the storage.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Entry:
    """One queued reading."""

    id: int
    key: str
    body: str
    idempotency_key: str
    ts_ms: int


def plan_jobs(
    entries: Sequence[Entry], jobs: int, per_job: int, busy: Collection[str]
) -> list[list[Entry]]:
    """Group entries (oldest first) into at most `jobs` requests of at most `per_job`.

    A key belongs to one job only, and once one entry of a key is left behind (its key is
    busy in flight, or its job is full), every later entry of that key is left behind too:
    that is what keeps order per key with several requests in flight. With more than one
    batch of entries waiting, new keys are spread over the jobs so that several batches can
    be in flight at once; with less, they share one job (one request, not several).
    """
    spread = per_job > 1 and len(entries) > per_job
    blocked = set(busy)
    owner: dict[str, list[Entry]] = {}
    planned: list[list[Entry]] = []
    for entry in entries:
        if entry.key in blocked:
            continue
        job = owner.get(entry.key) or _open_job(planned, jobs, per_job, spread)
        if job is None or len(job) >= per_job:
            blocked.add(entry.key)
            continue
        job.append(entry)
        owner[entry.key] = job
    return planned


def _open_job(
    planned: list[list[Entry]], jobs: int, per_job: int, spread: bool
) -> list[Entry] | None:
    """The job a new key joins, or None when every job is full."""
    if len(planned) < jobs and (spread or not planned or len(planned[-1]) >= per_job):
        planned.append([])
        return planned[-1]
    open_jobs = [job for job in planned if len(job) < per_job]
    return min(open_jobs, key=len) if open_jobs else None


def enough(planned: list[list[Entry]], jobs: int, per_job: int) -> bool:
    return len(planned) >= jobs and len(planned[-1]) >= per_job
