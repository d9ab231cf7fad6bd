"""The fixed-rate schedule, driven by made-up monotonic times (nothing here sleeps)."""

from __future__ import annotations

import math
import random
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modbus_mqtt_bridge.config.model import Device, Register
from modbus_mqtt_bridge.config.types import Table
from modbus_mqtt_bridge.plan import PlannedValue, ReadRequest
from modbus_mqtt_bridge.schedule import (
    BURST_VALUES,
    MAX_PHASE_SPREAD_S,
    Schedule,
    phases,
    tick_load,
)

_DEVICES: dict[str, Device] = {}


def req(interval: float, device: str = "d1", address: int = 0) -> ReadRequest:
    dev = _DEVICES.setdefault(device, Device(device, None, "lan", 1, ()))
    return ReadRequest("lan", dev, Table.HOLDING, address, 1, interval, ())


def names(requests: list[ReadRequest]) -> list[tuple[str, int]]:
    return [(r.device.name, r.address) for r in requests]


def test_nothing_before_start_everything_at_start_each_once() -> None:
    a, b = req(1.0, address=0), req(5.0, address=1)
    s = Schedule([a, b], start=100.0)
    assert s.due(99.999) == []
    assert s.next_due() == 100.0
    assert s.due(100.0) == [a, b]
    assert s.due(100.0) == []  # at most once per tick
    assert s.next_due() == 101.0
    assert s.due(104.999) == [a]  # b's next tick is at 105
    assert s.due(105.0) == [a, b]


def test_no_drift_over_1000_ticks_with_a_late_worker() -> None:
    start, interval = 1000.0, 0.1
    r = req(interval)
    s = Schedule([r], start=start)
    jitter = random.Random(7)
    for k in range(1000):
        tick = s.next_due()
        assert tick == start + k * interval  # on the grid, not accumulated
        # The worker wakes a little late every time; lateness must not push the grid.
        now = tick + jitter.uniform(0.0, 0.09)
        assert s.lateness(now) == pytest.approx(now - tick)
        assert s.due(now) == [r]
    assert s.next_due() == start + 1000 * interval
    assert s.missed_ticks == 0


def test_missed_ticks_are_skipped_and_counted_never_piled_up() -> None:
    a, b = req(1.0, address=0), req(1.0, address=1)
    s = Schedule([a, b], start=0.0)
    assert s.due(0.0) == [a, b]
    # Ticks at 1, 2 and 3 all passed: one read each now, two ticks skipped per request.
    assert s.due(3.5) == [a, b]
    assert s.missed_ticks == 4
    assert s.next_due() == 4.0
    assert s.due(3.9) == []
    assert s.due(4.0) == [a, b]
    assert s.missed_ticks == 4
    s.missed_ticks = 0  # the worker drains it into a metric
    s.due(5.99)
    assert s.missed_ticks == 0


def test_a_just_late_call_is_not_a_missed_tick() -> None:
    s = Schedule([req(1.0)], start=0.0)
    s.due(0.0)
    s.due(1.999)  # tick 1 served late; tick 2 has not come yet
    assert (s.missed_ticks, s.next_due()) == (0, 2.0)
    s.due(3.0)  # tick 2 never served, tick 3 served on time
    assert (s.missed_ticks, s.next_due()) == (1, 4.0)


def test_several_intervals_align_on_start_and_come_in_plan_order() -> None:
    slow, fast, mid = req(5.0, address=5), req(1.0, address=1), req(2.5, address=2)
    s = Schedule([slow, fast, mid], start=0.0)
    seen: list[tuple[float, list[int]]] = []
    while (t := s.next_due()) <= 10.0:
        seen.append((t, [r.address for r in s.due(t)]))
    assert seen == [
        (0.0, [5, 1, 2]),
        (1.0, [1]),
        (2.0, [1]),
        (2.5, [2]),
        (3.0, [1]),
        (4.0, [1]),
        (5.0, [5, 1, 2]),
        (6.0, [1]),
        (7.0, [1]),
        (7.5, [2]),
        (8.0, [1]),
        (9.0, [1]),
        (10.0, [5, 1, 2]),
    ]
    assert s.missed_ticks == 0


def test_empty_schedule() -> None:
    s = Schedule([], start=0.0)
    assert s.due(1e9) == []
    assert s.next_due() == math.inf
    assert s.lateness(5.0) == 0.0
    assert s.missed_ticks == 0


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="interval must be positive"):
        Schedule([req(0.0)], start=0.0)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.sampled_from([0.1, 0.25, 1.0, 3.0]), min_size=1, max_size=6),
    st.lists(st.floats(0.0, 4.0), max_size=40),
)
def test_every_tick_is_either_read_or_counted_missed(
    intervals: list[float], steps: list[float]
) -> None:
    requests = [req(iv, address=i) for i, iv in enumerate(intervals)]
    s = Schedule(requests, start=50.0)
    reads = [0] * len(requests)
    now = 50.0
    for step in [0.0, *steps]:
        now += step
        due = s.due(now)
        assert due == [r for r in requests if r in due]  # plan order, each once
        for r in due:
            reads[r.address] += 1
        assert s.next_due() > now
    # Ticks 0..k at or before `now`: each one read or counted as missed. (The division is
    # checked against the grid as the schedule computes it: start + k * interval.)
    ticks = 0
    for r in requests:
        k = math.floor((now - 50.0) / r.interval_s)
        while 50.0 + (k + 1) * r.interval_s <= now:
            k += 1
        while 50.0 + k * r.interval_s > now:
            k -= 1
        ticks += k + 1
    assert sum(reads) + s.missed_ticks == ticks


