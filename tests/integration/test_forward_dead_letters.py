"""The side-car and the real Laravel app: sub-second readings, exclude, dead letters and the
`dead-letters` command (list, retry ID, retry --all, purge), dead_letter_max."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.support.forwarder import (
    Published,
    Publisher,
    Sidecars,
    assert_all_stored,
    delivered_by,
    readings,
)
from tests.support.laravel import REPO, LaravelApp
from tests.support.ports import free_port, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.laravel]


def test_readings_within_one_second_each_become_a_row(
    app: LaravelApp, sidecars: Sidecars, publisher: Publisher
) -> None:
    """A register polled every 200 ms: 5 readings in one second are 5 rows (main kept 1)."""
    site = "fwd-subsecond"
    proc = sidecars.start(site)
    after = app.last_id()
    base = readings(site, "sub", 1)[0]
    published = [
        Published(
            base.topic,
            {
                **base.payload,
                "ts": f"2025-07-08T16:00:00.{ms:03d}Z",
                "value": 200 + ms / 1000,
                "description": f"sub-{ms}",
            },
        )
        for ms in (0, 200, 400, 600, 800)
    ]
    publisher.publish(published)

    assert assert_all_stored(app, after, published, 30, sidecars.logs()) == 0
    stamps = app.query("SELECT DISTINCT timestamp FROM readings WHERE id > ?", after)
    assert len(stamps) == 1, "the body's timestamp stays to the second"
    assert proc.terminate() == 0
    assert delivered_by(proc) == 5


def test_excluded_topics_never_reach_the_api(
    app: LaravelApp, sidecars: Sidecars, publisher: Publisher
) -> None:
    site = "fwd-exclude"
    port = free_port()
    proc = sidecars.start(
        site, exclude=[f"{site}/+/setpoint", f"{site}/boiler/#"], metrics_listen=f"127.0.0.1:{port}"
    )
    after = app.last_id()
    good = readings(site, "exc", 3)
    template = good[0].payload
    unknown = [  # parameters the API does not know: each would be a 422 on every poll
        Published(
            f"{site}/meter1/setpoint", {**template, "parameter": "Setpoint", "description": "x1"}
        ),
        Published(f"{site}/boiler/pump_on", {**template, "parameter": "Pump", "description": "x2"}),
    ]
    publisher.publish([unknown[0], *good, unknown[1]])

    assert_all_stored(app, after, good, 30, sidecars.logs())
    metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    assert 'modbus_forwarder_messages_ignored_total{reason="excluded"} 2.0' in metrics
    assert "modbus_forwarder_dead_letters_total 0.0" in metrics
    assert proc.terminate() == 0


def dead_letters(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The product's command, as an operator runs it."""
    return subprocess.run(
        [sys.executable, "-m", "modbus_mqtt_bridge", "dead-letters", "-c", str(config), *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env={**os.environ, "LOG_LEVEL": "WARNING"},
        check=False,
    )


def test_a_422_is_listed_fixed_retried_and_arrives(
    tmp_path: Path, app: LaravelApp, sidecars: Sidecars, publisher: Publisher
) -> None:
    """The API refuses an unknown parameter; the operator adds it in Laravel, retries the
    dead letter while the side-car runs, and the reading is stored."""
    site = "fwd-dlq"
    proc = sidecars.start(site, cli=True)
    config = tmp_path / "forwarder.yaml"
    after = app.last_id()
    good = readings(site, "dlq", 2)
    new_parameter = "Demand Setpoint DLQ"
    refused = [
        Published(
            f"{site}/meter1/demand_setpoint",
            {
                **good[0].payload,
                "parameter": new_parameter,
                "value": 40 + i,
                "description": f"dl-{i}",
                "ts": f"2025-07-08T16:00:00.{i:03d}Z",
            },
        )
        for i in range(3)
    ]
    publisher.publish([refused[0], *good, refused[1], refused[2]])
    assert_all_stored(app, after, good, 30, sidecars.logs())
    wait_until(lambda: proc.output().count("dead letter") >= 1, 20, "the dead letters")

    listed = wait_until(
        lambda: (r := dead_letters(config, "list")).stdout.count("HTTP 422") == 3 and r,
        20,
        "three dead letters listed",
    )
    assert listed.returncode == 0, listed.stderr
    lines = [line for line in listed.stdout.splitlines() if "HTTP 422" in line]
    assert all(new_parameter in line and "parameter" in line for line in lines), listed.stdout
    assert "The selected parameter is invalid." in listed.stdout
    ids = [line.split()[0] for line in lines]

    # the cause, fixed: the parameter now exists for device 1
    app.query(
        "INSERT INTO parameters (device_id, name, created_at, updated_at)"
        " VALUES (1, ?, datetime('now'), datetime('now'))",
        new_parameter,
    )
    retried = dead_letters(config, "retry", ids[0])
    assert (retried.returncode, retried.stdout.strip()) == (
        0,
        "1 dead letter(s) back in the outbox",
    )
    assert_all_stored(app, after, [*good, refused[0]], 30, sidecars.logs())

    assert dead_letters(config, "retry", "--all").stdout.startswith("2 dead letter(s)")
    assert_all_stored(app, after, [*good, *refused], 30, sidecars.logs())
    assert "0 dead letter(s)" in dead_letters(config, "list").stdout
    usage = dead_letters(config, "retry")
    assert usage.returncode == 2 and "IDs" in usage.stdout
    assert proc.terminate() == 0


def test_dead_letters_are_bounded_oldest_first_and_purged(
    tmp_path: Path, app: LaravelApp, sidecars: Sidecars, publisher: Publisher
) -> None:
    site = "fwd-dlmax"
    port = free_port()
    proc = sidecars.start(site, cli=True, dead_letter_max=2, metrics_listen=f"127.0.0.1:{port}")
    template = readings(site, "dlmax", 1)[0].payload
    refused = [
        Published(f"{site}/ghost/x", {**template, "device_id": 99, "description": f"gone-{i}"})
        for i in range(5)
    ]
    for i, message in enumerate(refused, 1):  # one at a time, so "oldest" is well defined
        publisher.publish([message])
        wait_until(lambda n=i: _dead(port) >= n, 20, f"dead letter {i}")
    assert _dead(port) == 5
    assert _metric(port, "modbus_forwarder_dead_letters_dropped_total") == 3
    assert _metric(port, "modbus_forwarder_dead_letters_kept") == 2

    config = tmp_path / "forwarder.yaml"
    listed = dead_letters(config, "list").stdout
    kept = [m.description for m in refused[3:]]
    assert listed.count("HTTP 422") == 2, listed
    assert "device 99" in listed
    bodies = _dead_bodies(sidecars.outbox())
    assert bodies == kept, "the newest two are kept"
    purged = dead_letters(config, "purge")
    assert purged.stdout.strip() == "2 dead letter(s) purged"
    assert "0 dead letter(s)" in dead_letters(config, "list").stdout
    assert proc.terminate() == 0


def _metric(port: int, name: str) -> float:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    for line in text.splitlines():
        if line.startswith(f"{name} "):
            return float(line.split()[1])
    return -1.0


def _dead(port: int) -> float:
    return _metric(port, "modbus_forwarder_dead_letters_total")


def _dead_bodies(outbox: Path) -> list[str]:
    import sqlite3

    with sqlite3.connect(outbox) as db:
        rows = db.execute("SELECT body FROM dead_letter ORDER BY id").fetchall()
    return [json.loads(r[0])["description"] for r in rows]
