"""The discipline of one serial line: silence between frames, turnaround after writes, and a
record of the bytes received per exchange so frame errors can be named and counted.

No pymodbus here: the port feeds `trace` from pymodbus's public `trace_packet` hook.
"""

from __future__ import annotations

import asyncio
import time


class Line:
    """One RTU bus (a serial port, or an RTU gateway's serial side behind TCP)."""

    def __init__(self, gap_s: float, settle_s: float) -> None:
        self.gap_s = gap_s  # t3.5 or the configured inter_frame_delay
        self.settle_s = settle_s  # extra silence after a failed exchange, for stragglers
        self.rx = bytearray()  # bytes received during the current exchange
        self.stray = 0  # bytes received while no exchange was open: late answers
        self.dirty = False  # the last exchange failed: flush the input before the next one
        self._seen = b""  # pymodbus's receive buffer as last traced
        self._open = False
        self._quiet_until = 0.0  # time.monotonic() before which no frame may start

    def trace(self, sending: bool, data: bytes) -> bytes:
        """pymodbus calls this with each frame it sends and its receive buffer on each read."""
        if sending:
            self.rx.clear()
            self._seen = b""
            self._open = True
            return data
        # pymodbus hands over its whole receive buffer: new bytes are what extends the last one
        # (its RTU framer either keeps a buffer whole or consumes it whole).
        chunk = data[len(self._seen) :] if data.startswith(self._seen) else data
        self._seen = data
        if self._open:
            self.rx += chunk
        else:
            self.stray += len(chunk)
        return data

    async def wait_turn(self) -> None:
        """Sleep until the bus has been silent long enough for the next frame."""
        delay = self._quiet_until - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)

    def close_exchange(self, *, failed: bool, hold_s: float = 0.0) -> None:
        """The exchange is over: keep the bus quiet for the gap (+ turnaround, + settling)."""
        self._open = False
        self.dirty = self.dirty or failed
        quiet = self.gap_s + hold_s + (self.settle_s if failed else 0.0)
        self._quiet_until = max(self._quiet_until, time.monotonic() + quiet)

    def take_stray(self) -> int:
        stray, self.stray = self.stray, 0
        return stray
