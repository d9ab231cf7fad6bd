"""POST /api/devices/{name}/write: an HTTP body turned into the same command an MQTT `/set` is.

Thin glue only: the body `{"register": R, "value": V, "id": ...}` becomes the payload
`{"value": V, "id": ...}` on register R, then runs through writes/ exactly like a message
on `{site}/{device}/{R}/set` — parse, check, the connection's worker, read-back, audit log —
and answers with the same result JSON. The token check is the HTTP endpoint's job.
"""

from __future__ import annotations

import json
import logging
import time
from http import HTTPStatus
from typing import Any

from ..errors import ModbusError
from ..writes import check, parse
from ..writes.check import Envelope
from ..writes.execute import WriteResult, execute
from ..writes.handler import CommandHandler, result_body
from ..writes.parse import CommandError

log = logging.getLogger(__name__)


class HttpWrites:
    """Runs an HTTP write through the bridge's `CommandHandler` (its runners, sink, metrics)."""

    def __init__(self, handler: CommandHandler) -> None:
        self.handler = handler
        self.config = handler.config

    async def write(self, device: str, body: bytes) -> tuple[HTTPStatus, dict[str, Any]]:
        """(HTTP code, result JSON): 200 written, 400 refused, 404 no device, 502 not written."""
        if all(d.name != device for d in self.config.devices):
            return HTTPStatus.NOT_FOUND, {"id": None, "ok": False, "error": f"no device {device!r}"}
        text = body[:120].decode("utf-8", "replace")
        log.info("command received over HTTP for %s: %r", device, text)
        command_id = None
        try:
            register, payload = _split_body(body)
            command = parse.parse(payload, register, self.config.commands.max_payload_bytes)
            command_id = command.id
            approved = check.check(self.config, device, command, Envelope(time.time()))
        except CommandError as exc:
            log.info("command over HTTP for %s: %s: %s", device, exc.outcome, exc)
            self.handler._count(device, exc.outcome)
            return HTTPStatus.BAD_REQUEST, {"id": command_id, "ok": False, "error": str(exc)}
        try:
            results = await execute(approved, self.handler._runner(approved.device))
        except CommandError as exc:  # expired while waiting for the worker
            return HTTPStatus.BAD_REQUEST, {"id": command_id, "ok": False, "error": str(exc)}
        except ModbusError as exc:
            results = [
                WriteResult(w.register.name, False, w.value, error=f"not written: {exc}")
                for w in approved.writes
            ]
        readings = [r.reading for r in results if r.reading is not None]
        if readings:
            self.handler.sink.on_tick(approved.device, readings, [])  # the new value, right away
        result = result_body(command_id, results[0])
        log.info("command over HTTP %s/%s: %s", device, results[0].register, json.dumps(result))
        self.handler._count(device, "ok" if results[0].ok else "failed")
        return (HTTPStatus.OK if results[0].ok else HTTPStatus.BAD_GATEWAY), result


def _split_body(body: bytes) -> tuple[str, bytes]:
    """The register named in the body, and the rest as a register `/set` payload."""
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CommandError(f"body is not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise CommandError('body must be a JSON object {"register": NAME, "value": VALUE}')
    register = document.pop("register", None)
    if not isinstance(register, str) or not register:
        raise CommandError('body needs "register": the register name as a string')
    return register, json.dumps(document).encode()
