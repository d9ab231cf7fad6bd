"""Commands over MQTT and from the CLI: parse -> check -> execute -> answer, audited and counted.

The MQTT handler subscribes (through the MQTT session, so it is re-subscribed on every
reconnect) to both command topics. Parsing and checking run at once on the loop; only an
approved command becomes a task that waits for the connection's worker. Answers go to
`{site}/{device}/{register}/set/result` (a device command also gets one summary on
`{site}/{device}/set/result`), and to the MQTT 5 response topic with the command's
correlation data. Every command and its outcome is logged at info level: the audit trail.

`CommandHandler.handle` is the one entry point for a parsed command, whoever sent it (MQTT
here, the HTTP write endpoint of the status page): same checks, same worker path, same
read-back, audit and metrics, and the result body of SPEC 3 as its return value.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

from ..config.model import Config, Device
from ..errors import ModbusError, MqttError
from ..modbus.port import ModbusPort
from ..mqtt import topics
from ..mqtt.port import Message, message_properties
from ..mqtt.session import Session
from ..observe.metrics import BridgeMetrics
from ..readings import Sink
from . import check, parse
from .check import Approved, Envelope
from .execute import Clock, DirectRunner, Runner, WriteResult, execute
from .parse import Command, CommandError, CommandId, CommandIgnored

log = logging.getLogger(__name__)

EXIT_OK, EXIT_FAILED, EXIT_REFUSED = 0, 1, 2
_CLIENT_ID_KEYS = ("client_id", "clientid", "client-id")
_MAX_LOGGED_PAYLOAD = 120
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


class CommandHandler:
    """Turns command messages into writes on the right worker and answers each one."""

    def __init__(
        self,
        config: Config,
        session: Session,
        runners: Mapping[str, Runner],
        metrics: BridgeMetrics | None = None,
        *,
        clock: Clock = time.time,
        sink: Sink,
    ) -> None:
        self.config = config
        self.session = session
        self.sink = sink  # where the read-back reading goes
        self.runners = runners  # by connection name
        self.metrics = metrics
        self.clock = clock
        self._tasks: set[asyncio.Task[None]] = set()

    def attach(self) -> None:
        """Subscribe to both command topic shapes (kept across reconnects by the session)."""
        for topic_filter in topics.command_subscriptions(self.config.site):
            self.session.subscribe(topic_filter, self.on_message, retain_as_published=True)

    def on_message(self, message: Message) -> None:
        target = topics.parse_command(self.config.site, message.topic)
        if target is None:
            return
        envelope = Envelope(self.clock(), message.retain, message.message_expiry_s)
        _audit_received(message)
        try:
            check.screen(envelope)
            command = parse.parse(
                message.payload, target.register, self.config.commands.max_payload_bytes
            )
        except CommandIgnored as exc:
            log.info("command on %s: ignored: %s", message.topic, exc)
            self._count(target.device, exc.outcome)
            return
        except CommandError as exc:
            body = self.refusal(message.topic, target.device, exc.command_id, exc)
            self._send_refusal(message, target.device, target.register, body)
            return
        task = asyncio.create_task(
            self._run(message, target.device, target.register, command, envelope)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def handle(
        self,
        device: str,
        register: str | None,
        command: Command,
        envelope: Envelope,
        source: str = "",
    ) -> dict[str, Any]:
        """The one way a parsed command is run, for MQTT and HTTP alike: check, write on the
        connection's worker, read back, publish the read-back reading, audit and count.

        Returns the result body of SPEC 3: one register's result when `register` names it
        (a `/set` on a register), else the device summary with every register's result.
        A refusal is a body with `ok: false` and the command's id, never an exception.
        """
        body, _ = await self._handle(device, register, command, envelope, source or device)
        return body

    async def _run(
        self,
        message: Message,
        device: str,
        register: str | None,
        command: Command,
        envelope: Envelope,
    ) -> None:
        body, results = await self._handle(device, register, command, envelope, message.topic)
        if not results:
            self._send_refusal(message, device, register, body)
            return
        for result in results:
            topic = topics.set_result(self.config.site, device, result.register)
            self._publish(topic, result_body(command.id, result))
        if register is None:
            self._publish(_result_topic(self.config.site, device, None), body)
        self._respond(message, body)

    async def _handle(
        self,
        device_name: str,
        register: str | None,
        command: Command,
        envelope: Envelope,
        source: str,
    ) -> tuple[dict[str, Any], list[WriteResult]]:
        """(result body, per-register results); no results means the command was refused."""
        try:
            approved = check.check(self.config, device_name, command, envelope)
            results = await self._execute(approved)
        except CommandError as exc:  # refused by check, or expired waiting for the worker
            return self.refusal(source, device_name, command.id, exc), []
        device = approved.device
        readings = [r.reading for r in results if r.reading is not None]
        if readings:
            try:
                # the new value, right away: a complete tick of its own (device payload too)
                self.sink.on_readings(device, readings, [])
                self.sink.on_tick_end(device)
            except Exception as exc:  # the write happened: its result must still be sent
                log.warning(
                    "read-back of %s not published: %s: %s", device.name, type(exc).__name__, exc
                )
        for result in results:
            log.info(
                "command %s on %s/%s: %s",
                _label(command.id),
                device.name,
                result.register,
                _dumps(result_body(command.id, result)),
            )
        self._count(device.name, "ok" if all(r.ok for r in results) else "failed")
        if register is not None:
            return result_body(command.id, results[0]), results
        return device_body(command.id, results), results

    async def _execute(self, approved: Approved) -> list[WriteResult]:
        try:
            return await execute(approved, self._runner(approved.device), self.clock)
        except ModbusError as exc:
            return [
                WriteResult(w.register.name, False, w.value, error=f"not written: {exc}")
                for w in approved.writes
            ]

    def _runner(self, device: Device) -> Runner:
        runner = self.runners.get(device.connection)
        if runner is None:
            raise ModbusError(f"connection {device.connection!r} has no worker")
        if not runner.port.connected:
            # Fail fast: queueing behind a reconnect would answer only at the deadline.
            raise ModbusError(f"connection {device.connection!r} is down")
        return runner

    # -- answers ----------------------------------------------------------------------

    def refusal(
        self, source: str, device: str, command_id: CommandId | None, exc: CommandError
    ) -> dict[str, Any]:
        """Log and count a refusal; its body carries the command's id whenever it was read."""
        log.info("command %s on %s: %s: %s", _label(command_id), source, exc.outcome, exc)
        self._count(device, exc.outcome)
        return {"id": command_id, "ok": False, "error": str(exc)}

    def _send_refusal(
        self, message: Message, device: str, register: str | None, body: Mapping[str, Any]
    ) -> None:
        self._publish(_result_topic(self.config.site, device, register), body)
        self._respond(message, body)

    def _publish(
        self, topic: str, body: Mapping[str, Any], correlation: bytes | None = None
    ) -> None:
        props = None
        if correlation is not None:
            props = message_properties(correlation_data=correlation)
        try:
            self.session.publish(topic, _dumps(body), qos=1, retain=False, properties=props)
        except MqttError as exc:
            log.warning("command result for %s not sent: %s", topic, exc)

    def _respond(self, message: Message, body: Mapping[str, Any]) -> None:
        """MQTT 5 request/response: answer on the response topic, echoing the correlation."""
        if message.response_topic:
            self._publish(message.response_topic, body, message.correlation_data or None)

    def _count(self, device: str, outcome: str) -> None:
        if self.metrics is not None:
            # Only configured names as labels: anyone can publish to {site}/<anything>/set.
            known = any(d.name == device for d in self.config.devices)
            self.metrics.commands.labels(device if known else "unknown", outcome).inc()


