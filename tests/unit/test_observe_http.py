"""The HTTP endpoint on its own: routes, codes, and metric names Prometheus accepts."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from prometheus_client.core import GaugeMetricFamily, Metric

from modbus_mqtt_bridge.errors import BridgeError
from modbus_mqtt_bridge.observe.health import Heartbeat
from modbus_mqtt_bridge.observe.http import HttpEndpoint, parse_listen
from modbus_mqtt_bridge.observe.metrics import BridgeMetrics, ForwarderMetrics
from tests.support.prom import get, promtool_check, samples, value


def _populated_bridge_metrics() -> BridgeMetrics:
    m = BridgeMetrics()
    m.requests.labels("lan", "meter1", "3", "ok").inc(5)
    m.requests.labels("lan", "meter1", "3", "ModbusTimeout").inc()
    m.request_duration.labels("lan").observe(0.012)
    m.device_up.labels("meter1").set(1)
    m.last_success.labels("meter1").set(1.7e9)
    m.readings_published.labels("meter1").inc(3)
    m.read_errors.labels("meter1").inc()
    m.buffer_depth.set(2)
    m.buffer_dropped.inc()
    m.missed_ticks.labels("lan").inc()
    m.lateness.labels("lan").observe(0.001)
    m.commands.labels("meter1", "ok").inc()
    m.broker_connected.set(1)
    m.loop_lag.set(0.0005)
    m.discovery_published.inc()
    return m


def _populated_forwarder_metrics() -> ForwarderMetrics:
    m = ForwarderMetrics()
    m.outbox_depth.set(1)
    m.deliveries.labels("201").inc()
    m.deliveries.labels("network").inc()
    m.dead_letters.inc()
    m.delivery_latency.observe(0.2)
    m.received.inc()
    m.broker_connected.set(1)
    m.ignored.labels("status_topic").inc()
    m.delivered.inc()
    return m


def _serve(endpoint: HttpEndpoint, client: Callable[[int], Any]) -> Any:
    """Run the endpoint on its own loop while `client(port)` runs in a thread."""

    async def scenario() -> Any:
        stop = asyncio.Event()
        await endpoint.start()
        task = asyncio.create_task(endpoint.serve(stop))
        try:
            return await asyncio.to_thread(client, endpoint.port)
        finally:
            stop.set()
            await task

    return asyncio.run(scenario())


def _endpoint(metrics: Any, healthy: list[bool] | None = None) -> HttpEndpoint:
    state = healthy if healthy is not None else [True]
    return HttpEndpoint(
        "127.0.0.1:0",
        metrics.registry,
        health=lambda: (state[0], "ok" if state[0] else "broker not connected"),
        status=lambda: {"devices": {"meter1": {"online": True}}},
    )


def test_parse_listen() -> None:
    assert parse_listen("127.0.0.1:9105") == ("127.0.0.1", 9105)
    assert parse_listen("[::1]:9105") == ("::1", 9105)
    assert parse_listen(":9105") == (None, 9105)


def test_routes_and_codes() -> None:
    healthy = [True]
    endpoint = _endpoint(_populated_bridge_metrics(), healthy)

    def client(port: int) -> None:
        base = f"http://127.0.0.1:{port}"
        code, ctype, body = get(f"{base}/metrics")
        assert code == 200 and ctype.startswith("text/plain")
        assert "modbus_bridge_requests_total" in body
        assert get(f"{base}/healthz")[0] == 200
        healthy[0] = False
        code, _, body = get(f"{base}/healthz")
        assert (code, body.strip()) == (503, "broker not connected")
        code, ctype, body = get(f"{base}/status")
        assert (code, ctype) == (200, "application/json")
        assert json.loads(body)["devices"]["meter1"]["online"] is True
        assert get(f"{base}/nope")[0] == 404
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"POST /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            assert s.recv(100).startswith(b"HTTP/1.1 405")
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"HEAD /healthz HTTP/1.1\r\n\r\n")
            head = s.recv(1000)
            assert head.startswith(b"HTTP/1.1 503") and head.endswith(b"\r\n\r\n")
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"garbage\r\n\r\n")  # closed without an answer, server unharmed
            assert s.recv(100) == b""
        assert get(f"{base}/healthz")[0] == 503

    _serve(endpoint, client)


def test_openmetrics_when_asked() -> None:
    endpoint = _endpoint(_populated_bridge_metrics())

    def client(port: int) -> None:
        import urllib.request

        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/metrics",
            headers={"Accept": "application/openmetrics-text; version=1.0.0"},
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.headers["Content-Type"].startswith("application/openmetrics-text")
            assert response.read().decode().endswith("# EOF\n")

    _serve(endpoint, client)


class _SlowCollector:
    """A collector whose exposition takes a while, as 1,000 connections' histograms do."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def collect(self) -> Iterator[Metric]:
        time.sleep(self.seconds)
        yield GaugeMetricFamily("modbus_bridge_slow", "slow to render", value=1)


