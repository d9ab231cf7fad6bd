"""A device read in several requests publishes each request's readings as soon as they are
decoded, not after its last read of the tick; its device payload stays one message per tick,
with every value. Real Mosquitto, the real bridge process, and a slave that answers each
request only after DELAY_S (the simulator behind a proxy that holds every request), so a
reading that waits for the device's later requests shows as a request seen on the wire."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.mosquitto import Mosquitto
from tests.support.slow_rig import Rig, slow_rig

SITE = "early"
DELAY_S = 1.5  # per request: a reading has this long before its tick's third is asked for
READ_A, READ_B, READ_C = (3, 0), (3, 100), (3, 200)
VALUES = {"a": 1.5, "b": 2.5, "c": 3.5}


def _yaml(mqtt_url: str, port: int) -> str:
    # max_gap 0: a, b and c (addresses 0, 100, 200) are three requests, in that order; a tick
    # takes 3 x DELAY_S, the interval leaves the next tick well apart from it
    return f"""
        site: {SITE}
        mqtt: {{url: "{mqtt_url}", qos: 1, retain: false, device_payload: true}}
        connections: [{{name: lan, type: tcp, host: 127.0.0.1, port: {port}, timeout: 5}}]
        devices:
          - name: plc
            interval: 6s
            max_gap: 0
            registers:
              - {{name: a, address: 40001, type: float32}}
              - {{name: b, address: 40101, type: float32}}
              - {{name: c, address: 40201, type: float32}}
        """


@pytest.fixture
def rig(tmp_path: Path, broker: Mosquitto) -> Iterator[Rig]:
    with slow_rig(tmp_path, broker, _yaml, SITE, VALUES, DELAY_S) as made:
        yield made


def test_the_first_requests_readings_reach_the_broker_before_the_last_request_is_read(
    rig: Rig,
) -> None:
    sub, slave = rig.sub, rig.slave
    a, b, c = (f"{SITE}/plc/{name}" for name in ("a", "b", "c"))
    device = f"{SITE}/plc"
    # The first tick, while the device is not known online yet, comes in one piece after
    # its `online`, as it always has.
    first_c = sub.wait_for(c, timeout=30)[0].json()
    topics = [m.topic for m in list(sub.messages)]
    assert topics.index(f"{SITE}/plc/status") < topics.index(a), topics

    # From then on each request's readings go as soon as they are decoded: the second
    # tick's a is on the broker while that tick's third request has not been asked yet.
    second_a = sub.wait_for(a, count=2, timeout=30)[1].json()
    assert slave.requests.count(READ_C) == 1, (list(slave.requests), rig.bridge.tail())
    second_b = sub.wait_for(b, count=2, timeout=30)[1].json()
    assert len(sub.on(c)) == 1  # b is out while c is still on the wire
    second_c = sub.wait_for(c, count=2, timeout=30)[1].json()
    assert [second_a["value"], second_b["value"], second_c["value"]] == list(VALUES.values())
    assert second_a["ts"] < second_b["ts"] < second_c["ts"]  # each stamped when it was read

    # The device payload: one per tick, after the tick's last request, with every value and
    # the tick's newest read time.
    sub.wait_for(device, count=2, timeout=30)
    ticks = [m.json() for m in sub.on(device)]
    assert ticks[:2] == [{"ts": first_c["ts"], **VALUES}, {"ts": second_c["ts"], **VALUES}]
    topics = [m.topic for m in list(sub.messages)]
    second_tick = topics.index(a, topics.index(a) + 1)
    assert topics[second_tick:].index(c) < topics[second_tick:].index(device), topics
