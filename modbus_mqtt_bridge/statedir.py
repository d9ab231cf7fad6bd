"""Where the bridge's buffer and the side-car's outbox live, and whether they can live there.

Both processes resolve their file the same way (SPEC 5, docs/deployment.md): a path the
config gives is used as written; without one, the file goes into systemd's
`$STATE_DIRECTORY` when set, else `/var/lib/modbus-mqtt-bridge/` when that is writable
(or can be made), else the working directory, with a warning. `check` then proves the
place usable before any SQLite call, so a wrong path is one line naming the key, the path
and the operating system's reason, never a traceback from deep inside sqlite3.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .errors import BridgeError

SYSTEM_STATE_DIR = Path("/var/lib/modbus-mqtt-bridge")
MEMORY = ":memory:"  # buffer.path: keep readings in memory only


class StatePathError(BridgeError):
    """A buffer or outbox path that cannot hold its file; one line: key, path, reason."""

    def __init__(self, key: str, path: str, reason: str) -> None:
        self.key, self.path, self.reason = key, path, reason
        super().__init__(f"{key} {path}: {reason}")


@dataclass(frozen=True, slots=True)
class Resolved:
    """The file to use (None: memory only) and, for a fallback, why it was chosen."""

    path: str | None
    warning: str | None = None


def resolve(key: str, configured: str | None, filename: str, env: Mapping[str, str]) -> Resolved:
    """The file for `key`: as configured, else `filename` in the first usable state dir."""
    if configured == MEMORY:
        return Resolved(None)
    if configured:
        return Resolved(configured)
    if state := _systemd_state_directory(env):
        return Resolved(str(Path(state) / filename))
    if problem(str(SYSTEM_STATE_DIR / filename)) is None:
        return Resolved(str(SYSTEM_STATE_DIR / filename))
    here = Path.cwd() / filename
    return Resolved(
        str(here),
        f"{key}: $STATE_DIRECTORY is not set and {SYSTEM_STATE_DIR}/ is not writable;"
        f" using {here} in the working directory (set {key} to choose)",
    )


def _systemd_state_directory(env: Mapping[str, str]) -> str | None:
    """systemd passes one directory per StateDirectory= entry, colon-separated: ours first."""
    value = env.get("STATE_DIRECTORY", "")
    return value.split(":", 1)[0] or None


def problem(path: str) -> str | None:
    """Why `path` cannot hold a database file, without changing anything; None when it can.

    For `validate`: the nearest existing ancestor must be a writable directory (the start
    makes the missing ones), the file, when present, a writable regular file.
    """
    target = Path(path)
    if target.is_dir():
        return "is a directory, not a file"
    if target.exists():
        return None if _writable(target) else _denied(target)
    ancestor = _existing_ancestor(target)
    if not ancestor.is_dir():
        return f"{ancestor}: Not a directory"
    return None if _writable(ancestor) else _denied(ancestor)


def _existing_ancestor(target: Path) -> Path:
    ancestor = target.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    return ancestor


def _writable(path: Path) -> bool:
    # access(2) answers for this process, read-only mounts included (EROFS).
    return os.access(path, os.W_OK | (os.X_OK if path.is_dir() else 0))


def _denied(path: Path) -> str:
    try:
        read_only = bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        read_only = False
    return f"{path}: {'Read-only file system' if read_only else 'Permission denied'}"


def check(key: str, path: str) -> None:
    """Make the directory if needed and prove a file can be written there; at start.

    Raises StatePathError with the operating system's own reason. Run as root, access(2)
    says yes to everything, so this really writes (and removes) a probe file.
    """
    target = Path(path)
    if not (ancestor := _existing_ancestor(target)).is_dir():
        raise StatePathError(key, path, f"{ancestor}: Not a directory")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        where = exc.filename or target.parent
        raise StatePathError(key, path, f"cannot make {where}: {_reason(exc)}") from None
    if target.is_dir():
        raise StatePathError(key, path, "is a directory, not a file")
    try:
        # SQLite writes -wal and -shm files beside the database: the directory must take files
        with tempfile.NamedTemporaryFile(dir=target.parent, prefix=".probe-"):
            pass
    except OSError as exc:
        reason = f"cannot write in {target.parent}: {_reason(exc)}"
        raise StatePathError(key, path, reason) from None
    try:
        if target.exists():
            with target.open("r+b"):
                pass
    except OSError as exc:
        raise StatePathError(key, path, f"cannot open for writing: {_reason(exc)}") from None


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


def prepare(key: str, configured: str | None, filename: str, env: Mapping[str, str]) -> Resolved:
    """resolve + check: what a process calls at start."""
    resolved = resolve(key, configured, filename, env)
    if resolved.path is not None:
        check(key, resolved.path)
    return resolved
