"""The import contract (ARCHITECTURE.md): the pure core imports no I/O, and each
third-party wire library has one owner module that translates its errors into ours.

Walks the package's ASTs, so it sees every import, including ones inside functions.
`make lint` runs this file too.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "modbus_mqtt_bridge"

# Modules that do no I/O: tables, dataclasses and functions of their arguments.
PURE = {
    "errors",
    "plan",
    "schedule",
    "codec",
    "decimals",
    "readings",
    "retry",
    "config.model",
    "config.types",
    "config.addressing",
    "config.durations",
    "config.fields",
    "config.legacy",
    "config.schema",
    "config.validate",
    "config.validate_devices",
    "config.validate_refs",
    "config.validate_registers",
    "modbus.wiretime",
    "modbus.frames",
    "modbus.isolate",
    "mqtt.topics",
    "mqtt.payloads",
    "writes.parse",
    "writes.check",
    "forward.laravel",
    "bridge.history",
}
IO_LIBRARIES = {
    "asyncio",
    "paho",
    "pymodbus",
    "serial",
    "sqlite3",
    "httpx",
    "httpcore",
    "socket",
    "ssl",
    "threading",
    "subprocess",
    "prometheus_client",
    "yaml",
}
# Each wire library has one owner. The simulator is the slave side of the wire (it serves
# pymodbus's server), not a second client, so it may import pymodbus too.
OWNERS = {
    "paho": {"mqtt.port"},
    "pymodbus": {"modbus.port", "modbus.simulator"},
    "serial": {"modbus.port"},
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports(path: Path) -> Iterator[str]:
    """Every module this file imports, absolute (package modules without the package prefix)."""
    here = module_name(path).split(".")
    base = here if path.name == "__init__.py" else here[:-1]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                yield node.module or ""
                continue
            parent = base[: len(base) - (node.level - 1)]
            target = ".".join([*parent, node.module] if node.module else parent)
            yield "modbus_mqtt_bridge." + target if target else "modbus_mqtt_bridge"
            for alias in node.names:  # `from . import codec` imports a module
                yield f"modbus_mqtt_bridge.{target}.{alias.name}".replace("..", ".")


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def test_every_pure_module_exists() -> None:
    assert sorted(PURE - MODULES.keys()) == []


@pytest.mark.parametrize("name", sorted(PURE))
def test_pure_modules_import_no_io_and_only_pure_modules(name: str) -> None:
    bad = []
    for target in imports(MODULES[name]):
        top = target.split(".")[0]
        if top in IO_LIBRARIES:
            bad.append(target)
        elif top == "modbus_mqtt_bridge":
            inner = target.removeprefix("modbus_mqtt_bridge").lstrip(".")
            if inner in MODULES and inner not in PURE and inner != "" and not _is_package(inner):
                bad.append(target)
    assert bad == [], f"{name} is pure but imports {bad}"


def _is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


@pytest.mark.parametrize("library", sorted(OWNERS))
def test_each_wire_library_has_one_owner(library: str) -> None:
    users = {
        name
        for name, path in MODULES.items()
        if any(t.split(".")[0] == library for t in imports(path))
    }
    assert users <= OWNERS[library], (
        f"{library} imported outside its owner: {users - OWNERS[library]}"
    )
