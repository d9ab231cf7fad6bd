"""systemd integration without a dependency: sd_notify over a datagram socket, and credentials.

`Type=notify` units learn READY=1 once the first broker connection is up, WATCHDOG=1 while the
main loop's heartbeat is fresh, and STOPPING=1 when shutdown begins. Without NOTIFY_SOCKET
(a terminal, a container, Windows) every call is a no-op. `credentials_env` lets a unit hand
the Laravel token (or the MQTT password) over with `LoadCredential=` instead of an
environment variable.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Mapping
from pathlib import Path

from .health import Heartbeat

log = logging.getLogger(__name__)

# systemd credential name -> the environment variable a config's ${VAR} reads
CREDENTIALS = {
    "laravel-api-token": "LARAVEL_API_TOKEN",
    "mqtt-password": "MQTT_PASSWORD",
}
DEFAULT_WATCHDOG_PING_S = 10.0


class Notifier:
    """sd_notify(3): one datagram per state change to $NOTIFY_SOCKET, or nothing at all."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self.address = _socket_address(env.get("NOTIFY_SOCKET", ""))
        self.watchdog_s = watchdog_interval(env)
        self._ready = False

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def notify(self, *assignments: str) -> bool:
        """Send `KEY=value` lines; False (and a debug log) when there is no socket or it fails."""
        if self.address is None:
            return False
        data = "\n".join(assignments).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto(data, self.address)
        except OSError as exc:  # the manager went away: nothing a service can do about it
            log.debug("sd_notify %s failed: %s", assignments, exc)
            return False
        return True

    def ready(self, status: str = "") -> None:
        """READY=1, once: later reconnects only update STATUS."""
        fields = [f"STATUS={status}"] if status else []
        if not self._ready:
            self._ready = True
            fields.insert(0, "READY=1")
        if fields:
            self.notify(*fields)

    def status(self, text: str) -> None:
        self.notify(f"STATUS={text}")

    def stopping(self) -> None:
        self.notify("STOPPING=1", "STATUS=stopping: flushing buffered readings")

    def watchdog(self) -> None:
        self.notify("WATCHDOG=1")

    async def run_watchdog(self, heartbeat: Heartbeat, stop: asyncio.Event) -> None:
        """Feed the watchdog while the heartbeat is fresh; say STOPPING=1 once stop is set."""
        period = (self.watchdog_s or DEFAULT_WATCHDOG_PING_S * 2) / 2
        try:
            while not stop.is_set() and self.enabled:
                if heartbeat.fresh():
                    self.watchdog()
                else:  # let systemd's WatchdogSec run out: a restart is the cure for a stall
                    log.error(
                        "main loop heartbeat is %.1fs old: not feeding the watchdog",
                        heartbeat.age_s(),
                    )
                try:
                    await asyncio.wait_for(stop.wait(), period)
                except TimeoutError:
                    continue
        finally:
            self.stopping()


def watchdog_interval(env: Mapping[str, str]) -> float | None:
    """WatchdogSec= in seconds when the manager enabled it for this process, else None."""
    usec = env.get("WATCHDOG_USEC", "")
    pid = env.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if pid and pid != str(os.getpid()):  # meant for another process (our parent, say)
        return None
    return int(usec) / 1_000_000


def _socket_address(path: str) -> str | None:
    if not path or not (path.startswith(("/", "@"))):
        return None
    # "@name" is an abstract socket: its address starts with a NUL byte
    return "\0" + path[1:] if path.startswith("@") else path


def credentials_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment, with each secret taken from its systemd credential when it is unset.

    With `LoadCredential=laravel-api-token:/etc/...` the token is a file in
    $CREDENTIALS_DIRECTORY, readable by this service alone and never shown by
    `systemctl show`. A variable that is already set still wins.
    """
    env = dict(os.environ if environ is None else environ)
    directory = env.get("CREDENTIALS_DIRECTORY", "")
    if not directory:
        return env
    for credential, variable in CREDENTIALS.items():
        if env.get(variable):
            continue
        try:
            secret = (Path(directory) / credential).read_text(encoding="utf-8").strip()
        except OSError:
            continue
        if secret:
            env[variable] = secret
    return env
