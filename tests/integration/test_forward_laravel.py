"""The side-car against the real Laravel app and Mosquitto: fields, 422, token, 429, sharing."""

from __future__ import annotations

import itertools
import json
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from modbus_mqtt_bridge.forward.outbox import Outbox
from tests.support.forwarder import (
    Published,
    Publisher,
    Sidecars,
    assert_all_stored,
    delivered_by,
    outbox_depth,
    readings,
)
from tests.support.laravel import LaravelApp, missing_reason
from tests.support.mosquitto import Mosquitto
from tests.support.ports import free_port, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.laravel]


def test_readings_arrive_with_exactly_the_legacy_fields(
    app: LaravelApp, sidecars: Sidecars, publisher: Publisher
) -> None:
    site = "fwd-fields"
    port = free_port()
    proc = sidecars.start(site, metrics_listen=f"127.0.0.1:{port}")
    after = app.last_id()
    # what the bridge also publishes on these topics, none of it a reading for Laravel
    publisher.raw(f"{site}/bridge/status", "online", retain=True)
    publisher.raw(f"{site}/meter1/status", "online", retain=True)
    publisher.raw(f"{site}/meter1/set", '{"setpoint": 21.5}')
    publisher.raw(f"{site}/meter1/setpoint/set", "21.5")  # not even matched by +/+
    published = readings(site, "fields", 22)
    publisher.publish(published)

    assert_all_stored(app, after, published, 30, sidecars.logs())
    _check_observability(port, delivered=22)
    assert proc.terminate() == 0
    assert delivered_by(proc) == 22
    rows = {r["description"]: r for r in app.api_readings(after_id=after)}
    assert len(rows) == 22
    for message in published:
        row, sent = rows[message.description], message.payload
        ts = datetime.fromisoformat(sent["ts"]).strftime("%Y-%m-%dT%H:%M:%S.000000Z")
        assert {k: row[k] for k in ("device_id", "parameter", "unit", "register_address")} == {
            k: sent[k] for k in ("device_id", "parameter", "unit", "register_address")
        }
        assert (row["value"], row["timestamp"], row["data_type"]) == (
            pytest.approx(sent["value"]),
            ts,
            sent["data_type"],
        )


def _check_observability(port: int, delivered: int) -> None:
    base = f"http://127.0.0.1:{port}"
    health = httpx.get(f"{base}/healthz", timeout=5)
    assert health.status_code == 200, health.text
    status = wait_until(
        lambda: (
            (s := httpx.get(f"{base}/status", timeout=5).json())["delivered"] == delivered and s
        ),
        10,
        "the status page to count the deliveries",
    )
    assert (status["outbox"], status["delivery"], status["broker_connected"]) == (0, "ok", True)
    metrics = httpx.get(f"{base}/metrics", timeout=5).text
    assert f"modbus_forwarder_readings_delivered_total {delivered}.0" in metrics
    assert 'modbus_forwarder_deliveries_total{status="201"}' in metrics
    assert 'modbus_forwarder_messages_ignored_total{reason="topic"} 3.0' in metrics


def test_422_for_an_unknown_device_lands_in_dead_letters(
    app: LaravelApp, sidecars: Sidecars, publisher: Publisher
) -> None:
    site = "fwd-422"
    proc = sidecars.start(site)
    after = app.last_id()
    good = readings(site, "ok422", 10)
    unknown = Published(
        f"{site}/ghost/x", {**good[0].payload, "device_id": 99, "description": "d99"}
    )
    wrong = Published(
        f"{site}/hvac/vll",
        {**good[1].payload, "device_id": 2, "parameter": "Voltage (L-L)", "description": "d2"},
    )
    publisher.publish([unknown, *good[:5], wrong, *good[5:]])

    assert_all_stored(app, after, good, 30, sidecars.logs())
    wait_until(lambda: "dead letter" in proc.output(), 10, "the dead letter log line")
    assert proc.terminate() == 0
    outbox = Outbox(sidecars.outbox(), 100)
    dead = {json.loads(d.entry.body)["description"]: d for d in outbox.dead_letters()}
    assert set(dead) == {"d99", "d2"}
    assert dead["d99"].status == 422
    assert dead["d99"].response is not None
    assert "The selected device id is invalid." in dead["d99"].response
    assert "The selected parameter is invalid." in str(dead["d2"].response)
    assert outbox.depth == 0


def test_a_wrong_token_pauses_and_drains_once_fixed(
    app: LaravelApp, sidecars: Sidecars, publisher: Publisher
) -> None:
    """Paused, the outbox fills to its bound (10) and the broker keeps the other 10."""
    site = "fwd-token"
    wrong = "not-the-token-7Hq2"
    proc = sidecars.start(site, token=wrong, outbox_max=10)
    after = app.last_id()
    published = readings(site, "token", 20)
    publisher.publish(published)

    wait_until(lambda: "delivery PAUSED" in proc.output(), 20, "the pause to be logged")
    wait_until(lambda: "outbox full" in proc.output(), 20, "the outbox to fill up")
    assert outbox_depth(sidecars.outbox()) == 10
    assert app.count(after) == 0
    assert proc.terminate() == 0
    log = proc.output()
    assert log.count("delivery PAUSED") == 1, "the pause is logged loudly, once"
    assert wrong not in log, "the token must never be logged"

    fixed = sidecars.start(site, outbox_max=10)  # same client id and outbox, the right token
    assert assert_all_stored(app, after, published, 30, sidecars.logs()) == 0
    assert fixed.terminate() == 0
    assert delivered_by(fixed) == 20


def test_two_sidecars_on_one_shared_subscription_split_the_load(
    app: LaravelApp, sidecars: Sidecars, publisher: Publisher
) -> None:
    site = "fwd-shared"
    first = sidecars.start(site, name="a")
    second = sidecars.start(site, name="b")
    after = app.last_id()
    published = readings(site, "shared", 200)
    publisher.publish(published)

    duplicates = assert_all_stored(app, after, published, 60, sidecars.logs())
    assert first.terminate() == 0
    assert second.terminate() == 0
    a, b = delivered_by(first), delivered_by(second)
    assert a > 0 and b > 0, f"one side-car took everything: a={a} b={b}"
    assert a + b == 200 + duplicates, f"a={a} b={b} duplicates={duplicates}"


def test_a_429_burst_is_honoured(tmp_path: Path, broker: Mosquitto, publisher: Publisher) -> None:
    """Limit 10/min: 10 pass, a 429 names the window's end; nothing is sent until then."""
    if reason := missing_reason():
        pytest.skip(reason)
    (tmp_path / "limited").mkdir()
    limited = LaravelApp(tmp_path / "limited", rate_limit=10, workers=1).start()
    sidecars = Sidecars(tmp_path, broker.port, limited)
    try:
        site = "fwd-429"
        proc = sidecars.start(site)
        published = readings(site, "burst", 15)
        publisher.publish(published)
        assert assert_all_stored(limited, 0, published, 90, sidecars.logs()) == 0
        log = proc.output()
        throttled = log.count('"HTTP/1.1 429 Too Many Requests"')
        assert 1 <= throttled <= 4, (
            f"{throttled} requests got 429: retried inside the window\n{log}"
        )
        gap = _largest_gap_s(limited)
        assert gap >= 50, f"the side-car came back after {gap}s, before Retry-After"
    finally:
        sidecars.close()
        limited.close()


def _largest_gap_s(app: LaravelApp) -> float:
    stamps = [
        datetime.fromisoformat(row[0]).timestamp()
        for row in app.query("SELECT created_at FROM readings ORDER BY id")
    ]
    return max(b - a for a, b in itertools.pairwise(stamps))
