"""The batched QoS 0 PUBLISH packets are byte for byte what paho itself would send."""

from __future__ import annotations

from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from modbus_mqtt_bridge.mqtt.packets import qos0_publishes, remaining_length


def _paho_bytes(messages: list[tuple[str, str | bytes, int, bool]], *, v5: bool) -> bytes:
    """What paho queues for these publishes (a socket stand-in; nothing is written)."""
    client = paho.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        protocol=paho.MQTTv5 if v5 else paho.MQTTv311,
    )
    client._sock = object()  # type: ignore[assignment]  # paho only checks it is set
    client.on_socket_register_write = lambda *_: None  # keep paho from writing
    for topic, payload, _qos, retain in messages:
        assert client.publish(topic, payload, qos=0, retain=retain).rc == 0
    out: Any = client._out_packet
    client._sock = None  # nothing to close
    return b"".join(bytes(p["packet"]) for p in out)


SIZES = [0, 1, 100, 120, 121, 122, 123, 124, 125, 126, 127, 128, 129, 16379, 16380, 16381, 16384]


@pytest.mark.parametrize("v5", [False, True], ids=["3.1.1", "5"])
def test_every_length_boundary_and_flag_matches_paho(v5: bool) -> None:
    messages: list[tuple[str, str | bytes, int, bool]] = []
    for n in SIZES:
        messages.append(("site/meter/energy", "x" * n, 0, n % 2 == 0))
        messages.append(("plant/é/°C", '{"value": "ü"}' + "y" * n, 0, n % 2 == 1))
        messages.append(("t", b"\x00\xff" * n, 0, False))
    assert qos0_publishes(messages, v5=v5) == _paho_bytes(messages, v5=v5)


def test_a_megabyte_payload_takes_a_three_byte_length() -> None:
    messages: list[tuple[str, str | bytes, int, bool]] = [("a/b", "z" * 2_100_000, 0, True)]
    assert qos0_publishes(messages, v5=True) == _paho_bytes(messages, v5=True)


def test_remaining_length_is_the_mqtt_variable_byte_integer() -> None:
    assert remaining_length(0) == b"\x00"
    assert remaining_length(127) == b"\x7f"
    assert remaining_length(128) == b"\x80\x01"
    assert remaining_length(16_383) == b"\xff\x7f"
    assert remaining_length(16_384) == b"\x80\x80\x01"
    assert remaining_length(268_435_455) == b"\xff\xff\xff\x7f"
    with pytest.raises(ValueError, match="too large"):
        remaining_length(268_435_456)


def test_no_messages_no_bytes() -> None:
    assert qos0_publishes([], v5=False) == b""
