"""The RTU wire-time estimate against figures worked out by hand (11 bits per character)."""

from __future__ import annotations

from pathlib import Path

import pytest

from modbus_mqtt_bridge.config.model import Connection
from modbus_mqtt_bridge.config.types import Table
from modbus_mqtt_bridge.modbus.wiretime import (
    char_time,
    estimate_bus,
    exchange_time,
    format_estimates,
    frame_gap,
    inter_frame_delay,
    read_response_bytes,
)
from modbus_mqtt_bridge.plan import build_plan
from tests.support.configs import config_from


@pytest.mark.parametrize(
    ("baudrate", "expected_s"),
    [
        (9600, 3.5 * 11 / 9600),  # 4.0104 ms
        (19200, 3.5 * 11 / 19200),  # 2.0052 ms: still scaled at exactly 19200
        (38400, 0.00175),  # fixed above 19200
        (115200, 0.00175),
    ],
)
def test_inter_frame_delay_is_three_and_a_half_characters_or_fixed(
    baudrate: int, expected_s: float
) -> None:
    assert inter_frame_delay(baudrate) == pytest.approx(expected_s)


def test_configured_inter_frame_delay_wins() -> None:
    conn = Connection("bus", "rtu", port="/dev/x", baudrate=9600, inter_frame_delay_s=0.01)
    assert frame_gap(conn) == 0.01
    assert frame_gap(Connection("bus", "rtu", port="/dev/x")) == pytest.approx(0.0040104, 1e-4)


@pytest.mark.parametrize(
    ("table", "count", "expected"),
    [
        (Table.HOLDING, 10, 25),  # 5 + 2*10
        (Table.INPUT, 125, 255),
        (Table.COIL, 20, 8),  # 5 + ceil(20/8)
        (Table.DISCRETE, 8, 6),
        (Table.COIL, 2000, 255),
    ],
)
def test_response_sizes(table: Table, count: int, expected: int) -> None:
    assert read_response_bytes(table, count) == expected


def test_one_read_of_ten_registers_at_9600() -> None:
    # 8 + 25 = 33 characters = 363 bits, plus two t3.5 gaps = 77 bits: 440 bits / 9600.
    gap = inter_frame_delay(9600)
    assert char_time(9600) == pytest.approx(1.1458e-3, rel=1e-3)
    assert exchange_time(Table.HOLDING, 10, 9600, gap) == pytest.approx(0.0458333, rel=1e-5)


def test_one_read_of_ten_registers_at_115200() -> None:
    # 363 bits / 115200 = 3.1510 ms, plus 2 x 1.75 ms.
    gap = inter_frame_delay(115200)
    assert exchange_time(Table.HOLDING, 10, 115200, gap) == pytest.approx(0.0066510, rel=1e-4)


def _bus_yaml(interval: str, baud: int = 9600) -> str:
    devices = "\n".join(
        f"  - {{name: m{u}, unit: {u}, interval: {interval}, registers: "
        f"[{{name: v, address: 40001, type: uint16}}, "
        f"{{name: w, address: 40010, type: uint16}}]}}"
        for u in (1, 2, 3)
    )
    return (
        "site: s\nconnections:\n"
        f"  - {{name: bus, type: rtu, port: /dev/ttyUSB0, baudrate: {baud}}}\n"
        f"devices:\n{devices}\n"
    )


def test_bus_estimate_of_three_slaves(tmp_path: Path) -> None:
    config = config_from(tmp_path, _bus_yaml("1s"))
    plan = build_plan(config)
    estimate = estimate_bus(config.connections[0], plan.for_connection("bus"))
    assert estimate is not None
    # Each device: one read of 10 registers (40001..40010) = 45.833 ms; three of them.
    assert estimate.requests == 3
    assert estimate.cycle_s == pytest.approx(0.1375, rel=1e-4)
    assert estimate.shortest_interval_s == 1.0
    assert estimate.load == pytest.approx(0.1375, rel=1e-4)
    assert estimate.fits
    text = format_estimates(plan, config)
    assert "bus bus: 9600 baud, one full cycle of 3 requests takes 137.5 ms on the wire" in text
    assert "4.0 ms between frames" in text
    assert "bus load 14%" in text
    assert "warning" not in text


def test_schedule_that_cannot_fit_warns(tmp_path: Path) -> None:
    config = config_from(tmp_path, _bus_yaml("100ms"))
    text = format_estimates(build_plan(config), config)
    assert "bus load 138%" in text
    assert "warning: bus bus cannot keep this schedule: it needs 138% of the wire" in text


def test_full_cycle_longer_than_shortest_interval_warns(tmp_path: Path) -> None:
    yaml = _bus_yaml("1s").replace(
        "{name: m1, unit: 1, interval: 1s", "{name: m1, unit: 1, interval: 120ms"
    )
    config = config_from(tmp_path, yaml)
    text = format_estimates(build_plan(config), config)
    # 45.8/120 + 2 * 45.8/1000 = 47% load, but 137.5 ms > 120 ms.
    assert "bus load 47%" in text
    assert "a full cycle (137.5 ms) is longer than the shortest interval (120ms)" in text


def test_tcp_connections_have_no_estimate(tmp_path: Path) -> None:
    config = config_from(
        tmp_path,
        "site: s\nconnections: [{name: lan, type: tcp, host: 127.0.0.1}]\n"
        "devices: [{name: m, registers: [{name: v, address: 40001, type: uint16}]}]\n",
    )
    assert format_estimates(build_plan(config), config) == ""
