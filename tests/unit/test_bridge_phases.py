"""The assembled bridge gives each connection its own phase (issue 16: no common burst)."""

from __future__ import annotations

from pathlib import Path

from modbus_mqtt_bridge.bridge.service import Bridge
from modbus_mqtt_bridge.config.load import load_config_text


def test_each_connection_starts_its_ticks_at_its_own_phase(tmp_path: Path) -> None:
    conns = "\n".join(f"  - {{name: c{i}, host: 127.0.0.1, port: {1502 + i}}}" for i in range(4))
    devices = "\n".join(
        f"  - {{name: d{i}, connection: c{i}, interval: {2 if i == 3 else 1}s,"
        f" registers: [{{name: r, address: 40001, type: uint16}}]}}"
        for i in range(4)
    )
    buffer = f"buffer: {{path: {tmp_path / 'buffer.db'}}}"
    text = f"site: s\n{buffer}\nconnections:\n{conns}\ndevices:\n{devices}\n"
    bridge = Bridge(load_config_text(text, {}))
    try:
        assert [w.phase_s for w in bridge.workers.values()] == [0.0, 0.25, 0.5, 1.5]
    finally:
        bridge.pipeline.buffer.close()
