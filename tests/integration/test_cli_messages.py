"""Messages a newcomer meets first: connect failures with their reason, CLI usage lines."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from modbus_mqtt_bridge.cli.main import main
from modbus_mqtt_bridge.config.model import Connection
from modbus_mqtt_bridge.errors import ModbusConnectionError
from modbus_mqtt_bridge.modbus.port import ModbusPort
from modbus_mqtt_bridge.mqtt.port import Message
from modbus_mqtt_bridge.writes import handler
from tests.support.configs import write_config
from tests.support.mosquitto import Mosquitto


def _open_serial(path: Path) -> str:
    port = ModbusPort(Connection("bus1", "rtu", port=str(path), timeout_s=0.5, baudrate=9600))
    with pytest.raises(ModbusConnectionError) as info:
        asyncio.run(port.connect())
    port.close()
    return str(info.value)


def test_a_missing_serial_port_says_no_such_file(tmp_path: Path) -> None:
    message = _open_serial(tmp_path / "ttyUSB0")
    assert message.startswith("cannot connect to bus1 (")
    assert "ttyUSB0: no such file" in message


@pytest.mark.skipif(os.geteuid() == 0, reason="root may open any file")
def test_an_unreadable_serial_port_says_permission_denied_and_dialout(tmp_path: Path) -> None:
    tty = tmp_path / "ttyUSB0"
    tty.touch(mode=0o000)
    message = _open_serial(tty)
    assert "permission denied" in message and "dialout" in message


def test_mqtts_against_a_plain_port_hints_at_tls(tmp_path: Path, broker: Mosquitto) -> None:
    config = write_config(
        tmp_path,
        f"""
        site: s
        mqtt: {{url: "mqtts://127.0.0.1:{broker.port}"}}
        connections: [{{name: lan, host: 127.0.0.1, port: 1, timeout: 0.5}}]
        devices: [{{name: d, registers: [{{name: v, address: 40001, type: uint16}}]}}]
        """,
    )
    cli = [sys.executable, "-m", "modbus_mqtt_bridge", "once", "-c", str(config)]
    done = subprocess.run(cli, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: cannot connect to mqtts://127.0.0.1:{broker.port}: ")
    assert last.endswith(
        "(is this a TLS port? mqtts:// needs the broker's TLS listener, often 8883)"
    )


@pytest.mark.parametrize(
    ("table", "count", "limit"), [("holding", 200, "125 registers"), ("coil", 2001, "2000 bits")]
)
def test_read_refuses_a_count_one_request_cannot_carry(
    capsys: pytest.CaptureFixture[str], table: str, count: int, limit: str
) -> None:
    argv = ["read", "--host", "127.0.0.1", "--table", table, "--address", "0"]
    assert main([*argv, "--count", str(count)]) == 2
    assert capsys.readouterr().err == (
        f"error: --count {count}: one Modbus read returns at most {limit}\n"
    )


def test_read_takes_more_than_125_bits(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["read", "--host", "127.0.0.1", "--port", "1", "--table", "coil", "--address", "0"]
    assert main([*argv, "--count", "2000", "--timeout", "0.5"]) == 1  # got to connecting
    assert "cannot connect" in capsys.readouterr().err


def test_log_level_is_accepted_after_the_command(capsys: pytest.CaptureFixture[str]) -> None:
    example = Path(__file__).resolve().parents[2] / "config" / "example.yaml"
    assert main(["validate", "-c", str(example), "--log-level", "DEBUG"]) == 0
    assert capsys.readouterr().out.endswith("config ok\n")


def test_a_command_log_line_carries_no_client_id_noise(caplog: pytest.LogCaptureFixture) -> None:
    message = Message("s/d/v/set", b"21.5", qos=1, retain=False, mid=1)
    with caplog.at_level(logging.INFO, logger=handler.log.name):
        handler._audit_received(message)
    assert caplog.messages == ["command received on s/d/v/set: '21.5' (qos 1)"]


LEGACY = [{"device_id": 1, "ip": "127.0.0.1", "port": 1, "timeout": 0.3,
           "registers": [{"address": 40001, "parameter": "V"}]}]  # fmt: skip


def _cli_in(directory: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("MODBUS_CONFIG", "LOG_LEVEL")}
    return subprocess.run(
        [sys.executable, "-m", "modbus_mqtt_bridge", *args],
        cwd=directory,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_legacy_dotenv_in_the_working_directory_is_read(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps(LEGACY))
    (tmp_path / ".env").write_text("MODBUS_CONFIG=config.json\nLOG_LEVEL=ERROR\n")
    assert _cli_in(tmp_path, "validate").stdout.endswith("config ok\n")
    quiet = _cli_in(tmp_path, "once", "--dry-run")  # the device is down: a WARNING line
    assert "is offline" not in quiet.stderr, quiet.stderr


def test_the_environment_wins_over_dotenv(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps(LEGACY))
    (tmp_path / ".env").write_text("MODBUS_CONFIG=missing.json\nLOG_LEVEL=ERROR\n")
    assert _cli_in(tmp_path, "validate").stderr.startswith("config file not found: missing.json")
    loud = _cli_in(tmp_path, "once", "--dry-run", MODBUS_CONFIG="config.json", LOG_LEVEL="INFO")
    assert "is offline" in loud.stderr, loud.stderr
