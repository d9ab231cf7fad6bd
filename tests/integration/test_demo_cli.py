"""`demo` on a machine that already runs a broker: it says so and leaves nothing behind."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.support.mosquitto import Mosquitto


def _retained(broker: Mosquitto) -> list[str]:
    """Retained messages under demo/, from a fresh subscriber (mosquitto_sub)."""
    done = subprocess.run(
        ["mosquitto_sub", "-p", str(broker.port), "-t", "demo/#", "-v", "--retained-only",
         "-W", "2"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    return done.stdout.splitlines()


def test_demo_on_a_running_broker_names_it_and_cleans_up(broker: Mosquitto) -> None:
    argv = ["demo", "--plain", "--duration", "4", "--mqtt-url", broker.url]
    done = subprocess.run(
        [sys.executable, "-m", "modbus_mqtt_bridge", *argv],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert f"using the broker already answering at {broker.url}" in done.stderr
    assert re.search(r"^demo/\S+ = ", done.stdout, re.M), done.stdout  # it did run
    path = re.search(r"demo config: (\S+)", done.stderr)
    assert path, done.stderr
    assert not Path(path.group(1)).parent.exists()  # the temporary directory is gone
    assert _retained(broker) == []
