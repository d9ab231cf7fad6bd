"""Modbus/TCP Security end to end: the bridge against pymodbus's TLS server (serving the
simulator's registers) with certificates made in the test. A good certificate gives
readings; a certificate the configured CA did not sign, a name that does not match, or a
plaintext slave behind a `tls` connection gives a failed connection, an offline device and
no reading: never a plaintext fallback."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from modbus_mqtt_bridge.config.model import Config
from modbus_mqtt_bridge.errors import ModbusConnectionError
from modbus_mqtt_bridge.modbus.port import ModbusPort
from modbus_mqtt_bridge.modbus.simulator import Simulator, make_server
from tests.support.bridge import BridgeThread
from tests.support.configs import config_from
from tests.support.mosquitto import Mosquitto
from tests.support.ports import free_port, port_open, wait_until
from tests.support.subscriber import Subscriber
from tests.support.threads import LoopThread
from tests.support.x509 import Authority, Issued

SITE = "tls"
VALUES = {"good": 101, "wrong_ca": 202, "plain": 303, "named": 404, "mismatch": 505}


@dataclass
class Pki:
    ca: Authority
    other_ca: Authority  # signed nothing the servers hold
    server: Issued  # for 127.0.0.1
    named_server: Issued  # for plc.example only
    client: Issued


def _server_context(pki: Pki, server: Issued) -> ssl.SSLContext:
    """A Modbus/TCP Security server: its certificate, and client certificates required."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(server.cert, server.key)
    context.load_verify_locations(pki.ca.ca_file)
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def _slaves_yaml(ports: dict[str, int]) -> str:
    """The far side: one simulated slave per server; `plain` speaks no TLS."""
    return f"site: {SITE}slaves\n" + _body(ports, {})


def _bridge_yaml(mqtt_url: str, ports: dict[str, int], pki: Pki) -> str:
    client = f"cert_file: {pki.client.cert}, key_file: {pki.client.key}"
    tls = {
        "good": f"{{ca_file: {pki.ca.ca_file}, {client}}}",
        "wrong_ca": f"{{ca_file: {pki.other_ca.ca_file}, {client}}}",
        "plain": f"{{ca_file: {pki.ca.ca_file}, {client}}}",
        "named": f"{{ca_file: {pki.ca.ca_file}, {client}, server_hostname: plc.example}}",
        "mismatch": f"{{ca_file: {pki.ca.ca_file}, {client}}}",  # cert is for plc.example
    }
    return f"site: {SITE}\nmqtt: {{url: '{mqtt_url}', qos: 1, retain: false}}\n" + _body(ports, tls)


def _body(ports: dict[str, int], tls: dict[str, str]) -> str:
    connections = "\n".join(
        f"  - {{name: {name}, type: tcp, host: 127.0.0.1, port: {ports[name]}, timeout: 1"
        + (f", tls: {tls[name]}" if name in tls else "")
        + "}"
        for name in VALUES
    )
    devices = "\n".join(
        f"  - {{name: {name}, connection: {name}, interval: 200ms,"
        " registers: [{name: v, address: 40001, type: uint16}]}"
        for name in VALUES
    )
    return f"connections:\n{connections}\ndevices:\n{devices}\n"


class Slaves:
    """The simulator's registers behind pymodbus's TLS server (and one plaintext server)."""

    def __init__(self, config: Config, pki: Pki) -> None:
        self.config = config
        self.pki = pki
        self.runner = LoopThread(self._main, "tls-slaves")

    async def _main(self, stop: asyncio.Event) -> None:
        sim = Simulator(self.config, changing=False)
        for name, value in VALUES.items():
            sim.set_value(name, "v", value)
        certs = {"named": self.pki.named_server, "mismatch": self.pki.named_server}
        servers = []
        for conn in self.config.connections:
            if conn.name == "plain":
                context = None
            else:
                context = _server_context(self.pki, certs.get(conn.name, self.pki.server))
            server = make_server(sim, conn, sslctx=context)
            await server.serve_forever(background=True)
            servers.append(server)
        try:
            await stop.wait()
        finally:
            for server in servers:
                await server.shutdown()  # type: ignore[no-untyped-call]

    def start(self) -> Slaves:
        self.runner.start()
        for conn in self.config.connections:
            wait_until(lambda c=conn: port_open(int(c.port or 0)), 10, f"slave {conn.name}")
        return self


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    ca, other = Authority(directory, "plant"), Authority(directory, "other")
    return Pki(
        ca,
        other,
        ca.server("server", ips=("127.0.0.1",)),
        ca.server("named", dns=("plc.example",)),
        ca.client("bridge"),
    )


@pytest.fixture(scope="module")
def ports(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[dict[str, int]]:
    ports = {name: free_port() for name in VALUES}
    config = config_from(tmp_path_factory.mktemp("slaves"), _slaves_yaml(ports))
    slaves = Slaves(config, pki).start()
    yield ports
    slaves.runner.stop()


def test_only_a_verified_tls_link_gives_readings(
    tmp_path: Path, broker: Mosquitto, pki: Pki, ports: dict[str, int]
) -> None:
    config = config_from(tmp_path, _bridge_yaml(broker.url, ports, pki))
    sub = Subscriber(broker.port, [f"{SITE}/#"])
    bridge = BridgeThread(config).start()
    try:
        for name in ("good", "named"):
            readings = sub.wait_for(f"{SITE}/{name}/v", 3, timeout=20)
            assert {m.json()["value"] for m in readings} == {VALUES[name]}
            sub.wait_payload(f"{SITE}/{name}/status", "online")
        refused = ("wrong_ca", "plain", "mismatch")
        for name in refused:
            sub.wait_payload(f"{SITE}/{name}/status", "offline", timeout=20)
        # Several more good readings later, still not one from a refused link.
        seen = len(sub.on(f"{SITE}/good/v"))
        sub.wait_for(f"{SITE}/good/v", seen + 5, timeout=20)
        for name in refused:
            assert sub.on(f"{SITE}/{name}/v") == []
            assert "online" not in [m.text for m in sub.on(f"{SITE}/{name}/status")]
        board = bridge.bridge.board
        errors = bridge.runner.call(lambda: {n: board.devices[n].reason for n in refused})
        assert all("cannot connect" in e for e in errors.values()), errors
    finally:
        bridge.stop()
        sub.close()


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("wrong_ca", "TLS handshake failed: certificate verify failed"),
        ("mismatch", "certificate is not valid for '127.0.0.1'"),
        ("plain", "no TLS handshake"),
    ],
)
def test_a_refused_tls_link_says_why_in_one_line(
    tmp_path: Path, pki: Pki, ports: dict[str, int], name: str, reason: str
) -> None:
    config = config_from(tmp_path, _bridge_yaml("mqtt://127.0.0.1:1", ports, pki))

    async def connect() -> str:
        port = ModbusPort(config.connection(name))
        try:
            await port.connect()
        except ModbusConnectionError as exc:
            return str(exc)
        finally:
            port.close()
        return "connected"

    message = asyncio.run(connect())
    assert message.startswith(f"cannot connect to {name} (127.0.0.1:{ports[name]}, tls): ")
    assert reason in message and "\n" not in message, message
