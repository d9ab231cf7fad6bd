"""The metrics endpoint: `/metrics`, `/healthz` and `/status` over a minimal asyncio HTTP server.

Shared by the bridge and the side-car: each passes its registry, a health check and a status
snapshot. It speaks just enough HTTP/1.1 for Prometheus, load balancers and curl (GET and
HEAD, one request per connection), so it runs on the process's own event loop and needs
no web framework; every read has a timeout so a stuck client cannot pin a connection.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Mapping
from http import HTTPStatus

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from ..errors import BridgeError

log = logging.getLogger(__name__)

Health = Callable[[], tuple[bool, str]]  # (healthy, one-line reason)
Status = Callable[[], Mapping[str, object]]
Response = tuple[HTTPStatus, str, bytes]  # code, content type, body

READ_TIMEOUT_S = 5.0
MAX_HEADER_LINES = 100
INDEX = b"modbus-mqtt-bridge: /metrics /healthz /status\n"


def parse_listen(listen: str) -> tuple[str | None, int]:
    """(host, port) of host:port, [v6]:port or :port; host None means every interface."""
    host, _, port = listen.strip().rpartition(":")
    host = host.strip("[]")
    return (host or None), int(port)


class HttpEndpoint:
    def __init__(
        self,
        listen: str,
        registry: CollectorRegistry,
        health: Health,
        status: Status,
        before_scrape: Callable[[], None] | None = None,
    ) -> None:
        self.listen = listen
        self.registry = registry
        self.health = health
        self.status = status
        self.before_scrape = before_scrape
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        """Bind now, so a taken port fails the start with a clear message, not later."""
        host, port = parse_listen(self.listen)
        try:
            self._server = await asyncio.start_server(self._handle, host, port)
        except OSError as exc:
            raise BridgeError(f"metrics.listen {self.listen}: cannot listen: {exc}") from exc
        log.info("metrics on http://%s/metrics", self.listen)

    @property
    def port(self) -> int:
        """The bound port (useful with port 0)."""
        assert self._server is not None, "start() first"
        return int(self._server.sockets[0].getsockname()[1])

    async def serve(self, stop: asyncio.Event) -> None:
        """Serve until stop, then close the listening socket."""
        if self._server is None:
            await self.start()
        assert self._server is not None
        try:
            await stop.wait()
        finally:
            self._server.close()
            await self._server.wait_closed()

    # -- one request -----------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            method, path, headers = await asyncio.wait_for(_read_request(reader), READ_TIMEOUT_S)
            code, content_type, body = self._route(method, path, headers)
            await _respond(writer, code, content_type, body, head_only=method == "HEAD")
        except (TimeoutError, ValueError, ConnectionError, asyncio.IncompleteReadError):
            pass  # a client that hangs up or talks nonsense gets nothing more
        finally:
            writer.close()

    def _route(self, method: str, path: str, headers: Mapping[str, str]) -> Response:
        if method not in ("GET", "HEAD"):
            return HTTPStatus.METHOD_NOT_ALLOWED, "text/plain", b"GET or HEAD only\n"
        route = path.split("?", 1)[0].rstrip("/") or "/"
        pages: dict[str, Callable[[Mapping[str, str]], Response]] = {
            "/metrics": self._metrics,
            "/healthz": self._healthz,
            "/status": self._status,
            "/": lambda _h: (HTTPStatus.OK, "text/plain", INDEX),
        }
        page = pages.get(route)
        if page is None:
            return HTTPStatus.NOT_FOUND, "text/plain", b"not found: try /metrics /healthz /status\n"
        try:
            return page(headers)
        except Exception:
            log.exception("%s failed", route)
            return HTTPStatus.INTERNAL_SERVER_ERROR, "text/plain", b"internal error\n"

    def _metrics(self, headers: Mapping[str, str]) -> Response:
        if self.before_scrape is not None:
            self.before_scrape()
        encoder, content_type = choose_encoder(headers.get("accept", ""))
        return HTTPStatus.OK, content_type, encoder(self.registry)

    def _healthz(self, _headers: Mapping[str, str]) -> Response:
        healthy, reason = self.health()
        code = HTTPStatus.OK if healthy else HTTPStatus.SERVICE_UNAVAILABLE
        return code, "text/plain; charset=utf-8", f"{reason}\n".encode()

    def _status(self, _headers: Mapping[str, str]) -> Response:
        body = json.dumps(self.status(), indent=2, default=str).encode() + b"\n"
        return HTTPStatus.OK, "application/json", body


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, str, dict[str, str]]:
    request_line = (await reader.readline()).decode("latin-1").strip()
    parts = request_line.split()
    if len(parts) != 3 or not parts[2].startswith("HTTP/"):
        raise ValueError(f"bad request line {request_line!r}")
    headers: dict[str, str] = {}
    for _ in range(MAX_HEADER_LINES):
        line = (await reader.readline()).decode("latin-1")
        if line in ("\r\n", "\n", ""):
            return parts[0].upper(), parts[1], headers
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    raise ValueError("too many header lines")


async def _respond(
    writer: asyncio.StreamWriter,
    code: HTTPStatus,
    content_type: str,
    body: bytes,
    *,
    head_only: bool = False,
) -> None:
    head = (
        f"HTTP/1.1 {code.value} {code.phrase}\r\n"
        f"Content-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Cache-Control: no-store\r\n"
        "Connection: close\r\n\r\n"
    )
    writer.write(head.encode("latin-1") + (b"" if head_only else body))
    await asyncio.wait_for(writer.drain(), READ_TIMEOUT_S)
