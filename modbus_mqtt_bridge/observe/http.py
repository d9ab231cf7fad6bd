"""The metrics endpoint: `/metrics`, `/healthz`, `/status`, and for the bridge the status page.

Shared by the bridge and the side-car: each passes its registry, a health check and a status
snapshot; the bridge also passes its `Api` (SPEC 6: `/`, `/api/devices...`, and the write
endpoint when a token is configured). It speaks just enough HTTP/1.1 for Prometheus, load
balancers, browsers and curl (one request per connection), so it runs on the process's own
event loop and needs no web framework; every read has a timeout so a stuck client cannot
pin a connection. The page is static files shipped in the package (observe/page/): no
external assets, and a Content-Security-Policy that lets only those files run.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from http import HTTPStatus
from importlib import resources
from typing import Protocol
from urllib.parse import parse_qs, unquote

from prometheus_client import CollectorRegistry

from ..errors import BridgeError
from ..heap import release_free_memory
from ..retry import Throttle
from . import exposition

log = logging.getLogger(__name__)

Health = Callable[[], tuple[bool, str]]  # (healthy, one-line reason)
Status = Callable[[], Mapping[str, object]]
Response = tuple[HTTPStatus, str, bytes]  # code, content type, body
Json = Mapping[str, object]
WriteCall = Callable[[str, bytes], Awaitable[tuple[HTTPStatus, Json]]]  # (device, body)

READ_TIMEOUT_S = 5.0
WRITE_PIECE = 256 * 1024  # bytes of a response handed to the transport at a time
TRIM_AFTER_BYTES = 1024 * 1024  # after an answer this large, free heap pages go back (heap.py)
MAX_HEADER_LINES = 100
MAX_BODY_BYTES = 16_384
INDEX = b"modbus-mqtt-bridge: /metrics /healthz /status\n"
JSON_TYPE = "application/json"
# Only the bridge's own files may run, load or be fetched; nothing inline, nothing framed.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
PAGE_FILES = {  # URL -> (file in observe/page/, content type)
    "/": ("index.html", "text/html; charset=utf-8"),
    "/page/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/page/style.css": ("style.css", "text/css; charset=utf-8"),
    "/page/icon.svg": ("icon.svg", "image/svg+xml"),
}


class Api(Protocol):
    """The bridge's read API (bridge/board.py `BridgeStatus`); None means not found."""

    def api_devices(self) -> Json: ...

    def api_device(self, name: str) -> Json | None: ...

    def api_history(self, name: str, register: str, since_ms: int | None) -> Json | None: ...


