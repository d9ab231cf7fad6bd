"""POST /api/devices/{name}/write: an HTTP body turned into the same command an MQTT `/set` is.

Thin glue only: the body `{"register": R, "value": V, "id": ...}` becomes the payload
`{"value": V, "id": ...}` on register R, then runs through writes/ exactly like a message
on `{site}/{device}/{R}/set` — parse, check, the connection's worker, read-back, audit log —
and answers with the same result JSON. The token check is the HTTP endpoint's job.
"""

from __future__ import annotations

import logging
import time
from http import HTTPStatus
from typing import Any

from ..writes import parse
from ..writes.check import Envelope
from ..writes.handler import CommandHandler
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
        source = f"HTTP write to {device}"
        log.info(
            "command received over HTTP for %s: %r", device, body[:120].decode("utf-8", "replace")
        )
        try:
            register, command = parse.parse_named(body, self.config.commands.max_payload_bytes)
        except CommandError as exc:
            return HTTPStatus.BAD_REQUEST, self.handler.refusal(source, device, exc.command_id, exc)
        result = await self.handler.handle(
            device, register, command, Envelope(time.time()), source=source
        )
        if "value" not in result:  # a refusal: the result body of a write always has "value"
            return HTTPStatus.BAD_REQUEST, result
        return (HTTPStatus.OK if result["ok"] else HTTPStatus.BAD_GATEWAY), result
