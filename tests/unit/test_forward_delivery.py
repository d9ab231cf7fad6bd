"""Delivery against a scripted HTTP transport: wire format, order per key, gate, batch fallback."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import random
import sqlite3
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from modbus_mqtt_bridge.forward.delivery import Delivery, Endpoints
from modbus_mqtt_bridge.forward.laravel import Item, parse_message
from modbus_mqtt_bridge.forward.outbox import AsyncOutbox, Outbox
from modbus_mqtt_bridge.forward.service import Target, http_client
from modbus_mqtt_bridge.observe.metrics import ForwarderMetrics
from modbus_mqtt_bridge.retry import Backoff, RetryPolicy

API = "http://api.test/api/readings"
BATCH = "http://api.test/api/readings/batch"
TOKEN = "s3cret-token-value"
FAST = RetryPolicy(api=Backoff(0.05, 0.2), pause_s=0.2, retry_after_slack_s=0.0)
Handler = Callable[[httpx.Request], Awaitable[httpx.Response]]


def reading(i: int, parameter: str = "Current", device_id: int = 1) -> Item:
    payload = {
        "value": i,
        "unit": "A",
        "ts": f"2025-07-08T16:{i // 60:02d}:{i % 60:02d}.000Z",
        "device_id": device_id,
        "parameter": parameter,
        "register_address": 40005,
        "data_type": "float",
        "description": f"r{i}",
    }
    parsed = parse_message("p/d/r", json.dumps(payload).encode(), False)
    assert isinstance(parsed, Item)
    return parsed


def created(request: httpx.Request) -> httpx.Response:
    return httpx.Response(201, json={"id": 1}, request=request)


def deliver(
    tmp_path: Path,
    items: list[Item],
    handler: Handler,
    *,
    batch: bool = False,
    concurrency: int = 4,
    until: Callable[[Outbox], bool] = lambda o: o.depth == 0,
    timeout: float = 10.0,
) -> Outbox:
    """Run delivery over `items` until `until(outbox)` holds; return the outbox."""
    outbox = Outbox(tmp_path / "outbox.db", 1000)
    outbox.add(items)
    endpoints = Endpoints(API, BATCH if batch else None, 10, concurrency, 5.0)

    async def main() -> None:
        store = AsyncOutbox(outbox)
        target = Target(endpoints, TOKEN)
        async with http_client(target, httpx.MockTransport(handler)) as client:
            stop = asyncio.Event()
            delivery = Delivery(endpoints, store, client, ForwarderMetrics(), FAST)
            task = asyncio.create_task(delivery.run(stop))
            deadline = time.monotonic() + timeout
            while not until(outbox) and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.01)  # the condition lives in SQLite, not in an Event
            stop.set()
            await task

    asyncio.run(main())
    return outbox


def test_each_post_carries_the_headers_and_the_exact_body(tmp_path: Path) -> None:
    seen: list[httpx.Request] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return created(request)

    item = reading(7)
    deliver(tmp_path, [item], handler)
    (request,) = seen
    assert str(request.url) == API
    assert request.method == "POST"
    assert request.headers["accept"] == "application/json"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.headers["idempotency-key"] == item.idempotency_key
    assert request.content.decode() == item.body


def test_concurrent_requests_keep_order_per_key(tmp_path: Path) -> None:
    order: dict[str, list[int]] = {}
    in_flight, most = 0, 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, most
        body = json.loads(request.content)
        in_flight += 1
        most = max(most, in_flight)
        await asyncio.sleep(random.uniform(0, 0.004))  # interleave the answers
        in_flight -= 1
        order.setdefault(body["parameter"], []).append(body["value"])
        return created(request)

    items = [
        reading(i, ("Current", "Frequency", "Active Power", "Voltage")[i % 4]) for i in range(80)
    ]
    deliver(tmp_path, items, handler, concurrency=3)
    assert sum(len(v) for v in order.values()) == 80
    assert all(values == sorted(values) for values in order.values()), order
    assert most == 3, f"at most {most} requests in flight"


def test_a_rejected_batch_is_resent_singly_and_only_the_bad_one_dead_letters(
    tmp_path: Path,
) -> None:
    paths: list[str] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        paths.append(request.url.path)
        body = json.loads(request.content)
        bad = any(r["device_id"] == 99 for r in body.get("readings", [body]))
        if bad:
            return httpx.Response(422, json={"message": "The given data was invalid."})
        return created(request)

    items = [reading(i) for i in range(5)] + [reading(5, device_id=99)] + [reading(6)]
    outbox = deliver(tmp_path, items, handler, batch=True)
    assert paths[0] == "/api/readings/batch"
    assert paths.count("/api/readings") == 7  # the batch's seven, one by one
    (dead,) = outbox.dead_letters()
    assert json.loads(dead.entry.body)["device_id"] == 99
    assert dead.status == 422
    assert outbox.depth == 0


def test_retry_after_holds_every_request_back(tmp_path: Path) -> None:
    times: list[float] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        times.append(time.monotonic())
        if len(times) == 1:
            return httpx.Response(429, headers={"Retry-After": "0.5"}, json={"message": "Too Many"})
        return created(request)

    deliver(tmp_path, [reading(1), reading(2, "Frequency")], handler, concurrency=1)
    assert len(times) == 3
    assert times[1] - times[0] >= 0.5


def test_unreachable_api_backs_off(tmp_path: Path) -> None:
    times: list[float] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        times.append(time.monotonic())
        if len(times) < 4:
            raise httpx.ConnectError("refused", request=request)
        return created(request)

    deliver(tmp_path, [reading(1)], handler)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert len(times) == 4
    assert all(gap >= 0.02 for gap in gaps), gaps  # never hammered


def test_html_and_redirects_are_not_verdicts(tmp_path: Path) -> None:
    answers = [
        httpx.Response(302, headers={"Location": "http://api.test/login"}),
        httpx.Response(200, headers={"Content-Type": "text/html"}, text="<html>login</html>"),
    ]
    urls: list[str] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        urls.append(str(request.url))
        return answers.pop(0) if answers else created(request)

    outbox = deliver(tmp_path, [reading(1)], handler)
    assert urls == [API, API, API], "a redirect is never followed"
    assert outbox.dead_letters() == []


def test_401_pauses_loudly_once_keeps_everything_and_never_logs_the_token(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    calls = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(401, json={"message": "Unauthenticated."})

    caplog.set_level(logging.DEBUG)
    items = [reading(i, ("Current", "Frequency")[i % 2]) for i in range(6)]
    outbox = deliver(tmp_path, items, handler, until=lambda _o: calls >= 6, timeout=5)
    assert outbox.depth == 6
    assert calls >= 6, "paused delivery keeps probing"
    paused = [r for r in caplog.records if "delivery PAUSED" in r.getMessage()]
    assert len(paused) == 1
    assert paused[0].levelno == logging.ERROR
    assert all(TOKEN not in r.getMessage() for r in caplog.records)


def test_a_failing_api_gets_one_probe_at_a_time(tmp_path: Path) -> None:
    answered_503, answered_201, in_flight = 0, False, 0
    probes: list[int] = []  # requests in flight when each probe started

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal answered_503, answered_201, in_flight
        in_flight += 1
        if answered_503 and not answered_201:
            probes.append(in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1
        if answered_503 < 6:  # the first wave of four, then two probes
            answered_503 += 1
            return httpx.Response(503, json={"message": "down"})
        answered_201 = True
        return created(request)

    keys = ("Current", "Frequency", "Active Power", "Voltage")
    outbox = deliver(tmp_path, [reading(i, keys[i % 4]) for i in range(8)], handler)
    assert outbox.depth == 0
    assert len(probes) >= 3
    assert set(probes) == {1}, f"requests in flight while failing: {probes}"


def test_an_unreadable_outbox_backs_off_and_delivery_carries_on(tmp_path: Path) -> None:
    """Another process breaks the file under us (here: renames the table); `take` fails
    with a real SQLite error, counted and backed off, and delivery resumes once it reads."""
    path = tmp_path / "outbox.db"
    outbox = Outbox(path, 1000)
    outbox.add([reading(1), reading(2)])
    posts: list[httpx.Request] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        posts.append(request)
        return created(request)

    metrics = ForwarderMetrics()
    policy = RetryPolicy(api=Backoff(0.05, 0.2), storage=Backoff(0.05, 0.1))

    async def main() -> bool:
        endpoints = Endpoints(API, None, 10, 4, 5.0)
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("ALTER TABLE outbox RENAME TO outbox_away")
        async with http_client(Target(endpoints, TOKEN), httpx.MockTransport(handler)) as client:
            stop = asyncio.Event()
            delivery = Delivery(endpoints, AsyncOutbox(outbox), client, metrics, policy)
            task = asyncio.create_task(delivery.run(stop))
            deadline = time.monotonic() + 10
            while not task.done() and time.monotonic() < deadline:
                if metrics.registry.get_sample_value(
                    "modbus_forwarder_outbox_errors_total", {"op": "take"}
                ):
                    break
                await asyncio.sleep(0.01)
            survived = not task.done()
            other.execute("ALTER TABLE outbox_away RENAME TO outbox")
            deadline = time.monotonic() + 10
            while outbox.depth and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
            stop.set()
            with contextlib.suppress(Exception):
                await task
        other.close()
        return survived

    assert asyncio.run(main()), "a failing read ended delivery"
    assert len(posts) == 2
    assert outbox.depth == 0


def test_a_partial_batch_waits_while_a_request_is_in_flight(tmp_path: Path) -> None:
    """At a steady trickle each intake commit would leave as its own small batch: while one
    request is in flight, what arrives waits for it and then goes as one batch."""
    sizes: list[int] = []
    parameters = ("Current", "Frequency", "Active Power", "Voltage", "Energy", "Power Factor")
    endpoints = Endpoints(API, BATCH, 10, 4, 5.0)
    outbox = Outbox(tmp_path / "outbox.db", 1000)
    outbox.add([reading(0)])

    async def main() -> None:
        release = asyncio.Event()

        async def handler(request: httpx.Request) -> httpx.Response:
            sizes.append(len(json.loads(request.content)["readings"]))
            if len(sizes) == 1:
                await release.wait()
            return created(request)

        store = AsyncOutbox(outbox)
        async with http_client(Target(endpoints, TOKEN), httpx.MockTransport(handler)) as client:
            stop = asyncio.Event()
            delivery = Delivery(endpoints, store, client, ForwarderMetrics(), FAST)
            task = asyncio.create_task(delivery.run(stop))
            await _until(lambda: len(sizes) == 1, "the first request")
            for i, parameter in enumerate(parameters, start=1):  # one commit each, new keys
                await store.add([reading(i, parameter)])
                delivery.notify()
            # bounded look for a request that should not start (concurrency 4 would allow it)
            with contextlib.suppress(TimeoutError):
                await _until(lambda: len(sizes) > 1, "a second request", within=0.5)
            assert sizes == [1], "a partial batch went while a request was in flight"
            release.set()
            await _until(lambda: outbox.depth == 0, "the rest to be delivered")
            stop.set()
            await task

    asyncio.run(main())
    assert sizes == [1, len(parameters)]


async def _until(condition: Callable[[], bool], what: str, within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {what} within {within}s")
        await asyncio.sleep(0.01)  # the state lives in the handler and SQLite: polled
