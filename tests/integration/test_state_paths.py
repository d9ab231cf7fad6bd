"""An unusable buffer.path / forward.outbox at start: one line naming the key, the path and
the system's reason, exit 1, no traceback; `validate` warns about it beforehand. The real
processes, as systemd starts them."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.laravel import REPO

CONFIG = """\
    site: paths
    mqtt: {{url: "mqtt://127.0.0.1:1"}}
    buffer: {{path: "{buffer}"}}
    forward: {{api_url: "http://127.0.0.1:1/api/readings", outbox: "{outbox}"}}
    connections: [{{name: lan, type: tcp, host: 127.0.0.1, port: 1}}]
    devices:
      - {{name: meter1, registers: [{{name: v, address: 40001, type: uint16}}]}}
    """


def start(tmp_path: Path, command: str, buffer: Path, outbox: Path) -> tuple[int, str]:
    config = tmp_path / "config.yaml"
    config.write_text(textwrap.dedent(CONFIG.format(buffer=buffer, outbox=outbox)))
    done = subprocess.run(
        [sys.executable, "-m", "modbus_mqtt_bridge", command, "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env={**os.environ, "LOG_LEVEL": "INFO"},
        check=False,
    )
    return done.returncode, done.stdout + done.stderr


def error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if "ERROR" in line or line.startswith("error:")]


@pytest.fixture
def a_file(tmp_path: Path) -> Path:
    path = tmp_path / "plain-file"
    path.write_text("not a directory")
    return path


def test_run_with_a_buffer_under_a_file_says_so_in_one_line(tmp_path: Path, a_file: Path) -> None:
    code, output = start(tmp_path, "run", a_file / "buffer.db", tmp_path / "o.db")
    assert code == 1, output
    assert "Traceback" not in output
    lines = error_lines(output)
    assert len(lines) == 1, output
    assert f"buffer.path {a_file / 'buffer.db'}: {a_file}: Not a directory" in lines[0]


def test_forward_with_an_outbox_that_is_a_directory_says_so_in_one_line(tmp_path: Path) -> None:
    outbox = tmp_path / "outbox.db"
    outbox.mkdir()
    code, output = start(tmp_path, "forward", tmp_path / "b.db", outbox)
    assert code == 1, output
    assert "Traceback" not in output
    lines = error_lines(output)
    assert len(lines) == 1, output
    assert f"forward.outbox {outbox}: is a directory, not a file" in lines[0]


@pytest.fixture
def read_only_fs(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "ro"
    mount.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(mount)],
        capture_output=True,
        check=False,
    )
    if made.returncode != 0:
        pytest.skip(f"cannot mount a read-only tmpfs here: {made.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.mark.parametrize(
    ("command", "key"), [("run", "buffer.path"), ("forward", "forward.outbox")]
)
def test_a_read_only_file_system_is_named(
    tmp_path: Path, read_only_fs: Path, command: str, key: str
) -> None:
    """Even as root (whom permissions do not stop) a read-only mount refuses the files."""
    buffer, outbox = read_only_fs / "buffer.db", read_only_fs / "outbox.db"
    code, output = start(tmp_path, command, buffer, outbox)
    assert code == 1, output
    assert "Traceback" not in output
    lines = error_lines(output)
    assert len(lines) == 1, output
    path = buffer if key == "buffer.path" else outbox
    assert f"{key} {path}: cannot write in {read_only_fs}: Read-only file system" in lines[0]


def test_validate_warns_about_both(tmp_path: Path, a_file: Path) -> None:
    outbox = tmp_path / "outbox.db"
    outbox.mkdir()
    code, output = start(tmp_path, "validate", a_file / "buffer.db", outbox)
    assert code == 0, output
    assert f"warning: buffer.path {a_file / 'buffer.db'}: {a_file}: Not a directory" in output
    assert f"warning: forward.outbox {outbox}: is a directory, not a file" in output
