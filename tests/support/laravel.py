"""The real Laravel app (../shared/laravel-api) from a temporary copy; stoppable, restartable.

Counts and row sets are read straight from the app's SQLite file, so polling costs the app
no CPU and no rate-limit budget; `api_readings` goes through GET /api/readings.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import stat
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx

from tests.support.ports import free_port, wait_until

REPO = Path(__file__).resolve().parents[2]
SOURCE = Path(os.environ.get("LARAVEL_API_DIR", REPO.parent / "shared" / "laravel-api"))
TOKEN = "forward-test-token"


def missing_reason() -> str | None:
    """Why the app cannot run here, or None."""
    if shutil.which("php") is None:
        return "php is not installed (make test installs php-cli and the Laravel packages)"
    if not Path("/usr/share/php/Illuminate").is_dir():
        return "Debian's php-laravel-framework is not installed (make test installs it)"
    if not (SOURCE / "serve.sh").exists():
        return f"the Laravel app is not at {SOURCE}"
    return None


class LaravelApp:
    """`serve.sh PORT DBFILE` in its own process group; the DB survives restarts."""

    def __init__(
        self, tmp: Path, *, rate_limit: int = 0, workers: int = 2, token: str = TOKEN
    ) -> None:
        self.root = tmp / "laravel-api"
        shutil.copytree(SOURCE, self.root)
        _make_writable(self.root)
        self.db = tmp / "energy-monitor.sqlite"
        self.log = tmp / "laravel.log"
        self.port = free_port()
        self.token = token
        self.rate_limit = rate_limit
        self.workers = workers
        self.proc: subprocess.Popen[bytes] | None = None
        self._fresh = True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/readings"

    @property
    def batch_url(self) -> str:
        return f"{self.url}/api/readings/batch"

    def start(self) -> LaravelApp:
        env = {
            **os.environ,
            "API_TOKEN": self.token,
            "API_RATE_LIMIT": str(self.rate_limit),
            "PHP_CLI_SERVER_WORKERS": str(self.workers),
            "FRESH": "1" if self._fresh else "0",
        }
        with self.log.open("ab") as log:  # the child keeps its own copy
            self.proc = subprocess.Popen(
                ["./serve.sh", str(self.port), str(self.db)],
                cwd=self.root,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=log,
                start_new_session=True,  # serve.sh forks php -S and workers: stop the group
            )
        self._fresh = False
        wait_until(self._healthy, 30, f"the Laravel app on port {self.port}", every=0.1)
        return self

    def _healthy(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"serve.sh exited {self.proc.returncode}:\n{self.tail()}")
        try:
            return httpx.get(f"{self.url}/api/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.proc = None

    def close(self) -> None:
        self.stop()

    def tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    # -- what the app stored -----------------------------------------------------------

    def last_id(self) -> int:
        return int(self.query("SELECT coalesce(max(id), 0) FROM readings")[0][0])

    def count(self, after_id: int = 0) -> int:
        return int(self.query("SELECT count(*) FROM readings WHERE id > ?", after_id)[0][0])

    def descriptions(self, after_id: int = 0) -> list[str]:
        rows = self.query("SELECT description FROM readings WHERE id > ? ORDER BY id", after_id)
        return [str(r[0]) for r in rows]

    def wait_count(self, n: int, after_id: int, timeout: float, what: str = "") -> int:
        return wait_until(
            lambda: (got := self.count(after_id)) >= n and got,
            timeout,
            f"{n} readings stored in Laravel {what}(have {self.count(after_id)})",
            every=0.2,
        )

    def api_readings(self, **params: Any) -> list[dict[str, Any]]:
        response = httpx.get(
            self.api_url,
            params=params,
            headers={"Accept": "application/json", "Authorization": f"Bearer {self.token}"},
            timeout=10,
        )
        response.raise_for_status()
        data: list[dict[str, Any]] = response.json()["data"]
        return data

    def query(self, sql: str, *args: object) -> list[tuple[Any, ...]]:
        if not self.db.exists():
            return [(0,)]
        for _ in range(50):
            try:
                with sqlite3.connect(self.db, timeout=5) as db:
                    return db.execute(sql, args).fetchall()
            except sqlite3.OperationalError:
                time.sleep(0.05)  # the app is migrating or checkpointing
        raise AssertionError(f"cannot read {self.db}")


def _make_writable(root: Path) -> None:
    """The shared copy is read-only; the app writes its cache, logs and .env next to itself."""
    for path in [root, *root.rglob("*")]:
        path.chmod(path.stat().st_mode | stat.S_IWUSR)
