"""Where the buffer and the outbox go (statedir.py), and the one line when they cannot."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from modbus_mqtt_bridge import statedir
from modbus_mqtt_bridge.statedir import StatePathError, check, problem, resolve


@pytest.fixture
def system_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """/var/lib/modbus-mqtt-bridge stand-in, so the test never touches the real one."""
    path = tmp_path / "var-lib" / "modbus-mqtt-bridge"
    monkeypatch.setattr(statedir, "SYSTEM_STATE_DIR", path)
    return path


def test_a_configured_path_is_used_as_written(system_dir: Path) -> None:
    env = {"STATE_DIRECTORY": "/somewhere"}
    assert resolve("buffer.path", "/data/b.db", "buffer.db", env) == statedir.Resolved("/data/b.db")


def test_state_directory_first_its_first_entry(system_dir: Path) -> None:
    env = {"STATE_DIRECTORY": "/var/lib/a:/var/lib/b"}  # one per StateDirectory= entry
    resolved = resolve("forward.outbox", None, "outbox.db", env)
    assert resolved == statedir.Resolved("/var/lib/a/outbox.db")


def test_then_the_system_directory_when_it_can_be_written_or_made(system_dir: Path) -> None:
    resolved = resolve("buffer.path", None, "buffer.db", {})
    assert resolved == statedir.Resolved(str(system_dir / "buffer.db"))


def test_then_the_working_directory_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    monkeypatch.setattr(statedir, "SYSTEM_STATE_DIR", blocker / "modbus-mqtt-bridge")
    monkeypatch.chdir(tmp_path)
    resolved = resolve("buffer.path", None, "buffer.db", {})
    assert resolved.path == str(tmp_path / "buffer.db")
    assert resolved.warning is not None
    assert "buffer.path" in resolved.warning
    assert "working directory" in resolved.warning


def test_memory_only_is_asked_for_by_name(system_dir: Path) -> None:
    assert resolve("buffer.path", ":memory:", "buffer.db", {}).path is None


def test_check_makes_missing_directories(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "outbox.db"
    check("forward.outbox", str(target))
    assert target.parent.is_dir()
    assert list(target.parent.iterdir()) == [], "the probe file is gone again"


def under_a_file(tmp: Path) -> Path:
    (tmp / "file").write_text("")
    return tmp / "file" / "x.db"


def a_directory(tmp: Path) -> Path:
    (tmp / "dir.db").mkdir()
    return tmp / "dir.db"


@pytest.mark.parametrize(
    ("make", "reason"), [(under_a_file, "Not a directory"), (a_directory, "is a directory")]
)
def test_an_unusable_path_is_one_line_with_key_path_and_reason(
    tmp_path: Path, make: Callable[[Path], Path], reason: str
) -> None:
    path = str(make(tmp_path))
    with pytest.raises(StatePathError) as caught:
        check("buffer.path", path)
    line = str(caught.value)
    assert line.startswith(f"buffer.path {path}: ")
    assert reason in line
    assert "\n" not in line
    assert problem(path) is not None, "validate sees it too, without changing anything"


def test_problem_changes_nothing(tmp_path: Path) -> None:
    target = tmp_path / "new" / "dir" / "buffer.db"
    assert problem(str(target)) is None
    assert not (tmp_path / "new").exists()
