"""A virtual RS-485 line: a socat pty pair whose two ends appear as symlinks A and B.

socat moves bytes instantly whatever the baud rate; tests that need wire timing use the
simulator's line emulation. `unplug()` kills socat (both ends vanish, like a USB adapter
pulled out) and `plug()` brings the pair back on the same paths.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.support.ports import wait_until


class PtyPair:
    def __init__(self, directory: Path | None = None) -> None:
        binary = shutil.which("socat")
        if binary is None:
            raise RuntimeError("socat is not installed (make test installs it)")
        self.binary = binary
        self.dir = directory or Path(tempfile.mkdtemp(prefix="pty-"))
        self.a = self.dir / "ttyA"  # the bridge's end
        self.b = self.dir / "ttyB"  # the simulator's end
        self.log = self.dir / "socat.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def plug(self) -> PtyPair:
        ends = [f"pty,raw,echo=0,link={path}" for path in (self.a, self.b)]
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen([self.binary, "-d", "-d", *ends], stderr=log)
        wait_until(lambda: self.a.exists() and self.b.exists(), 10, "socat's pty links")
        return self

    def unplug(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.proc = None
        wait_until(lambda: not self.a.exists() and not self.b.exists(), 10, "pty links gone")

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)
