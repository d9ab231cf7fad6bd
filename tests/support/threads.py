"""Run an asyncio component (simulator, bridge) in a background thread with its own loop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Any


class LoopThread:
    """Starts `main(stop)` on a private loop; `stop()` sets the event and joins."""

    def __init__(self, main: Callable[[asyncio.Event], Awaitable[Any]], name: str) -> None:
        self._main = main
        self.loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> LoopThread:
        self.thread.start()
        if not self._ready.wait(10):
            raise AssertionError(f"{self.thread.name} did not start")
        return self

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)

        async def wrapper() -> None:
            self._stop = asyncio.Event()
            self._ready.set()
            await self._main(self._stop)

        try:
            self.loop.run_until_complete(wrapper())
        except BaseException as exc:
            self.error = exc
            self._ready.set()
        finally:
            self.loop.close()

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run fn on the component's loop and return its result (thread-safe access)."""

        async def run() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(10)

    def stop(self, timeout: float = 20) -> None:
        if self._stop is not None and self.thread.is_alive():
            self.loop.call_soon_threadsafe(self._stop.set)
        self.thread.join(timeout)
        if self.thread.is_alive():
            raise AssertionError(f"{self.thread.name} did not stop within {timeout}s")
        if self.error is not None:
            raise self.error
