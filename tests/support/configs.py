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


def one_connection_yaml(
    *,
    site: str,
    mqtt_url: str,
    modbus_port: int,
    devices: str,
    mqtt: str = "qos: 0, retain: false",
    extra: str = "",
    timeout: float = 1,
) -> str:
    """The usual test rig: one broker, one simulated TCP connection `lan`, these devices
    (a YAML list, any indentation)."""
    return (
        f"site: {site}\n"
        f'mqtt: {{url: "{mqtt_url}", {mqtt}}}\n'
        + (f"{extra}\n" if extra else "")
        + f"connections: [{{name: lan, type: tcp, host: 127.0.0.1, port: {modbus_port},"
        f" timeout: {timeout}}}]\n"
        "devices:\n" + textwrap.indent(textwrap.dedent(devices).strip("\n"), "  ") + "\n"
    )
