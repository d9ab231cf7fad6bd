"""Commands over MQTT and from the CLI: parse -> check -> execute -> answer, audited and counted.

The MQTT handler subscribes (through the MQTT session, so it is re-subscribed on every
reconnect) to both command topics. Parsing and checking run at once on the loop; only an
approved command becomes a task that waits for the connection's worker. Answers go to
`{site}/{device}/{register}/set/result` (a device command also gets one summary on
`{site}/{device}/set/result`), and to the MQTT 5 response topic with the command's
correlation data. Every command and its outcome is logged at info level: the audit trail.
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
_NO_CLIENT_ID = "client id not available (MQTT does not name a message's publisher)"
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
        command: Command | None = None
        try:
            check.screen(envelope)
            command = parse.parse(
                message.payload, target.register, self.config.commands.max_payload_bytes
            )
            approved = check.check(self.config, target.device, command, envelope)
        except CommandIgnored as exc:
            log.info("command on %s: ignored: %s", message.topic, exc)
            self._count(target.device, exc.outcome)
            return
        except CommandError as exc:
            self._refuse(message, target.device, target.register, command, exc)
            return
        task = asyncio.create_task(self._run(message, approved, command))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, message: Message, approved: Approved, command: Command) -> None:
        device = approved.device
        try:
            results = await execute(approved, self._runner(device), self.clock)
        except CommandError as exc:  # expired while waiting for the worker
            self._refuse(message, device.name, _single(message, self.config), command, exc)
            return
        except ModbusError as exc:
            results = [
                WriteResult(w.register.name, False, w.value, error=f"not written: {exc}")
                for w in approved.writes
            ]
        readings = [r.reading for r in results if r.reading is not None]
        if readings:
            self.sink.on_tick(device, readings, [])  # the new value, right away
        self._answer(message, device, command.id, results)

    def _runner(self, device: Device) -> Runner:
        runner = self.runners.get(device.connection)
        if runner is None:
            raise ModbusError(f"connection {device.connection!r} has no worker")
        if not runner.port.connected:
            # Fail fast: queueing behind a reconnect would answer only at the deadline.
            raise ModbusError(f"connection {device.connection!r} is down")
        return runner

    # -- answers ----------------------------------------------------------------------

    def _refuse(
        self,
        message: Message,
        device: str,
        register: str | None,
        command: Command | None,
        exc: CommandError,
    ) -> None:
        command_id = command.id if command is not None else None
        body = {"id": command_id, "ok": False, "error": str(exc)}
        log.info("command %s on %s: %s: %s", _label(command_id), message.topic, exc.outcome, exc)
        self._count(device, exc.outcome)
        self._publish(_result_topic(self.config.site, device, register), body)
        self._respond(message, body)

    def _answer(
        self,
        message: Message,
        device: Device,
        command_id: CommandId | None,
        results: Sequence[WriteResult],
    ) -> None:
        for result in results:
            body = result_body(command_id, result)
            log.info(
                "command %s on %s/%s: %s",
                _label(command_id),
                device.name,
                result.register,
                _dumps(body),
            )
            self._publish(topics.set_result(self.config.site, device.name, result.register), body)
        ok = all(r.ok for r in results)
        self._count(device.name, "ok" if ok else "failed")
        register = _single(message, self.config)
        if register is not None:
            self._respond(message, result_body(command_id, results[0]))
            return
        summary = device_body(command_id, results)
        self._publish(_result_topic(self.config.site, device.name, None), summary)
        self._respond(message, summary)

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


def _single(message: Message, config: Config) -> str | None:
    target = topics.parse_command(config.site, message.topic)
    return None if target is None else target.register


def _audit_received(message: Message) -> None:
    text = message.payload[:_MAX_LOGGED_PAYLOAD].decode("utf-8", "replace")
    if len(message.payload) > _MAX_LOGGED_PAYLOAD:
        text += f"... ({len(message.payload)} bytes)"
    log.info(
        "command received on %s: %r (qos %d%s, %s)",
        message.topic,
        text,
        message.qos,
        ", retained" if message.retain else "",
        _client_id(message),
    )


def _client_id(message: Message) -> str:
    for key, value in message.user_properties:
        if key.lower() in _CLIENT_ID_KEYS:
            return f"client {value!r} (user property {key})"
    return _NO_CLIENT_ID


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
        return EXIT_REFUSED, _dumps({"id": None, "ok": False, "error": str(exc)})
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
