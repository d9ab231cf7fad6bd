"""The project's simulator serving a config's devices (TCP, or RTU on a pty) from a thread."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from modbus_mqtt_bridge.config.model import Config
from modbus_mqtt_bridge.modbus.simulator import Simulator, serve
from tests.support.ports import port_open, wait_until
from tests.support.threads import LoopThread


class SimThread:
    def __init__(
        self, config: Config, changing: bool = False, serial: Mapping[str, str] | None = None
    ) -> None:
        self.config = config
        self.sim = Simulator(config, changing=changing)
        self.serial = dict(serial or {})  # rtu connection -> the simulator's end of its line
        self.runner: LoopThread | None = None

    def start(self) -> SimThread:
        async def main(stop: asyncio.Event) -> None:
            await serve(self.config, stop, sim=self.sim, refresh_s=3600, serial=self.serial)

        self.runner = LoopThread(main, "simulator").start()
        for conn in self.config.connections:
            if conn.type != "rtu":
                wait_until(
                    lambda c=conn: port_open(int(c.port or 502)), 10, f"simulator {conn.name}"
                )
            else:
                wait_until(lambda c=conn: c.name in self.sim.serving, 10, f"simulator {conn.name}")
        return self

    def call(self, fn: Any) -> Any:
        assert self.runner is not None
        return self.runner.call(fn)

    def set_value(self, device: str, register: str, value: Any) -> None:
        self.call(lambda: self.sim.set_value(device, register, value))

    def stop(self) -> None:
        if self.runner is not None:
            self.runner.stop()
            self.runner = None
