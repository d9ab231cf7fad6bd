"""What arrived on an RTU line during one exchange, sorted into answer, noise and strays. Pure.

The port records every byte received between sending a request and giving up (or getting
the answer); `classify` names what was wrong with it so the worker can count it:

- `crc`      a frame from the asked unit whose checksum does not match,
- `partial`  the start of the asked unit's answer, cut short,
- `garbage`  bytes that are no frame at all,
- `late`     a well-formed frame that is not the answer to this request (a stale answer).
"""

from __future__ import annotations

FRAME_ERROR_KINDS = ("crc", "partial", "garbage", "late")
_READ_FUNCTIONS = (1, 2, 3, 4)
_ECHO_FUNCTIONS = (5, 6, 15, 16)
_EXCEPTION_BIT = 0x80
_ECHO_LENGTH = 8
_EXCEPTION_LENGTH = 5
RESPONSE_OVERHEAD = 5  # unit, function, byte count, CRC (2)


def crc16(data: bytes) -> int:
    """Modbus CRC-16 (poly 0xA001, init 0xFFFF), as the value whose low byte goes first."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def with_crc(frame: bytes) -> bytes:
    return frame + crc16(frame).to_bytes(2, "little")


def frame_length(data: bytes) -> int | None:
    """Length of the response frame starting at data[0], None if it cannot start one."""
    if len(data) < 2:
        return None
    function = data[1]
    if function & _EXCEPTION_BIT and (function & 0x7F) in _READ_FUNCTIONS + _ECHO_FUNCTIONS:
        return _EXCEPTION_LENGTH
    if function in _ECHO_FUNCTIONS:
        return _ECHO_LENGTH
    if function in _READ_FUNCTIONS:
        return RESPONSE_OVERHEAD + data[2] if len(data) > 2 else RESPONSE_OVERHEAD
    return None


def crc_ok(frame: bytes) -> bool:
    return len(frame) > 2 and crc16(frame[:-2]) == int.from_bytes(frame[-2:], "little")


def classify(rx: bytes, unit_id: int, function_code: int) -> tuple[str, ...]:
    """The frame-error kinds found in the bytes of one exchange (each at most once)."""
    kinds: list[str] = []
    i = 0
    while i < len(rx):
        kind, used = _next_piece(rx[i:], unit_id, function_code)
        if kind and kind not in kinds:
            kinds.append(kind)
        i += used
    return tuple(kinds)


def _next_piece(data: bytes, unit_id: int, function_code: int) -> tuple[str, int]:
    """(kind or "" for the expected answer, bytes used) of what starts at data[0]."""
    ours = data[0] == unit_id and len(data) > 1 and (data[1] & 0x7F) == function_code
    length = frame_length(data)
    if ours and length is not None:
        if len(data) < length:
            return "partial", len(data)
        return ("" if crc_ok(data[:length]) else "crc"), length
    if ours or (data[0] == unit_id and len(data) == 1):
        return "partial", len(data)
    if length is not None and len(data) >= length and crc_ok(data[:length]):
        return "late", length
    return "garbage", 1
