"""Home Assistant MQTT discovery: one device-based discovery message per Modbus device (SPEC 3).

`device_message` is pure: config in, (topic, JSON) out. `Discovery` publishes the messages,
retained, after every broker (re)connect and whenever Home Assistant announces `online` on
`{prefix}/status`; it only subscribes to the publisher, the core never calls it.

Facts kept (Home Assistant 2024.11+): topic `{prefix}/device/{id}/config` with the id in
[A-Za-z0-9_-]; `dev` with `ids`, `o` with `name`, `cmps` each with `p` and `unique_id`; no
`obj_id`; a `number` always has `min`/`max` (HA would default to 0..100 and drop the rest);
a unit gets a `device_class` only where Home Assistant accepts that unit for the class.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import sys
from collections.abc import Callable

from .. import __version__
from ..config.model import Config, Device, Register
from ..config.types import TYPES
from ..errors import MqttError
from ..mqtt import topics
from ..mqtt.port import Message
from ..observe.metrics import BridgeMetrics

log = logging.getLogger(__name__)

ORIGIN = {"name": "modbus-mqtt-bridge", "sw": __version__}
HA_MIN_STEP = 0.001  # Home Assistant refuses a number step below this
HA_MAX_TEXT = 255  # and a text entity longer than a state may be
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")

# unit as written -> (device_class, state_class). Only units every Home Assistant since
# 2024.11 accepts for the class: a unit the class does not know makes HA reject the entity.
_MEASUREMENT = "measurement"
_TOTAL = "total_increasing"  # a meter's counter: what HA's Energy dashboard reads
UNIT_CLASSES: dict[str, tuple[str | None, str]] = {
    **dict.fromkeys(("V", "mV"), ("voltage", _MEASUREMENT)),
    **dict.fromkeys(("A", "mA"), ("current", _MEASUREMENT)),
    **dict.fromkeys(("W", "kW"), ("power", _MEASUREMENT)),
    **dict.fromkeys(("Wh", "kWh", "MWh"), ("energy", _TOTAL)),
    # Counters too, so HA keeps long-term statistics; no device class every HA accepts.
    **dict.fromkeys(("varh", "kvarh", "Ah"), (None, _TOTAL)),
    "VA": ("apparent_power", _MEASUREMENT),
    "var": ("reactive_power", _MEASUREMENT),
    **dict.fromkeys(("Hz", "kHz"), ("frequency", _MEASUREMENT)),
    **dict.fromkeys(("°C", "°F", "K"), ("temperature", _MEASUREMENT)),
    **dict.fromkeys(("Pa", "hPa", "kPa", "bar", "mbar", "psi"), ("pressure", _MEASUREMENT)),
    **dict.fromkeys(("s", "min", "h", "d", "ms"), ("duration", _MEASUREMENT)),
    **dict.fromkeys(("m³/h", "L/min"), ("volume_flow_rate", _MEASUREMENT)),
    "W/m²": ("irradiance", _MEASUREMENT),
    **dict.fromkeys(("dB", "dBm"), ("signal_strength", _MEASUREMENT)),
}


def safe_id(text: str) -> str:
    """text in [A-Za-z0-9_-]; a short hash keeps two names that differ only in
    unsafe characters (`a.b`, `a b`) apart."""
    cleaned = _UNSAFE.sub("_", text)
    if cleaned == text:
        return text
    return f"{cleaned}_{hashlib.sha256(text.encode()).hexdigest()[:6]}"


def device_id(config: Config, device: Device) -> str:
    return safe_id(f"{config.site}_{device.name}")


def discovery_topic(config: Config, device: Device) -> str:
    return f"{config.homeassistant.prefix}/device/{device_id(config, device)}/config"


def device_message(config: Config, device: Device) -> tuple[str, str]:
    """The retained discovery message for one device: (topic, JSON payload)."""
    ident = device_id(config, device)
    dev: dict[str, object] = {"ids": [ident], "name": device.name}
    if device.description:
        dev["model"] = device.description
    payload = {
        "dev": dev,
        "o": ORIGIN,
        "availability": [
            {"topic": topics.bridge_status(config.site)},
            {"topic": topics.device_status(config.site, device.name)},
        ],
        "availability_mode": "all",  # unavailable when the bridge or the device is offline
        "qos": config.mqtt.qos,
        "cmps": {
            safe_id(register.name): component(config, device, register, ident)
            for register in device.registers
        },
    }
    return discovery_topic(config, device), json.dumps(payload, ensure_ascii=False)


def component(config: Config, device: Device, register: Register, ident: str) -> dict[str, object]:
    """One entity: platform by type and writability, state from the register's reading."""
    base: dict[str, object] = {
        "name": register.parameter,
        "unique_id": f"{ident}_{safe_id(register.name)}",
        "state_topic": _state_topic(config, device, register),
        "value_template": f"{{{{ {_value_expr(config, register)} }}}}",
    }
    if register.type == "bool":
        return {**base, **_bool_component(config, device, register)}
    if register.type == "string":
        return {**base, **_text_component(config, device, register)}
    return {**base, **_number_component(config, device, register)}


