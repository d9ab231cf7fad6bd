"""The one MQTT filter matcher (session routing, the side-car's exclude) agrees with paho's."""

from __future__ import annotations

import itertools

import paho.mqtt.client as paho
import pytest

from modbus_mqtt_bridge.mqtt.topics import topic_matches

FILTERS = [
    "plant1/+/+",
    "plant1/#",
    "#",
    "+",
    "+/+",
    "plant1/boiler/+",
    "plant1/+/demand_setpoint",
    "plant1/meter1/voltage",
    "plant1/+/set/#",
    "+/meter1/#",
]
TOPICS = [
    "plant1",
    "plant1/meter1",
    "plant1/meter1/voltage",
    "plant1/boiler/temp",
    "plant1/meter1/demand_setpoint",
    "plant1/meter1/setpoint/set",
    "plant1/meter1/set/result",
    "plant2/meter1/voltage",
    "plant1//voltage",
    "$SYS/broker/uptime",
    "a",
]


@pytest.mark.parametrize(("topic_filter", "topic"), list(itertools.product(FILTERS, TOPICS)))
def test_same_answer_as_paho(topic_filter: str, topic: str) -> None:
    assert topic_matches(topic_filter, topic) == paho.topic_matches_sub(topic_filter, topic)


def test_a_shared_subscription_matches_as_its_filter() -> None:
    assert topic_matches("$share/forwarders/plant1/+/+", "plant1/meter1/voltage")
    assert not topic_matches("$share/forwarders/plant1/+/+", "plant1/meter1")
