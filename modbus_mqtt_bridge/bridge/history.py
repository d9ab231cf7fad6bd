"""The status page's history: the last readings of each register, in typed ring arrays.

`History` is one register's ring of values; `Stamps` the ring of their timestamps, shared by
the registers of one request (read together, stamped together). `DeviceBoard` (board.py)
keeps one `History` per register and decides which rings share their `Stamps`.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from ..readings import Reading, Value


def _exact(ring: array[Any]) -> array[Any]:
    """A full ring without the slack appending left (~9 %: 88 bytes at 120 doubles)."""
    return array(ring.typecode, ring)


class Stamps:
    """The timestamps of one or more `History` rings that are always added to together.

    The registers of one request are read together, so their readings share a timestamp:
    their rings share one array of timestamps (8 bytes a reading once, not once a register).
    A ring of its own holds its own `Stamps`.
    """

    __slots__ = ("_size", "count", "members", "ts")

    def __init__(self, size: int, members: int = 1) -> None:
        self._size = size
        self.ts = array("q")  # ms since the epoch
        self.count = 0  # timestamps pushed so far; the next one goes to slot count % size
        self.members = members  # the rings that share these timestamps

    def push(self, ts_ms: int) -> None:
        if len(self.ts) < self._size:
            self.ts.append(ts_ms)
            if len(self.ts) == self._size:
                self.ts = _exact(self.ts)
        else:
            self.ts[self.count % self._size] = ts_ms
        self.count += 1

    def copy(self) -> Stamps:
        """The same timestamps, for one ring alone."""
        own = Stamps(self._size)
        own.ts = array("q", self.ts)
        own.count = self.count
        return own


class History:
    """The last `size` readings of one register, as typed ring arrays (16 bytes a reading
    alone, 8 plus a share of the timestamps when its request's registers share them).

    A deque of (ts, value) tuples costs about 120 bytes a reading; at 20,000 registers x 120
    readings that is ~300 MB, the arrays ~40 MB, ~20 MB with the timestamps shared.
    Numbers and booleans are kept; a string register has no sparkline, so its history stays
    empty.
    """

    __slots__ = ("_size", "_values", "kind", "stamps")

    def __init__(self, size: int, stamps: Stamps | None = None) -> None:
        self._size = size
        self._values = array("d")
        self.stamps = Stamps(size) if stamps is None else stamps
        self.kind = "number"  # "bool" when the register's values are booleans

    def add(self, ts_ms: int, value: Value) -> None:
        """One reading, on a ring with timestamps of its own."""
        if type(value) is not float and isinstance(value, str):
            return
        self.put(value)
        self.stamps.push(ts_ms)

    def put(self, value: Value) -> None:
        """The value of the reading whose timestamp is pushed next (not a string)."""
        if type(value) is not float and isinstance(value, bool):  # floats skip the check
            self.kind = "bool"
        if len(self._values) < self._size:
            self._values.append(float(value))
            if len(self._values) == self._size:
                self._values = _exact(self._values)
        else:
            self._values[self.stamps.count % self._size] = float(value)

    def __len__(self) -> int:
        return len(self._values)

    def since(self, since_ms: int | None = None) -> Iterator[tuple[int, Value]]:
        """Oldest first; only readings newer than since_ms when given."""
        count, stamps = len(self._values), self.stamps.ts
        first = self.stamps.count % self._size if count == self._size else 0
        for i in range(count):
            slot = (first + i) % count
            ts = stamps[slot]
            if since_ms is None or ts > since_ms:
                value = self._values[slot]
                yield ts, (bool(value) if self.kind == "bool" else value)


def whole_group(
    stamps: Stamps, histories: Mapping[str, History], readings: Sequence[Reading], ts_ms: int
) -> bool:
    """Are these readings one of each ring sharing `stamps`, all at ts_ms, none a string?"""
    if stamps.members != len(readings):
        return False
    if len({reading.register.name for reading in readings}) != len(readings):
        return False  # each member once (validation refuses duplicate names anyway)
    for reading in readings:
        history = histories.get(reading.register.name)
        if history is None or history.stamps is not stamps or reading.ts_ms != ts_ms:
            return False
        if type(reading.value) is not float and isinstance(reading.value, str):
            return False
    return True


def go_alone(stamps: Stamps, histories: Mapping[str, History]) -> None:
    """Every ring sharing `stamps` gets a copy of its own."""
    for history in histories.values():
        if history.stamps is stamps:
            history.stamps = stamps.copy()
