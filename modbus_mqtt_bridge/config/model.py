"""The config model: frozen dataclasses every stage reads; built once by `load`, never mutated.

Durations are float seconds named `*_s`. `unit_id` is the Modbus unit, `engineering_unit`
the physical unit (the YAML says `unit` for both).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from .types import Table, register_count

ByteOrder = Literal["big", "little"]
ConnectionType = Literal["tcp", "rtu", "rtu-over-tcp"]
BitWrite = Literal["read-modify-write", "mask"]  # how one bit of a register is written


@dataclass(frozen=True)
class TlsConfig:
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    insecure: bool = False  # skip hostname verification (test rigs only)


@dataclass(frozen=True)
class MqttConfig:
    url: str = "mqtt://localhost:1883"
    client_id: str = ""  # "" -> "bridge-{site}"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: TlsConfig = field(default_factory=TlsConfig)
    protocol: Literal["5", "3.1.1"] = "5"
    qos: int = 1
    retain: bool = True
    per_register: bool = True
    device_payload: bool = False
    keepalive_s: float = 30.0

    @property
    def host(self) -> str:
        return _split_url(self.url)[1]

    @property
    def port(self) -> int:
        return _split_url(self.url)[2]

    @property
    def use_tls(self) -> bool:
        return _split_url(self.url)[0] == "mqtts"


def _split_url(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of mqtt://host:port or mqtts://host:port; validated at load."""
    scheme, _, rest = url.partition("://")
    hostport = rest.split("/", 1)[0].rsplit("@", 1)[-1]
    default = 8883 if scheme == "mqtts" else 1883
    if hostport.startswith("["):  # [::1]:1883
        host, _, port = hostport[1:].partition("]")
        return scheme, host, int(port.lstrip(":") or default)
    host, _, port = hostport.partition(":")
    return scheme, host or "localhost", int(port or default)


@dataclass(frozen=True)
class CommandsConfig:
    max_age_s: float = 30.0
    max_payload_bytes: int = 4096


@dataclass(frozen=True)
class BufferConfig:
    # None: buffer.db in the state directory, resolved at start (statedir.py); ":memory:"
    # keeps readings in memory only. A Bridge built directly (tests, demo) keeps None in memory.
    path: str | None = None
    max_readings: int = 1_000_000


@dataclass(frozen=True)
class MetricsConfig:
    listen: str | None = None  # "host:port"; None: no metrics endpoint
    history: int = 120  # readings kept in memory per register for the page and /api
    write_token: str | None = field(default=None, repr=False)  # None: no HTTP write endpoint


@dataclass(frozen=True)
class HomeAssistantConfig:
    discovery: bool = False
    prefix: str = "homeassistant"


@dataclass(frozen=True)
class LoggingConfig:
    level: str = "INFO"
    file: str | None = None
    max_bytes: int = 10_000_000
    backup_count: int = 5


@dataclass(frozen=True)
class ModbusTls:
    """Modbus/TCP Security (TLS): the device's certificate is always verified, never skipped."""

    ca_file: str | None = None  # None: the system's trusted CAs
    cert_file: str | None = None  # the bridge's client certificate (the device may demand one)
    key_file: str | None = None  # its private key, unless cert_file holds it too
    server_hostname: str | None = None  # the name the certificate carries; None: host


@dataclass(frozen=True)
class Connection:
    """A transport; every device behind it shares its one worker."""

    name: str
    type: ConnectionType = "tcp"
    host: str | None = None  # tcp, rtu-over-tcp
    port: int | str | None = None  # TCP port number, or serial device path for rtu
    timeout_s: float = 3.0
    baudrate: int = 9600
    parity: Literal["N", "E", "O"] = "N"
    stopbits: int = 1
    bytesize: int = 8
    inter_frame_delay_s: float | None = None  # None: 3.5 character times at the baud rate
    # The longest wait between two tries of a dead link or a silent device: a device back
    # after an outage is polled again within this.
    reconnect_max_s: float = 10.0
    tls: ModbusTls | None = None  # tcp only; None: plaintext Modbus/TCP


@dataclass(frozen=True, slots=True)  # slots: 20,000 of them are built at start-up
class Register:
    """One value on a device, fully resolved (device defaults already applied)."""

    name: str  # topic segment
    parameter: str  # Laravel parameter
    table: Table
    address: int  # 0-based protocol address
    register_address: int  # the address as written in the config (payload field)
    type: str  # canonical type, a key of types.TYPES
    data_type: str  # the type as written (payload field)
    interval_s: float
    byte_order: ByteOrder = "big"
    word_order: ByteOrder = "big"
    bit: int | None = None  # bool from one bit of a register
    bit_write: BitWrite = "read-modify-write"  # "mask": FC22, the other bits untouched
    length: int | None = None  # string length in registers
    scale: float = 1.0
    offset: float = 0.0
    engineering_unit: str | None = None
    deadband: float | None = None
    max_age_s: float | None = None
    writable: bool = False
    min: float | None = None
    max: float | None = None
    description: str | None = None
    # Home Assistant discovery overrides of what the unit implies (bridge/discovery.py)
    device_class: str | None = None
    state_class: str | None = None

    @property
    def count(self) -> int:
        """Registers (or bits) this value spans."""
        if self.table.is_bits or self.bit is not None:
            return 1
        return register_count(self.type, self.length)


@dataclass(frozen=True)
class Device:
    name: str  # topic segment
    id: int | None  # Laravel device_id
    connection: str
    unit_id: int
    registers: tuple[Register, ...]
    byte_order: ByteOrder = "big"
    word_order: ByteOrder = "big"
    interval_s: float = 30.0
    max_gap: int = 10
    always_fc16: bool = False  # for devices that reject FC6
    turnaround_delay_s: float = 0.0
    description: str | None = None


@dataclass(frozen=True)
class ForwardConfig:
    subscribe: str = ""  # "" -> "$share/forwarders/{site}/+/+"
    api_url: str | None = None
    token: str | None = field(default=None, repr=False)
    batch_url: str | None = None
    batch_size: int = 100
    outbox: str | None = None  # None: outbox.db in the state directory (statedir.py)
    outbox_max: int = 1_000_000
    concurrency: int = 4
    client_id: str = ""  # "" -> "forwarder-{site}"
    session_expiry_s: float = 7 * 24 * 3600.0
    timeout_s: float = 10.0
    exclude: tuple[str, ...] = ()  # topic filters never forwarded (acked, counted)
    dead_letter_max: int = 100_000  # beyond it the oldest dead letters go (counted)
    metrics_listen: str | None = None  # the side-car's own /metrics /healthz /status


@dataclass(frozen=True)
class Config:
    site: str
    connections: tuple[Connection, ...]
    devices: tuple[Device, ...]
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    commands: CommandsConfig = field(default_factory=CommandsConfig)
    buffer: BufferConfig = field(default_factory=BufferConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    homeassistant: HomeAssistantConfig = field(default_factory=HomeAssistantConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    forward: ForwardConfig = field(default_factory=ForwardConfig)

    def connection(self, name: str) -> Connection:
        return next(c for c in self.connections if c.name == name)

    def device(self, name: str) -> Device:
        return next(d for d in self.devices if d.name == name)

    @property
    def mqtt_client_id(self) -> str:
        return self.mqtt.client_id or f"bridge-{self.site}"
