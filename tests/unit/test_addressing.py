"""Modicon notation and explicit tables -> (table, 0-based address, address as written)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modbus_mqtt_bridge.config.addressing import (
    Address,
    AddressError,
    parse_address,
    parse_table,
    to_modicon,
)
from modbus_mqtt_bridge.config.types import Table

H, IN, C, D = Table.HOLDING, Table.INPUT, Table.COIL, Table.DISCRETE


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("40001", Address(H, 0, 40001)),
        (40001, Address(H, 0, 40001)),
        ("400001", Address(H, 0, 400001)),
        ("00001", Address(C, 0, 1)),
        ("000001", Address(C, 0, 1)),
        ("00010", Address(C, 9, 10)),  # the YAML octal trap: read as written, never as 8
        ("10001", Address(D, 0, 10001)),
        ("30001", Address(IN, 0, 30001)),
        (30343, Address(IN, 342, 30343)),
        ("49999", Address(H, 9998, 49999)),
        ("410000", Address(H, 9999, 410000)),
        ("465536", Address(H, 65535, 465536)),
        (" 40001 ", Address(H, 0, 40001)),
    ],
)
def test_modicon(written: object, expected: Address) -> None:
    assert parse_address(written) == expected


@pytest.mark.parametrize(
    ("written", "fragment"),
    [
        ("40000", "numbering starts at 1 (40001)"),
        ("465537", "out of range (at most 465536)"),
        ("20001", "starts with 2"),
        ("50001", "starts with 5"),
        ("123", "not Modicon notation"),
        (10, "not Modicon notation"),
        ("4000001", "not Modicon notation"),
        ("-40001", "must not be negative"),
        ("0x10", "not Modicon notation"),
        ("abc", "not Modicon notation"),
        (True, "expected an address"),
        (1.5, "expected an address"),
        (None, "expected an address"),
    ],
)
def test_modicon_errors(written: object, fragment: str) -> None:
    with pytest.raises(AddressError) as info:
        parse_address(written)
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    ("written", "table", "expected"),
    [
        (0, "holding", Address(H, 0, 0)),
        ("0", "input", Address(IN, 0, 0)),
        ("00010", "coil", Address(C, 10, 10)),  # leading zeros are decimal with a table
        ("0x10", "input", Address(IN, 16, 16)),
        ("0X1f", "holding", Address(H, 31, 31)),
        (65535, "discrete", Address(D, 65535, 65535)),
        (40001, "holding", Address(H, 40001, 40001)),  # 0-based: SunSpec lives at 40000
        (3, Table.INPUT, Address(IN, 3, 3)),
        (7, "Holding_Registers", Address(H, 7, 7)),
        (7, "coils", Address(C, 7, 7)),
        (7, "discrete_input", Address(D, 7, 7)),
    ],
)
def test_explicit_table(written: object, table: object, expected: Address) -> None:
    assert parse_address(written, table) == expected


@pytest.mark.parametrize(
    ("written", "table", "fragment"),
    [
        (65536, "holding", "out of range (0..65535 with table:)"),
        ("0x", "holding", "invalid address '0x'"),
        ("0x-1", "holding", "invalid address '0x-1'"),
        ("1.5", "holding", "invalid address '1.5'"),
        (-1, "holding", "must not be negative"),
        (1, "holdng", "unknown table 'holdng' (did you mean holding?)"),
        (1, "registers", "unknown table 'registers'"),
        (1, 3, "expected a table name"),
    ],
)
def test_explicit_table_errors(written: object, table: object, fragment: str) -> None:
    with pytest.raises(AddressError) as info:
        parse_address(written, table)
    assert fragment in str(info.value)


def test_parse_table_rejects_non_text() -> None:
    with pytest.raises(AddressError):
        parse_table(None)


@pytest.mark.parametrize(
    ("table", "address", "text"),
    [
        (H, 0, "40001"),
        (C, 0, "00001"),
        (C, 9, "00010"),
        (D, 0, "10001"),
        (IN, 0, "30001"),
        (H, 9998, "49999"),
        (H, 9999, "410000"),
        (IN, 65535, "365536"),
    ],
)
def test_to_modicon(table: Table, address: int, text: str) -> None:
    assert to_modicon(table, address) == text


def test_to_modicon_range() -> None:
    with pytest.raises(AddressError):
        to_modicon(H, 65536)


@given(st.sampled_from(list(Table)), st.integers(0, 65535))
def test_modicon_round_trip(table: Table, address: int) -> None:
    parsed = parse_address(to_modicon(table, address))
    assert (parsed.table, parsed.address) == (table, address)


@given(st.one_of(st.integers(), st.text(max_size=8)), st.none() | st.sampled_from(list(Table)))
def test_total(written: int | str, table: Table | None) -> None:
    """Any int or text gives an Address or an AddressError, nothing else."""
    try:
        result = parse_address(written, table)
    except AddressError:
        return
    assert 0 <= result.address <= 65535
