"""The benchmark's scenarios and the YAML configs (SPEC 2) they are run with.

Every device holds `registers` float32 values at contiguous Modicon addresses from 40001
and is polled every second. A TCP connection (its own loopback port) serves `units`
devices, unit ids 1..units: one device per connection by default (a meter with its own
IP), several behind one gateway otherwise. MQTT is QoS 0 without retain: the throughput
comparison with a bare paho loop is about the publish path, not about the broker's
acknowledgements (`--qos 1` measures those). Scenarios D and E (issue 16's scale target,
1,000 devices x 20 registers) are the same map with the device payload instead of the
per-register topics (D) and the per-register topics alone (E).
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
    units: int = 1  # devices per TCP connection (unit ids 1..units behind one gateway)
    per_register: bool = True  # {site}/{device}/{register} topics
    device_payload: bool = False  # one {site}/{device} JSON per device per tick instead

    def __post_init__(self) -> None:
        if self.per_register == self.device_payload:
            raise ValueError("a scenario publishes either per register or per device")
        if self.devices % self.units:
            raise ValueError("devices must fill whole connections")

    @property
    def values(self) -> int:
        return self.devices * self.registers

    @property
    def connections(self) -> int:
        return self.devices // self.units

    @property
    def messages(self) -> int:
        """Reading messages expected per second."""
        return self.devices if self.device_payload else self.values

    @property
    def values_per_message(self) -> int:
        return self.registers if self.device_payload else 1

    @property
    def label(self) -> str:
        shape = "device payload" if self.device_payload else "per register"
        gw = f", {self.units} per connection" if self.units > 1 else ""
        return f"{self.key}: {self.devices:,} devices x {self.registers:,} registers ({shape}{gw})"


SCENARIOS = (
    Scenario("A", 10, 100),
    Scenario("B", 100, 100),
    Scenario("C", 10, 2000),
    # 1,000 connections: the bridge's file descriptors, workers and per-connection state,
    # and a simulator process per 250 listening ports (run.py --simulators overrides).
    Scenario("D", 1000, 20, simulators=4, per_register=False, device_payload=True),
    Scenario("E", 1000, 20, simulators=4),
)


def device_name(i: int) -> str:
    return f"d{i + 1:03d}"


def register_name(j: int) -> str:
    return f"r{j + 1:04d}"


def bridge_yaml(
    s: Scenario,
    mqtt_port: int,
    modbus_ports: list[int],
    metrics_port: int | None = None,
    only: list[int] | None = None,
) -> str:
    """The config of the scenario; `only`: just these connections and their devices (one
    simulator process's share, same names and ports)."""
    lines = [
        f"site: {SITE}",
        "mqtt:",
        f"  url: mqtt://127.0.0.1:{mqtt_port}",
        f"  client_id: bench-bridge-{s.key}",
        "  protocol: 5",
        f"  qos: {s.qos}",
        "  retain: false",
        f"  per_register: {str(s.per_register).lower()}",
        f"  device_payload: {str(s.device_payload).lower()}",
        "logging: {level: WARNING}",
        # Never the default state directory: one shared buffer.db would hand a stopped
        # bench bridge's unacknowledged QoS 1 readings to the next bridge started anywhere
        # on the machine, which replays them into its own run (counted, and extra load).
        'buffer: {path: ":memory:"}',
    ]
    if metrics_port is not None:
        lines.append(f'metrics: {{listen: "127.0.0.1:{metrics_port}"}}')
    conns = range(s.connections) if only is None else only
    lines.append("connections:")
    lines += [
        f"  - {{name: c{c + 1:03d}, type: tcp, host: 127.0.0.1, port: {modbus_ports[c]}, "
        "timeout: 3}"
        for c in conns
    ]
    lines.append("devices:")
    for c in conns:
        for u in range(s.units):
            i = c * s.units + u
            lines += [
                f"  - name: {device_name(i)}",
                f"    id: {i + 1}",
                f"    connection: c{c + 1:03d}",
                f"    unit: {u + 1}",
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
    s: Scenario,
    workdir: Path,
    mqtt_port: int,
    modbus_ports: list[int],
    metrics_port: int | None = None,
) -> tuple[Path, list[Path]]:
    """The bridge's config, and one config per simulator process (a share of the
    connections)."""
    bridge = workdir / f"bridge-{s.key}.yaml"
    bridge.write_text(bridge_yaml(s, mqtt_port, modbus_ports, metrics_port))
    sims: list[Path] = []
    for k in range(s.simulators):
        share = [c for c in range(s.connections) if c % s.simulators == k]
        path = workdir / f"sim-{s.key}-{k + 1}.yaml"
        path.write_text(bridge_yaml(s, mqtt_port, modbus_ports, only=share))
        sims.append(path)
    return bridge, sims
