"""The outbox failing under delivery: a real SQLite file on a real, full file system.

A 1 MiB tmpfs holds the outbox; a filler file takes every free block, so the outbox's next
write (the `done` after a 201) fails with SQLITE_FULL, as on a full disk. On main that
became a hot loop: the OutboxError escaped the job unretrieved, the row was taken again at
once and POSTed again, hundreds of times a second. Mounting needs root (CAP_SYS_ADMIN):
without it the test skips.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from modbus_mqtt_bridge.forward.delivery import Delivery, Endpoints
from modbus_mqtt_bridge.forward.outbox import AsyncOutbox, Outbox
from modbus_mqtt_bridge.forward.service import Target, http_client
from modbus_mqtt_bridge.observe.metrics import ForwarderMetrics
from modbus_mqtt_bridge.retry import Backoff, RetryPolicy
from tests.support.forwarder import ForwarderProcess, Publisher, outbox_depth, readings, spec
from tests.support.laravel import LaravelApp, missing_reason
from tests.support.mosquitto import Mosquitto
from tests.support.ports import wait_until
from tests.unit.test_forward_delivery import API, reading

POLICY = RetryPolicy(api=Backoff(0.05, 0.2), storage=Backoff(0.2, 0.8), pause_s=0.2)
WINDOW_S = 3.0  # the disk stays full this long: main POSTed hundreds of times in it


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "small"
    mount.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
        capture_output=True,
        check=False,
    )
    if made.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {made.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(fs: Path) -> Path:
    """Take every free block of `fs`; returns the filler (delete it to free the space)."""
    filler = fs / "filler"
    with filler.open("wb", buffering=0) as out:  # unbuffered: close has nothing to flush
        try:
            while True:
                out.write(b"\0" * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return filler


def test_a_full_disk_backs_off_and_never_reposts(
    small_fs: Path, caplog: pytest.LogCaptureFixture
) -> None:
    outbox = Outbox(small_fs / "outbox.db", 1000)
    outbox.add([reading(i, parameter=f"P{i}") for i in range(3)])  # three keys, one each
    posts: list[str] = []

    async def api(request: httpx.Request) -> httpx.Response:
        posts.append(request.headers["idempotency-key"])
        return httpx.Response(201, json={"id": len(posts)}, request=request)

    metrics = ForwarderMetrics()
    unretrieved: list[dict[str, Any]] = []

    async def main() -> tuple[int, float]:
        asyncio.get_running_loop().set_exception_handler(lambda _l, ctx: unretrieved.append(ctx))
        endpoints = Endpoints(API, None, 10, 4, 5.0)
        store = AsyncOutbox(outbox)
        async with http_client(Target(endpoints, "t"), httpx.MockTransport(api)) as client:
            stop = asyncio.Event()
            delivery = Delivery(endpoints, store, client, metrics, POLICY)
            filler = fill(small_fs)
            task = asyncio.create_task(delivery.run(stop))
            await asyncio.sleep(WINDOW_S)  # the condition is "nothing happens": wait it out
            full_posts = len(posts)
            filler.unlink()  # space again: the kept verdicts are written, nothing re-sent
            start = time.monotonic()
            while outbox.depth and time.monotonic() - start < 30:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            recovered = time.monotonic() - start
            stop.set()
            await task
            return full_posts, recovered

    with caplog.at_level(logging.WARNING, "modbus_mqtt_bridge.forward"):
        while_full, recovered = asyncio.run(main())

    print(f"{while_full} POSTs in {WINDOW_S}s of full disk; drained {recovered:.2f}s after")
    assert while_full == 3, f"{while_full} POSTs for 3 readings while the disk was full"
    assert len(posts) == 3, "freed, only the kept verdicts are written: nothing is re-sent"
    assert sorted(posts) == sorted(set(posts)), "no reading was POSTed twice"
    assert outbox.depth == 0
    errors = metrics.registry.get_sample_value(
        "modbus_forwarder_outbox_errors_total", {"op": "done"}
    )
    assert errors is not None and errors >= 3
    logged = [r for r in caplog.records if "outbox done failed" in r.getMessage()]
    assert len(logged) == 1, "rate-limited: one line however often it fails"
    assert "database or disk is full" in logged[0].getMessage()
    assert any("the outbox works again" in r.getMessage() for r in caplog.records)
    assert not unretrieved, unretrieved
    outbox.close()


@pytest.mark.laravel
def test_the_sidecar_on_a_full_disk_stores_one_row_not_hundreds(
    tmp_path: Path, small_fs: Path, broker: Mosquitto
) -> None:
    """The issue's measurement, end to end: the real side-car process, its outbox on a full
    file system, the real Laravel app (which ignores Idempotency-Key, so every POST is a
    row). Main stored 207 rows of one reading in a second; now it is one."""
    if reason := missing_reason():
        pytest.skip(reason)
    (tmp_path / "api").mkdir()
    app = LaravelApp(tmp_path / "api").start()
    site = "fwd-full"
    settings = spec(
        site,
        broker.port,
        small_fs / "outbox.db",
        api_url=app.api_url,
        token=app.token,
        client_id=f"full-{site}",
    )
    proc = ForwarderProcess(settings, tmp_path)
    publisher = Publisher(broker.port)
    try:
        wait_until(lambda: "subscribed to" in proc.output(), 30, "the side-car to subscribe")
        app.stop()  # the reading waits in the outbox, retried against an API that is down
        published = readings(site, "full", 1)
        publisher.publish(published)
        wait_until(lambda: outbox_depth(small_fs / "outbox.db") == 1, 20, "the reading stored")
        filler = fill(small_fs)
        app.start()  # 201 now; the outbox cannot record it
        wait_until(lambda: app.count() >= 1, 30, f"the first POST\n{proc.tail()}", every=0.1)
        time.sleep(WINDOW_S)  # the condition is "nothing more happens": wait it out
        while_full = app.count()
        filler.unlink()
        wait_until(lambda: outbox_depth(small_fs / "outbox.db") == 0, 30, "the outbox drained")
        assert proc.terminate() == 0
        log = proc.output()
    finally:
        publisher.close()
        proc.close()
        app.close()
    print(f"{while_full} rows in Laravel for one reading during {WINDOW_S}s of full disk")
    assert while_full == 1, f"{while_full} rows for one reading: POSTed again and again"
    assert app.count() == 1
    assert log.count("outbox done failed") == 1, log
    assert "Traceback" not in log
    assert "never retrieved" not in log
