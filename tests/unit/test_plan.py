"""The read planner: merging, limits, grouping, the minimum, and the text `validate` prints."""

from __future__ import annotations

from collections.abc import Iterable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modbus_mqtt_bridge.config.model import Config, Connection, Device, Register
from modbus_mqtt_bridge.config.types import Table
from modbus_mqtt_bridge.errors import ConfigError
from modbus_mqtt_bridge.plan import (
    MAX_READ_BITS,
    MAX_READ_REGISTERS,
    Plan,
    ReadRequest,
    build_plan,
    format_duration,
    format_plan,
    gap_limit,
    minimum_requests,
    minimum_requests_for,
    read_limit,
)

H, IN, C, D = Table.HOLDING, Table.INPUT, Table.COIL, Table.DISCRETE
LAN = Connection("lan", type="tcp", host="192.168.100.10", port=502)
BUS = Connection("bus1", type="rtu", port="/dev/ttyUSB0", baudrate=9600, parity="N")


def reg(
    name: str,
    address: int,
    type: str = "uint16",
    table: Table = H,
    interval: float = 5.0,
    bit: int | None = None,
    length: int | None = None,
) -> Register:
    if table.is_bits:
        type = "bool"
    return Register(
        name=name,
        parameter=name,
        table=table,
        address=address,
        register_address=address,
        type=type,
        data_type=type,
        interval_s=interval,
        bit=bit,
        length=length,
    )


def dev(
    regs: Iterable[Register],
    name: str = "d1",
    unit: int = 1,
    max_gap: int = 0,
    connection: str = "lan",
) -> Device:
    return Device(
        name=name,
        id=None,
        connection=connection,
        unit_id=unit,
        registers=tuple(regs),
        max_gap=max_gap,
    )


def cfg(*devices: Device, connections: tuple[Connection, ...] = (LAN, BUS)) -> Config:
    return Config(site="plant1", connections=connections, devices=devices)


def plan_of(*devices: Device) -> Plan:
    return build_plan(cfg(*devices))


def spans(plan: Plan) -> list[tuple[int, int, int]]:
    return [(r.function_code, r.address, r.count) for r in plan.requests]


def uint16s(start: int, n: int, table: Table = H, interval: float = 5.0) -> list[Register]:
    return [reg(f"r{a}", a, table=table, interval=interval) for a in range(start, start + n)]


# --- merging and limits ------------------------------------------------------------------


def test_contiguous_map_is_one_request_and_the_minimum() -> None:
    regs = uint16s(0, 10)
    plan = plan_of(dev(regs))
    assert spans(plan) == [(3, 0, 10)]
    assert [v.offset for v in plan.requests[0].values] == list(range(10))
    assert len(plan.requests) == minimum_requests(regs) == 1


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (125, [(3, 0, 125)]),
        (126, [(3, 0, 125), (3, 125, 1)]),
        (250, [(3, 0, 125), (3, 125, 125)]),
        (251, [(3, 0, 125), (3, 125, 125), (3, 250, 1)]),
    ],
)
def test_register_limit_is_125_exactly(n: int, expected: list[tuple[int, int, int]]) -> None:
    regs = uint16s(0, n)
    plan = plan_of(dev(regs, max_gap=50))
    assert spans(plan) == expected
    assert len(plan.requests) == minimum_requests(regs)


@pytest.mark.parametrize(
    ("table", "n", "expected"),
    [
        (C, 2000, [(1, 0, 2000)]),
        (C, 2001, [(1, 0, 2000), (1, 2000, 1)]),
        (D, 2000, [(2, 0, 2000)]),
        (D, 4001, [(2, 0, 2000), (2, 2000, 2000), (2, 4000, 1)]),
    ],
)
def test_bit_limit_is_2000_exactly(
    table: Table, n: int, expected: list[tuple[int, int, int]]
) -> None:
    regs = uint16s(0, n, table=table)
    plan = plan_of(dev(regs))
    assert spans(plan) == expected
    assert len(plan.requests) == minimum_requests(regs)


def test_value_that_would_cross_the_limit_starts_the_next_request() -> None:
    fits = [*uint16s(0, 123), reg("f", 123, "float32")]  # ends at 125: fits exactly
    assert spans(plan_of(dev(fits))) == [(3, 0, 125)]
    crosses = [*uint16s(0, 124), reg("f", 124, "float32")]  # would end at 126
    assert spans(plan_of(dev(crosses))) == [(3, 0, 124), (3, 124, 2)]


