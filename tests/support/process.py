"""A Python child process whose combined output goes to a log file the test can read."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path


class LoggedProcess:
    def __init__(self, argv: Sequence[str], log: Path, cwd: Path, env: Mapping[str, str]) -> None:
        self.log = log
        with log.open("ab") as out:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen(
                [sys.executable, *argv],
                cwd=cwd,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=dict(env),
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.output().splitlines()[-lines:])

    def terminate(self, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.kill()


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """One `modbus-mqtt-bridge` command to its end (60 s at most): exit code and output."""
    return subprocess.run(
        [sys.executable, "-m", "modbus_mqtt_bridge", *args],
        cwd=cwd,
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
