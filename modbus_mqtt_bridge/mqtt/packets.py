"""MQTT PUBLISH packets at QoS 0, encoded for a whole batch at once.

paho's `publish()` costs about as much per message as the rest of the bridge's hot path:
an `MQTTMessageInfo`, topic checks, a `bytearray` built byte by byte, a queue entry, a
write-readiness registration and, at the loop's next turn, one `send()` per packet. A QoS 0
reading needs none of that bookkeeping (it is never acknowledged nor re-sent), so the port
hands a tick's QoS 0 readings to paho as one queue entry holding their packets back to
back: paho still writes it (partial writes, ordering with its other packets, the socket
hooks, TLS), but once. The bytes on the wire are exactly those paho would send
(tests/unit/test_mqtt_packets.py compares them with paho's own encoder).
"""

from __future__ import annotations

from collections.abc import Iterable

_PUBLISH = 0x30
_RETAIN = 0x01
MAX_REMAINING_LENGTH = 268_435_455  # MQTT's variable-length integer holds 4 bytes

# topic, payload, qos, retain: the rows the pipeline and the buffer carry (qos 0 here)
QoS0Message = tuple[str, str | bytes, int, bool]


def remaining_length(n: int) -> bytes:
    """MQTT's variable byte integer (1-4 bytes, 7 bits each, low first)."""
    if n < 128:
        return bytes((n,))
    if n > MAX_REMAINING_LENGTH:
        raise ValueError("MQTT packet too large")
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def qos0_publishes(messages: Iterable[QoS0Message], *, v5: bool) -> bytes:
    """The PUBLISH packets (QoS 0, no DUP, no properties) of messages, back to back."""
    parts: list[bytes] = []
    append = parts.append
    properties = b"\x00" if v5 else b""  # MQTT 5: an empty property list
    extra = 3 if v5 else 2  # topic length (2) + property length (1, v5)
    for topic, payload, _qos, retain in messages:
        topic_b = topic.encode()
        payload_b = payload.encode() if isinstance(payload, str) else payload
        n = extra + len(topic_b) + len(payload_b)
        append(bytes((_PUBLISH | _RETAIN if retain else _PUBLISH,)))
        if n < 128:
            append(bytes((n,)))
        elif n < 16_384:  # two bytes: a reading's packet (no bytearray built per message)
            append(bytes((n & 0x7F | 0x80, n >> 7)))
        else:
            append(remaining_length(n))
        append(len(topic_b).to_bytes(2, "big"))
        append(topic_b)
        if properties:
            append(properties)
        append(payload_b)
    return b"".join(parts)
