"""An event loop on virtual time: whenever nothing is ready to run, the clock jumps to the
next timer. A 60-second outage takes milliseconds and no test sleeps; everything that
reads `loop.time()` (schedules, backoff, timeouts, the ack bound) sees the virtual clock."""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")


class _JumpingSelector(selectors.DefaultSelector):
    def __init__(self, loop: VirtualTimeLoop) -> None:
        super().__init__()
        self._virtual = loop

    def select(self, timeout: float | None = None) -> list[Any]:
        ready = super().select(0)  # signals and wake-ups still arrive through the self-pipe
        if not ready and timeout is not None and timeout > 0:
            self._virtual.advance(timeout)
        elif not ready and timeout is None:
            ready = super().select(0.05)  # nothing scheduled: only a signal can come
        self._virtual.catch_up()
        return ready


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    def __init__(self) -> None:
        self._now = 0.0
        super().__init__(_JumpingSelector(self))

    def time(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += seconds

    def catch_up(self) -> None:
        """The loop runs every timer due within its clock resolution of now, so a timer set
        for 5.0 may run at 4.9999999999999964: a worker then finds nothing due yet, sleeps
        3.6e-15 s, and that timer runs "now" again, for ever, with the clock never moving
        (a real clock moves on by itself). Move the clock to every timer about to run."""
        while True:
            horizon = self._now + self._clock_resolution
            due = [
                h.when()
                for h in self._scheduled
                if not h.cancelled() and self._now < h.when() < horizon
            ]
            if not due:
                return
            self._now = max(due)


def run_virtual(main: Callable[[], Awaitable[T]], *, limit_s: float = 3600.0) -> T:
    """Run main() on a fresh virtual-time loop; fail if it needs more than limit_s of it."""
    loop = VirtualTimeLoop()
    try:

        async def bounded() -> T:
            return await asyncio.wait_for(main(), limit_s)

        return loop.run_until_complete(bounded())
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
