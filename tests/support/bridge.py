"""Run the bridge in a background thread (fast, inspectable) or as a real process (kill -9)."""

from __future__ import annotations

import os
from pathlib import Path

from modbus_mqtt_bridge.bridge.service import Bridge
from modbus_mqtt_bridge.config.model import Config
from tests.support.process import LoggedProcess
from tests.support.threads import LoopThread


class BridgeThread:
    def __init__(self, config: Config) -> None:
        self.bridge = Bridge(config)
        self.runner = LoopThread(self.bridge.run, "bridge")

    def start(self) -> BridgeThread:
        self.runner.start()
        return self

    def stop(self) -> None:
        self.runner.stop()


class BridgeProcess(LoggedProcess):
    """`python -m modbus_mqtt_bridge ARGS`, output to a log file the test can print."""

    def __init__(self, *args: str, cwd: Path, env: dict[str, str] | None = None) -> None:
        argv = ["-m", "modbus_mqtt_bridge", *args]
        super().__init__(argv, cwd / "bridge.log", cwd, {**os.environ, **(env or {})})
