"""A command that lands mid-poll: the value read before the write must never reach MQTT after
the write's result. Real Mosquitto, the real bridge process, a slave that answers slowly
(the simulator behind a proxy that holds every request), so the command arrives while the
device's first read is on the wire and runs between that read and the next."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.mosquitto import Mosquitto
from tests.support.ports import wait_until
from tests.support.slow_rig import Rig, slow_rig

SITE = "order"
DELAY_S = 1.0  # per request: the window in which the command must reach the bridge
READ_SETPOINT, READ_OTHER, WRITE_SETPOINT = (3, 0), (3, 100), (16, 0)


def _yaml(mqtt_url: str, port: int) -> str:
    # max_gap 0: setpoint (address 0) and other (address 100) are two requests, in that order
    return f"""
        site: {SITE}
        mqtt: {{url: "{mqtt_url}", qos: 1, retain: false}}
        connections: [{{name: lan, type: tcp, host: 127.0.0.1, port: {port}, timeout: 5}}]
        devices:
          - name: plc
            interval: 4s
            max_gap: 0
            registers:
              - {{name: setpoint, address: 40001, type: float32, writable: true}}
              - {{name: other, address: 40101, type: float32}}
        """


@pytest.fixture
def rig(tmp_path: Path, broker: Mosquitto) -> Iterator[Rig]:
    with slow_rig(tmp_path, broker, _yaml, SITE, {"setpoint": 20.0, "other": 1.0}, DELAY_S) as made:
        yield made


def test_a_reading_taken_before_a_write_never_follows_its_result(rig: Rig) -> None:
    sub, slave = rig.sub, rig.slave
    sub.wait_for(f"{SITE}/plc/setpoint", timeout=30)  # the bridge polls
    # The next tick's first request (setpoint) is on the wire: command now, mid-poll.
    seen = slave.requests.count(READ_SETPOINT)
    wait_until(lambda: slave.requests.count(READ_SETPOINT) > seen, 30, "the next poll")
    sub.publish(f"{SITE}/plc/setpoint/set", '{"value": 21.5, "id": "mid"}', qos=1)
    result = sub.wait_for(f"{SITE}/plc/setpoint/set/result", timeout=30)[0].json()
    assert result == {"id": "mid", "ok": True, "value": 21.5, "readback": 21.5}, result

    # The tick the command interrupted ends with its second request (other): wait for it.
    def after_result() -> list[tuple[str, float]]:
        topics = [m.topic for m in sub.messages]
        start = topics.index(f"{SITE}/plc/setpoint/set/result")
        return [(m.topic, m.json().get("value")) for m in sub.messages[start + 1 :]]

    wait_until(lambda: (f"{SITE}/plc/other", 1.0) in after_result(), 30, "the tick's end")
    requests = list(slave.requests)
    write = requests.index(WRITE_SETPOINT)
    # The command ran between the tick's two reads: read, write, read-back, then the rest.
    assert requests[write - 1 : write + 3] == [
        READ_SETPOINT,
        WRITE_SETPOINT,
        READ_SETPOINT,
        READ_OTHER,
    ], (requests, rig.bridge.tail())
    stale = [v for topic, v in after_result() if topic == f"{SITE}/plc/setpoint" and v != 21.5]
    assert stale == [], rig.bridge.tail()
    # What the topic shows (retained, /status, Home Assistant) is the read-back.
    assert sub.on(f"{SITE}/plc/setpoint")[-1].json()["value"] == 21.5
