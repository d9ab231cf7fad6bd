"""Write a YAML config for a test and load it the way users do."""

from __future__ import annotations

import textwrap
from pathlib import Path

from modbus_mqtt_bridge.config.load import load_config

from modbus_mqtt_bridge.config.model import Config


def write_config(tmp_path: Path, yaml_text: str, name: str = "bridge.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(yaml_text))
    return path


def config_from(tmp_path: Path, yaml_text: str) -> Config:
    return load_config(write_config(tmp_path, yaml_text), env={})
