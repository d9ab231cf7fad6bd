"""The JSON Schema of the YAML config (`modbus-mqtt-bridge schema`), for editors.

Generated from the config model's dataclasses (keys, types, defaults) and the validator's own
tables (types, aliases, tables, orders, connection types), so it cannot drift from what the
loader accepts; only YAML spellings, numeric ranges and descriptions are written here. The
loader stays the judge: the schema helps an editor complete and flag, it checks no
cross-references (unknown connections, duplicate names).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Literal

from . import model
from .addressing import TABLE_NAMES
from .durations import _UNITS as DURATION_UNITS
from .types import ALIASES, TYPES
from .validate import LOG_LEVELS, PROTOCOLS
from .validate_devices import CONNECTION_TYPES, PARITIES
from .validate_registers import BIT_WRITES, STATE_CLASSES

Schema = dict[str, Any]

SCHEMA_ID = "https://modbus-mqtt-bridge.invalid/config.schema.json"
# Any scalar may come from the environment: `port: ${PORT}` is read as a number.
ENV_REF: Schema = {"type": "string", "pattern": r"\$\{[A-Za-z_][A-Za-z0-9_]*(:?-[^}]*)?\}"}
_NUMBER = r"(\d+(\.\d*)?|\.\d+)"
_UNIT = "|".join(sorted(DURATION_UNITS, key=lambda u: (-len(u), u)))  # longest first, stable
DURATION: Schema = {
    "anyOf": [
        {"type": "number", "minimum": 0},
        {"type": "string", "pattern": rf"^\s*({_NUMBER}\s*({_UNIT})\s*)+$|^\s*{_NUMBER}\s*$"},
        ENV_REF,
    ],
    "description": "seconds, or a number with a unit: 500ms, 5s, 1min, 2h, 1d, 1h30min",
}
ADDRESS: Schema = {
    "anyOf": [
        {"type": "integer", "minimum": 0},
        {"type": "string", "pattern": r"^\s*(\d[\d_]*|0[xX][0-9A-Fa-f_]+)\s*$"},
        ENV_REF,
    ],
    "description": "Modicon (40001: holding register 0; 0xxxx coil, 1xxxx discrete input, "
    "3xxxx input register, 4xxxx holding register) or, with `table`, the 0-based address",
}


def _choices(table: dict[str, Any], *extra: Any) -> Schema:
    """Every spelling the validator's choice table accepts (it compares lower-cased)."""
    names = {*table, *(str(v) for v in table.values()), *extra}
    return {"enum": sorted(names, key=lambda n: (str(n), type(n).__name__))}  # stable order


TYPE_NAMES: Schema = {
    "enum": [*TYPES, *ALIASES],
    "description": "data type; aliases from the legacy format keep their name in the payload",
}
# (model class, field) -> what the YAML takes instead of the field's Python type.
OVERRIDES: dict[tuple[type, str], Schema] = {
    (model.Connection, "type"): _choices(CONNECTION_TYPES),
    (model.Connection, "parity"): _choices(PARITIES),
    (model.Connection, "port"): {
        "anyOf": [
            {"type": "integer", "minimum": 1, "maximum": 65535},
            {"type": "string", "minLength": 1},
        ],
        "description": "tcp: TCP port (default 502); rtu: serial port such as /dev/ttyUSB0",
    },
    (model.Register, "table"): {**_choices(TABLE_NAMES), "description": "address is 0-based"},
    (model.Register, "address"): ADDRESS,
    (model.Register, "register_address"): {"anyOf": [{"type": "integer", "minimum": 0}, ADDRESS]},
    (model.Register, "type"): TYPE_NAMES,
    (model.Register, "data_type"): {**TYPE_NAMES, "description": "legacy synonym of type"},
    (model.Register, "bit_write"): {
        **_choices(BIT_WRITES),
        "description": "a bit of a holding register: mask (FC22, atomic) or read-modify-write",
    },
    (model.MqttConfig, "protocol"): _choices(PROTOCOLS, 5, 5.0),
    (model.LoggingConfig, "level"): _choices(LOG_LEVELS),
    (model.Register, "state_class"): {
        **_choices(STATE_CLASSES),
        "description": "Home Assistant state_class (default: from the unit)",
    },
    (model.Register, "device_class"): {
        "type": "string",
        "pattern": "^[a-z][a-z0-9_]*$",
        "description": "Home Assistant device_class (default: from the unit)",
    },
}
RANGES: dict[str, tuple[int | None, int | None]] = {
    "qos": (0, 2),
    "stopbits": (1, 2),
    "bytesize": (5, 8),
    "unit_id": (0, 255),
    "max_gap": (0, 125),
    "bit": (0, 15),
    "length": (1, 125),
    "concurrency": (1, 256),
    "baudrate": (1, None),
    "id": (0, None),
    "max_readings": (1, None),
    "max_bytes": (1, None),
    "backup_count": (0, None),
    "batch_size": (1, None),
    "outbox_max": (1, None),
    "max_payload_bytes": (1, None),
}
REQUIRED: dict[type, tuple[str, ...]] = {
    model.Config: ("site",),
    model.Connection: ("name",),
    model.Device: ("name", "registers"),
    model.Register: ("name", "address"),
}
DESCRIPTIONS: dict[str, str] = {
    "site": "root of every topic: {site}/{device}/{register}",
    "mqtt": "the broker",
    "url": "mqtt://host[:1883] or mqtts://host[:8883]",
    "commands": "write commands on {site}/{device}/{register}/set",
    "buffer": "readings kept on disk while the broker is unreachable",
    "metrics": "HTTP endpoint: /metrics, /healthz, /status, the status page / and /api",
    "history": "readings kept in memory per register for the page and /api (default 120)",
    "write_token": "secret enabling POST /api/devices/{name}/write (Bearer token)",
    "listen": "host:port, e.g. 127.0.0.1:9105",
    "homeassistant": "Home Assistant MQTT discovery (HA 2024.11+)",
    "logging": "stderr by default; optionally a rotated file",
    "forward": "the side-car that delivers readings to the Laravel API",
    "connections": "transports; every device behind one shares its worker",
    "devices": "Modbus devices, each on one connection",
    "unit": "Modbus unit / slave id (device) or engineering unit (register)",
    "scale": "value = raw * scale + offset",
    "deadband": "publish only on a change beyond this",
    "max_age": "publish at least this often (register); refuse older commands (commands)",
    "writable": "accept /set commands (holding registers and coils only)",
    "parameter": "Laravel parameter (default: name)",
    "id": "Laravel device_id",
}


