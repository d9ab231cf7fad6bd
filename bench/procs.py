"""Child processes for the benchmark: spawn in their own process group, measure, always clean up.

Everything the benchmark starts goes through `Procs`, whose `close()` (called from a
`finally`) sends SIGTERM to each process group, waits a little, then SIGKILLs it, so a
failed or interrupted run leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")


class BenchError(RuntimeError):
    """Something the benchmark needs did not start or did not behave; the message says what."""


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path | None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        if self.log is None or not self.log.exists():
            return "(no log)"
        text = self.log.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:]) or "(empty log)"

    def check_alive(self) -> None:
        if not self.alive():
            raise BenchError(
                f"{self.name} exited with code {self.proc.returncode}; its log ends with:\n"
                f"{self.log_tail()}"
            )


class Procs:
    """The processes of one benchmark run."""

    def __init__(self) -> None:
        self.children: list[Child] = []

    def spawn(
        self,
        name: str,
        argv: Sequence[str],
        log: Path | None,
        *,
        stdout_pipe: bool = False,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> Child:
        exe = argv[0]
        if os.sep not in exe and shutil.which(exe) is None:
            raise BenchError(f"{name}: '{exe}' is not installed")
        out = log.open("ab") if log is not None else subprocess.DEVNULL
        try:
            proc = subprocess.Popen(
                list(argv),
                stdout=subprocess.PIPE if stdout_pipe else out,
                stderr=out,
                stdin=subprocess.DEVNULL,
                cwd=cwd,
                env=env,
                start_new_session=True,  # its own process group: killed as a whole
            )
        finally:
            if log is not None:
                out.close()  # type: ignore[union-attr]
        child = Child(name, proc, log)
        self.children.append(child)
        return child

    def stop(self, child: Child, timeout: float = 10.0) -> None:
        """SIGTERM the child's process group; SIGKILL it if it is still there after timeout."""
        if child.alive():
            _signal_group(child.proc, signal.SIGTERM)
            try:
                child.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                _signal_group(child.proc, signal.SIGKILL)
                child.proc.wait(5)
        # whatever it spawned and left behind in its group goes too
        _signal_group(child.proc, signal.SIGKILL)
        if child.proc.stdout is not None:
            child.proc.stdout.close()
        if child in self.children:
            self.children.remove(child)

    def close(self) -> None:
        for child in reversed(list(self.children)):
            with contextlib.suppress(Exception):
                self.stop(child, timeout=5.0)


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)  # pid == pgid: started with start_new_session


# -- measuring a process -----------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads) from /proc/PID/stat, in seconds."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        data = f.read()
    fields = data[data.rindex(b")") + 2 :].split()  # fields[0] is field 3 (state)
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def status_kib(pid: int, key: str) -> int:
    """A `kB` field of /proc/PID/status, e.g. VmHWM (peak RSS)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise BenchError(f"/proc/{pid}/status has no {key}")


# -- ports and waiting --------------------------------------------------------------------


def free_ports(n: int) -> list[int]:
    """n distinct free loopback ports (all held open together, so no duplicates)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def listening_ports(n: int) -> list[int]:
    """n free loopback ports below the ephemeral range, for servers that start slowly.

    Ports from `free_ports` come from the ephemeral range: with a thousand of them and a
    simulator that takes seconds to listen, the bench's own connection probes (and any
    other client on the machine) get some of them as their local port in the meantime,
    and the simulator cannot bind. Below the range no connection is given them."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return free_ports(n)
    start = 10_000 + random.randrange(max(1, low - 10_000 - n))
    out: list[int] = []
    for port in range(start, low):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        out.append(port)
        if len(out) == n:
            return out
    return free_ports(n)


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def wait_for(
    predicate: Callable[[], bool],
    timeout: float,
    what: str,
    alive: Sequence[Child] = (),
    every: float = 0.05,
) -> None:
    """Poll until predicate holds; BenchError naming `what` on timeout or if a child died."""
    deadline = time.monotonic() + timeout
    while not predicate():
        for child in alive:
            child.check_alive()
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(every)


def machine() -> dict[str, str]:
    model = "unknown"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = "unknown"
    with contextlib.suppress(OSError, BenchError):
        mem = f"{status_kib_meminfo() / 1024 / 1024:.1f} GiB"
    return {"nproc": str(len(os.sched_getaffinity(0))), "cpu": model, "memory": mem}


def status_kib_meminfo() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1])
    raise BenchError("no MemTotal in /proc/meminfo")
