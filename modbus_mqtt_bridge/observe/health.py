"""The main loop's heartbeat: proof, for `/healthz` and the systemd watchdog, that it still runs.

A task beats every `interval_s`; whoever asks whether the process is healthy checks that the
last beat is recent. Should the event loop be blocked or the heartbeat task die, the beats
stop, `/healthz` turns 503 and the watchdog stops being fed, so systemd restarts the bridge.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

DEFAULT_INTERVAL_S = 1.0
# A beat may be this many intervals late before the loop counts as stalled: one missed beat
# is scheduling jitter on a busy two-core box, three in a row is not.
STALE_AFTER_BEATS = 3


class Heartbeat:
    def __init__(
        self,
        interval_s: float = DEFAULT_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interval_s = interval_s
        self._clock = clock
        self.last = clock()
        self.lag_s = 0.0  # how much later than asked the last beat came (loop latency)

    def beat(self) -> None:
        self.last = self._clock()

    def age_s(self) -> float:
        return self._clock() - self.last

    @property
    def max_age_s(self) -> float:
        return self.interval_s * STALE_AFTER_BEATS

    def fresh(self) -> bool:
        return self.age_s() <= self.max_age_s

    async def run(self, stop: asyncio.Event) -> None:
        """Beat until stop; measures how late each wake-up comes as the loop's lag."""
        while not stop.is_set():
            self.beat()
            asked = self._clock() + self.interval_s
            try:
                await asyncio.wait_for(stop.wait(), self.interval_s)
            except TimeoutError:
                self.lag_s = max(0.0, self._clock() - asked)
