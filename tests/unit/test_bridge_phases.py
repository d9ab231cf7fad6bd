"""The assembled bridge gives connections their phase slots (issue 16): heavy ones each their
own, spread over the interval (no common burst); light ones one shared tick (one wake-up)."""

from __future__ import annotations

from pathlib import Path

from modbus_mqtt_bridge.bridge.service import Bridge
from modbus_mqtt_bridge.config.load import load_config_text
from modbus_mqtt_bridge.schedule import BURST_VALUES


def _phases(tmp_path: Path, registers: int) -> list[float]:
    conns = "\n".join(f"  - {{name: c{i}, host: 127.0.0.1, port: {1502 + i}}}" for i in range(4))
    block = ", ".join(
        f"{{name: r{k}, address: {40001 + k}, type: uint16}}" for k in range(registers)
    )
    devices = "\n".join(
        f"  - {{name: d{i}, connection: c{i}, interval: {2 if i == 3 else 1}s,"
        f" registers: [{block}]}}"
        for i in range(4)
    )
    buffer = f"buffer: {{path: {tmp_path / 'buffer.db'}}}"
    text = f"site: s\n{buffer}\nconnections:\n{conns}\ndevices:\n{devices}\n"
    bridge = Bridge(load_config_text(text, {}))
    try:
        return [w.phase_s for w in bridge.workers.values()]
    finally:
        bridge.pipeline.buffer.close()


def test_heavy_connections_start_their_ticks_at_their_own_phase(tmp_path: Path) -> None:
    # no two of them fit in one slot's budget
    # slots a quarter of the shortest interval (1 s) apart; the 2 s one too
    assert _phases(tmp_path, BURST_VALUES // 2 + 1) == [0.0, 0.25, 0.5, 0.75]


def test_light_connections_tick_together(tmp_path: Path) -> None:
    assert _phases(tmp_path, 1) == [0.0, 0.0, 0.0, 0.0]
