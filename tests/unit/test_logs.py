"""Logging: rotated file, LOG_LEVEL, redaction, a clear error for an unwritable file."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from modbus_mqtt_bridge.config.model import LoggingConfig
from modbus_mqtt_bridge.errors import BridgeError
from modbus_mqtt_bridge.observe.logs import setup_logging


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def test_file_rotates_and_secrets_are_masked(tmp_path: Path) -> None:
    path = tmp_path / "bridge.log"
    setup_logging(LoggingConfig(level="INFO", file=str(path), max_bytes=400, backup_count=2))
    log = logging.getLogger("modbus_mqtt_bridge.test")
    log.info("connecting with password=hunter2")
    for i in range(40):
        log.info("line %d of some length to make the file rotate", i)
    log.debug("not at INFO")
    assert "hunter2" not in path.read_text() + (tmp_path / "bridge.log.1").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "bridge.log",
        "bridge.log.1",
        "bridge.log.2",
    ]
    assert "not at INFO" not in path.read_text()


def test_log_level_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOG_LEVEL", "debug")
    setup_logging(LoggingConfig(level="WARNING"))
    assert logging.getLogger().level == logging.DEBUG
    setup_logging(LoggingConfig(level="WARNING"), level="error")  # --log-level wins
    assert logging.getLogger().level == logging.ERROR


def test_unwritable_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(BridgeError, match=r"logging.file .*missing/bridge.log"):
        setup_logging(LoggingConfig(file=str(tmp_path / "missing" / "bridge.log")))
