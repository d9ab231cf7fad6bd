"""The port's client handles plain PUBACKs itself (mqtt/port.py `_Client`): exactly as paho.

Each PUBACK below is handed to the port's client and to paho's own, each holding one
unacknowledged QoS 1 message: the same message must be acknowledged with the same reason
code, and a PUBACK for an id neither holds must change nothing, on both protocol versions.
"""

from __future__ import annotations

from typing import Any, Literal

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from modbus_mqtt_bridge.config.model import MqttConfig
from modbus_mqtt_bridge.mqtt.port import _build_client

BODIES = {
    "id alone (Success)": b"\x00\x01",
    "Success": b"\x00\x01\x00",
    "no matching subscribers": b"\x00\x01\x10",
    "not authorized": b"\x00\x01\x87",
    "quota exceeded": b"\x00\x01\x97",
    "Success with empty properties": b"\x00\x01\x00\x00",
    "with a reason string": b"\x00\x01\x10\x05\x1f\x00\x02ok",
    "another id": b"\x00\x02",
}


def _holding_one(client: paho.Client) -> tuple[paho.MQTTMessageInfo, list[tuple[int, Any]]]:
    acks: list[tuple[int, Any]] = []
    client.on_publish = lambda _c, _u, mid, rc, _p: acks.append((mid, rc))
    info = client.publish("t/x", b"1", qos=1)  # not connected: kept, mid 1
    assert info.mid == 1
    return info, acks


def _ack(client: paho.Client, body: bytes) -> Any:
    client._in_packet = {"command": paho.PUBACK, "packet": body}
    return client._handle_pubackcomp("PUBACK")


CASES = [("5", name) for name in BODIES] + [
    ("3.1.1", name)
    for name, body in BODIES.items()
    if len(body) == 2  # the id alone
]


@pytest.mark.parametrize(("protocol", "name"), CASES)
def test_a_puback_acknowledges_as_paho_does(protocol: Literal["5", "3.1.1"], name: str) -> None:
    body = BODIES[name]
    ours = _build_client(MqttConfig(protocol=protocol), "ours", True, False)
    theirs = paho.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id="theirs",
        protocol=paho.MQTTv5 if protocol == "5" else paho.MQTTv311,
    )
    results = []
    for client in (ours, theirs):
        info, acks = _holding_one(client)
        rc = _ack(client, body)
        results.append(
            (rc, info._published, [(m, int(getattr(r, "value", r))) for m, r in acks],
             sorted(client._out_messages))
        )  # fmt: skip
    assert results[0] == results[1]
    if body[:2] == b"\x00\x01":
        assert results[0][2] == [(1, body[2] if len(body) > 2 else 0)]
    else:
        assert results[0][2] == []
