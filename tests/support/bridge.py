"""Run the bridge in a background thread (fast, inspectable) or as a real process (kill -9)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from modbus_mqtt_bridge.config.model import Config
from modbus_mqtt_bridge.service import Bridge

from .threads import LoopThread


class BridgeThread:
    def __init__(self, config: Config) -> None:
        self.bridge = Bridge(config)
        self.runner = LoopThread(self.bridge.run, "bridge")

    def start(self) -> BridgeThread:
        self.runner.start()
        return self

    def stop(self) -> None:
        self.runner.stop()


class BridgeProcess:
    """`python -m modbus_mqtt_bridge ARGS`, output to a log file the test can print."""

    def __init__(self, *args: str, cwd: Path, env: dict[str, str] | None = None) -> None:
        self.log = cwd / "bridge.log"
        with self.log.open("ab") as out:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "modbus_mqtt_bridge", *args],
                cwd=cwd,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def terminate(self, timeout: float = 20) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.kill()
