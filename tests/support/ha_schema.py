"""A JSON Schema for Home Assistant's device-based MQTT discovery payload, from HA's own docs.

Written from the MQTT integration documentation (device discovery payload, availability,
origin, abbreviations) and the sensor/number/switch/binary_sensor/text platform pages, plus
the facts SPEC 3 lists. Home Assistant itself is not installed: this is the independent
check the bridge's payloads must pass. The unit tables are HA's (2024.11+) full lists, so
the bridge's own, smaller table must be a subset of them.
"""

from __future__ import annotations

from typing import Any

ID = r"^[A-Za-z0-9_-]+$"
TOPIC = {"type": "string", "minLength": 1, "not": {"pattern": r"[+#]"}}
TEMPLATE = {"type": "string", "pattern": r"\{\{.*\}\}"}
FORBIDDEN_ID_KEYS = {"not": {"anyOf": [{"required": ["obj_id"]}, {"required": ["object_id"]}]}}

# sensor / number device class -> units Home Assistant accepts with it
DEVICE_CLASS_UNITS: dict[str, list[str]] = {
    "voltage": ["V", "mV", "µV", "kV", "MV"],
    "current": ["A", "mA"],
    "power": ["W", "kW", "MW", "GW", "TW", "mW", "BTU/h"],
    "energy": ["Wh", "kWh", "MWh", "GWh", "TWh", "mWh", "MJ", "GJ", "cal", "kcal", "Mcal", "Gcal"],
    "apparent_power": ["VA", "kVA"],
    "reactive_power": ["var", "kvar"],
    "frequency": ["Hz", "kHz", "MHz", "GHz"],
    "temperature": ["°C", "°F", "K"],
    "pressure": ["Pa", "kPa", "hPa", "bar", "cbar", "mbar", "mmHg", "inHg", "psi", "mmH2O"],
    "duration": ["d", "h", "min", "s", "ms", "µs"],
    "volume_flow_rate": ["m³/h", "m³/s", "ft³/min", "L/h", "L/min", "L/s", "gal/min", "mL/s"],
    "irradiance": ["W/m²", "BTU/(h⋅ft²)"],
    "signal_strength": ["dB", "dBm"],
}
STATE_CLASSES = ["measurement", "total", "total_increasing"]
# energy accumulates: Home Assistant refuses `measurement` for it
DEVICE_CLASS_STATE_CLASSES = {"energy": ["total", "total_increasing"]}
PLATFORMS = ["sensor", "binary_sensor", "number", "switch", "text", "button", "select"]


def _unit_rules() -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    for device_class, units in DEVICE_CLASS_UNITS.items():
        then: dict[str, Any] = {"properties": {"unit_of_measurement": {"enum": units}}}
        if device_class in DEVICE_CLASS_STATE_CLASSES:
            then["properties"]["state_class"] = {"enum": DEVICE_CLASS_STATE_CLASSES[device_class]}
        rules.append(
            {
                "if": {
                    "properties": {"device_class": {"const": device_class}},
                    "required": ["device_class"],
                },
                "then": then,
            }
        )
    return rules


def _platform(name: str, then: dict[str, Any]) -> dict[str, Any]:
    return {"if": {"properties": {"p": {"const": name}}}, "then": then}


COMPONENT: dict[str, Any] = {
    "type": "object",
    "required": ["p", "unique_id"],
    "properties": {
        "p": {"enum": PLATFORMS},
        "unique_id": {"type": "string", "minLength": 1},
        "name": {"type": ["string", "null"]},
        "state_topic": TOPIC,
        "command_topic": TOPIC,
        "value_template": TEMPLATE,
        "unit_of_measurement": {"type": "string", "minLength": 1},
        "device_class": {"enum": sorted(DEVICE_CLASS_UNITS)},
        "state_class": {"enum": STATE_CLASSES},
        "qos": {"enum": [0, 1, 2]},
    },
    "allOf": [
        FORBIDDEN_ID_KEYS,
        {"not": {"required": ["platform"]}},  # abbreviated and full name are one key to HA
        _platform(
            "sensor",
            {"required": ["state_topic"], "not": {"required": ["command_topic"]}},
        ),
        _platform(
            "binary_sensor",
            {
                "required": ["state_topic"],
                "properties": {"payload_on": {"type": "string"}, "payload_off": {"type": "string"}},
                "not": {
                    "anyOf": [{"required": ["unit_of_measurement"]}, {"required": ["state_class"]}]
                },
            },
        ),
        _platform(
            "number",
            {
                # HA defaults min/max to 0..100 and drops readings outside: always give them
                "required": ["command_topic", "min", "max"],
                "properties": {
                    "min": {"type": "number"},
                    "max": {"type": "number"},
                    "step": {"type": "number", "minimum": 0.001},
                    "mode": {"enum": ["auto", "box", "slider"]},
                },
                "not": {"required": ["state_class"]},
            },
        ),
        _platform(
            "switch",
            {
                "required": ["command_topic"],
                "properties": {"payload_on": {"type": "string"}, "payload_off": {"type": "string"}},
                "not": {"anyOf": [{"required": ["unit_of_measurement"]}, {"required": ["min"]}]},
            },
        ),
        _platform(
            "text",
            {
                "required": ["command_topic"],
                "properties": {
                    "min": {"type": "integer", "minimum": 0},
                    "max": {"type": "integer", "maximum": 255},
                    "mode": {"enum": ["text", "password"]},
                },
            },
        ),
        *_unit_rules(),
    ],
}

AVAILABILITY_ITEM = {
    "type": "object",
    "required": ["topic"],
    "properties": {
        "topic": TOPIC,
        "payload_available": {"type": "string"},
        "payload_not_available": {"type": "string"},
        "value_template": TEMPLATE,
    },
    "additionalProperties": False,
}

DEVICE_DISCOVERY: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Home Assistant MQTT device-based discovery payload (2024.11+)",
    "type": "object",
    "required": ["dev", "o", "cmps"],
    "properties": {
        "dev": {
            "type": "object",
            "required": ["ids"],
            "properties": {
                "ids": {
                    "anyOf": [
                        {"type": "string", "minLength": 1},
                        {"type": "array", "minItems": 1, "items": {"type": "string"}},
                    ]
                },
                "name": {"type": "string"},
                "manufacturer": {"type": "string"},
                "model": {"type": "string"},
                "model_id": {"type": "string"},
                "sw_version": {"type": "string"},
                "hw_version": {"type": "string"},
                "serial_number": {"type": "string"},
                "suggested_area": {"type": "string"},
                "via_device": {"type": "string"},
                "configuration_url": {"type": "string"},
            },
            "additionalProperties": False,  # HA's device schema refuses unknown keys
        },
        "o": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string", "minLength": 1},
                "sw": {"type": "string"},
                "url": {"type": "string"},
            },
            "additionalProperties": False,
        },
        "availability": {"type": "array", "minItems": 1, "items": AVAILABILITY_ITEM},
        "availability_mode": {"enum": ["all", "any", "latest"]},
        "qos": {"enum": [0, 1, 2]},
        "state_topic": TOPIC,
        "command_topic": TOPIC,
        "encoding": {"type": "string"},
        "cmps": {
            "type": "object",
            "minProperties": 1,
            "propertyNames": {"pattern": ID},
            "additionalProperties": COMPONENT,
        },
    },
    "allOf": [
        FORBIDDEN_ID_KEYS,
        # device and origin may not be overridden per component
        {"not": {"required": ["device"]}},
        {"not": {"required": ["origin"]}},
        {"not": {"required": ["availability_topic"]}},  # one availability form only
    ],
}
