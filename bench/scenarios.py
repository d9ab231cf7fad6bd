"""The benchmark's scenarios and the YAML configs (SPEC 2) they are run with.

Every device sits on its own TCP connection (its own loopback port), holds `registers`
float32 values at contiguous Modicon addresses from 40001, and is polled every second.
MQTT is QoS 0 without retain: the throughput comparison with a bare paho loop is about
the publish path, not about the broker's acknowledgements (`--qos 1` measures those).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

INTERVAL_S = 1
SITE = "bench"


@dataclass(frozen=True)
class Scenario:
    key: str
    devices: int
    registers: int  # float32 values per device
    simulators: int = 1  # simulator processes the connections are split across
    qos: int = 0  # `--qos 1`: the acknowledged path (in-flight tracking) instead

    @property
    def values(self) -> int:
        return self.devices * self.registers

    @property
    def label(self) -> str:
        return f"{self.key}: {self.devices} devices x {self.registers:,} registers"


SCENARIOS = (
    Scenario("A", 10, 100),
    Scenario("B", 100, 100),
    Scenario("C", 10, 2000),
)


def device_name(i: int) -> str:
    return f"d{i + 1:03d}"


def register_name(j: int) -> str:
    return f"r{j + 1:04d}"


def bridge_yaml(s: Scenario, mqtt_port: int, modbus_ports: list[int]) -> str:
    lines = [
        f"site: {SITE}",
        "mqtt:",
        f"  url: mqtt://127.0.0.1:{mqtt_port}",
        f"  client_id: bench-bridge-{s.key}",
        "  protocol: 5",
        f"  qos: {s.qos}",
        "  retain: false",
        "  per_register: true",
        "  device_payload: false",
        "logging: {level: WARNING}",
        # Never the default state directory: one shared buffer.db would hand a stopped
        # bench bridge's unacknowledged QoS 1 readings to the next bridge started anywhere
        # on the machine, which replays them into its own run (counted, and extra load).
        'buffer: {path: ":memory:"}',
        "connections:",
    ]
    lines += [
        f"  - {{name: c{i + 1:03d}, type: tcp, host: 127.0.0.1, port: {port}, timeout: 3}}"
        for i, port in enumerate(modbus_ports)
    ]
    lines.append("devices:")
    for i in range(s.devices):
        lines += [
            f"  - name: {device_name(i)}",
            f"    id: {i + 1}",
            f"    connection: c{i + 1:03d}",
            "    unit: 1",
            f"    interval: {INTERVAL_S}s",
            "    registers:",
        ]
        lines += [
            f"      - {{name: {register_name(j)}, address: {40001 + 2 * j}, "
            "type: float32, unit: V}"
            for j in range(s.registers)
        ]
    return "\n".join(lines) + "\n"


def write_configs(
    s: Scenario, workdir: Path, mqtt_port: int, modbus_ports: list[int]
) -> tuple[Path, list[Path]]:
    """The bridge's config, and one config per simulator process (a share of the devices)."""
    full = bridge_yaml(s, mqtt_port, modbus_ports)
    bridge = workdir / f"bridge-{s.key}.yaml"
    bridge.write_text(full)
    sims: list[Path] = []
    for k in range(s.simulators):
        share = [i for i in range(s.devices) if i % s.simulators == k]
        part = _subset_yaml(s, mqtt_port, modbus_ports, share)
        path = workdir / f"sim-{s.key}-{k + 1}.yaml"
        path.write_text(part)
        sims.append(path)
    return bridge, sims


def _subset_yaml(s: Scenario, mqtt_port: int, modbus_ports: list[int], share: list[int]) -> str:
    """The same devices and ports, only those in `share` (for one simulator process)."""
    if len(share) == s.devices:
        return bridge_yaml(s, mqtt_port, modbus_ports)
    full = bridge_yaml(s, mqtt_port, modbus_ports).splitlines()
    head_end = full.index("connections:")
    out = full[: head_end + 1]
    conns = full[head_end + 1 : full.index("devices:")]
    out += [conns[i] for i in share]
    out.append("devices:")
    per_device = 6 + s.registers
    start = full.index("devices:") + 1
    for i in share:
        out += full[start + i * per_device : start + (i + 1) * per_device]
    return "\n".join(out) + "\n"
