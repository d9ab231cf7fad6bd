"""Translate the legacy `poller.py` JSON device list into the raw shape `validate` reads.

Values pass through untouched, so `validate` judges them; this module only renames keys,
derives topic names, groups devices into one tcp connection per (ip, port), and remembers
which legacy path each new path came from so every message points at the user's own file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from ..errors import Problem
from .fields import Problems, join, suggest
from .types import ALIASES, TYPES

LEGACY_DEVICE_KEYS = (
    "device_id",
    "ip",
    "port",
    "slave_id",
    "timeout",
    "name",
    "description",
    "interval",  # not in the old poller; accepted so a legacy file can poll faster than 30min
)
LEGACY_REGISTER_KEYS = ("address", "parameter", "data_type", "scale", "unit", "description")
LEGACY_MARKERS = frozenset({"device_id", "ip", "slave_id"})
LEGACY_INTERVAL = "30min"  # the old scheduler ran one poll every 30 minutes
LEGACY_SITE = "plant"
LEGACY_DATA_TYPE = "float"
DEFAULT_PORT = 502
DEFAULT_TIMEOUT = 3
_REGISTER_KEYS = {  # new key -> legacy key, in the order `convert` writes them
    "parameter": "parameter",
    "address": "address",
    "type": "data_type",
    "scale": "scale",
    "unit": "unit",
    "description": "description",
    "name": "parameter",
}


def is_legacy(data: object) -> bool:
    """A top-level list, or a mapping whose `devices` look like the legacy ones."""
    if isinstance(data, list):
        return True
    if not isinstance(data, Mapping) or "connections" in data:
        return False
    devices = data.get("devices")
    return isinstance(devices, list) and any(
        isinstance(d, Mapping) and LEGACY_MARKERS & set(d) for d in devices
    )


def slug(text: str) -> str:
    """A topic-friendly name: lowercase, runs of anything but letters and digits become `_`."""
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


@dataclass
class Converted:
    """The new-format raw mapping, where each new path came from, and legacy-only problems."""

    raw: dict[str, object]
    origins: dict[str, str] = field(default_factory=dict)
    problems: list[tuple[str, str]] = field(default_factory=list)  # (legacy path, message)
    file_order: dict[str, int] = field(default_factory=dict)  # legacy path -> position

    def legacy_path(self, path: str) -> str:
        """The legacy path for a new one, via its longest known prefix."""
        head, tail = path, ""
        while head not in self.origins:
            cut = max(head.rfind("."), head.rfind("["))
            if cut <= 0:
                return path
            head, tail = head[:cut], head[cut:] + tail
        return self.origins[head] + tail

    def remap(self, problems: list[Problem], lines: Mapping[str, int]) -> list[Problem]:
        """Problems under legacy paths with legacy lines; drops repeats of legacy problems."""
        finder = Problems(lines)
        result = [Problem(path, message, finder.line(path)) for path, message in self.problems]
        seen = {p.path for p in result}
        for problem in problems:
            path = self.legacy_path(problem.path)
            if path not in seen:
                message = _legacy_type_hint(path, problem.message)
                result.append(Problem(path, message, finder.line(path)))
        # Validation reads connections before devices; the user's file has them interleaved,
        # and several keys may share a line: order by line, then by place in the file.
        return sorted(result, key=lambda p: (p.line or 0, self._place(p.path)))

    def _place(self, path: str) -> float:
        """Position in the file; a missing key goes just after the item it is missing from."""
        head, offset = path, 0.0
        while head not in self.file_order:
            cut = max(head.rfind("."), head.rfind("["))
            if cut <= 0:
                return len(self.file_order)
            head, offset = head[:cut], 0.5
        return self.file_order[head] + offset


def convert_legacy(data: object) -> Converted:
    """The raw new-format mapping for legacy data (a list, or a mapping with `devices`)."""
    if isinstance(data, list):
        devices, prefix, extra = data, "", {}
    else:
        assert isinstance(data, Mapping)  # is_legacy() said so
        devices, prefix = data["devices"], "devices"
        extra = {str(k): v for k, v in data.items() if k != "devices"}
    result = Converted({"site": LEGACY_SITE, **extra})
    result.file_order = {path: i for i, path in enumerate(_paths(data, ""))}
    result.origins.update({key: key for key in extra})
    _Builder(result, prefix).build(devices)
    return result


class _Builder:
    """Walks the legacy devices once, filling `Converted`."""

    def __init__(self, out: Converted, prefix: str) -> None:
        self.out = out
        self.prefix = prefix
        self.connections: dict[tuple[str, str], dict[str, object]] = {}
        self.device_names: set[str] = set()

    def build(self, devices: list[object]) -> None:
        new_devices: list[object] = []
        for i, item in enumerate(devices):
            path = f"{self.prefix}[{i}]"
            if not isinstance(item, Mapping):
                self.out.problems.append((path, "expected a mapping (one device)"))
                continue
            self._check_keys(item, path, (*LEGACY_DEVICE_KEYS, "registers"))
            new_path = f"devices[{len(new_devices)}]"
            new_devices.append(self._device(item, path, new_path))
        self.out.raw["connections"] = list(self.connections.values())
        self.out.raw["devices"] = new_devices

    def _check_keys(self, item: Mapping[object, object], path: str, known: tuple[str, ...]) -> None:
        for key in item:
            if str(key) not in known:
                hint = suggest(str(key), list(known))
                self.out.problems.append((join(path, str(key)), f"unknown key{hint}"))

    def _device(self, item: Mapping[object, object], path: str, new: str) -> dict[str, object]:
        self.out.origins.update(
            {new: path, f"{new}.id": f"{path}.device_id", f"{new}.unit": f"{path}.slave_id"}
        )
        self.out.origins.update({f"{new}.connection": f"{path}.ip", f"{new}.name": path})
        self.out.origins[f"{new}.registers"] = f"{path}.registers"
        self.out.origins[f"{new}.description"] = f"{path}.description"
        device: dict[str, object] = {"name": self._device_name(item)}
        device["id"] = item.get("device_id")
        device["connection"] = self._connection(item, path)
        device["unit"] = item.get("slave_id", 1)
        device["interval"] = item.get("interval", LEGACY_INTERVAL)
        self.out.origins[f"{new}.interval"] = f"{path}.interval"
        name = item.get("name")
        description = item.get("description", name if isinstance(name, str) else None)
        if description is not None:
            device["description"] = description
        device["registers"] = self._registers(item.get("registers"), path, new)
        if item.get("device_id") is None:
            self.out.problems.append((f"{path}.device_id", "missing required key"))
        return device

    def _device_name(self, item: Mapping[object, object]) -> str:
        name, device_id = item.get("name"), item.get("device_id")
        base = slug(name) if isinstance(name, str) else ""
        if not base:
            number = device_id if isinstance(device_id, int) else len(self.device_names) + 1
            base = f"device{number}"
        return _unique(base if base != "bridge" else "bridge_device", self.device_names)

    def _connection(self, item: Mapping[object, object], path: str) -> str:
        ip, port, timeout = item.get("ip"), item.get("port"), item.get("timeout")
        port = DEFAULT_PORT if port is None else port  # null means "not given", as in YAML
        timeout = DEFAULT_TIMEOUT if timeout is None else timeout
        key = (str(ip), str(port))
        conn = self.connections.get(key)
        if conn is None:
            conn = {"name": f"{ip}:{port}", "type": "tcp", "host": ip, "port": port}
            conn["timeout"] = timeout
            new = f"connections[{len(self.connections)}]"
            self.out.origins.update({new: path, f"{new}.host": f"{path}.ip"})
            self.out.origins.update({f"{new}.port": f"{path}.port", f"{new}.name": f"{path}.ip"})
            self.out.origins[f"{new}.timeout"] = f"{path}.timeout"
            self.connections[key] = conn
        else:
            # One connection serves every device at this address: wait as long as the slowest.
            slowest, this = _number(conn["timeout"]), _number(timeout)
            if slowest is not None and this is not None and this > slowest:
                conn["timeout"] = timeout
        return str(conn["name"])

    def _registers(self, items: object, path: str, new: str) -> object:
        if not isinstance(items, list):
            return items  # validate reports it (missing, or not a list)
        names: set[str] = set()
        registers: list[object] = []
        for j, item in enumerate(items):
            old_path, new_path = f"{path}.registers[{j}]", f"{new}.registers[{j}]"
            self.out.origins[new_path] = old_path
            if not isinstance(item, Mapping):
                registers.append(item)
                continue
            self._check_keys(item, old_path, LEGACY_REGISTER_KEYS)
            registers.append(self._register(item, names, j))
            for key, legacy_key in _REGISTER_KEYS.items():
                self.out.origins[f"{new_path}.{key}"] = f"{old_path}.{legacy_key}"
        return registers

    def _register(self, item: Mapping[object, object], names: set[str], j: int) -> object:
        parameter = item.get("parameter")
        base = slug(parameter) if isinstance(parameter, str) else ""
        base = base or f"register{j + 1}"
        name = _unique(f"{base}_value" if base in ("status", "set") else base, names)
        register: dict[str, object] = {"name": name}
        for key, legacy_key in _REGISTER_KEYS.items():
            if key != "name" and legacy_key in item:
                register[key] = item[legacy_key]
        if register.get("type") is None:
            register["type"] = LEGACY_DATA_TYPE
        return register


_TYPE_HINT = re.compile(r" \(did you mean [^)]*\?\)$")


def _legacy_type_hint(path: str, message: str) -> str:
    """A legacy `data_type` hint names the legacy spelling (`floa` -> float, not float32)."""
    if not path.endswith(".data_type") or not _TYPE_HINT.search(message):
        return message
    written = message.split("'")[1] if message.count("'") >= 2 else ""
    hint = suggest(written.strip().lower(), [LEGACY_DATA_TYPE, *ALIASES, *TYPES])
    return _TYPE_HINT.sub(hint, message)


def _paths(data: object, path: str) -> list[str]:
    """Every path in `data`, in the order the file wrote them (JSON keeps key order)."""
    found = [path] if path else []
    if isinstance(data, Mapping):
        for key, value in data.items():
            found += _paths(value, join(path, str(key)))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            found += _paths(value, f"{path}[{i}]")
    return found


def _unique(base: str, taken: set[str]) -> str:
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base}_{n}"
    taken.add(name)
    return name


def _number(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None