class HttpError(Exception):
    """An answer that ends a request early: code plus one line for the JSON error body."""

    def __init__(self, code: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.code = code


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
        *,
        api: Api | None = None,
        write: WriteCall | None = None,
        write_token: str | None = None,
    ) -> None:
        self.listen = listen
        self.registry = registry
        self.health = health
        self.status = status
        self.before_scrape = before_scrape
        self.api = api
        # The write endpoint exists only with both a token and somewhere to send writes.
        self._write = write if write_token else None
        self._token = (write_token or "").encode()
        self._refusals = Throttle(60.0)  # wrong-token lines: at most one a minute
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        """Bind now, so a taken port fails the start with a clear message, not later."""
        host, port = parse_listen(self.listen)
        try:
            self._server = await asyncio.start_server(self._handle, host, port)
        except OSError as exc:
            raise BridgeError(f"metrics.listen {self.listen}: cannot listen: {exc}") from exc
        log.info("metrics on http://%s/metrics", self.listen)
        if self.api is not None:
            log.info("status page on %s", self.page_url)

    @property
    def page_url(self) -> str:
        host, _port = parse_listen(self.listen)
        host = host or "127.0.0.1"
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{self.port if self._server else _port}/"

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
            try:
                body = b""
                if method == "POST":
                    body = await asyncio.wait_for(_read_body(reader, headers), READ_TIMEOUT_S)
            except HttpError as exc:
                code, content_type, payload = exc.code, JSON_TYPE, _json({"error": str(exc)})
            else:
                code, content_type, payload = await self._route(method, path, headers, body)
            await _respond(writer, code, content_type, payload, head_only=method == "HEAD")
            if len(payload) >= TRIM_AFTER_BYTES:  # e.g. /metrics at 1,000 connections
                del payload
                release_free_memory()  # its pages back to the system, not kept in the heap
        except (TimeoutError, ValueError, ConnectionError, asyncio.IncompleteReadError):
            pass  # a client that hangs up or talks nonsense gets nothing more
        finally:
            writer.close()

    async def _route(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes
    ) -> Response:
        raw_route, _, query = path.partition("?")
        route = raw_route.rstrip("/") or "/"
        try:
            if route.startswith("/api/") and self.api is not None:
                return await self._api(method, route, query, headers, body)
            if method not in ("GET", "HEAD"):
                return HTTPStatus.METHOD_NOT_ALLOWED, "text/plain", b"GET or HEAD only\n"
            if route == "/metrics":
                return await self._metrics(headers)
            return self._get(route, headers)
        except HttpError as exc:
            return exc.code, JSON_TYPE, _json({"error": str(exc)})
        except Exception:
            log.exception("%s failed", route)
            return HTTPStatus.INTERNAL_SERVER_ERROR, "text/plain", b"internal error\n"

    def _get(self, route: str, headers: Mapping[str, str]) -> Response:
        pages: dict[str, Callable[[Mapping[str, str]], Response]] = {
            "/healthz": self._healthz,
            "/status": self._status,
        }
        if self.api is None:
            pages["/"] = lambda _h: (HTTPStatus.OK, "text/plain", INDEX)
        elif route in PAGE_FILES:
            return _page_file(route)
        page = pages.get(route)
        if page is None:
            return HTTPStatus.NOT_FOUND, "text/plain", b"not found: try /metrics /healthz /status\n"
        return page(headers)

    async def _api(
        self, method: str, route: str, query: str, headers: Mapping[str, str], body: bytes
    ) -> Response:
        assert self.api is not None
        parts = [unquote(p) for p in route.split("/")[2:]]  # split before decoding: %2F
        if parts[0] != "devices" or len(parts) > 3:
            raise HttpError(HTTPStatus.NOT_FOUND, f"no such API: {route}")
        if len(parts) == 3 and parts[2] == "write":
            return await self._write_request(method, parts[1], headers, body)
        if method not in ("GET", "HEAD"):
            raise HttpError(HTTPStatus.METHOD_NOT_ALLOWED, "GET only")
        if len(parts) == 1:
            return _ok(self.api.api_devices())
        name = parts[1]
        if len(parts) == 2:
            found = self.api.api_device(name)
        elif parts[2] == "history":
            register, since_ms = _history_params(query)
            if self.api.api_device(name) is None:
                raise HttpError(HTTPStatus.NOT_FOUND, f"no device {name!r}")
            found = self.api.api_history(name, register, since_ms)
            if found is None:
                raise HttpError(
                    HTTPStatus.NOT_FOUND, f"device {name!r} has no register {register!r}"
                )
        else:
            raise HttpError(HTTPStatus.NOT_FOUND, f"no such API: {route}")
        if found is None:
            raise HttpError(HTTPStatus.NOT_FOUND, f"no device {name!r}")
        return _ok(found)

    async def _write_request(
        self, method: str, device: str, headers: Mapping[str, str], body: bytes
    ) -> Response:
        if self._write is None:  # no token configured: the endpoint does not exist (SPEC 6)
            raise HttpError(HTTPStatus.NOT_FOUND, "no such API: writes are not enabled")
        if method != "POST":
            raise HttpError(HTTPStatus.METHOD_NOT_ALLOWED, "POST only")
        scheme, _, given = headers.get("authorization", "").partition(" ")
        # Constant time, so the answer's timing says nothing about how much of a guess matched.
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), self._token
        ):
            held = self._refusals.allow(time.monotonic())
            if held is not None:  # a guessing client must not flood the log
                more = f" ({held} more since the last report)" if held else ""
                log.warning(
                    "HTTP write to %r refused: missing or wrong bearer token%s", device, more
                )
            raise HttpError(HTTPStatus.UNAUTHORIZED, "missing or wrong bearer token")
        code, result = await self._write(device, body)
        return code, JSON_TYPE, _json(result)

    async def _metrics(self, headers: Mapping[str, str]) -> Response:
        if self.before_scrape is not None:
            self.before_scrape()  # reads the loop's state: on the loop
        # in slices on the loop: at 1,000 connections the body is 3.9 MB (observe/exposition.py)
        body, content_type = await exposition.render(self.registry, headers.get("accept", ""))
        return HTTPStatus.OK, content_type, body

    def _healthz(self, _headers: Mapping[str, str]) -> Response:
        healthy, reason = self.health()
        code = HTTPStatus.OK if healthy else HTTPStatus.SERVICE_UNAVAILABLE
        return code, "text/plain; charset=utf-8", f"{reason}\n".encode()

    def _status(self, _headers: Mapping[str, str]) -> Response:
        body = json.dumps(self.status(), indent=2, default=str).encode() + b"\n"
        return HTTPStatus.OK, "application/json", body


