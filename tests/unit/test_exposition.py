"""The sliced `/metrics` encoder writes exactly what prometheus_client writes, in both
formats and for every metric the two processes define, and lets the loop run meanwhile."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import CollectorRegistry, Counter, Info
from prometheus_client.exposition import choose_encoder

from modbus_mqtt_bridge.observe import exposition
from modbus_mqtt_bridge.observe.metrics import BridgeMetrics, ForwarderMetrics

ACCEPTS = [
    "",  # curl: text 0.0.4
    "text/plain;version=0.0.4",
    "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
    "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8",
    "application/openmetrics-text",
    "text/plain;version=1.0.0;escaping=underscores",
]
# Names users choose end up in label values: each of these must be escaped the same way.
ODD_NAMES = ["plain", 'quote"d', "back\\slash", "new\nline", "ümlaut", "sp ace", ""]


def _without_process(body: bytes) -> list[str]:
    """The process collector's figures move between two renders: compare the rest."""
    return [
        line
        for line in body.decode().splitlines()
        if not line.startswith(("process_", "# HELP process_", "# TYPE process_"))
    ]


def _bridge_registry(connections: int = 3) -> CollectorRegistry:
    m = BridgeMetrics()
    for i in range(connections):
        for name in ODD_NAMES:
            conn, dev = f"c{i}-{name}", f"d{i}-{name}"
            m.requests.labels(conn, dev, "3", "ok").inc(i + 1)
            m.request_duration.labels(conn).observe(0.003 * (i + 1))
            m.lateness.labels(conn).observe(12.5)
            m.device_up.labels(dev).set(1)
            m.last_success.labels(dev).set(1_796_396_190.123)
            m.readings_published.labels(dev).inc(1e9)
            m.read_errors.labels(dev)
            m.bad_registers.labels(dev).set(float("nan"))
            m.frame_errors.labels(conn, "crc").inc()
            m.commands.labels(dev, "written").inc()
    m.buffer_depth.set(float("inf"))
    m.loop_lag.set(-0.0)
    return m.registry


def _forwarder_registry() -> CollectorRegistry:
    m = ForwarderMetrics()
    m.deliveries.labels("done").inc(3)
    m.delivery_latency.observe(0.2)
    m.storage_errors.labels("insert").inc()
    m.outbox_depth.set(12)
    return m.registry


async def _render(registry: CollectorRegistry, accept: str) -> tuple[bytes, str]:
    return await exposition.render(registry, accept)


@pytest.mark.parametrize("accept", ACCEPTS)
@pytest.mark.parametrize("make", [_bridge_registry, _forwarder_registry])
def test_the_body_is_prometheus_clients_byte_for_byte(accept: str, make: object) -> None:
    registry = make()  # type: ignore[operator]
    encoder, expected_type = choose_encoder(accept)
    body, content_type = asyncio.run(_render(registry, accept))
    assert content_type == expected_type
    assert _without_process(body) == _without_process(encoder(registry))
    assert body.endswith(b"# EOF\n") == ("openmetrics" in content_type)


@pytest.mark.parametrize("accept", ["", "application/openmetrics-text;version=1.0.0"])
def test_what_it_does_not_write_itself_is_left_to_prometheus_client(accept: str) -> None:
    registry = CollectorRegistry()
    Info("build", "Build information", registry=registry).info({"version": "1.2"})
    counter = Counter("with_exemplar", "A counter with an exemplar", registry=registry)
    counter.inc(exemplar={"trace_id": "abc"})
    encoder, _ = choose_encoder(accept)
    body, _ = asyncio.run(_render(registry, accept))
    assert body == encoder(registry)


def test_a_large_registry_is_written_in_slices_with_the_loop_running_between() -> None:
    registry = _bridge_registry(connections=60)  # ~ 60 x 7 x 50 samples
    samples = sum(len(m.samples) for m in registry.collect())
    assert samples > 20 * exposition.SLICE

    async def run() -> tuple[int, bytes]:
        ticks = 0
        done = asyncio.Event()

        async def other_work() -> None:  # stands in for the workers' polls
            nonlocal ticks
            while not done.is_set():
                ticks += 1
                await asyncio.sleep(0)

        task = asyncio.create_task(other_work())
        await asyncio.sleep(0)
        body, _ = await exposition.render(registry, "")
        done.set()
        await task
        return ticks, body

    ticks, body = asyncio.run(run())
    assert ticks >= samples // exposition.SLICE
    assert _without_process(body) == _without_process(choose_encoder("")[0](registry))
