"""The bridge raises its own open-files limit to what its connections need (issue 16: 1,000
TCP connections do not fit the common soft limit of 1,024)."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# Builds a bridge of N TCP connections (nothing connects) and prints the soft limit after.
BUILD = """
import logging, resource, sys
from modbus_mqtt_bridge.bridge.service import Bridge
from modbus_mqtt_bridge.config.load import load_config_text
logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
n = int(sys.argv[1])
conns = "\\n".join(f"  - {{name: c{i}, host: 127.0.0.1, port: {1502 + i}}}" for i in range(n))
devices = "\\n".join(
    f"  - {{name: d{i}, connection: c{i}, registers: [{{name: r, address: 40001, type: uint16}}]}}"
    for i in range(n)
)
text = f"site: s\\nbuffer: {{path: ':memory:'}}\\nconnections:\\n{conns}\\ndevices:\\n{devices}\\n"
Bridge(load_config_text(text, {}))
print(resource.getrlimit(resource.RLIMIT_NOFILE)[0])
"""


def _build_under(soft: int, hard: int, connections: int) -> tuple[int, str]:
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    done = subprocess.run(
        [sys.executable, "-c", BUILD, str(connections)],
        preexec_fn=limit,  # the child's own limit, set before exec
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        check=True,
    )
    return int(done.stdout.strip().splitlines()[-1]), done.stderr


def _hard() -> int:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return 1 << 20 if hard == resource.RLIM_INFINITY else hard


@pytest.mark.skipif(_hard() < 300, reason="the hard open-files limit here is below 300")
def test_the_soft_limit_is_raised_to_what_the_connections_need() -> None:
    soft, stderr = _build_under(128, _hard(), connections=100)
    assert soft >= 100 + 64, stderr
    assert "open-files limit" not in stderr


def test_a_hard_limit_too_low_is_said_once() -> None:
    soft, stderr = _build_under(128, 128, connections=100)
    assert soft == 128
    assert stderr.count("the open-files limit is 128 but 100 connections need about 164") == 1
