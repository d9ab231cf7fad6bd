"""The status page and its JSON API (SPEC 6) against real parts: the bridge, the project's
Modbus simulator, Mosquitto, and the page itself running in headless Chromium."""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from modbus_mqtt_bridge.config.model import Config
from tests.support.bridge import BridgeThread
from tests.support.configs import config_from
from tests.support.mosquitto import Mosquitto
from tests.support.ports import free_port, wait_until
from tests.support.prom import get
from tests.support.sim import SimThread

TOKEN = "s3cret-write-token-0123456789"
ODD_NAME = "<b>x<b>"  # markup as a device name ('/' cannot be in a topic level)
ODD_UNIT = "<b>x</b>"


def _yaml(mqtt_url: str, modbus: int, http: int, site: str, metrics: str = "") -> str:
    return f"""
        site: {site}
        mqtt: {{url: "{mqtt_url}", qos: 0, retain: false}}
        metrics: {{listen: "127.0.0.1:{http}"{metrics}}}
        connections:
          - {{name: lan, type: tcp, host: 127.0.0.1, port: {modbus}, timeout: 0.3}}
        devices:
          - name: meter1
            connection: lan
            unit: 1
            interval: 100ms
            registers:
              - {{name: voltage, address: 30001, type: float32, unit: V}}
              - {{name: setpoint, address: 40001, type: int16, scale: 0.1, unit: kW,
                  writable: true, min: 0, max: 100}}
          - name: "{ODD_NAME}"
            connection: lan
            unit: 2
            interval: 100ms
            registers:
              - {{name: level, address: 30001, type: uint16, unit: "{ODD_UNIT}"}}
        """


class Rig:
    """Simulator + bridge (in threads) with the page's listener on a free port."""

    def __init__(self, tmp_path: Path, broker: Mosquitto, metrics: str = "") -> None:
        self.http = free_port()
        self.config: Config = config_from(
            tmp_path, _yaml(broker.url, free_port(), self.http, f"page{self.http}", metrics)
        )
        self.url = f"http://127.0.0.1:{self.http}/"
        self.sim = SimThread(self.config).start()
        self.sim.set_value("meter1", "voltage", 231.5)
        self.sim.set_value(ODD_NAME, "level", 7)
        self.bridge: BridgeThread | None = None

    def start_bridge(self) -> None:
        self.bridge = BridgeThread(self.config).start()
        wait_until(lambda: _code(self.url + "healthz") == 200, 20, "bridge healthy")

    def stop_bridge(self) -> None:
        if self.bridge is not None:
            self.bridge.stop()
            self.bridge = None

    def api(self, path: str) -> Any:
        code, _, body = get(self.url + path.lstrip("/"))
        assert code == 200, (code, body)
        return json.loads(body)

    def close(self) -> None:
        self.stop_bridge()
        self.sim.stop()


@pytest.fixture
def rig(tmp_path: Path, broker: Mosquitto) -> Iterator[Rig]:
    r = Rig(tmp_path, broker)
    r.start_bridge()
    yield r
    r.close()


def _code(url: str) -> int:
    try:
        return get(url, timeout=2)[0]
    except OSError:
        return 0


