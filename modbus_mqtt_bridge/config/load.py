"""Load a config file (YAML, or the legacy JSON device list) into a validated Config.

The only error this module raises for bad input is ConfigError, carrying every problem found.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping

from ..errors import ConfigError, Problem
from .fields import EnvText
from .legacy import convert_legacy, is_legacy
from .model import Config
from .validate import validate
from .yaml_source import Document, collector_paused, parse_yaml, yaml_lines

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
    with collector_paused():
        return _load(text, source, env)


def _load(text: str, source: str, env: Mapping[str, str]) -> Config:
    try:
        doc = parse_document(text, source, env)
        if is_legacy(doc.data):
            return load_legacy(doc, env)
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


def load_legacy(doc: Document, env: Mapping[str, str]) -> Config:
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
