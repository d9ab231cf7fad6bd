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
- by tick (the figure the targets use): per tick, the topics whose reading of that tick
  arrived within 1 s of when it was due (`tick_counts`).
The windows start at the quietest phase of the cycle (see `quiet_phase`).
"""

from __future__ import annotations

import bisect
import calendar
import contextlib
import fcntl
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
PIPE_BYTES = 1 << 20  # the counter's pipe: ~6,000 readings, 0.3 s at 20,000/s


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
        self.topic = array("i")  # per reading: its topic (an index)
        self._devices: dict[bytes, int] = {}
        self._topics: dict[bytes, int] = {}
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
        """mosquitto_sub's receive time (%U) on the monotonic clock: not delayed by the pipe's
        buffering or by this thread waiting for a core, as the chunk's read time is (a
        full pipe would still delay it: mosquitto_sub then blocks before it stamps)."""
        try:
            return float(stamp) - self.wall_minus_mono
        except ValueError:
            return fallback

    def _read(self) -> None:
        assert self.child.proc.stdout is not None
        fd = self.child.proc.stdout.fileno()
        # A full pipe blocks mosquitto_sub, which then stamps (%U) late: 64 KiB is ~20 ms at
        # 20,000 readings/s, less than this thread may wait for a core on 2 busy cores.
        with contextlib.suppress(OSError):  # not Linux, or above pipe-max-size
            fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
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
            topics = []
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
                        topics.append(self._topics.setdefault(topic, len(self._topics)))
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
                    self.topic.extend(topics)
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


def on_time_reads(by_key: dict[int, list[float]], interval: float = 1.0) -> dict[int, float]:
    """Per key (device or topic), one read time at which it was on its own grid: the
    earliest-but-one offset within the interval, as in read_lateness (the earliest with
    fewer than 3 reads)."""
    out: dict[int, float] = {}
    for key, times in by_key.items():
        if times:
            offsets = _grid_offsets(times, interval)
            out[key] = times[0] + offsets[1 if len(offsets) >= 3 else 0]
    return out


def _grid_offsets(times: list[float], interval: float) -> list[float]:
    """Each read's offset within the interval from the first read (-interval/2 up to
    +interval/2), sorted: one key's reads on a fixed grid give offsets near 0."""
    base = times[0]
    return sorted(((x - base + interval / 2) % interval) - interval / 2 for x in times)


def tick_counts(
    arrivals: Arrivals, t0: float, n: int, budget_s: float, interval: float = 1.0
) -> tuple[list[int], int]:
    """Per tick of the n from t0: the topics whose reading of that tick reached the
    subscriber within budget_s of when the read was due; and the readings counted more
    than once (a topic twice in one tick: a repeat, or a read so late it fell into the
    next tick's slot).

    Each topic (a register, or a device's payload) has its own grid, found from its own
    reads (`on_time_reads`); its tick k is due at its first on-grid time at or after t0
    plus k intervals, and a reading belongs to the tick its `ts` is nearest to. So a read
    a few milliseconds either side of a window edge is not counted in the wrong second; a
    reading lost, a read made late, or a reading delivered late lowers its tick; a repeat
    cannot fill a lost reading's place."""
    if n < 3:
        raise ValueError(f"completeness by tick needs at least 3 ticks measured, not {n}")
    end = t0 + n * interval
    with arrivals._lock:
        rows = list(zip(arrivals.arrived, arrivals.read, arrivals.topic, strict=True))
    by_topic: dict[int, set[float]] = {}
    for _, read, topic in rows:
        if t0 <= read < end:
            by_topic.setdefault(topic, set()).add(read)
    anchors = on_time_reads({t: sorted(v) for t, v in by_topic.items()}, interval)
    first = {t: a + math.ceil((t0 - a) / interval) * interval for t, a in anchors.items()}
    on_time: list[set[int]] = [set() for _ in range(n)]
    delivered = 0
    for arrived, read, topic in rows:
        start = first.get(topic)
        if start is None:
            continue
        k = round((read - start) / interval)
        if 0 <= k < n and arrived - (start + k * interval) <= budget_s:
            delivered += 1
            on_time[k].add(topic)
    counts = [len(topics) for topics in on_time]
    return counts, delivered - sum(counts)


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
        offsets = _grid_offsets(times, interval)
        on_time = offsets[1]
        out.extend(max(0.0, x - on_time) for x in offsets)
    return out


# -- windows ------------------------------------------------------------------------------


def quiet_phase(times: list[float], t0: float, bins: int = 100) -> float:
    """The offset within the second (10 ms resolution) where the fewest events fall.

    A window boundary in the middle of a burst would give one window too little and the
    next too much, so windows start at the quietest phase of the cycle. That helped while
    the bridge read every device at the same instant; with the connections' phase slots
    spread over the interval there is no quiet phase, hence the per-tick figure (`tick_counts`).
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