def result_body(command_id: CommandId | None, result: WriteResult) -> dict[str, Any]:
    """{"id", "ok", "value", "readback"} and, when not ok, "error" (SPEC 3)."""
    body: dict[str, Any] = {
        "id": command_id,
        "ok": result.ok,
        "value": result.value,
        "readback": result.readback,
    }
    if result.error is not None:
        body["error"] = result.error
    if result.readback_error is not None:
        body["readback_error"] = result.readback_error
    return body


def device_body(command_id: CommandId | None, results: Sequence[WriteResult]) -> dict[str, Any]:
    """A device command's summary: ok only if every register was written."""
    return {
        "id": command_id,
        "ok": all(r.ok for r in results),
        "results": {
            r.register: {k: v for k, v in result_body(None, r).items() if k != "id"}
            for r in results
        },
    }


def _label(command_id: CommandId | None) -> str:
    return "(no id)" if command_id is None else repr(command_id)


def _result_topic(site: str, device: str, register: str | None) -> str:
    if register is None:
        return f"{topics.device_set(site, device)}/result"
    return topics.set_result(site, device, register)


def _audit_received(message: Message) -> None:
    text = message.payload[:_MAX_LOGGED_PAYLOAD].decode("utf-8", "replace")
    if len(message.payload) > _MAX_LOGGED_PAYLOAD:
        text += f"... ({len(message.payload)} bytes)"
    log.info(
        "command received on %s: %r (qos %d%s%s)",
        message.topic,
        text,
        message.qos,
        ", retained" if message.retain else "",
        _client_id(message),
    )


def _client_id(message: Message) -> str:
    """', client X' when the publisher named itself; MQTT itself never names it, so an
    absent id is the normal case and says nothing."""
    for key, value in message.user_properties:
        if key.lower() in _CLIENT_ID_KEYS:
            return f", client {value!r} (user property {key})"
    return ""


# -- the `write` CLI command ----------------------------------------------------------


async def write_once(config: Config, device: str, register: str, value: str) -> tuple[int, str]:
    """Commissioning write through the same parse/check/execute path: (exit code, result JSON)."""
    envelope = Envelope(time.time())
    log.info("command from the command line: %s/%s = %r", device, register, value)
    try:
        command = parse.parse(value.encode(), register, config.commands.max_payload_bytes)
        approved = check.check(config, device, command, envelope)
    except CommandError as exc:
        log.info("command refused: %s", exc)
        return EXIT_REFUSED, _dumps({"id": exc.command_id, "ok": False, "error": str(exc)})
    port = ModbusPort(config.connection(approved.device.connection))
    try:
        await port.connect()
        results = await execute(approved, DirectRunner(port))
    except (ModbusError, CommandError) as exc:
        log.info("command failed: %s", exc)
        return EXIT_FAILED, _dumps({"id": None, "ok": False, "error": str(exc)})
    finally:
        port.close()
    body = result_body(None, results[0])
    log.info("command %s/%s: %s", device, register, _dumps(body))
    return (EXIT_OK if results[0].ok else EXIT_FAILED), _dumps(body)
