"""One worker per connection: the only thing that talks to that link, one request at a time.

It executes the plan's read requests on their fixed-rate schedule, interleaves write
jobs between requests (a command waits for at most one in-flight request), backs off
devices that stop answering without stalling their neighbours, and reconnects the link
with capped, jittered backoff.

A unit that times out is a device problem (backed off alone); only a failing port or socket
takes the whole link down. On RTU lines the port names damaged and stray frames; the worker
counts them (`modbus_bridge_frame_errors`) and logs them rate-limited.

Supervised: an unexpected exception (a bug, an error no one foresaw) restarts this worker
alone with capped backoff, logged and counted (`modbus_bridge_worker_restarts_total`); it
never ends another worker or the bridge.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any, TypeVar

from .. import codec
from ..config.model import Connection, Device
from ..errors import CodecError, ModbusConnectionError, ModbusError, ModbusExceptionResponse
from ..observe.metrics import BridgeMetrics
from ..plan import ReadRequest
from ..readings import DeviceStatus, ReadFailure, Reading, Sink
from ..retry import Throttle, backoff_delay
from ..schedule import Schedule
from . import isolate
from .health import LOG_EVERY_S, DeviceHealth
from .port import ModbusPort, describe

log = logging.getLogger(__name__)
T = TypeVar("T")
HEALTHY_AFTER_S = 60.0  # a worker that ran this long since its restart starts afresh


@dataclass
class _Job:
    fn: Callable[[ModbusPort], Awaitable[object]]
    future: asyncio.Future[object] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class Worker:
    def __init__(
        self,
        conn: Connection,
        requests: Sequence[ReadRequest],
        sink: Sink,
        metrics: BridgeMetrics | None = None,
        port: ModbusPort | None = None,
        *,
        phase_s: float = 0.0,
    ) -> None:
        self.conn = conn
        self.phase_s = phase_s  # the schedule's grid begins this long after run() starts
        self.requests = tuple(requests)
        self.sink = sink
        self.metrics = metrics
        self.port = port or ModbusPort(conn)
        self.devices = {r.device.name: r.device for r in self.requests}
        self.port.on_frame_error = self._frame_error
        self.port.turnaround_s = {d.unit_id: d.turnaround_delay_s for d in self.devices.values()}
        self._throttle = Throttle(LOG_EVERY_S)
        self.health = {name: DeviceHealth() for name in self.devices}
        # a list, not an asyncio.Queue (four deques and an Event, ~3 KB a connection) nor
        # a deque (~0.7 KB): nothing awaits it, the worker takes jobs between requests, and
        # there are hardly ever more than one or two
        self._jobs: list[_Job] = []
        self._splits: dict[int, isolate.Split] = {}  # id(planned request) -> its split
        self._requests_by_id = {id(r): r for r in self.requests}
        # set while the worker sleeps with wake_on_jobs: a job arriving wakes it (created
        # per sleep, not an Event kept per connection with its deque of waiters)
        self._woken: asyncio.Future[None] | None = None
        self._link_failures = 0
        if metrics is not None:  # every device has its series from the start, even never read
            for r in self.requests:
                metrics.requests.labels(conn.name, r.device.name, str(r.function_code), "ok")

    # -- public ----------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Poll until stop; an unexpected error restarts this worker, never the others."""
        loop = asyncio.get_running_loop()
        restarts = 0
        while not stop.is_set():
            started = loop.time()
            try:
                await self._serve(stop)
            except Exception as exc:  # supervision: whatever it was
                restarts = 1 if loop.time() - started > HEALTHY_AFTER_S else restarts + 1
                delay = backoff_delay(restarts, first_s=1.0, cap_s=60.0)
                self._restarting(exc, delay)
                await self._sleep_until(loop.time() + delay, stop, wake_on_jobs=False)

    def _restarting(self, exc: Exception, delay: float) -> None:
        if self.metrics is not None:
            self.metrics.worker_restarts.labels(self.conn.name).inc()
        log.warning(
            "worker for %s failed unexpectedly (%s: %s); restarting it in %.1fs",
            self.conn.name,
            type(exc).__name__,
            exc,
            delay,
        )
        log.debug("worker for %s failed here:", self.conn.name, exc_info=exc)

    async def _serve(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        schedule = Schedule(self.requests, start=loop.time() + self.phase_s)
        try:
            while not stop.is_set():
                if not self.port.connected and not await self._reconnect(stop):
                    continue
                await self._run_jobs()
                await self._poll_due(schedule, loop.time())
                if self.metrics is not None and schedule.missed_ticks:
                    self.metrics.missed_ticks.labels(self.conn.name).inc(schedule.missed_ticks)
                    schedule.missed_ticks = 0
                await self._sleep_until(schedule.next_due(), stop)
        finally:
            self.port.close()
            self._fail_pending_jobs()

    async def poll_once(self) -> None:
        """Every request once, now (the `once` command)."""
        if not self.port.connected:
            try:
                await self.port.connect()
            except ModbusError as exc:
                self._link_down(str(exc))
                return
        await self._execute(self.requests)

    async def run_exclusive(self, fn: Callable[[ModbusPort], Awaitable[T]]) -> T:
        """Run fn with the port between two poll requests (commands use this)."""
        job = _Job(fn)
        self._jobs.append(job)
        if self._woken is not None and not self._woken.done():
            self._woken.set_result(None)
        return await job.future  # type: ignore[return-value]

    # -- polling ---------------------------------------------------------------------

    async def _poll_due(self, schedule: Schedule, now: float) -> None:
        late_s = schedule.lateness(now)  # before due() moves the ticks on
        due = schedule.due(now)
        if due:
            if self.metrics is not None:
                self.metrics.lateness.labels(self.conn.name).observe(late_s)
            await self._execute(due)

    async def _execute(self, requests: Sequence[ReadRequest]) -> None:
        """Run requests grouped per device, so each device's tick ends once."""
        by_device: dict[str, list[ReadRequest]] = {}
        for request in requests:
            by_device.setdefault(request.device.name, []).append(request)
        for name, device_requests in by_device.items():
            if not self.port.connected:
                return
            health = self.health[name]
            if not health.may_try(asyncio.get_running_loop().time()):
                continue
            await self._poll_device(self.devices[name], device_requests, health)

    async def _poll_device(
        self, device: Device, requests: list[ReadRequest], health: DeviceHealth
    ) -> None:
        """Each request's results go on as soon as they are decoded, so a reading does not
        wait for its device's later requests (issue 16); the tick ends (the device payload)
        after the last one, and before a command that arrives mid-poll."""
        # A device not known to be online keeps its tick together, as before: its `online`
        # goes out ahead of the readings of its first tick (start, recovery).
        at_once = health.online is True
        readings: list[Reading] = []
        failures: list[ReadFailure] = []
        handed = False  # results went on since the tick (or its part before a command) began
        try:
            for request in requests:
                if self._jobs and (handed or readings or failures):
                    # A command may write what was just read: what was read so far goes on
                    # and its tick ends before the command runs, so a value read before a
                    # write never follows the write's result (SPEC 3).
                    self._hand_off(device, readings, failures)
                    self._end_tick(device)
                    readings, failures, handed = [], [], False
                await self._run_jobs()
                try:
                    await self._read_values(request, readings, failures)
                except ModbusExceptionResponse as exc:
                    failures.extend(_fail_all(request, f"device answered {exc}"))
                except ModbusError as exc:
                    self._exchange_failed(device, health, exc)
                    failures.extend(_fail_all(request, str(exc)))
                    break
                if at_once:
                    handed = self._hand_off(device, readings, failures) or handed
                    readings, failures = [], []
            else:
                self._device_answered(device, health)
        finally:
            # Also when a bug ends the tick early: what was read is delivered, and its tick
            # ends (the worker restarts; nothing already read is dropped on the floor).
            handed = self._hand_off(device, readings, failures) or handed
            if handed:
                self._end_tick(device)

    def _hand_off(
        self, device: Device, readings: list[Reading], failures: list[ReadFailure]
    ) -> bool:
        """Results to the pipeline, if there are any; says whether there were."""
        if not (readings or failures):
            return False
        self._guarded(device, self.sink.on_readings, device, readings, failures)
        return True

    def _end_tick(self, device: Device) -> None:
        self._guarded(device, self.sink.on_tick_end, device)

    def _guarded(self, device: Device, call: Callable[..., None], *args: object) -> None:
        """A bug behind the sink must not stop this connection's polling."""
        try:
            call(*args)
        except Exception as exc:  # counted and logged; polling goes on
            if self.metrics is not None:
                self.metrics.handoff_errors.labels(self.conn.name).inc()
            if self._throttle.due(time.monotonic(), "hand-off"):
                log.warning(
                    "results of %s not handed on: %s: %s", device.name, type(exc).__name__, exc
                )
            log.debug("hand-off of %s failed here:", device.name, exc_info=exc)

    async def _read_values(
        self, request: ReadRequest, readings: list[Reading], failures: list[ReadFailure]
    ) -> None:
        """Read one planned request, or its good chunks once some of its values are refused."""
        split = self._splits.get(id(request))
        if split is None:
            try:
                block = await self._read(request)
            except ModbusExceptionResponse as exc:
                if not isolate.is_refusal(exc):
                    raise
                await self._isolate(request, exc, readings, failures)
                return
            _decode_into(request, block, readings, failures)
            return
        for part in split.good:
            _decode_into(part, await self._read(part), readings, failures)
        await self._reprobe(request, split, readings, failures)

    async def _isolate(
        self,
        request: ReadRequest,
        refusal: ModbusExceptionResponse,
        readings: list[Reading],
        failures: list[ReadFailure],
    ) -> None:
        now = asyncio.get_running_loop().time()
        found = await isolate.isolate(request, self._read, refusal, now)
        for part, block in found.blocks:
            _decode_into(part, block, readings, failures)
        self._splits[id(request)] = found.split
        names = ", ".join(b.planned.register.name for b in found.split.bad)
        log.warning(
            "device %s refuses %s (%s); reading the rest around it, re-probing every %.0fs+",
            request.device.name,
            names,
            refusal,
            isolate.REPROBE_FIRST_S,
        )
        self._report_bad(request, found.split, failures)

    async def _reprobe(
        self,
        request: ReadRequest,
        split: isolate.Split,
        readings: list[Reading],
        failures: list[ReadFailure],
    ) -> None:
        now = asyncio.get_running_loop().time()
        for bad in [b for b in split.bad if b.retry_at <= now]:
            probe = isolate.sub_request(request, [bad.planned])
            try:
                block = await self._read(probe)
            except ModbusExceptionResponse as exc:
                if not isolate.is_refusal(exc):
                    raise
                bad.failures += 1
                bad.retry_at = now + isolate.reprobe_delay(bad.failures)
                continue
            split.bad.remove(bad)
            log.info("device %s answers %s again", request.device.name, bad.planned.register.name)
            _decode_into(probe, block, readings, failures)
        if not split.bad:
            del self._splits[id(request)]  # read merged again from the next tick on
        self._report_bad(request, split, failures)

    def _report_bad(
        self, request: ReadRequest, split: isolate.Split, failures: list[ReadFailure]
    ) -> None:
        ts_ms = time.time_ns() // 1_000_000
        failures.extend(
            ReadFailure(request.device, b.planned.register, b.error, ts_ms) for b in split.bad
        )
        if self.metrics is not None:
            bad = sum(
                len(s.bad)
                for key, s in self._splits.items()
                if self._requests_by_id[key].device.name == request.device.name
            )
            self.metrics.bad_registers.labels(request.device.name).set(bad)

    async def _read(self, request: ReadRequest) -> list[int]:
        started = time.perf_counter()
        result = "ok"
        try:
            return await self.port.read(
                request.table, request.address, request.count, request.device.unit_id
            )
        except ModbusError as exc:
            result = type(exc).__name__
            raise
        finally:
            if self.metrics is not None:
                self.metrics.request_duration.labels(self.conn.name).observe(
                    time.perf_counter() - started
                )
                self.metrics.requests.labels(
                    self.conn.name, request.device.name, str(request.function_code), result
                ).inc()

    # -- device and link health ------------------------------------------------------

    def _device_answered(self, device: Device, health: DeviceHealth) -> None:
        health.failures = 0
        if health.online is not True:
            if health.online is False:
                log.warning("device %s is back online", device.name)
            health.online = True
            self.sink.on_status(DeviceStatus(device, online=True))

    def _exchange_failed(self, device: Device, health: DeviceHealth, exc: ModbusError) -> None:
        """Blame the device, unless the port itself failed (then the link goes down)."""
        if isinstance(exc, ModbusConnectionError) or not self.port.connected:
            # A port that vanished mid-request shows as a timeout; its device is not at fault.
            self.port.close()
            self._link_down(str(exc))
            return
        self._device_failed(device, health, exc)

    def _frame_error(self, kind: str, detail: str) -> None:
        if self.metrics is not None:
            self.metrics.frame_errors.labels(self.conn.name, kind).inc()
        held = self._throttle.allow(time.monotonic(), kind)
        if held is not None:
            more = f" ({held} more since the last report)" if held else ""
            log.warning("%s: %s frame on the line: %s%s", self.conn.name, kind, detail, more)

    def _device_failed(self, device: Device, health: DeviceHealth, exc: Exception) -> None:
        health.failed(str(exc))
        health.retry_at = asyncio.get_running_loop().time() + self._backoff(health.failures)
        if health.online is not False:
            log.warning("device %s is offline: %s", device.name, exc)
            health.online = False
            self.sink.on_status(DeviceStatus(device, online=False, reason=str(exc)))

    async def _reconnect(self, stop: asyncio.Event) -> bool:
        try:
            await self.port.connect()
        except ModbusError as exc:
            self._link_failures += 1
            self._link_down(str(exc))
            # a command must not wait out the backoff: it is answered "down" now
            self._fail_pending_jobs(f"connection {self.conn.name} is down: {exc}")
            await self._sleep_until(
                asyncio.get_running_loop().time() + self._backoff(self._link_failures),
                stop,
                wake_on_jobs=False,
            )
            return False
        if self._link_failures:
            log.warning("connection %s is back", describe(self.conn))
        self._link_failures = 0
        return True

    def _backoff(self, failures: int) -> float:
        return backoff_delay(failures, cap_s=self.conn.reconnect_max_s)

    def _link_down(self, reason: str) -> None:
        for name, device in self.devices.items():
            health = self.health[name]
            health.failed(reason)  # /status counts every failed try, not only the first
            if health.online is not False:
                log.warning("device %s is offline: %s", name, reason)
                health.online = False
                self.sink.on_status(DeviceStatus(device, online=False, reason=reason))

    # -- jobs and waiting ------------------------------------------------------------

    async def _run_jobs(self) -> None:
        while self._jobs:
            job = self._jobs.pop(0)
            if job.future.done():
                continue
            try:
                result = await job.fn(self.port)
            except Exception as exc:
                if not job.future.done():  # the waiting command may have given up
                    job.future.set_exception(exc)
            else:
                if not job.future.done():
                    job.future.set_result(result)

    def _fail_pending_jobs(self, reason: str = "bridge is stopping") -> None:
        while self._jobs:
            job = self._jobs.pop(0)
            if not job.future.done():
                job.future.set_exception(ModbusConnectionError(reason))

    async def _sleep_until(
        self, deadline: float, stop: asyncio.Event, *, wake_on_jobs: bool = True
    ) -> None:
        """Sleep until deadline, a write job (unless the link is down), or stop."""
        timeout = deadline - asyncio.get_running_loop().time()
        if timeout <= 0 or (wake_on_jobs and self._jobs):
            return
        stop_wait = asyncio.ensure_future(stop.wait())
        waits: set[asyncio.Future[Any]] = {stop_wait}
        if wake_on_jobs:
            self._woken = asyncio.get_running_loop().create_future()
            waits.add(self._woken)
        try:
            await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._woken = None
            for waiter in waits:
                waiter.cancel()


def _fail_all(request: ReadRequest, error: str) -> list[ReadFailure]:
    ts_ms = time.time_ns() // 1_000_000
    return [ReadFailure(request.device, v.register, error, ts_ms) for v in request.values]


def _decode_into(
    request: ReadRequest, block: list[int], readings: list[Reading], failures: list[ReadFailure]
) -> None:
    """Decode every value of one response; a bad value fails alone, never the block."""
    ts_ms = time.time_ns() // 1_000_000
    device = request.device
    decoded = None if request.block is None else codec.decode_block(request.block, block)
    if decoded is not None:  # the whole response in two struct calls (codec.BlockCodec)
        values, errors = decoded
        registers = request.registers
        if not errors:
            readings.extend(map(Reading, repeat(device), registers, values, repeat(ts_ms)))
            return
        failed = dict(errors)
        for index, (register, value) in enumerate(zip(registers, values, strict=True)):
            error = failed.get(index)
            if error is None:
                readings.append(Reading(device, register, value, ts_ms))
            else:
                failures.append(ReadFailure(device, register, str(error), ts_ms))
        return
    for planned in request.values:
        register = planned.register
        words = block[planned.offset : planned.offset + register.count]
        try:
            value = codec.decode(words, register)
        except CodecError as exc:
            failures.append(ReadFailure(device, register, str(exc), ts_ms))
        else:
            readings.append(Reading(device, register, value, ts_ms))
