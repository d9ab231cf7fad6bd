"""Fixtures for every test."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _own_state_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test (and every process it starts) gets its own $STATE_DIRECTORY, as systemd
    gives each service one: without it, a `run` or `forward` with no buffer.path or
    forward.outbox would share /var/lib/modbus-mqtt-bridge/ with every other test."""
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "state"))
