"""The real bridge process reading the simulator through a slave that answers each request
only after a delay, with a subscriber on the site: requests and publishes can be ordered."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.bad_slaves import SlowSlave
from tests.support.bridge import BridgeProcess
from tests.support.configs import config_from, write_config
from tests.support.mosquitto import Mosquitto
from tests.support.ports import free_port
from tests.support.sim import SimThread
from tests.support.subscriber import Subscriber


@dataclass
class Rig:
    sub: Subscriber
    slave: SlowSlave
    bridge: BridgeProcess


@contextmanager
def slow_rig(
    tmp_path: Path,
    broker: Mosquitto,
    yaml: Callable[[str, int], str],
    site: str,
    values: Mapping[str, float],
    delay_s: float,
) -> Iterator[Rig]:
    """yaml(mqtt_url, modbus_port): the config; values: device `plc`'s starting values."""
    sim_port, slave_port = free_port(), free_port()
    sim = SimThread(config_from(tmp_path, yaml(broker.url, sim_port))).start()
    for name, value in values.items():
        sim.set_value("plc", name, value)
    slave = SlowSlave(slave_port, sim_port, delay_s).start()
    sub = Subscriber(broker.port, [f"{site}/#"])
    path = write_config(tmp_path, yaml(broker.url, slave_port))
    bridge = BridgeProcess("run", "-c", str(path), cwd=tmp_path)
    try:
        yield Rig(sub, slave, bridge)
    finally:
        bridge.terminate()
        sub.close()
        slave.stop()
        sim.stop()
