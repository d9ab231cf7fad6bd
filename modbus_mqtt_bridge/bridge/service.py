"""`run`: the bridge as one TaskGroup — a worker per connection, the MQTT session and the
publish pipeline.

Stopping is ordered: workers stop first (no new readings), then the pipeline lets in-flight
publishes be acknowledged, the session says `offline` and disconnects, and what the broker
has not taken stays in the buffer.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from collections.abc import Callable

from ..config.model import Config, Connection
from ..errors import ConfigError
from ..heap import release_free_memory
from ..modbus.port import ModbusPort
from ..modbus.worker import Worker
from ..mqtt import topics
from ..mqtt.buffer import Buffer, open_buffer
from ..mqtt.pipeline import Pipeline
from ..mqtt.port import MqttPort, Will
from ..mqtt.session import Session
from ..observe.metrics import BridgeMetrics
from ..plan import Plan, build_plan
from ..schedule import phases, tick_load
from ..writes.handler import CommandHandler
from .board import DeviceBoard
from .extensions import BridgeExtensions

log = logging.getLogger(__name__)

# Descriptors besides one per connection: stdio, the event loop, the broker, the buffer's
# SQLite files, the HTTP listener and its clients, log files.
SPARE_FILES = 64


def ensure_open_files(needed: int) -> None:
    """Raise the soft limit on open files to `needed` if it is lower (up to the hard limit).

    Every connection holds a socket (or a serial port) for good: 1,000 connections do not
    fit the soft limit of 1,024 that shells and systemd services get by default, and the
    connections beyond it would fail with "Too many open files". An unprivileged process
    may raise its soft limit up to the hard one; when even that is too low, say so once."""
    try:
        import resource  # noqa: PLC0415  (POSIX only; Windows has no such limit)
    except ImportError:
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return
    target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (OSError, ValueError) as exc:  # e.g. a seccomp filter refusing setrlimit
            log.debug("cannot raise the open-files limit: %s", exc)
            target = soft
    if target < needed:
        log.warning(
            "the open-files limit is %d but %d connections need about %d: raise it "
            "(LimitNOFILE= in the systemd unit, ulimit -n)",
            target,
            needed - SPARE_FILES,
            needed,
        )


class Bridge:
    """The assembled bridge; tests and `demo` drive it directly. The component tests pass
    their own ports (the same interfaces, faults on demand) and buffer."""

    def __init__(
        self,
        config: Config,
        metrics: BridgeMetrics | None = None,
        *,
        mqtt_port: MqttPort | None = None,
        modbus_port: Callable[[Connection], ModbusPort] | None = None,
        buffer: Buffer | None = None,
    ) -> None:
        self.config = config
        self.metrics = metrics or BridgeMetrics()
        self.plan: Plan = build_plan(config)
        status_topic = topics.bridge_status(config.site)
        port = mqtt_port or MqttPort(
            config.mqtt, config.mqtt_client_id, will=Will(status_topic, "offline")
        )
        self.session = Session(port, Will(status_topic, "online"), self.metrics)
        if buffer is None:
            buffer = open_buffer(config.buffer.path, config.buffer.max_readings)
        self.pipeline = Pipeline(config, self.session, buffer, self.metrics)
        # the workers report through the board, which notes device state for /status
        self.board = DeviceBoard(self.pipeline, self.metrics, config.metrics.history)
        polled = [
            (conn, requests)
            for conn in config.connections
            if (requests := self.plan.for_connection(conn.name))
        ]
        # Connections tick in phase slots spread over the interval, not all at one instant;
        # light ones share a slot (schedule.phases).
        offsets = phases([tick_load(requests) for _, requests in polled])
        self.workers = {
            conn.name: Worker(
                conn,
                requests,
                self.board,
                self.metrics,
                modbus_port(conn) if modbus_port else None,
                phase_s=offset,
            )
            for (conn, requests), offset in zip(polled, offsets, strict=True)
        }
        ensure_open_files(len(self.workers) + SPARE_FILES)
        self.commands = CommandHandler(
            config, self.session, self.workers, self.metrics, sink=self.board
        )
        self.commands.attach()  # both /set topic shapes, re-subscribed on every reconnect
        # metrics/status HTTP, HA discovery, sd_notify: subscribers to the session
        self.extensions = BridgeExtensions(
            config,
            self.session,
            buffer=self.pipeline.buffer,
            board=self.board,
            workers=self.workers,
            metrics=self.metrics,
            commands=self.commands,
        )

    async def run(self, stop: asyncio.Event) -> None:
        log.info(
            "bridge %s: %d devices, %d values, %d requests on %d connections",
            self.config.site,
            len(self.config.devices),
            self.plan.value_count,
            len(self.plan.requests),
            len(self.workers),
        )
        mqtt_stop = asyncio.Event()
        await self.extensions.start()
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self.session.run(mqtt_stop), name="mqtt-session")
                tg.create_task(self.pipeline.run(mqtt_stop), name="publish-pipeline")
                for name, task in self.extensions.tasks(stop):
                    tg.create_task(task, name=name)
                async with asyncio.TaskGroup() as workers:
                    for name, worker in self.workers.items():
                        workers.create_task(worker.run(stop), name=f"worker-{name}")
                mqtt_stop.set()
            await self.pipeline.settle()  # acks, then every device `offline`
            await self.session.close("offline")  # then the bridge
        finally:
            self.pipeline.close()  # unacked readings are in the buffer; it is closed
        log.info("bridge %s stopped", self.config.site)


def install_stop_signals(stop: asyncio.Event, on_reload: Callable[[], None] | None = None) -> None:
    install_stop_signals_to(stop.set, on_reload)


def _on_signals(signals: tuple[signal.Signals | None, ...], handler: Callable[[], None]) -> None:
    """Signal handlers on the loop; Windows (NSSM sends Ctrl-C) has no loop signal API."""
    loop = asyncio.get_running_loop()
    for sig in signals:
        if sig is None:
            continue
        try:
            loop.add_signal_handler(sig, handler)
        except NotImplementedError:
            signal.signal(sig, lambda _s, _f: loop.call_soon_threadsafe(handler))


async def run_until_signalled(
    config: Config,
    reload: Callable[[], Config] | None = None,
    *,
    make_bridge: Callable[[Config], Bridge] = Bridge,
) -> None:
    """Run until SIGTERM/SIGINT. SIGHUP re-reads the config with `reload`: a valid one
    replaces the running bridge (stopped in order, buffer kept on disk); an invalid one
    is rejected with the same messages as `validate` and the old one keeps running."""
    stop = asyncio.Event()
    generation = asyncio.Event()
    pending: list[Config] = []

    def on_stop() -> None:
        stop.set()
        generation.set()

    def on_reload() -> None:
        candidate = _try_reload(reload)
        if candidate is not None:
            pending.append(candidate)
            generation.set()

    install_stop_signals_to(on_stop, on_reload)
    if config.buffer.path is None:
        log.warning(
            'buffer.path ":memory:": readings wait for the broker in memory only; '
            "a stop, reload or crash loses them"
        )
    while True:
        generation.clear()
        bridge = make_bridge(config)  # the previous one is unreferenced from here on
        _settle_garbage_collector()
        await bridge.run(generation)
        if stop.is_set() or not pending:
            return
        config = pending.pop()
        pending.clear()
        log.warning("config reloaded: %d devices", len(config.devices))


def install_stop_signals_to(
    on_stop: Callable[[], None], on_reload: Callable[[], None] | None = None
) -> None:
    _on_signals((signal.SIGTERM, signal.SIGINT), on_stop)
    if on_reload is not None:
        _on_signals((getattr(signal, "SIGHUP", None),), on_reload)


def _settle_garbage_collector() -> None:
    """The config, plan and caches live as long as the process: move them out of the
    collector's sight and collect less often. On a 20,000-register plan each full
    collection otherwise walks them all (70 ms) and the collector takes a fifth of the CPU.
    On a reload the previous generation was frozen too: unfreeze first, or each SIGHUP
    would keep the whole previous bridge alive for good."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
    release_free_memory()  # what the config parse and the previous bridge left in the heap


def _try_reload(reload: Callable[[], Config] | None) -> Config | None:
    if reload is None:
        log.warning("SIGHUP: no config file to reload")
        return None
    try:
        candidate = reload()
        build_plan(candidate)  # a config that cannot be planned is rejected too
    except ConfigError as exc:
        problems = "\n".join(str(p) for p in exc.problems)
        log.error(  # noqa: TRY400  (an operator wants the problems, not a traceback)
            "SIGHUP: new config rejected, the running one stays:\n%s", problems
        )
        return None
    return candidate