@pytest.mark.parametrize(
    ("max_gap", "second", "expected"),
    [
        (0, 1, [(3, 0, 2)]),  # neighbours always merge
        (0, 2, [(3, 0, 1), (3, 2, 1)]),  # a one-register hole needs max_gap >= 1
        (10, 11, [(3, 0, 12)]),  # hole of 10 == max_gap: bridged
        (10, 12, [(3, 0, 1), (3, 12, 1)]),  # hole of 11: not bridged
        (500, 124, [(3, 0, 125)]),  # a huge gap still respects 125
        (500, 125, [(3, 0, 1), (3, 125, 1)]),
    ],
)
def test_register_gap(max_gap: int, second: int, expected: list[tuple[int, int, int]]) -> None:
    plan = plan_of(dev([reg("a", 0), reg("b", second)], max_gap=max_gap))
    assert spans(plan) == expected


def test_gap_is_measured_from_the_end_of_a_wide_value() -> None:
    # float64 at 0 ends at 4; a hole of 2 before 6 with max_gap 2 is bridged.
    plan = plan_of(dev([reg("a", 0, "float64"), reg("b", 6)], max_gap=2))
    assert spans(plan) == [(3, 0, 7)]
    # A narrow value inside a wide one does not pull the end back.
    nested = [reg("s", 0, "string", length=10), reg("inside", 2), reg("next", 10)]
    assert spans(plan_of(dev(nested))) == [(3, 0, 11)]


@pytest.mark.parametrize(
    ("second", "expected"),
    [
        (17, [(1, 0, 18)]),  # hole of 16 bits == 1 register's worth: bridged
        (18, [(1, 0, 1), (1, 18, 1)]),
    ],
)
def test_bit_gap_is_max_gap_times_16(second: int, expected: list[tuple[int, int, int]]) -> None:
    assert gap_limit(C, 1) == 16
    plan = plan_of(dev([reg("a", 0, table=C), reg("b", second, table=C)], max_gap=1))
    assert spans(plan) == expected


def test_different_intervals_tables_and_units_never_merge() -> None:
    d1 = dev(
        [
            reg("h5", 0),
            reg("h30", 1, interval=30.0),
            reg("in", 2, table=IN),
            reg("c", 3, table=C),
            reg("di", 4, table=D),
        ],
        max_gap=100,
    )
    d2 = dev([reg("h5", 1)], name="d2", unit=2, max_gap=100)
    plan = plan_of(d1, d2)
    got = [(r.device.name, r.interval_s, r.function_code, r.address) for r in plan.requests]
    # Plan order: device, then interval, then function code.
    assert got == [
        ("d1", 5.0, 1, 3),
        ("d1", 5.0, 2, 4),
        ("d1", 5.0, 3, 0),
        ("d1", 5.0, 4, 2),
        ("d1", 30.0, 3, 1),
        ("d2", 5.0, 3, 1),
    ]
    assert plan.intervals() == (5.0, 30.0)


def test_overlapping_values_share_a_request() -> None:
    regs = [
        reg("flag3", 10, "bool", bit=3),
        reg("word", 10),
        reg("pair", 9, "float32"),
        reg("flag4", 10, "bool", bit=4),
    ]
    (request,) = plan_of(dev(regs)).requests
    assert (request.address, request.count) == (9, 2)
    offsets = {v.register.name: v.offset for v in request.values}
    assert offsets == {"pair": 0, "flag3": 1, "word": 1, "flag4": 1}
    # Ties keep config order, so decoding order is predictable.
    assert [v.register.name for v in request.values] == ["pair", "flag3", "word", "flag4"]


def test_strings_and_64_bit_values_span_their_registers() -> None:
    regs = [
        reg("serial", 0, "string", length=10),
        reg("energy", 10, "uint64"),
        reg("total", 14, "float64"),
        reg("count", 18, "int32"),
    ]
    (request,) = plan_of(dev(regs)).requests
    assert (request.address, request.count) == (0, 20)
    assert [v.offset for v in request.values] == [0, 10, 14, 18]


def test_value_longer_than_one_read_is_a_config_error() -> None:
    too_long = dev([reg("ok", 0), reg("blob", 10, "string", length=126)])
    with pytest.raises(ConfigError) as err:
        build_plan(cfg(too_long))
    assert str(err.value) == (
        "devices[0].registers[1]: spans 126 registers; one read carries at most 125"
    )