def test_a_scrape_does_not_hold_the_loop() -> None:
    """The workers poll on the loop: rendering /metrics there stalls every poll."""
    metrics = _populated_bridge_metrics()
    metrics.registry.register(_SlowCollector(0.5))
    endpoint = _endpoint(metrics)

    async def scenario() -> tuple[float, str]:
        stop = asyncio.Event()
        await endpoint.start()
        server = asyncio.create_task(endpoint.serve(stop))
        loop = asyncio.get_running_loop()
        gaps: list[float] = []

        async def ticker() -> None:
            last = loop.time()
            while not stop.is_set():
                await asyncio.sleep(0.01)
                gaps.append(loop.time() - last)
                last = loop.time()

        ticking = asyncio.create_task(ticker())
        try:
            _, _, body = await asyncio.to_thread(get, f"http://127.0.0.1:{endpoint.port}/metrics")
        finally:
            stop.set()
            await asyncio.gather(server, ticking)
        return max(gaps), body

    longest, body = asyncio.run(scenario())
    assert "modbus_bridge_slow 1.0" in body
    assert longest < 0.25, f"the loop stood still {longest:.2f}s during a scrape"


def test_a_taken_port_fails_the_start_clearly() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        endpoint = HttpEndpoint(
            f"127.0.0.1:{port}", BridgeMetrics().registry, lambda: (True, ""), dict
        )
        with pytest.raises(BridgeError, match=rf"metrics.listen 127.0.0.1:{port}: cannot listen"):
            asyncio.run(endpoint.start())


@pytest.mark.parametrize("make", [_populated_bridge_metrics, _populated_forwarder_metrics])
def test_names_follow_prometheus_conventions(make: Callable[[], Any]) -> None:
    from prometheus_client import generate_latest

    metrics = make()
    text = generate_latest(metrics.registry).decode()
    prefix = "modbus_bridge_" if isinstance(metrics, BridgeMetrics) else "modbus_forwarder_"
    for name, labels in samples(text):
        if name.startswith("process_"):
            continue
        assert name.startswith(prefix), name
        assert re.fullmatch(r"[a-z_]+", name), name
        # labels name where, never what was read
        assert {k for k, _ in labels} <= {
            "connection",
            "device",
            "function",
            "result",
            "outcome",
            "status",
            "reason",
            "le",
        }, (name, labels)
    for line in text.splitlines():
        if line.startswith("# TYPE ") and line.endswith(" counter"):
            assert line.split()[2].endswith("_total")
    promtool_check(text)


def test_heartbeat_staleness() -> None:
    now = [100.0]
    heartbeat = Heartbeat(interval_s=1.0, clock=lambda: now[0])
    assert heartbeat.fresh()
    now[0] += 3.0
    assert heartbeat.fresh()
    now[0] += 0.5
    assert not heartbeat.fresh()
    heartbeat.beat()
    assert heartbeat.fresh() and heartbeat.age_s() == 0


def test_value_helper() -> None:
    parsed = samples('x_total{device="a"} 3\n')
    assert value(parsed, "x_total", device="a") == 3
