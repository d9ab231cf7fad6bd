"""Nothing is lost when the API is down 20 s, the broker 10 s, or the side-car is killed -9.

Each test compares the set of published readings with the set Laravel stored; duplicates
are allowed (at least once) and reported in the assertion message.
"""

from __future__ import annotations

import os
import pwd
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.forwarder import (
    Background,
    Published,
    Publisher,
    Sidecars,
    assert_all_stored,
    readings,
)
from tests.support.laravel import LaravelApp
from tests.support.mosquitto import Mosquitto
from tests.support.ports import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.laravel]

SHIPPED_CONF = Path(__file__).resolve().parents[2] / "config" / "mosquitto.conf"
API_OUTAGE_S = 20.0
BROKER_OUTAGE_S = 10.0


@pytest.fixture
def shipped_broker() -> Iterator[Mosquitto]:
    """A broker run with the shipped config/mosquitto.conf (only the paths are the test's)."""
    mq = Mosquitto()
    user = pwd.getpwuid(os.getuid()).pw_name  # as root, mosquitto would drop to "mosquitto"
    shipped = SHIPPED_CONF.read_text().replace(
        "persistence_location /var/lib/mosquitto/", f"persistence_location {mq.dir}/"
    )
    assert str(mq.dir) in shipped, "config/mosquitto.conf lost its persistence_location"
    mq.conf.write_text(
        f"listener {mq.port} 127.0.0.1\nallow_anonymous true\nuser {user}\n"
        "log_dest stderr\nlog_type error\nlog_type warning\n" + shipped
    )
    mq.start()
    yield mq
    log = (mq.dir / "mosquitto.log").read_text(errors="replace")
    mq.close()
    assert "Error" not in log, log


@pytest.fixture
def sidecars(tmp_path: Path, shipped_broker: Mosquitto, app: LaravelApp) -> Iterator[Sidecars]:
    made = Sidecars(tmp_path, shipped_broker.port, app)
    yield made
    made.close()


def test_api_down_20s_loses_nothing(
    app: LaravelApp, shipped_broker: Mosquitto, sidecars: Sidecars
) -> None:
    site = "out-api"
    proc = sidecars.start(site)
    after = app.last_id()
    before, during = readings(site, "api-a", 100), readings(site, "api-b", 100, start=100)
    pub = Publisher(shipped_broker.port)
    try:
        pub.publish(before)
        app.wait_count(10, after, 30, "before the outage ")
        app.stop()
        down_at = time.monotonic()
        pub.publish(during)
        wait_until(lambda: "API not taking readings" in proc.output(), 15, "the retry log line")
        time.sleep(max(0.0, API_OUTAGE_S - (time.monotonic() - down_at)))  # the outage itself
        app.start()
        duplicates = assert_all_stored(app, after, before + during, 60, sidecars.logs())
    finally:
        pub.close()
        if app.proc is None:
            app.start()  # the next tests need it
    assert duplicates <= 4, f"{duplicates} duplicates (at most the requests in flight)"


@pytest.mark.parametrize("shared", [True, False], ids=["shared", "plain"])
def test_broker_down_10s_loses_nothing(
    app: LaravelApp, shipped_broker: Mosquitto, sidecars: Sidecars, shared: bool
) -> None:
    """Readings PUBACKed before the stop come back from the broker's persistence.

    Mosquitto 2.0 does not restore *shared* subscriptions from its persistence file, so
    with one the second batch is published once the side-car has subscribed again; a
    plain subscription is restored, so there it is published at once, while the side-car
    is still away (docs/forwarding.md, "Limits").
    """
    site = f"out-broker-{'shared' if shared else 'plain'}"
    proc = sidecars.start(site, **({} if shared else {"subscribe": f"{site}/+/+"}))
    after = app.last_id()
    before, later = readings(site, "mq-a", 150), readings(site, "mq-b", 150, start=150)
    _publish(shipped_broker, before)  # all PUBACKed: from here on the broker answers for them
    shipped_broker.stop()  # graceful: Mosquitto writes its persistence file
    wait_until(lambda: "lost the broker connection" in proc.output(), 10, "the side-car to notice")
    time.sleep(BROKER_OUTAGE_S)  # the outage itself
    shipped_broker.start()
    if shared:
        wait_until(lambda: proc.output().count("subscribed to") >= 2, 30, "a new subscription")
    _publish(shipped_broker, later)
    duplicates = assert_all_stored(app, after, before + later, 60, sidecars.logs())
    assert duplicates <= 4, f"{duplicates} duplicates"


def _publish(broker: Mosquitto, messages: list[Published]) -> None:
    pub = Publisher(broker.port)
    try:
        pub.publish(messages)
    finally:
        pub.close()


def test_sidecar_killed_9_mid_stream_loses_nothing(
    app: LaravelApp, shipped_broker: Mosquitto, sidecars: Sidecars
) -> None:
    """Run through the product's own entry, set up by the legacy environment variables."""
    site = "out-kill"
    first = sidecars.start(site, cli=True)
    after = app.last_id()
    published = readings(site, "kill", 400)
    stream = Background(shipped_broker.port, published, per_second=100)
    stream.start()
    app.wait_count(60, after, 30, "before the kill ")
    first.kill()  # SIGKILL: no goodbye, no final commit, no checkpoint
    stored_at_kill = app.count(after)
    sidecars.start(site, cli=True)  # same client id, same outbox
    stream.join(30)
    assert stream.error is None, stream.error
    duplicates = assert_all_stored(app, after, published, 60, sidecars.logs())
    assert stored_at_kill < len(published), "the kill came too late to test anything"
    assert duplicates <= 8, f"{duplicates} duplicates after kill -9 at {stored_at_kill} stored"