def _post(url: str, body: object, token: str | None) -> tuple[int, dict[str, Any]]:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _open(browser: Any, url: str) -> tuple[Any, list[str]]:
    """A fresh page at url, and the list its console errors and CSP violations land in."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    response = page.goto(url)
    assert response is not None and response.status == 200
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp
    return page, problems


def _card(page: Any, device: str) -> Any:
    # Attribute selectors quote the name; the name never becomes markup.
    return page.locator(f"article.device[data-device={json.dumps(device)}]")


def _cell(page: Any, device: str, register: str, cls: str) -> Any:
    row = _card(page, device).locator(f"tr[data-register={json.dumps(register)}]")
    return row.locator(f"td.{cls}")


def _wait_text(locator: Any, wanted: str, timeout_s: float = 20) -> str:
    def seen() -> str:
        text = str(locator.text_content(timeout=timeout_s * 1000) or "")
        return text if wanted in text else ""

    return wait_until(seen, timeout_s, f"{wanted!r} on the page", every=0.2)


def test_page_shows_devices_and_live_values_as_text(rig: Rig, browser: Any, tmp_path: Path) -> None:
    page, problems = _open(browser, rig.url)
    try:
        _wait_text(_cell(page, "meter1", "voltage", "value"), "231.5 V")
        # a value that changes on the slave changes on the page, without a reload
        rig.sim.set_value("meter1", "voltage", 229.75)
        _wait_text(_cell(page, "meter1", "voltage", "value"), "229.75 V")
        assert _card(page, "meter1").locator(".badge.state").text_content().startswith("online")
        assert _cell(page, "meter1", "voltage", "register").text_content() == "voltage"

        # markup in a device name and a unit is shown as those characters, never parsed
        odd = _card(page, ODD_NAME)
        _wait_text(odd.locator("h3 .name"), ODD_NAME)
        _wait_text(_cell(page, ODD_NAME, "level", "value"), f"7 {ODD_UNIT}")
        assert page.locator("#devices b").count() == 0
        assert "page" in page.locator("#site").text_content()

        # the sparkline is drawn from the kept history once there are two readings
        line = _card(page, "meter1").locator("tr[data-register=voltage] polyline")
        wait_until(lambda: (line.get_attribute("points") or "").count(",") >= 2, 20, "sparkline")
        assert page.locator("#banner").is_hidden()
        page.screenshot(path=str(tmp_path / "status-page.png"), full_page=True)
        assert problems == []  # no CSP violation, no script error, no missing asset
    finally:
        page.close()


def test_a_stopped_device_shows_offline_within_its_timeout(rig: Rig, browser: Any) -> None:
    page, _problems = _open(browser, rig.url)
    try:
        state = _card(page, "meter1").locator(".badge.state")
        _wait_text(state, "online")
        rig.sim.call(lambda: setattr(rig.sim.sim.unit("meter1"), "silent", True))
        stopped = time.monotonic()
        # the bridge marks it offline after one timeout (0.3 s); the page polls every 3 s
        _wait_text(state, "offline", timeout_s=20)
        device = rig.api("api/devices/meter1")
        assert device["state"] == "offline"
        assert device["last_error"]
        assert device["backoff"]["failures_in_a_row"] >= 1
        assert time.monotonic() - stopped < 20
        # the other device on the same connection keeps its state
        assert _card(page, ODD_NAME).locator(".badge.state").text_content().startswith("online")
    finally:
        page.close()


def test_history_api_keeps_the_last_readings_in_order_and_never_more(
    tmp_path: Path, broker: Mosquitto
) -> None:
    r = Rig(tmp_path, broker, metrics=", history: 5")
    r.start_bridge()
    try:

        def history() -> list[dict[str, Any]]:
            answer = r.api("api/devices/meter1/history?register=voltage")
            assert answer["limit"] == 5
            return list(answer["readings"])

        # 100 ms interval, three registers: 60 readings are ~20 of voltage, 4x the bound
        wait_until(lambda: _read_count(r) > 60, 30, "sixty readings")
        readings = history()
        assert len(readings) == 5
        stamps = [x["ts"] for x in readings]
        assert stamps == sorted(stamps) and len(set(stamps)) == 5
        r.sim.set_value("meter1", "voltage", 240.0)
        wait_until(lambda: history()[-1]["value"] == 240.0, 20, "the new value in history")
        newest = history()
        latest = r.api("api/devices/meter1")["registers"][0]
        assert latest["ts"] >= newest[-1]["ts"]

        since = r.api(f"api/devices/meter1/history?register=voltage&since={newest[1]['ts']}")
        assert since["readings"] and all(x["ts"] > newest[1]["ts"] for x in since["readings"])

        for path, code in [
            ("api/devices/nope", 404),
            ("api/devices/nope/history?register=voltage", 404),
            ("api/devices/meter1/history?register=nope", 404),
            ("api/devices/meter1/history", 400),
            ("api/devices/meter1/history?register=voltage&since=yesterday", 400),
            ("api/devices/meter1/history?register=voltage&limit=3", 400),
        ]:
            status, content_type, body = get(r.url + path)
            assert (status, content_type) == (code, "application/json"), path
            assert list(json.loads(body)) == ["error"] and body.count("\n") == 1
        # without metrics.write_token the write endpoint does not exist
        assert (
            _post(r.url + "api/devices/meter1/write", {"register": "setpoint", "value": 1}, TOKEN)[
                0
            ]
            == 404
        )
    finally:
        r.close()


def _read_count(r: Rig) -> int:
    assert r.bridge is not None
    return r.bridge.bridge.board.readings_seen


def test_write_endpoint_needs_the_token_and_writes_through_the_worker(
    tmp_path: Path, broker: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    r = Rig(tmp_path, broker, metrics=f', write_token: "{TOKEN}"')
    r.start_bridge()
    url = r.url + "api/devices/meter1/write"
    try:
        body = {"register": "setpoint", "value": 42.5, "id": "web-1"}
        assert _post(url, body, None)[0] == 401
        assert _post(url, body, TOKEN[:-1] + "X")[0] == 401
        assert _post(url, body, "")[0] == 401
        assert r.sim.call(lambda: r.sim.sim.value_of("meter1", "setpoint")) != 42.5

        code, result = _post(url, body, TOKEN)
        assert code == 200, result
        assert result == {"id": "web-1", "ok": True, "value": 42.5, "readback": 42.5}
        assert r.sim.call(lambda: r.sim.sim.value_of("meter1", "setpoint")) == 42.5

        # the same checks as an MQTT command: out of range and read-only are refused
        code, result = _post(url, {"register": "setpoint", "value": 1000}, TOKEN)
        assert code == 400 and result["ok"] is False and "max" in result["error"]
        code, result = _post(url, {"register": "voltage", "value": 1}, TOKEN)
        assert code == 400 and result["ok"] is False
        code, result = _post(url, ["setpoint", 1], TOKEN)
        assert code == 400 and result["ok"] is False
        assert r.sim.call(lambda: r.sim.sim.value_of("meter1", "setpoint")) == 42.5

        # audited like an MQTT command; the token itself is never shown
        assert "command received over HTTP for meter1" in caplog.text
        assert "command 'web-1' on meter1/setpoint: " in caplog.text  # the same audit line
        for path in ("status", "metrics", "api/devices", "api/devices/meter1"):
            assert TOKEN not in get(r.url + path)[2], path
        assert TOKEN not in caplog.text
    finally:
        r.close()


def test_banner_when_the_bridge_is_stopped_and_recovery_when_it_is_back(
    rig: Rig, browser: Any
) -> None:
    page, _problems = _open(browser, rig.url)
    banner = page.locator("#banner")
    try:
        _wait_text(_cell(page, "meter1", "voltage", "value"), "231.5 V")
        assert banner.is_hidden()
        rig.stop_bridge()
        banner.wait_for(state="visible", timeout=20_000)
        assert "Bridge unreachable" in banner.text_content()
        # the last values stay on screen, dimmed
        assert "231.5 V" in _cell(page, "meter1", "voltage", "value").text_content()

        rig.sim.set_value("meter1", "voltage", 233.0)
        rig.start_bridge()
        banner.wait_for(state="hidden", timeout=20_000)
        _wait_text(_cell(page, "meter1", "voltage", "value"), "233 V")
    finally:
        page.close()