def _json(document: Json) -> bytes:
    return json.dumps(document, default=str, allow_nan=False).encode() + b"\n"


def _ok(document: Json) -> Response:
    return HTTPStatus.OK, JSON_TYPE, _json(document)


def _page_file(route: str) -> Response:
    name, content_type = PAGE_FILES[route]
    data = resources.files(__package__).joinpath("page", name).read_bytes()
    return HTTPStatus.OK, content_type, data


def _history_params(query: str) -> tuple[str, int | None]:
    """register=R (required) and since=ISO-8601 (optional; no offset means UTC)."""
    try:
        params = parse_qs(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError as exc:
        raise HttpError(HTTPStatus.BAD_REQUEST, f"bad query string: {exc}") from exc
    unknown = sorted(set(params) - {"register", "since"})
    if unknown:
        raise HttpError(HTTPStatus.BAD_REQUEST, f"unknown parameter {unknown[0]!r}")
    registers = params.get("register", [])
    if len(registers) != 1 or not registers[0]:
        raise HttpError(HTTPStatus.BAD_REQUEST, "give exactly one register=NAME")
    since = params.get("since", [])
    if not since:
        return registers[0], None
    if len(since) > 1:
        raise HttpError(HTTPStatus.BAD_REQUEST, "give since= at most once")
    try:
        moment = datetime.fromisoformat(since[0])
    except ValueError:
        raise HttpError(
            HTTPStatus.BAD_REQUEST,
            f"since: expected an ISO 8601 time like 2025-07-08T16:00:00Z, got {since[0]!r}",
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return registers[0], int(moment.timestamp() * 1000)


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


async def _read_body(reader: asyncio.StreamReader, headers: Mapping[str, str]) -> bytes:
    length = headers.get("content-length", "0")
    if not length.isdigit():
        raise HttpError(HTTPStatus.BAD_REQUEST, f"bad Content-Length {length[:40]!r}")
    if int(length) > MAX_BODY_BYTES:
        raise HttpError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body over {MAX_BODY_BYTES} bytes")
    return await reader.readexactly(int(length))


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
        f"Content-Security-Policy: {CSP}\r\n"
        "X-Content-Type-Options: nosniff\r\n"
        "Referrer-Policy: no-referrer\r\n"
        "Connection: close\r\n\r\n"
    )
    view = memoryview(b"" if head_only else body)
    # A large body (/metrics at 1,000 connections: 3.9 MB) goes out a piece at a time: the
    # transport keeps a copy of what the socket does not take at once, so handed over whole
    # (and joined to the head) it was held twice more for the whole send. The head goes
    # with the first piece: one send for a small answer, as before.
    async with asyncio.timeout(READ_TIMEOUT_S):  # for the whole answer, as for one drain
        writer.write(head.encode("latin-1") + view[:WRITE_PIECE])
        for start in range(WRITE_PIECE, len(view), WRITE_PIECE):
            await writer.drain()
            writer.write(view[start : start + WRITE_PIECE])
        await writer.drain()
