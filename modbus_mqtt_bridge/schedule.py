"""Decide, for one connection, which reads are due at a given monotonic time.

Time is a parameter: the worker passes `now` in, tests pass made-up times. Every request
ticks at fixed rate on the grid `start + k * interval` (k an integer, so there is no drift
however long it runs); requests with the same interval tick together. A worker that falls
behind skips the ticks it missed and counts them — reads never pile up. A backed-off device
is deferred without touching its neighbours and resumes on its own grid.

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


class Schedule:
    """Fixed-rate tick state of one connection's read requests."""

    def __init__(self, requests: Sequence[ReadRequest], start: float) -> None:
        self._requests = tuple(requests)
        self._start = start
        self._index = {id(r): i for i, r in enumerate(self._requests)}
        self._by_device: dict[str, list[int]] = defaultdict(list)
        self._key: list[_Key] = []
        self._cohorts: dict[_Key, list[int]] = {}  # member indices, ascending (plan order)
        self._heap: list[tuple[float, float, int]] = []  # (tick time, interval_s, k)
        self._missed: dict[float, int] = defaultdict(int)
        # Reads skipped because the worker was late: one per request per skipped tick. A
        # plain counter the worker may drain into a metric and set back to 0.
        self.missed_ticks = 0
        first: dict[float, list[int]] = defaultdict(list)
        for i, request in enumerate(self._requests):
            if not request.interval_s > 0:
                raise ValueError(f"interval must be positive, got {request.interval_s!r}")
            self._by_device[request.device.name].append(i)
            self._key.append((request.interval_s, 0))
            first[request.interval_s].append(i)
        for interval_s, members in first.items():  # every grid starts at `start` (k = 0)
            self._join((interval_s, 0), members)

    @property
    def requests(self) -> tuple[ReadRequest, ...]:
        return self._requests

    def missed_by_interval(self) -> dict[float, int]:
        """Skipped reads since the start, by poll interval (never reset)."""
        return dict(self._missed)

    def due(self, now: float) -> list[ReadRequest]:
        """The requests due at `now`, in plan order; each moves to its next tick after `now`."""
        due: list[int] = []
        moved: dict[float, list[int]] = defaultdict(list)
        next_k: dict[float, int] = {}
        while self._heap and self._heap[0][0] <= now:
            _, interval_s, k = heapq.heappop(self._heap)
            members = self._cohorts.pop((interval_s, k), None)
            if not members:  # stale entry: the cohort moved or was deferred away
                continue
            last = self._last_tick_at_or_before(interval_s, now)
            if last > k:  # whole ticks passed unserved: skip them, never catch up in a burst
                skipped = (last - k) * len(members)
                self._missed[interval_s] += skipped
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

    def wait_s(self, now: float) -> float:
        """How long the worker may sleep before something is due (0 if it already is)."""
        return max(0.0, self.next_due() - now)

    def lateness(self, now: float) -> float:
        """How far `now` is past the earliest pending tick (0 when nothing is overdue)."""
        return max(0.0, now - self.next_due())

    def next_tick(self, request: ReadRequest) -> float:
        """When this request is next due."""
        interval_s, k = self._key[self._position(request)]
        return self._at(interval_s, k)

    def defer(self, request: ReadRequest, until: float) -> None:
        """Move every request of `request`'s device to its first tick at or after `until`.

        Used to back off an unreachable device: its neighbours on the bus keep their ticks.
        Ticks passed over while deferred are not counted as missed. Never moves a tick earlier.
        """
        for i in self._by_device[request.device.name]:
            self._defer_index(i, until)

    def defer_request(self, request: ReadRequest, until: float) -> None:
        """Like `defer`, for this one request only (e.g. a read the device refuses)."""
        self._defer_index(self._position(request), until)

    def _defer_index(self, i: int, until: float) -> None:
        interval_s, k = key = self._key[i]
        target = self._first_tick_at_or_after(interval_s, until)
        if target <= k:
            return
        members = self._cohorts[key]
        members.remove(i)
        if not members:
            del self._cohorts[key]  # its heap entry goes stale and is skipped when popped
        self._join((interval_s, target), [i])

    def _join(self, key: _Key, members: list[int]) -> None:
        """Put requests into the cohort `key`, creating it (and its heap entry) if new."""
        for i in members:
            self._key[i] = key
        cohort = self._cohorts.get(key)
        if cohort is None:
            self._cohorts[key] = sorted(members)
            heapq.heappush(self._heap, (self._at(*key), *key))
        else:
            cohort.extend(members)
            cohort.sort()

    def _position(self, request: ReadRequest) -> int:
        # By identity: requests are compared by the objects the plan made, and hashing a
        # frozen ReadRequest would hash its whole Device.
        try:
            return self._index[id(request)]
        except KeyError:
            raise KeyError(f"request not in this schedule: {request!r:.80}") from None

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

    def _first_tick_at_or_after(self, interval_s: float, t: float) -> int:
        k = math.ceil((t - self._start) / interval_s)
        while self._at(interval_s, k - 1) >= t:
            k -= 1
        while self._at(interval_s, k) < t:
            k += 1
        return k
