"""Load a config file (YAML, or the legacy JSON device list) into a validated Config.

The only error this module raises for bad input is ConfigError, carrying every problem found.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

import yaml

from ..errors import ConfigError, Problem
from .fields import EnvText
from .legacy import Converted, convert_legacy, is_legacy
from .model import Config
from .validate import validate
from .yaml_source import Document, parse_yaml, yaml_lines

CONFIG_ENV = "MODBUS_CONFIG"
# Environment variables that fill a config value the file leaves out: (section, key) -> name.
ENV_FILLS: dict[tuple[str, str], str] = {
    ("forward", "api_url"): "LARAVEL_API_URL",
    ("forward", "token"): "LARAVEL_API_TOKEN",
    ("logging", "level"): "LOG_LEVEL",
}
LEGACY_ENV_FILLS: dict[tuple[str, str], str] = {("mqtt", "url"): "MQTT_URL", **ENV_FILLS}
DEFAULT_MQTT_URL = "mqtt://localhost:1883"


def resolve_config_path(arg: str | None, env: Mapping[str, str] | None = None) -> str:
    """The config path: the `-c` argument, else $MODBUS_CONFIG, else ConfigError."""
    if arg:
        return arg
    path = (os.environ if env is None else env).get(CONFIG_ENV, "").strip()
    if path:
        return path
    raise ConfigError([Problem("", f"no config given: pass -c CONFIG or set {CONFIG_ENV}")])


def load_config(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Config:
    """Read, expand `${VAR}` from `env` (default os.environ), and validate a config file."""
    return load_config_text(read_text(path), env, source=os.fspath(path))


def load_config_text(
    text: str, env: Mapping[str, str] | None = None, *, source: str = ""
) -> Config:
    """As load_config, from text; `source` (a file name) only decides JSON by its suffix."""
    env = os.environ if env is None else env
    try:
        doc = parse_document(text, source, env)
        if is_legacy(doc.data):
            return _load_legacy(doc, env)
        raw, filled = fill_from_env(doc.data, env, ENV_FILLS)
        return _validated(raw, doc, filled)
    except RecursionError:
        raise ConfigError([Problem("", "the config is nested too deeply")]) from None


def read_text(path: str | os.PathLike[str]) -> str:
    name = os.fspath(path)
    name = name if name.isprintable() else repr(name)
    try:
        with open(path, encoding="utf-8-sig") as handle:  # -sig: tolerate a Windows BOM
            return handle.read()
    except FileNotFoundError:
        message = f"config file not found: {name}"
    except IsADirectoryError:
        message = f"config path is a directory, not a file: {name}"
    except OSError as exc:
        message = f"cannot read config file {name}: {exc.strerror or exc}"
    except UnicodeDecodeError as exc:
        message = f"config file {name} is not UTF-8 text (bad byte at offset {exc.start})"
    except ValueError as exc:  # e.g. an embedded NUL in the path
        message = f"cannot read config file {name!r}: {exc}"
    raise ConfigError([Problem("", message)])


def parse_document(text: str, source: str, env: Mapping[str, str]) -> Document:
    """JSON when the file says so (suffix, or a legacy list), else YAML."""
    is_json_file = source.lower().endswith(".json")
    if is_json_file or text.lstrip().startswith(("[", "{")):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            if is_json_file:
                where = f"line {exc.lineno}, column {exc.colno}"
                raise ConfigError(
                    [Problem("", f"JSON syntax error at {where}: {exc.msg}")]
                ) from None
        else:
            if is_legacy(data):
                return Document(data, yaml_lines(text))
    return parse_yaml(text, env)


def fill_from_env(
    raw: object, env: Mapping[str, str], fills: Mapping[tuple[str, str], str]
) -> tuple[object, dict[str, str]]:
    """Copy of `raw` with env values where the file has none; also {path: variable} filled."""
    if not isinstance(raw, Mapping):
        return raw, {}
    result = dict(raw)
    filled: dict[str, str] = {}
    for (section, key), variable in fills.items():
        value = env.get(variable)
        current = result.get(section)
        if not value or not (current is None or isinstance(current, Mapping)):
            continue
        if current is None or current.get(key) is None:
            result[section] = {**(current or {}), key: EnvText(value)}
            filled[f"{section}.{key}"] = variable
    return result, filled


def _validated(raw: object, doc: Document, filled: Mapping[str, str]) -> Config:
    try:
        config = validate(raw, doc.lines)
    except ConfigError as exc:
        problems = [_from_env(p, filled) for p in exc.problems]
        raise ConfigError([*doc.problems, *problems]) from None
    if doc.problems:
        raise ConfigError(doc.problems)
    return config


def _from_env(problem: Problem, filled: Mapping[str, str]) -> Problem:
    variable = filled.get(problem.path)
    if variable is None:
        return problem
    return Problem(problem.path, f"{problem.message} (from ${variable})", problem.line)


def _load_legacy(doc: Document, env: Mapping[str, str]) -> Config:
    converted = convert_legacy(doc.data)
    raw, filled = fill_from_env(converted.raw, env, LEGACY_ENV_FILLS)
    try:
        config = validate(raw)
        problems: list[Problem] = []
    except ConfigError as exc:
        problems = [_from_env(p, filled) for p in exc.problems]
    remapped = converted.remap(problems, doc.lines)
    if doc.problems or remapped:
        raise ConfigError([*doc.problems, *remapped])
    return config


def legacy_to_yaml(path: str | os.PathLike[str]) -> str:
    """The YAML config equivalent to a legacy JSON device list (for `convert`)."""
    name = os.fspath(path)
    doc = parse_document(read_text(path), name, {})
    if not is_legacy(doc.data):
        message = f"{name} is not a legacy device list (a JSON list of devices with device_id, ip)"
        raise ConfigError([Problem("", message)])
    _load_legacy(doc, {})  # never print YAML that would not load
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
    raw = dict(converted.raw)
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
