"""Naming what arrived on an RTU line, and the line's own bookkeeping (pure, no I/O)."""

from __future__ import annotations

import pytest

from modbus_mqtt_bridge.modbus.frames import classify, crc16, crc_ok, frame_length, with_crc
from modbus_mqtt_bridge.modbus.line import Line

ANSWER = with_crc(bytes([2, 3, 2, 0x00, 0x65]))  # unit 2, FC3, one register = 101
OTHER = with_crc(bytes([1, 3, 2, 0x00, 0x64]))  # unit 1's answer


def test_crc_of_a_known_frame() -> None:
    # Read holding 0, count 1, unit 1: the textbook frame 01 03 00 00 00 01 84 0A.
    assert with_crc(bytes.fromhex("010300000001")).hex() == "010300000001840a"
    assert crc16(b"") == 0xFFFF
    assert crc_ok(bytes.fromhex("010300000001840a"))


def test_frame_lengths() -> None:
    assert frame_length(ANSWER) == len(ANSWER) == 7
    assert frame_length(bytes([1, 6, 0, 0, 0, 1])) == 8  # write echo
    assert frame_length(bytes([1, 0x83, 2])) == 5  # exception
    assert frame_length(bytes([1, 0x42])) is None


@pytest.mark.parametrize(
    ("rx", "kinds"),
    [
        (ANSWER, ()),
        (b"", ()),
        (ANSWER[:-1] + bytes([ANSWER[-1] ^ 1]), ("crc",)),
        (ANSWER[:4], ("partial",)),
        (ANSWER[:1], ("partial",)),
        (b"\xff\x00\xaa\x55\x13" + ANSWER, ("garbage",)),
        (ANSWER + b"\x00\x00", ("garbage",)),
        (OTHER + ANSWER, ("late",)),
        (b"\xfe" + OTHER + ANSWER[:3], ("garbage", "late", "partial")),
        (with_crc(bytes([2, 0x83, 2])), ()),  # an exception answer is a proper answer
    ],
)
def test_classify(rx: bytes, kinds: tuple[str, ...]) -> None:
    assert classify(rx, unit_id=2, function_code=3) == kinds


def test_line_reassembles_pymodbus_buffers() -> None:
    line = Line(gap_s=0.001, settle_s=0.0)
    line.trace(True, b"request")
    line.trace(False, ANSWER[:3])  # buffer grows while the framer waits for more
    line.trace(False, ANSWER)
    assert bytes(line.rx) == ANSWER
    line.close_exchange(failed=False)
    line.trace(False, OTHER)  # nobody asked: a late answer
    assert line.take_stray() == len(OTHER)
    assert line.take_stray() == 0
    line.close_exchange(failed=True)
    assert line.dirty