def test_plan_helpers() -> None:
    a = dev(uint16s(0, 3), name="a")
    b = dev(uint16s(0, 3, interval=1.0), name="b", connection="bus1")
    plan = plan_of(a, b)
    assert [r.device.name for r in plan.for_connection("bus1")] == ["b"]
    assert plan.for_connection("nope") == ()
    assert [r.device.name for r in plan.for_device("a")] == ["a"]
    assert plan.connections() == ("lan", "bus1")
    assert plan.intervals() == (1.0, 5.0)
    assert plan.value_count == 6
    request: ReadRequest = plan.requests[0]
    assert (request.unit_id, request.end, request.connection) == (1, 3, "lan")


def test_limits() -> None:
    assert read_limit(H) == read_limit(IN) == MAX_READ_REGISTERS == 125
    assert read_limit(C) == read_limit(D) == MAX_READ_BITS == 2000
    assert gap_limit(H, 10) == 10


def test_minimum_requests() -> None:
    regs = [
        *uint16s(0, 130),  # one run of 130: 2
        *uint16s(200, 5),  # a separate run: 1
        reg("over", 201, "float32"),  # overlaps that run: 0
        reg("touch", 205, "float32"),  # touches it (205..207): 0
        *uint16s(0, 3, table=IN),  # another table: 1
        *uint16s(0, 3, interval=60.0),  # another interval: 1
        *uint16s(0, 2001, table=C),  # 2001 bits: 2
    ]
    assert minimum_requests(regs) == 7
    assert minimum_requests([]) == 0
    two = cfg(dev(uint16s(0, 3)), dev(uint16s(0, 3), name="d2", unit=2))
    assert minimum_requests_for(two) == 2


def test_minimum_requests_never_splits_a_value() -> None:
    # 2,000 contiguous float32: 62 whole values (124 registers) per read, so 33 reads,
    # not ceil(4000 / 125) = 32; the plan achieves exactly that
    regs = [reg(f"f{i}", 2 * i, "float32") for i in range(2000)]
    assert minimum_requests(regs) == 33
    assert len(build_plan(cfg(dev(regs))).requests) == 33


# --- property: whatever the registers, the plan covers each exactly once, within limits ----

_WORD_TYPES = ["uint16", "int32", "float32", "uint64", "float64", "string", "bool"]


@st.composite
def registers(draw: st.DrawFn) -> Register:
    table = draw(st.sampled_from(list(Table)))
    interval = draw(st.sampled_from([1.0, 5.0]))
    if table.is_bits:
        return reg("r", draw(st.integers(0, 6000)), table=table, interval=interval)
    type_ = draw(st.sampled_from(_WORD_TYPES))
    bit = draw(st.integers(0, 15)) if type_ == "bool" else None
    length = draw(st.integers(1, 125)) if type_ == "string" else None
    return reg("r", draw(st.integers(0, 600)), type_, table, interval, bit, length)


@st.composite
def block(draw: st.DrawFn) -> list[Register]:
    """Back-to-back values of one width: runs that reach the 125 limit often."""
    type_ = draw(st.sampled_from(["uint16", "float32", "uint64"]))
    start, n = draw(st.integers(0, 300)), draw(st.integers(1, 70))
    interval = draw(st.sampled_from([1.0, 5.0]))
    width = {"uint16": 1, "float32": 2, "uint64": 4}[type_]
    return [reg("r", start + i * width, type_, H, interval) for i in range(n)]


device_registers = st.tuples(st.lists(registers(), max_size=30), st.lists(block(), max_size=3))
devices = st.builds(
    lambda regs, gap, conn: ([*regs[0], *(r for b in regs[1] for r in b)], gap, conn),
    device_registers,
    st.sampled_from([0, 1, 2, 10, 130]),
    st.sampled_from(["lan", "bus1"]),
)


def _config(drawn: list[tuple[list[Register], int, str]]) -> Config:
    # Names do not matter to the planner; identity is what the property tracks.
    return cfg(
        *(
            dev(regs, name=f"d{i}", unit=i + 1, max_gap=gap, connection=conn)
            for i, (regs, gap, conn) in enumerate(drawn)
        )
    )


configs = st.lists(devices, min_size=1, max_size=3).map(_config)


def _holes(request: ReadRequest) -> list[int]:
    """Holes inside one request: registers read for nothing."""
    holes, end = [], request.address
    bounds = sorted(
        (v.register.address, v.register.address + v.register.count) for v in request.values
    )
    for start, stop in bounds:
        if start > end:
            holes.append(start - end)
        end = max(end, stop)
    return holes


