"""Fixtures for every test."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.mosquitto import Mosquitto


@pytest.fixture(autouse=True)
def _own_state_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test (and every process it starts) gets its own $STATE_DIRECTORY, as systemd
    gives each service one: without it, a `run` or `forward` with no buffer.path or
    forward.outbox would share /var/lib/modbus-mqtt-bridge/ with every other test."""
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "state"))


@pytest.fixture(scope="session")
def broker() -> Iterator[Mosquitto]:
    """One real Mosquitto per test session, on a free port (integration and browser tests)."""
    if not (shutil.which("mosquitto") or shutil.which("/usr/sbin/mosquitto")):
        pytest.fail("mosquitto is not installed: run `make test`, which installs it")
    mq = Mosquitto()
    mq.start()
    yield mq
    mq.close()
