"""Count what reaches the broker's subscribers: `mosquitto_sub -F '%U %t %p'` read by a thread.

The C client does the MQTT work, so counting costs the benchmark process little: it reads
the pipe in chunks and records, per chunk, when it arrived and how many reading messages
(and payload bytes) it held, and per reading when mosquitto_sub received it (`%U`) and its
`ts` (the time the bridge read the value, SPEC 3): latency and completeness come from
those two. Status topics are not readings and are not counted.

The completeness figures (bench/run.py `measure`) come out of it:
- by arrival: the readings that reached the subscriber in each 1-second window;
- by read time: the readings whose `ts` falls in each 1-second window (did the bridge read
  and publish every value every second, however late the message arrived);
- by tick (the figure the targets use): each device's readings of each of its ticks that
  arrived within 1 s (`tick_counts`).
The windows start at the quietest phase of the cycle (see `quiet_phase`).
"""

from __future__ import annotations

import bisect
import calendar
import math
import os
import threading
import time
from array import array
from dataclasses import dataclass
from pathlib import Path

from procs import Child, Procs

VALUE_PREFIX = b"bench/"
FLOOR_PREFIX = b"floor/"
PROBE_PREFIX = b"probe/"
PROBE_TOPIC = "probe/ready"
_TS = b'"ts":"'


@dataclass
class Chunk:
    t: float  # time.monotonic() when read
    values: int  # bench/… reading messages
    value_bytes: int  # their payload bytes
    floor: int  # floor/… messages


class Arrivals:
    def __init__(self, procs: Procs, port: int, log: Path) -> None:
        self.child: Child = procs.spawn(
            "mosquitto_sub",
            [
                "mosquitto_sub",
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-q",
                "0",
                "-i",
                "bench-counter",
                "-F",
                "%U %t %p",  # %U: when mosquitto_sub received it (epoch, ns)
                "-t",
                "bench/#",
                "-t",
                "floor/#",
                "-t",
                "probe/#",
            ],
            log,
            stdout_pipe=True,
        )
        self.chunks: list[Chunk] = []
        self._times: list[float] = []
        # per reading: arrival (monotonic) and read time (`ts`, moved to the monotonic clock)
        self.arrived = array("d")
        self.read = array("d")
        self.device = array("i")  # per reading: its device (an index, from the topic)
        self._devices: dict[bytes, int] = {}
        self.wall_minus_mono = time.time() - time.monotonic()
        self._seconds: dict[bytes, int] = {}
        self.probe_seen = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, name="arrivals", daemon=True)
        self._thread.start()

    def _read_time(self, line: bytes) -> float | None:
        i = line.find(_TS)
        if i < 0:
            return None
        i += len(_TS)
        second = line[i : i + 19]  # 2025-07-08T16:00:00 .123Z
        epoch = self._seconds.get(second)
        if epoch is None:
            try:
                parsed = time.strptime(second.decode(), "%Y-%m-%dT%H:%M:%S")
            except (ValueError, UnicodeDecodeError):
                return None
            epoch = self._seconds[second] = calendar.timegm(parsed)
        return epoch + int(line[i + 20 : i + 23]) / 1000 - self.wall_minus_mono

    def _received(self, stamp: bytes, fallback: float) -> float:
        """mosquitto_sub's receive time (%U) on the monotonic clock: not delayed by the pipe
        or by this thread waiting for a core, as the chunk's read time is."""
        try:
            return float(stamp) - self.wall_minus_mono
        except ValueError:
            return fallback

    def _read(self) -> None:
        assert self.child.proc.stdout is not None
        fd = self.child.proc.stdout.fileno()
        rest = b""
        while True:
            try:
                data = os.read(fd, 1 << 16)
            except OSError:
                return
            if not data:
                return
            now = time.monotonic()
            lines = (rest + data).split(b"\n")
            rest = lines.pop()
            values = value_bytes = floor = 0
            reads = []
            devices = []
            got = []
            for printed in lines:
                stamp, _, line = printed.partition(b" ")
                topic, _, payload = line.partition(b" ")
                if topic.startswith(VALUE_PREFIX):
                    if topic.endswith(b"/status"):
                        continue
                    values += 1
                    value_bytes += len(payload)
                    read = self._read_time(payload)
                    if read is not None:
                        reads.append(read)
                        got.append(self._received(stamp, now))
                        name = topic.split(b"/", 2)[1]
                        devices.append(self._devices.setdefault(name, len(self._devices)))
                elif topic.startswith(FLOOR_PREFIX):
                    floor += 1
                elif topic.startswith(PROBE_PREFIX):
                    self.probe_seen.set()
            if values or floor:
                with self._lock:
                    self.chunks.append(Chunk(now, values, value_bytes, floor))
                    self._times.append(now)
                    self.read.extend(reads)
                    self.device.extend(devices)
                    self.arrived.extend(got)

    def between(self, t0: float, t1: float) -> list[Chunk]:
        with self._lock:
            i = bisect.bisect_left(self._times, t0)
            j = bisect.bisect_left(self._times, t1)
            return self.chunks[i:j]

    def values_between(self, t0: float, t1: float) -> tuple[int, int]:
        """(reading messages, their payload bytes) that arrived in [t0, t1)."""
        chunks = self.between(t0, t1)
        return sum(c.values for c in chunks), sum(c.value_bytes for c in chunks)

    def floor_between(self, t0: float, t1: float) -> int:
        return sum(c.floor for c in self.between(t0, t1))

    def last_value_time(self) -> float | None:
        with self._lock:
            for chunk in reversed(self.chunks):
                if chunk.values:
                    return chunk.t
        return None

    def readings_since(self, t0: float) -> tuple[list[float], list[float]]:
        """(arrival times, read times) of the readings that arrived from t0 on."""
        with self._lock:
            i = bisect.bisect_left(self.arrived, t0)
            return list(self.arrived[i:]), list(self.read[i:])

    def read_times_by_device(self, t0: float, t1: float) -> dict[int, list[float]]:
        """Each device's distinct read times (`ts`) within [t0, t1)."""
        out: dict[int, set[float]] = {}
        with self._lock:
            for read, device in zip(self.read, self.device, strict=True):
                if t0 <= read < t1:
                    out.setdefault(device, set()).add(read)
        return {d: sorted(ts) for d, ts in out.items()}