def _state_topic(config: Config, device: Device, register: Register) -> str:
    """The reading topic, or the device payload when per-register topics are off."""
    if config.mqtt.per_register:
        return topics.reading(config.site, device.name, register.name)
    return topics.device_payload(config.site, device.name)


def _value_expr(config: Config, register: Register) -> str:
    if config.mqtt.per_register:
        return "value_json.value"
    # a JSON string literal is also a valid Jinja string literal, whatever the name holds
    return f"value_json[{json.dumps(register.name)}]"


def _set_topic(config: Config, device: Device, register: Register) -> str:
    return topics.register_set(config.site, device.name, register.name)


def _bool_component(config: Config, device: Device, register: Register) -> dict[str, object]:
    # ON/OFF both ways: the command parser takes them, and the reading's true/false maps on
    out: dict[str, object] = {
        "value_template": f"{{{{ 'ON' if {_value_expr(config, register)} else 'OFF' }}}}",
        "payload_on": "ON",
        "payload_off": "OFF",
    }
    if register.writable:
        return {"p": "switch", "command_topic": _set_topic(config, device, register), **out}
    return {"p": "binary_sensor", **out}


def _text_component(config: Config, device: Device, register: Register) -> dict[str, object]:
    if not register.writable:
        return {"p": "sensor"}
    chars = min(HA_MAX_TEXT, 2 * (register.length or 1))  # two characters per register
    return {
        "p": "text",
        "command_topic": _set_topic(config, device, register),
        "min": 0,
        "max": chars,
    }


def _number_component(config: Config, device: Device, register: Register) -> dict[str, object]:
    out: dict[str, object] = {}
    unit = register.engineering_unit
    if unit:
        out["unit_of_measurement"] = unit
        device_class, state_class = UNIT_CLASSES.get(unit, (None, _MEASUREMENT))
        if device_class:
            out["device_class"] = device_class
        if not register.writable:
            out["state_class"] = state_class
    # The register's own choice wins (a meter counting down, a class the table lacks).
    if register.device_class:
        out["device_class"] = register.device_class
    if register.state_class and not register.writable:
        out["state_class"] = register.state_class
    if not register.writable:
        return {"p": "sensor", **out}
    low, high = value_range(register)
    return {
        "p": "number",
        "command_topic": _set_topic(config, device, register),
        "min": low,
        "max": high,
        "step": _step(register),
        "mode": "box",  # a slider across a register's whole range is useless
        **out,
    }


def value_range(register: Register) -> tuple[float, float]:
    """The register's own min/max, else what its type can hold after scale and offset."""
    info = TYPES[register.type]
    raw_low = info.min_value if info.min_value is not None else -sys.float_info.max
    raw_high = info.max_value if info.max_value is not None else sys.float_info.max
    if register.scale == 1 and register.offset == 0:
        ends = [raw_low, raw_high]  # exact: 2**64 - 1 stays an integer
    else:
        ends = sorted(
            (
                raw_low * register.scale + register.offset,
                raw_high * register.scale + register.offset,
            )
        )
    low = register.min if register.min is not None else ends[0]
    high = register.max if register.max is not None else ends[1]
    return _tidy(low), _tidy(high)


def _tidy(number: float) -> float:
    """3276.7 rather than 32767 * 0.1 = 3276.7000000000003; whole numbers as integers."""
    if abs(number) < 2**53:
        number = round(number, 9)
    return int(number) if float(number).is_integer() and abs(number) < 2**53 else number


def _step(register: Register) -> float:
    if TYPES[register.type].is_float:
        return HA_MIN_STEP
    return _tidy(max(HA_MIN_STEP, abs(register.scale)))


class Discovery:
    """Publishes every device's discovery message on connect and on Home Assistant's birth."""

    def __init__(
        self,
        config: Config,
        publish: Callable[[str, str], None],
        metrics: BridgeMetrics | None = None,
    ) -> None:
        self.config = config
        self._publish = publish
        self.metrics = metrics
        self.status_topic = f"{config.homeassistant.prefix}/status"
        self.messages = [device_message(config, device) for device in config.devices]

    def publish_all(self) -> None:
        try:
            for topic, payload in self.messages:
                self._publish(topic, payload)
        except MqttError as exc:  # the next connect sends them all again
            log.warning("discovery not sent: %s", exc)
            return
        if self.metrics is not None:
            self.metrics.discovery_published.inc(len(self.messages))
        log.info("home assistant discovery sent for %d device(s)", len(self.messages))

    def on_ha_status(self, message: Message) -> None:
        # A retained `online` arrives on every subscribe, right after publish_all ran.
        if message.retain or message.payload.strip().lower() != b"online":
            return
        log.info("home assistant is online again: re-sending discovery")
        self.publish_all()
