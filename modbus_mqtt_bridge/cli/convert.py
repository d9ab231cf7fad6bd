"""`convert`: print the YAML config equivalent to a legacy JSON device list."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from ..config.fields import EnvText
from ..config.legacy import Converted, convert_legacy, is_legacy
from ..config.load import DEFAULT_MQTT_URL, load_legacy, parse_document, read_text
from ..errors import ConfigError, Problem


def legacy_to_yaml(path: str | os.PathLike[str]) -> str:
    """The YAML config equivalent to a legacy JSON device list (for `convert`)."""
    name = os.fspath(path)
    doc = parse_document(read_text(path), name, {})
    if not is_legacy(doc.data):
        message = f"{name} is not a legacy device list (a JSON list of devices with device_id, ip)"
        raise ConfigError([Problem("", message)])
    load_legacy(doc, {})  # never print YAML that would not load
    return _to_yaml(convert_legacy(doc.data), Path(name).name)


class _Dumper(yaml.SafeDumper):
    """SafeDumper that indents list items under their key and writes EnvText as text."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        del indentless  # PyYAML's default puts `- item` at its parent key's column
        super().increase_indent(flow, False)


def _represent_text(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    # Control characters go double-quoted, as escapes: PyYAML's single-quoted style
    # mangles some (U+0085 NEL reads back as a line break).
    style = None if text.isprintable() else '"'
    return dumper.represent_scalar("tag:yaml.org,2002:str", str(text), style=style)


_Dumper.add_representer(str, _represent_text)
_Dumper.add_representer(EnvText, _represent_text)


def _to_yaml(converted: Converted, source: str) -> str:
    raw = _literal(dict(converted.raw))
    mqtt = raw.get("mqtt")
    if not isinstance(mqtt, Mapping) or mqtt.get("url") is None:
        url = f"${{MQTT_URL:-{DEFAULT_MQTT_URL}}}"
        raw["mqtt"] = {"url": url, **(mqtt if isinstance(mqtt, Mapping) else {})}
    forward = raw.get("forward")
    forward = dict(forward) if isinstance(forward, Mapping) else {}
    forward.setdefault("api_url", "${LARAVEL_API_URL}")
    forward.setdefault("token", "${LARAVEL_API_TOKEN}")
    raw["forward"] = forward
    order = ["site", "mqtt", "forward", "connections", "devices"]
    ordered = {key: raw[key] for key in order if key in raw}
    ordered.update({key: value for key, value in raw.items() if key not in ordered})
    body = yaml.dump(
        _without_nulls(ordered), Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100
    )
    return _HEADER.format(source=source) + _spaced(body)


def _literal(value: Any) -> Any:
    """The legacy list's text as YAML text that reads back the same: JSON expands nothing,
    the YAML loader expands `${...}`, so each `${` is written `$${` (a literal `${`)."""
    if isinstance(value, Mapping):
        return {k: _literal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_literal(item) for item in value]
    if isinstance(value, str):
        return value.replace("${", "$${")
    return value


def _without_nulls(value: object) -> object:
    """Drop null entries: in a config, null means the same as leaving the key out."""
    if isinstance(value, Mapping):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(item) for item in value]
    return value


def _spaced(body: str) -> str:
    """A blank line before each top-level key and each connection or device, for the eye."""
    out: list[str] = []
    for line in body.splitlines():
        opens_block = bool(out) and out[-1].endswith(":")
        if out and not opens_block and (line[:1] != " " or line.startswith("  - ")):
            out.append("")
        out.append(line)
    return "\n".join(out) + "\n"


_HEADER = """\
# modbus-mqtt-bridge config, converted from the legacy device list {source}.
# Devices are polled every 30 minutes, as the old scheduler did: lower `interval`
# (per device, or per register) to poll more often.
# ${{VAR}} values come from the environment: MQTT_URL, LARAVEL_API_URL, LARAVEL_API_TOKEN.

"""
