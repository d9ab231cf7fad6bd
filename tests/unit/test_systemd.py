"""sd_notify against a socket the test binds, credentials, and the unit files."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from modbus_mqtt_bridge.observe.health import Heartbeat
from modbus_mqtt_bridge.observe.systemd import Notifier, credentials_env, watchdog_interval

ROOT = Path(__file__).resolve().parents[2]
UNITS = sorted((ROOT / "systemd").glob("*.service"))


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[str, socket.socket]]:
    path = str(tmp_path / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(5)
    yield path, sock
    sock.close()


def _received(sock: socket.socket) -> list[str]:
    return sock.recv(4096).decode().split("\n")


def test_ready_once_then_status_watchdog_stopping(
    notify_socket: tuple[str, socket.socket],
) -> None:
    path, sock = notify_socket
    notifier = Notifier({"NOTIFY_SOCKET": path})
    assert notifier.enabled
    notifier.ready("connected")
    assert _received(sock) == ["READY=1", "STATUS=connected"]
    notifier.ready("connected again")  # a reconnect: READY is not repeated
    assert _received(sock) == ["STATUS=connected again"]
    notifier.watchdog()
    assert _received(sock) == ["WATCHDOG=1"]
    notifier.stopping()
    assert _received(sock)[0] == "STOPPING=1"


def test_no_socket_is_a_no_op() -> None:
    notifier = Notifier({})
    assert not notifier.enabled
    assert notifier.notify("READY=1") is False
    notifier.ready()
    notifier.stopping()


def test_a_vanished_manager_is_not_an_error(tmp_path: Path) -> None:
    assert Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone")}).notify("READY=1") is False


def test_abstract_socket_address() -> None:
    name = f"mmb-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        Notifier({"NOTIFY_SOCKET": "@" + name}).watchdog()
        assert sock.recv(100) == b"WATCHDOG=1"


def test_watchdog_interval() -> None:
    assert watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 30.0
    assert watchdog_interval({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(os.getpid())}) == 2
    assert watchdog_interval({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "1"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "0"}) is None
    assert watchdog_interval({}) is None


def test_watchdog_is_fed_only_while_the_heartbeat_is_fresh(
    notify_socket: tuple[str, socket.socket],
) -> None:
    path, sock = notify_socket
    now = [0.0]
    heartbeat = Heartbeat(interval_s=1.0, clock=lambda: now[0])
    notifier = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "100000"})

    async def scenario() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(notifier.run_watchdog(heartbeat, stop))
        await asyncio.sleep(0.12)
        now[0] = 60.0  # the loop "stalled": no beat for a minute
        await asyncio.sleep(0.2)
        stop.set()
        await task

    asyncio.run(scenario())
    sock.settimeout(0.5)
    got: list[str] = []
    while True:
        try:
            got.extend(_received(sock))
        except TimeoutError:
            break
    assert got.count("WATCHDOG=1") >= 2
    # after the stall no more pings; the last message is STOPPING
    stall = max(i for i, line in enumerate(got) if line == "WATCHDOG=1")
    assert got[stall + 1 :][0] == "STOPPING=1"
    assert len([line for line in got[stall + 1 :] if line == "WATCHDOG=1"]) == 0


def test_credentials_fill_unset_secrets(tmp_path: Path) -> None:
    (tmp_path / "laravel-api-token").write_text("s3cret\n")
    (tmp_path / "mqtt-password").write_text("pw")
    env = credentials_env({"CREDENTIALS_DIRECTORY": str(tmp_path), "OTHER": "x"})
    assert env["LARAVEL_API_TOKEN"] == "s3cret"
    assert env["MQTT_PASSWORD"] == "pw"
    assert env["OTHER"] == "x"
    explicit = credentials_env({"CREDENTIALS_DIRECTORY": str(tmp_path), "LARAVEL_API_TOKEN": "e"})
    assert explicit["LARAVEL_API_TOKEN"] == "e"
    assert "LARAVEL_API_TOKEN" not in credentials_env({})
    assert "LARAVEL_API_TOKEN" not in credentials_env({"CREDENTIALS_DIRECTORY": "/nonexistent"})


# -- unit files -------------------------------------------------------------------------


def _settings(unit: Path) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in unit.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key, []).append(value)
    return found


@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_unit_file_contract(unit: Path) -> None:
    s = _settings(unit)
    for key, value in {
        "Type": "notify",
        "Restart": "on-failure",
        "StateDirectory": "modbus-mqtt-bridge",
        "DynamicUser": "yes",
        "ProtectSystem": "strict",
        "NoNewPrivileges": "yes",
    }.items():
        assert s.get(key) == [value], key
    assert "WatchdogSec" in s
    if "bridge" in unit.name:
        assert s["SupplementaryGroups"] == ["dialout"]
        assert "char-ttyUSB rw" in s["DeviceAllow"]
    else:
        assert s["LoadCredential"] == [
            "laravel-api-token:/etc/modbus-mqtt-bridge/laravel-api-token"
        ]


def test_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (Debian package systemd)")
    fake = tmp_path / "modbus-mqtt-bridge"  # verify insists that ExecStart's binary exists
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    for unit in UNITS:
        text = unit.read_text().replace("/usr/local/bin/modbus-mqtt-bridge", str(fake))
        (tmp_path / unit.name).write_text(text)
    result = subprocess.run(
        [analyze, "verify", *(str(tmp_path / u.name) for u in UNITS)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    assert "Unknown" not in result.stderr, result.stderr