def on_time_reads(by_device: dict[int, list[float]], interval: float = 1.0) -> dict[int, float]:
    """Per device, one read time at which it was on its own grid (as in read_lateness)."""
    out: dict[int, float] = {}
    for d, times in by_device.items():
        if len(times) < 3:
            continue
        base = times[0]
        offsets = sorted(((x - base + interval / 2) % interval) - interval / 2 for x in times)
        out[d] = base + offsets[1]
    return out


def tick_counts(
    arrivals: Arrivals, t0: float, n: int, budget_s: float, interval: float = 1.0
) -> list[int]:
    """Readings of each of the n ticks from t0 that reached the subscriber within budget_s.

    Tick k of a device is its read due at its first on-grid time at or after t0, plus k
    intervals; a reading belongs to the tick its `ts` is nearest to (a late read, or the
    later requests of one tick, stay in their tick as long as they are under half an
    interval late). So a read a few milliseconds either side of a window edge is not
    counted in the wrong second, and a reading lost or delivered late lowers its tick."""
    anchors = on_time_reads(arrivals.read_times_by_device(t0, t0 + n * interval), interval)
    first = {d: a + math.ceil((t0 - a) / interval) * interval for d, a in anchors.items()}
    counts = [0] * n
    with arrivals._lock:
        rows = zip(arrivals.arrived, arrivals.read, arrivals.device, strict=True)
        for arrived, read, device in rows:
            start = first.get(device)
            if start is None or arrived - read > budget_s:
                continue
            k = round((read - start) / interval)
            if 0 <= k < n:
                counts[k] += 1
    return counts


def read_lateness(by_device: dict[int, list[float]], interval: float = 1.0) -> list[float]:
    """How late each read was against its device's own grid, from the `ts` alone.

    A device is read every `interval` at a fixed phase; each read's offset within the
    interval, taken against the device's earliest-but-one (an outlier-proof "on time"),
    is its lateness plus round-trip jitter. Reads more than half an interval late would
    wrap round and count as early: the schedule skips a tick that late anyway."""
    out: list[float] = []
    for times in by_device.values():
        if len(times) < 3:
            continue
        base = times[0]
        offsets = sorted(((x - base + interval / 2) % interval) - interval / 2 for x in times)
        on_time = offsets[1]
        out.extend(max(0.0, x - on_time) for x in offsets)
    return out


# -- windows ------------------------------------------------------------------------------


def quiet_phase(times: list[float], t0: float, bins: int = 100) -> float:
    """The offset within the second (10 ms resolution) where the fewest events fall.

    The bridge reads and publishes in a burst after each 1 s tick. A window boundary in the
    middle of a burst would give one window too little and the next too much, so windows
    start at the quietest phase of the cycle: between two bursts.
    """
    folded = [0] * bins
    for t in times:
        folded[int(((t - t0) % 1.0) * bins) % bins] += 1
    return _quietest(folded) / bins


def window_counts(times: list[float], start: float, n: int) -> list[int]:
    """Events in each of the n 1-second windows from start."""
    counts = [0] * n
    for t in times:
        k = int((t - start) // 1.0)
        if 0 <= k < n:
            counts[k] += 1
    return counts


def arrival_times(arrivals: Arrivals, t0: float, t1: float) -> list[float]:
    """One time per reading that arrived in [t0, t1) (chunk granularity)."""
    out: list[float] = []
    for c in arrivals.between(t0, t1):
        out.extend([c.t] * c.values)
    return out


def _quietest(folded: list[int]) -> int:
    """The middle of the longest (circular) run of bins holding the fewest events."""
    low = min(folded)
    n = len(folded)
    if all(c == low for c in folded):
        return 0
    start = next(i for i in range(n) if folded[i] != low)
    best_start, best_len = 0, 0
    run_start: int | None = None
    run_len = 0
    for step in range(1, n + 1):
        i = (start + step) % n
        if folded[i] == low:
            if run_start is None:
                run_start, run_len = i, 0
            run_len += 1
            if run_len > best_len:
                best_start, best_len = run_start, run_len
        else:
            run_start = None
    return (best_start + best_len // 2) % n


def quantiles(xs: list[float], qs: tuple[float, ...] = (0.5, 0.99, 1.0)) -> list[float]:
    if not xs:
        return [float("nan")] * len(qs)
    s = sorted(xs)
    return [s[min(len(s) - 1, int(q * len(s)))] for q in qs]