@settings(max_examples=100, deadline=None)
@given(configs)
def test_plan_covers_every_register_once_within_limits(config: Config) -> None:
    plan = build_plan(config)
    seen: dict[int, int] = {}
    for request in plan.requests:
        assert 1 <= request.count <= read_limit(request.table)
        assert request.address == min(v.register.address for v in request.values)
        assert request.end == max(v.register.address + v.register.count for v in request.values)
        assert all(h <= gap_limit(request.table, request.device.max_gap) for h in _holes(request))
        for value in request.values:
            r = value.register
            seen[id(r)] = seen.get(id(r), 0) + 1
            assert (r.table, r.interval_s) == (request.table, request.interval_s)
            assert value.offset == r.address - request.address
            assert value.offset >= 0 and value.offset + r.count <= request.count
            assert request.connection == request.device.connection
            assert any(x is r for x in request.device.registers)
    everyone = [r for d in config.devices for r in d.registers]
    assert seen == {id(r): 1 for r in everyone}


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from([H, IN, C]), st.integers(0, 3000), st.sampled_from([1.0, 2.0])),
        max_size=300,
    )
)
def test_single_slot_values_without_gap_reach_the_minimum(
    cells: list[tuple[Table, int, float]],
) -> None:
    regs = [reg(f"r{i}", a, table=t, interval=iv) for i, (t, a, iv) in enumerate(cells)]
    plan = plan_of(dev(regs, max_gap=0))
    assert len(plan.requests) == minimum_requests(regs)


# --- the text `validate` prints ------------------------------------------------------------

GOLDEN = """\
connection lan (tcp 192.168.100.10:502): 3 requests, 0.433 requests/s
  meter1 (unit 1)
    every 5s: 2 requests, 4 values
      FC3 40001..40010 (holding 0..9, 10 regs, 3 values)
      FC4 30001 (input 0, 1 reg, 1 value)
    every 30s: 1 request, 1 value
      FC3 40101..40104 (holding 100..103, 4 regs, 1 value)
connection bus1 (rtu /dev/ttyUSB0 9600 8N1): 3 requests, 2.02 requests/s
  pump (unit 7)
    every 1s: 2 requests, 3 values
      FC1 00001..00002 (coil 0..1, 2 bits, 2 values)
      FC2 10011 (discrete 10, 1 bit, 1 value)
    every 1min: 1 request, 1 value
      FC3 410001 (holding 10000, 1 reg, 1 value)
  spare (unit 8): no registers
total: 6 requests, 9 values, 2.45 requests/s
"""


def _golden_config() -> Config:
    meter = dev(
        [
            reg("voltage", 0, "float32"),
            reg("current", 2, "float32"),
            reg("power", 8, "int32"),
            reg("temperature", 0, "int16", table=IN),
            reg("energy", 100, "uint64", interval=30.0),
        ],
        name="meter1",
        max_gap=10,
    )
    pump = dev(
        [
            reg("run", 0, table=C, interval=1.0),
            reg("reset", 1, table=C, interval=1.0),
            reg("alarm", 10, table=D, interval=1.0),
            reg("setpoint", 10000, interval=60.0),
        ],
        name="pump",
        unit=7,
        connection="bus1",
    )
    spare = dev([], name="spare", unit=8, connection="bus1")
    return cfg(meter, pump, spare)


def test_format_plan_golden() -> None:
    config = _golden_config()
    assert format_plan(build_plan(config), config) == GOLDEN


def test_format_plan_lists_at_most_six_requests_per_interval() -> None:
    scattered = [reg(f"r{a}", a) for a in range(0, 80, 10)]  # 8 requests with max_gap 0
    config = cfg(dev(scattered, name="big"), connections=(LAN,))
    lines = format_plan(build_plan(config), config).splitlines()
    assert lines[2] == "    every 5s: 8 requests, 8 values"
    assert lines[3] == "      FC3 40001 (holding 0, 1 reg, 1 value)"
    assert lines[8] == "      FC3 40051 (holding 50, 1 reg, 1 value)"
    assert lines[9] == "      ... and 2 more"
    assert lines[10].startswith("total: 8 requests")


def test_format_plan_names_an_unconfigured_connection() -> None:
    config = cfg(dev([reg("a", 0)], connection="ghost"), connections=(LAN,))
    text = format_plan(build_plan(config), config)
    assert text.splitlines()[:2] == [
        "connection lan (tcp 192.168.100.10:502): 0 requests, 0 requests/s",
        "connection ghost (not configured): 1 request, 0.2 requests/s",
    ]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.5, "500ms"),
        (1.0, "1s"),
        (2.5, "2.5s"),
        (90.0, "90s"),
        (60.0, "1min"),
        (1800.0, "30min"),
        (3600.0, "1h"),
        (7200.0, "2h"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
