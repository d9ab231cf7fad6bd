"""`simulate` answers what a real device would: the configured ranges, and nothing else."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.configs import write_config
from tests.support.ports import free_port, port_open, wait_until
from tests.support.process import LoggedProcess


def _read(port: int, address: str, count: int) -> subprocess.CompletedProcess[str]:
    argv = ["read", "--host", "127.0.0.1", "--port", str(port), "--address", address]
    return subprocess.run(
        [sys.executable, "-m", "modbus_mqtt_bridge", *argv, "--count", str(count)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture(params=[False, True], ids=["default", "answer-all"])
def simulated(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[int, bool]]:
    port = free_port()
    config = write_config(
        tmp_path,
        f"""
        site: s
        connections: [{{name: lan, host: 127.0.0.1, port: {port}}}]
        devices:
          - name: d
            registers:
              - {{name: v, address: 40001, type: float32}}
              - {{name: w, address: 40007, type: uint16}}
        """,
    )
    argv = ["-m", "modbus_mqtt_bridge", "simulate", "-c", str(config)]
    if request.param:
        argv.append("--answer-all")
    sim = LoggedProcess(argv, tmp_path / "sim.log", tmp_path, os.environ)
    try:
        wait_until(lambda: port_open(port), 30, "the simulator's port")
        yield port, request.param
    finally:
        sim.terminate()


def test_only_configured_ranges_answer(simulated: tuple[int, bool]) -> None:
    port, answer_all = simulated
    # 40001..40007: the registers and the gap the bridge's merged read spans.
    assert _read(port, "40001", 7).returncode == 0
    outside = _read(port, "48999", 1)
    if answer_all:
        assert outside.returncode == 0 and "0x0000" in outside.stdout
    else:
        assert outside.returncode == 1
        assert outside.stderr.strip() == "error: exception 2 (illegal data address)"
    beyond = _read(port, "40001", 8)  # one past the last configured register
    assert beyond.returncode == (0 if answer_all else 1)
