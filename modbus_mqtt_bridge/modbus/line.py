"""The discipline of one serial line: silence between frames, turnaround after writes, and a
record of the bytes received per exchange so frame errors can be named and counted.

No pymodbus here: the port feeds `trace` from pymodbus's public `trace_packet` hook.
"""

from __future__ import annotations

import asyncio
import time

# How late the event loop's timer can fire (it rounds waits up to whole milliseconds).
_TIMER_STEP_S = 0.001


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
        self._rx_at: float | None = None  # when the current exchange's last bytes came in

    def trace(self, sending: bool, data: bytes) -> bytes:
        """pymodbus calls this with each frame it sends and its receive buffer on each read.

        A frame is handed over just before pymodbus writes it: the last fraction of the
        silence (see `wait_turn`) is kept here, so the gap holds at the write itself.
        """
        if sending:
            hold_until(self._quiet_until)
            self.rx.clear()
            self._seen = b""
            self._open = True
            self._rx_at = None
            return data
        # pymodbus hands over its whole receive buffer: new bytes are what extends the last one
        # (its RTU framer either keeps a buffer whole or consumes it whole).
        chunk = data[len(self._seen) :] if data.startswith(self._seen) else data
        self._seen = data
        if self._open:
            self.rx += chunk
            self._rx_at = time.monotonic()
        else:
            self.stray += len(chunk)
        return data

    async def wait_turn(self) -> None:
        """Sleep, the loop free, until the bus is nearly silent long enough for the next frame.

        The loop may wake up to `_TIMER_STEP_S` early: `trace` sleeps what is left when the
        frame goes out. The ~0.15 ms pymodbus takes from the request call to its write
        (a task, the lock, framing) thus overlaps the silence instead of following it.
        """
        await sleep_nearly_until(self._quiet_until)

    def close_exchange(self, *, failed: bool, hold_s: float = 0.0) -> None:
        """The exchange is over: keep the bus quiet for the gap (+ turnaround, + settling)."""
        self._open = False
        self.dirty = self.dirty or failed
        quiet = self.gap_s + hold_s + (self.settle_s if failed else 0.0)
        # The line fell silent when the answer's last byte arrived, not when pymodbus and
        # the worker were done with it (~0.4 ms later, a sixth of t3.5 at 115,200 baud).
        # After a failure there may be stragglers: count from now.
        silent_since = time.monotonic() if failed or self._rx_at is None else self._rx_at
        self._quiet_until = max(self._quiet_until, silent_since + quiet)

    def take_stray(self) -> int:
        stray, self.stray = self.stray, 0
        return stray


async def sleep_until(deadline: float) -> None:
    """Sleep until time.monotonic() reaches `deadline`, late by well under a millisecond.

    asyncio's selector times its waits in whole milliseconds, rounded up: a 1.3 ms silence
    (t3.5 at 115,200 baud, less what has already passed) would last 2.2 ms, a third of an
    exchange's wire time. So the loop sleeps the part it can time without overshooting, and
    the last fraction of a millisecond is slept here (the thread sleeps, it does not spin),
    holding the loop for under `_TIMER_STEP_S`.
    """
    await sleep_nearly_until(deadline)
    hold_until(deadline)


async def sleep_nearly_until(deadline: float) -> None:
    """Sleep on the loop until at most `_TIMER_STEP_S` before `deadline` (never after it
    by more than the loop's own lateness)."""
    delay = deadline - time.monotonic()
    if delay > _TIMER_STEP_S:
        await asyncio.sleep(delay - _TIMER_STEP_S)


def hold_until(deadline: float) -> None:
    """Sleep the thread (it does not spin) until `deadline`: meant for under a millisecond."""
    delay = deadline - time.monotonic()
    if delay > 0:
        time.sleep(delay)
