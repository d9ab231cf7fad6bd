"""Decide, for one connection, which reads are due at a given monotonic time.

Time is a parameter: the worker passes `now` in, tests pass made-up times. Every request
ticks at fixed rate on the grid `start + k * interval` (k an integer, so there is no drift
however long it runs); requests with the same interval tick together. A worker that falls
behind skips the ticks it missed and counts them — reads never pile up. (A silent device is
backed off by the worker's per-device health, not here: its ticks come and are passed over.)

Requests sharing an interval and a tick index form a cohort with one heap entry, so a tick
costs O(due requests) plus O(log cohorts), not a heap operation per request.
"""

from __future__ import annotations

import heapq
import math
from collections import defaultdict
from collections.abc import Sequence

from .plan import ReadRequest

_Key = tuple[float, int]  # (interval_s, tick index k): the tick at start + k * interval_s
# Connections' grids are spread over at most this long, so a long interval (a legacy 30 min)
# does not delay a connection's first reading by minutes.
MAX_PHASE_SPREAD_S = 5.0
# The most values one phase slot reads at once. Connections whose ticks together stay within
# it share a slot: a wake-up of the process costs far more than a value (about 0.2 ms of CPU
# after an idle stretch on the bench VM), so ten light connections ticking at ten instants
# cost ~1.7x the CPU of two shared slots, while a slot of 500 values still reaches a
# subscriber within a few ms (at 1,000 values in one slot, p99 11 ms; docs/benchmarks.md,
# "Phase slots").
BURST_VALUES = 500


def tick_load(requests: Sequence[ReadRequest]) -> tuple[float, int]:
    """A connection's shortest interval, and the most values it reads in one tick: all of
    them, since every one of its grids starts at the same origin (k = 0, and again at each
    common multiple of the intervals)."""
    return min(r.interval_s for r in requests), sum(len(r.values) for r in requests)


def phases(
    loads: Sequence[tuple[float, int]],
    spread_max_s: float = MAX_PHASE_SPREAD_S,
    burst_values: int = BURST_VALUES,
) -> list[float]:
    """How far after the common start each connection's grid begins.

    `loads` are the connections' `tick_load`s, in order. Consecutive connections share a
    slot while their values together stay within `burst_values` (a connection above it has
    a slot of its own); slot j of m begins j/m of the way through the shortest interval of
    them all (at most `spread_max_s`), one origin per slot, so slot mates tick together and
    a longer interval that is a multiple of the shortest never lands on another slot's
    instant. A heavy load is spread over the interval instead of arriving as one burst; a
    light one wakes the process once per tick, not once per connection. Each grid keeps
    its intervals exact; only its origin moves.
    """
    if not loads:
        return []
    slots: list[int] = []
    slot, filled = 0, 0
    for _, values in loads:
        if filled and filled + values > burst_values:
            slot, filled = slot + 1, 0
        slots.append(slot)
        filled += values
    base = min(spread_max_s, *(shortest for shortest, _ in loads))
    return [base * j / (slot + 1) for j in slots]


class Schedule:
    """Fixed-rate tick state of one connection's read requests."""

    def __init__(self, requests: Sequence[ReadRequest], start: float) -> None:
        self._requests = tuple(requests)
        self._start = start
        self._cohorts: dict[_Key, list[int]] = {}  # member indices, ascending (plan order)
        self._heap: list[tuple[float, float, int]] = []  # (tick time, interval_s, k)
        # Reads skipped because the worker was late: one per request per skipped tick. A
        # plain counter the worker may drain into a metric and set back to 0.
        self.missed_ticks = 0
        first: dict[float, list[int]] = defaultdict(list)
        for i, request in enumerate(self._requests):
            if not request.interval_s > 0:
                raise ValueError(f"interval must be positive, got {request.interval_s!r}")
            first[request.interval_s].append(i)
        for interval_s, members in first.items():  # every grid starts at `start` (k = 0)
            self._join((interval_s, 0), members)

    def due(self, now: float) -> list[ReadRequest]:
        """The requests due at `now`, in plan order; each moves to its next tick after `now`."""
        due: list[int] = []
        moved: dict[float, list[int]] = defaultdict(list)
        next_k: dict[float, int] = {}
        while self._heap and self._heap[0][0] <= now:
            _, interval_s, k = heapq.heappop(self._heap)
            members = self._cohorts.pop((interval_s, k), None)
            if not members:  # stale entry: the cohort already moved on
                continue
            last = self._last_tick_at_or_before(interval_s, now)
            if last > k:  # whole ticks passed unserved: skip them, never catch up in a burst
                skipped = (last - k) * len(members)
                self.missed_ticks += skipped
            due.extend(members)
            moved[interval_s].extend(members)
            next_k[interval_s] = last + 1
        for interval_s, members in moved.items():
            self._join((interval_s, next_k[interval_s]), members)
        due.sort()  # one cohort is already sorted; several are sorted runs (cheap for timsort)
        return [self._requests[i] for i in due]

    def next_due(self) -> float:
        """The earliest tick of any request (inf when there are none)."""
        while self._heap and (self._heap[0][1], self._heap[0][2]) not in self._cohorts:
            heapq.heappop(self._heap)  # drop stale entries so the answer is exact
        return self._heap[0][0] if self._heap else math.inf

    def lateness(self, now: float) -> float:
        """How far `now` is past the earliest pending tick (0 when nothing is overdue)."""
        return max(0.0, now - self.next_due())

    def _join(self, key: _Key, members: list[int]) -> None:
        """Put requests into the cohort `key`, creating it (and its heap entry) if new."""
        cohort = self._cohorts.get(key)
        if cohort is None:
            self._cohorts[key] = sorted(members)
            heapq.heappush(self._heap, (self._at(*key), *key))
        else:
            cohort.extend(members)
            cohort.sort()

    def _at(self, interval_s: float, k: int) -> float:
        # Always computed from k, never accumulated, so 1000 ticks of 0.1 s do not drift.
        return self._start + k * interval_s

    def _last_tick_at_or_before(self, interval_s: float, t: float) -> int:
        k = math.floor((t - self._start) / interval_s)
        # The division can round either way; settle on the grid as `_at` computes it.
        while self._at(interval_s, k + 1) <= t:
            k += 1
        while self._at(interval_s, k) > t:
            k -= 1
        return k
