"""Devices of one model share their Register objects (equal in every field), and only
those: other device defaults, other values (even -0.0 against 0.0) get their own."""

from __future__ import annotations

import math
from pathlib import Path

from modbus_mqtt_bridge.config.model import Config
from tests.support.configs import config_from

REGISTERS = """
    registers:
      - {name: v1, address: 40001, type: float32, unit: V}
      - {name: v2, address: 40003, type: float32, unit: V}
      - {name: i1, address: 40005, type: int16, scale: 0.1, offset: 0.0}
"""


def _config(tmp_path: Path, devices: list[str]) -> Config:
    text = "site: t\nconnections:\n  - {name: lan, type: tcp, host: 127.0.0.1}\ndevices:\n"
    for i, extra in enumerate(devices):
        text += f"  - name: d{i}\n    connection: lan\n    unit: {i + 1}\n{extra}{REGISTERS}"
    return config_from(tmp_path, text)


def test_devices_of_one_model_share_their_registers(tmp_path: Path) -> None:
    config = _config(tmp_path, ["", "", "", ""])
    first, *others = [device.registers for device in config.devices]
    assert all(regs == first for regs in others)
    # the first device's registers are read alone; from the second on they are one set
    assert all(a is b for a, b in zip(others[0], others[1], strict=True))
    assert all(a is b for a, b in zip(others[0], others[2], strict=True))


def test_other_defaults_or_values_get_registers_of_their_own(tmp_path: Path) -> None:
    config = _config(
        tmp_path,
        ["", "", "    interval: 5s\n", "    interval: 5s\n", "    byte_order: little\n"],
    )
    _, d1, d2, d3, d4 = (device.registers for device in config.devices)
    assert d1[0] is not d2[0] and d1[0] is not d3[0] and d3[0] == d2[0]
    assert d2[0].interval_s == 5.0 and d1[0].interval_s == 30.0
    assert d4[0].byte_order == "little" and d1[0].byte_order == "big"
    negative = config_from(
        tmp_path,
        "site: t\nconnections:\n  - {name: lan, type: tcp, host: 127.0.0.1}\ndevices:\n"
        + "".join(
            f"  - name: d{i}\n    connection: lan\n    unit: {i + 1}\n    registers:\n"
            f"      - {{name: i1, address: 40005, type: int16, offset: {offset}}}\n"
            for i, offset in enumerate(["0.0", "0.0", "-0.0", "-0.0"])
        ),
    )
    offsets = [device.registers[0].offset for device in negative.devices]
    assert [math.copysign(1, o) for o in offsets] == [1, 1, -1, -1]
