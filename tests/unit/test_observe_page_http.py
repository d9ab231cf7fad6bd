"""The HTTP side of the status page and API: files, CSP, token gate, bad requests.

The endpoint is real (a socket on loopback); the bridge behind it is a small recording
`Api`, since what is under test here is the HTTP layer (the bridge side runs in
tests/browser)."""

from __future__ import annotations

import http.client
import json
import logging
from http import HTTPStatus
from typing import Any

import pytest

from modbus_mqtt_bridge.observe.http import HttpEndpoint
from modbus_mqtt_bridge.observe.metrics import BridgeMetrics
from tests.unit.test_observe_http import _serve

TOKEN = "a-token-for-this-test"


class RecordingApi:
    def __init__(self) -> None:
        self.history_calls: list[tuple[str, str, int | None]] = []
        self.writes: list[tuple[str, bytes]] = []

    def api_devices(self) -> dict[str, object]:
        return {"devices": [{"name": "meter1"}]}

    def api_device(self, name: str) -> dict[str, object] | None:
        return {"name": name} if name in ("meter1", "a/b") else None

    def api_history(self, name: str, register: str, since_ms: int | None) -> Any:
        self.history_calls.append((name, register, since_ms))
        return {"readings": []} if register == "voltage" else None

    async def write(self, device: str, body: bytes) -> tuple[HTTPStatus, dict[str, object]]:
        self.writes.append((device, body))
        return HTTPStatus.OK, {"id": None, "ok": True, "value": 1, "readback": 1}


def _endpoint(api: RecordingApi, token: str | None) -> HttpEndpoint:
    return HttpEndpoint(
        "127.0.0.1:0",
        BridgeMetrics().registry,
        health=lambda: (True, "ok"),
        status=dict,
        api=api,
        write=api.write,
        write_token=token,
    )


def _request(
    port: int, method: str, path: str, body: bytes | None = None, headers: Any = None
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def test_page_files_carry_a_csp_that_allows_only_own_scripts() -> None:
    def client(port: int) -> None:
        code, headers, body = _request(port, "GET", "/")
        assert code == 200 and headers["content-type"].startswith("text/html")
        csp = headers["content-security-policy"]
        assert "script-src 'self'" in csp and "'unsafe-inline'" not in csp
        assert b'<script src="/page/app.js"' in body and b"<script>" not in body
        code, headers, body = _request(port, "GET", "/page/app.js")
        assert code == 200 and headers["content-type"].startswith("text/javascript")
        assert b"innerHTML" not in body  # data goes in with textContent only
        assert _request(port, "GET", "/page/nope.js")[0] == 404

    _serve(_endpoint(RecordingApi(), None), client)


def test_history_parameters_and_names_with_escaped_slashes() -> None:
    api = RecordingApi()

    def client(port: int) -> None:
        base = "/api/devices/meter1/history"
        code, _, body = _request(port, "GET", base + "?register=voltage&since=2025-07-08T16:00:00Z")
        assert code == 200, body
        assert api.history_calls[-1] == ("meter1", "voltage", 1751990400000)
        _request(port, "GET", base + "?register=voltage&since=2025-07-08T16:00:00")
        assert api.history_calls[-1][2] == 1751990400000  # no offset: UTC
        for query in (
            "",
            "?register=",
            "?register=a&register=b",
            "?register=voltage&since=x",
            "?register=voltage&n=3",
        ):
            code, headers, body = _request(port, "GET", base + query)
            assert code == 400 and headers["content-type"] == "application/json", query
            assert list(json.loads(body)) == ["error"] and body.count(b"\n") == 1
        assert _request(port, "GET", base + "?register=nope")[0] == 404
        assert _request(port, "GET", "/api/devices/a%2Fb")[0] == 200  # %2F is in the name
        assert _request(port, "GET", "/api/devices/nope")[0] == 404
        assert _request(port, "GET", "/api/other")[0] == 404

    _serve(_endpoint(api, None), client)


def test_write_needs_a_configured_token_and_the_right_bearer() -> None:
    body = b'{"register": "setpoint", "value": 1}'

    def without_token(port: int) -> None:
        assert _request(port, "POST", "/api/devices/meter1/write", body)[0] == 404
        auth = {"Authorization": "Bearer "}
        assert _request(port, "POST", "/api/devices/meter1/write", body, auth)[0] == 404

    api = RecordingApi()
    _serve(_endpoint(api, None), without_token)
    assert api.writes == []

    def with_token(port: int) -> None:
        url = "/api/devices/meter1/write"
        for auth in (
            {},
            {"Authorization": "Bearer wrong"},
            {"Authorization": TOKEN},
            {"Authorization": f"Basic {TOKEN}"},
        ):
            assert _request(port, "POST", url, body, auth)[0] == 401, auth
        assert api.writes == []
        code, _, answer = _request(port, "POST", url, body, {"Authorization": f"Bearer {TOKEN}"})
        assert code == 200 and json.loads(answer)["ok"] is True
        assert api.writes == [("meter1", body)]
        big = b"x" * 20_000
        code, _, answer = _request(port, "POST", url, big, {"Authorization": f"Bearer {TOKEN}"})
        assert code == 413 and "error" in json.loads(answer)
        assert _request(port, "GET", url, None, {"Authorization": f"Bearer {TOKEN}"})[0] == 405

    _serve(_endpoint(api, TOKEN), with_token)
    assert len(api.writes) == 1


def test_side_car_without_api_keeps_the_plain_index() -> None:
    endpoint = HttpEndpoint("127.0.0.1:0", BridgeMetrics().registry, lambda: (True, "ok"), dict)

    def client(port: int) -> None:
        code, _, body = _request(port, "GET", "/")
        assert code == 200 and body.startswith(b"modbus-mqtt-bridge: /metrics")
        assert _request(port, "GET", "/api/devices")[0] == 404

    _serve(endpoint, client)


def test_a_guessing_client_gets_one_log_line_not_one_per_guess(
    caplog: pytest.LogCaptureFixture,
) -> None:
    body = b'{"register": "setpoint", "value": 1}'

    def guesses(port: int) -> None:
        for n in range(20):
            auth = {"Authorization": f"Bearer guess-{n}"}
            assert _request(port, "POST", "/api/devices/meter1/write", body, auth)[0] == 401

    with caplog.at_level(logging.WARNING, "modbus_mqtt_bridge"):
        _serve(_endpoint(RecordingApi(), TOKEN), guesses)
    refused = [r for r in caplog.records if "wrong bearer token" in r.getMessage()]
    assert len(refused) == 1
    assert TOKEN not in caplog.text and "guess-" not in caplog.text