def yaml_key(field: dataclasses.Field[Any]) -> str:
    """The key a user writes for a model field: durations lose `_s`, units are `unit`."""
    if field.name in ("unit_id", "engineering_unit"):
        return "unit"
    return field.name.removesuffix("_s")


def config_schema() -> Schema:
    """The whole document's schema (JSON Schema 2020-12)."""
    schema = object_schema(model.Config)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "modbus-mqtt-bridge config",
        **schema,
    }


def object_schema(cls: type) -> Schema:
    hints = typing.get_type_hints(cls)
    required = REQUIRED.get(cls, ())
    properties: Schema = {}
    for field in dataclasses.fields(cls):
        key = yaml_key(field)
        prop = field_schema(cls, field, hints[field.name])
        if key not in required:  # `null` means the same as leaving the key out
            prop = _or_null(prop)
        if key in DESCRIPTIONS and "description" not in prop:
            prop["description"] = DESCRIPTIONS[key]
        properties[key] = prop
    schema: Schema = {"type": "object", "properties": properties, "additionalProperties": False}
    if cls.__doc__ and not cls.__doc__.startswith(cls.__name__ + "("):
        schema["description"] = cls.__doc__.strip().splitlines()[0]
    if required:
        schema["required"] = list(required)
    if cls is model.Connection:  # the endpoint key depends on the transport
        schema["if"] = {"properties": {"type": {"const": "rtu"}}, "required": ["type"]}
        schema["then"] = {"required": ["port"]}
        schema["else"] = {"required": ["host"]}
    return schema


def _or_null(schema: Schema) -> Schema:
    meta: Schema = {k: schema.pop(k) for k in ("description", "default") if k in schema}
    options = schema["anyOf"] if list(schema) == ["anyOf"] else [schema]
    if {"type": "null"} not in options:
        options = [*options, {"type": "null"}]
    return {"anyOf": options, **meta}


def field_schema(cls: type, field: dataclasses.Field[Any], hint: Any) -> Schema:
    if (cls, field.name) in OVERRIDES:
        schema = dict(OVERRIDES[(cls, field.name)])
    elif field.name.endswith("_s"):
        schema = dict(DURATION)
    else:
        schema = type_schema(hint, field.name)
    default = _default(field)
    if default is not None:
        schema["default"] = default
    return schema


def type_schema(hint: Any, name: str = "") -> Schema:
    """JSON Schema of a model annotation; `X | None` also takes null (same as leaving it out)."""
    origin = typing.get_origin(hint)
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if origin in (types.UnionType, typing.Union):  # X | None: null is added by the caller
        options = [type_schema(a, name) for a in args]
        return options[0] if len(options) == 1 else {"anyOf": options}
    if origin is Literal:
        return {"enum": list(typing.get_args(hint))}
    if origin is tuple:
        return {"type": "array", "items": type_schema(args[0], name)}
    if dataclasses.is_dataclass(hint):
        return object_schema(hint)  # type: ignore[arg-type]
    return _scalar(hint, name)


def _scalar(hint: Any, name: str) -> Schema:
    if hint is str:
        return {"type": "string"}
    if hint is bool:
        return {"anyOf": [{"type": "boolean"}, ENV_REF]}
    if hint is int:
        schema: Schema = {"type": "integer"}
        low, high = RANGES.get(name, (None, None))
        if low is not None:
            schema["minimum"] = low
        if high is not None:
            schema["maximum"] = high
        return {"anyOf": [schema, ENV_REF]}
    if hint is float:
        return {"anyOf": [{"type": "number"}, ENV_REF]}
    raise TypeError(f"no JSON Schema for {hint!r} ({name})")


def _default(field: dataclasses.Field[Any]) -> Any:
    value = field.default
    if value is dataclasses.MISSING or value is None:
        return None
    return value if isinstance(value, str | int | float | bool) else None


# `tls: true` (system CAs) or its options: set here, as it needs object_schema.
OVERRIDES[(model.Connection, "tls")] = {
    "anyOf": [{"type": "boolean"}, object_schema(model.ModbusTls), ENV_REF],
    "description": "tcp only: Modbus/TCP Security (port 802 by default); never plaintext",
}
