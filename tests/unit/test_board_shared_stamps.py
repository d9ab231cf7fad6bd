"""Rings of registers read together share their timestamps, and each ring still reads back
exactly as a ring of its own fed the same readings would: whole reads, partial ones
(a failing register), a write's read-back alone, other timestamps, strings, booleans."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from modbus_mqtt_bridge.bridge.board import DeviceBoard
from modbus_mqtt_bridge.bridge.history import History
from modbus_mqtt_bridge.config.model import Device, Register
from modbus_mqtt_bridge.config.types import Table
from modbus_mqtt_bridge.readings import Reading, Value

NAMES = ("a", "b", "c", "d")
REGISTERS = {
    name: Register(name, name, Table.HOLDING, i, 40001 + i, "uint16", "uint16", 1.0)
    for i, name in enumerate(NAMES)
}
DEVICE = Device("m", 1, "bus", 1, tuple(REGISTERS.values()))


class _Sink:
    def on_readings(self, *_args: object) -> None: ...

    def on_tick_end(self, *_args: object) -> None: ...

    def on_status(self, *_args: object) -> None: ...


values = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(-(2**31), 2**31),
    st.booleans(),
    st.just("SN-1"),
)
# one call: some registers (in some order), each with a value; all at one time, or not
calls = st.tuples(
    st.lists(st.sampled_from(NAMES), min_size=1, max_size=4, unique=True),
    st.lists(values, min_size=4, max_size=4),
    st.booleans(),  # one timestamp for all (a read) or one each
    st.sampled_from([False, True, True, True]),  # the same value kind as last time
)


Call = tuple[list[str], list[Value], bool, bool]


def _feed(board: DeviceBoard, plain: dict[str, History], script: list[Call]) -> None:
    ts = 1_000
    kept: dict[str, Value] = {}
    for names, vals, same_ts, same_kind in script:
        readings = []
        for i, name in enumerate(names):
            ts += 0 if same_ts and i else 1
            value = kept[name] if same_kind and name in kept else vals[i]
            kept[name] = value
            readings.append(Reading(DEVICE, REGISTERS[name], value, ts))
            plain.setdefault(name, History(board.history_size)).add(ts, value)
        board.on_readings(DEVICE, readings, [])


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 5), st.lists(calls, max_size=30))
def test_every_ring_reads_back_as_a_ring_of_its_own(size: int, script: list[Call]) -> None:
    board = DeviceBoard(_Sink(), history=size)
    plain: dict[str, History] = {}
    _feed(board, plain, script)
    rings = board.devices["m"].history if script else {}
    assert set(rings) == set(plain)
    for name, ring in rings.items():
        assert list(ring.since()) == list(plain[name].since()), name
        assert len(ring) == len(plain[name])
        assert list(ring.since(1_005)) == list(plain[name].since(1_005))


def test_a_whole_read_shares_one_timestamp_ring_until_a_partial_read() -> None:
    board = DeviceBoard(_Sink(), history=3)
    for t in range(5):
        board.on_readings(
            DEVICE, [Reading(DEVICE, REGISTERS[n], float(t), 1000 + t) for n in NAMES], []
        )
    rings = board.devices["m"].history
    assert len({id(ring.stamps) for ring in rings.values()}) == 1
    assert list(rings["c"].since()) == [(1002, 2.0), (1003, 3.0), (1004, 4.0)]
    # register d fails: a, b, c read alone from now on, each with its own timestamps
    board.on_readings(DEVICE, [Reading(DEVICE, REGISTERS[n], 9.0, 2000) for n in NAMES[:3]], [])
    assert len({id(ring.stamps) for ring in rings.values()}) == 4
    assert list(rings["a"].since()) == [(1003, 3.0), (1004, 4.0), (2000, 9.0)]
    assert list(rings["d"].since()) == [(1002, 2.0), (1003, 3.0), (1004, 4.0)]