def test_2000_requests_cost_microseconds_per_tick() -> None:
    intervals = (1.0, 5.0, 30.0, 60.0)
    requests = [req(intervals[i % 4], f"d{i % 50}", i) for i in range(2000)]
    s = Schedule(requests, start=0.0)
    served = 0
    started = time.perf_counter()
    while (t := s.next_due()) < 600.0:
        served += len(s.due(t))
    elapsed = time.perf_counter() - started
    assert served > 600 * 500  # the 1 s quarter alone is 500 reads a second
    # Generous for slow CI: the budget is per read handed out, not per call.
    assert elapsed / served < 20e-6


# -- phases: connections spread over the interval in slots -------------------------------

FULL = BURST_VALUES  # a connection that fills a slot alone


def test_heavy_connections_spread_over_their_shortest_interval() -> None:
    assert phases([(1.0, FULL)] * 4) == [0.0, 0.25, 0.5, 0.75]
    assert phases([(1.0, 10 * FULL)] * 2) == [0.0, 0.5]  # above the budget: still one slot
    assert phases([(1.0, FULL)]) == [0.0]
    assert phases([]) == []
    # A long interval spreads over at most MAX_PHASE_SPREAD_S: no first reading minutes late.
    assert phases([(1800.0, FULL), (1800.0, FULL)]) == [0.0, MAX_PHASE_SPREAD_S / 2]
    # slots share one origin grid, from the shortest interval of all (capped)
    loads = [(2.0, FULL), (0.5, FULL), (10.0, FULL), (1.0, FULL)]
    assert phases(loads, spread_max_s=4.0) == [0.0, 0.125, 0.25, 0.375]
    assert phases(loads, spread_max_s=0.2) == pytest.approx([0.0, 0.05, 0.1, 0.15])


def test_slot_mates_with_other_intervals_tick_together_and_apart_from_other_slots() -> None:
    # a 2 s connection in slot 1 starts where its 1 s slot mates do, not at 2 x their phase
    loads = [(1.0, 300), (1.0, 300), (2.0, 100), (1.0, 100)]
    offsets = phases(loads, burst_values=500)
    assert offsets == [0.0, 0.5, 0.5, 0.5]
    # two heavy connections, 1 s and 2 s: the 2 s one never ticks on the other's instants
    first, second = phases([(1.0, FULL), (2.0, FULL)])
    ticks_1s = {round(first + k * 1.0, 9) for k in range(10)}
    ticks_2s = {round(second + k * 2.0, 9) for k in range(5)}
    assert not ticks_1s & ticks_2s


def test_light_connections_share_a_slot_until_it_is_full() -> None:
    # ten connections of 100 values a tick: two slots of 500, two wake-ups, not ten
    assert phases([(1.0, 100)] * 10, burst_values=500) == [0.0] * 5 + [0.5] * 5
    # 1,500 + 400 fit; 200 more would not; 3,000 is a slot alone; so is what follows it
    loads = [(1.0, 1500), (1.0, 400), (1.0, 200), (1.0, 3000), (1.0, 10)]
    assert phases(loads, burst_values=2000) == [0.0, 0.0, 0.25, 0.5, 0.75]
    assert phases([(1.0, 1)] * 3, burst_values=1) == [0.0, 1 / 3, 2 / 3]


def test_tick_load_is_the_shortest_interval_and_every_value_read_at_once() -> None:
    register = Register("r", "r", Table.HOLDING, 0, 40001, "uint16", "uint16", 1.0)
    device = _DEVICES.setdefault("d1", Device("d1", None, "lan", 1, ()))

    def carrying(interval: float, n: int) -> ReadRequest:
        values = tuple(PlannedValue(register, k) for k in range(n))
        return ReadRequest("lan", device, Table.HOLDING, 0, n, interval, values)

    assert tick_load([carrying(1.0, 10)]) == (1.0, 10)
    # the 2 s and 4 s requests are due with the 1 s one at the first tick (and every 4 s)
    assert tick_load([carrying(1.0, 10), carrying(2.0, 10), carrying(4.0, 1)]) == (1.0, 21)
    assert tick_load([carrying(0.3, 3), carrying(0.1, 1)]) == (0.1, 4)


def test_phased_schedules_tick_apart_with_exact_intervals() -> None:
    start = 1000.0
    offsets = phases([(1.0, FULL)] * 10)
    schedules = [
        Schedule([req(1.0, device=f"p{i}")], start=start + o) for i, o in enumerate(offsets)
    ]
    firsts = [s.next_due() for s in schedules]
    assert firsts == [start + i / 10 for i in range(10)]  # one tick every 0.1 s, not 10 at once
    for s, first in zip(schedules, firsts, strict=True):
        ticks = []
        now = start
        while len(ticks) < 5:
            if s.due(now):
                ticks.append(now)
            now = s.next_due()
        assert ticks == [first + k * 1.0 for k in range(5)]  # each interval exactly 1 s
        assert s.missed_ticks == 0
