"""Equal reads of devices of one model share their values, decoder and register tuple;
reads that differ in any register or offset do not."""

from __future__ import annotations

from pathlib import Path

from modbus_mqtt_bridge.plan import build_plan
from tests.support.configs import config_from

DEVICE = """
  - name: {name}
    connection: lan
    unit: {unit}
    registers:
      - {{name: v1, address: 40001, type: float32}}
      - {{name: v2, address: {second}, type: float32}}
"""


def test_equal_reads_share_their_parts_and_others_do_not(tmp_path: Path) -> None:
    text = "site: t\nconnections:\n  - {name: lan, type: tcp, host: 127.0.0.1}\ndevices:\n"
    for unit, second in enumerate([40003, 40003, 40003, 40005], start=1):
        text += DEVICE.format(name=f"d{unit}", unit=unit, second=second)
    plan = build_plan(config_from(tmp_path, text))
    _, b, c, d = plan.requests
    assert b.values is c.values and b.block is c.block and b.registers is c.registers
    assert d.values is not c.values and d.values != c.values
    assert d.count == 6 and c.count == 4
    again = build_plan(config_from(tmp_path, text))  # a new build shares nothing with the last
    assert again.requests[1].values is not b.values and again.requests[1] == b
