"""The MQTT half of the side-car: a persistent session; messages are committed, then acked.

Every message is acknowledged only after the outbox commit that holds it (manual ack), so
the broker keeps anything we have not stored. Messages arriving a few milliseconds apart
share one commit (group commit): that is what makes an fsynced commit per reading cheap.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ..config.model import Config
from ..errors import MqttError
from ..mqtt.port import Message, MqttPort
from ..observe.metrics import ForwarderMetrics
from ..retry import RetryPolicy, Throttle, jitter
from .laravel import Ignored, Item, parse_message
from .outbox import AsyncOutbox

log = logging.getLogger(__name__)

GROUP_WINDOW_S = 0.002  # wait this long after a message for more to share its commit
ROOM_CHECK_S = 0.5  # while the outbox is full, how often to look for room again
LOW_WATER = 0.9  # reconnect once the outbox is back below this share of its bound
CONNECT_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class _Pending:
    mid: int
    qos: int
    generation: int  # the connection it came on: an ack is only valid on that one
    item: Item | None  # None: ignored, ack without storing


def subscription(config: Config) -> str:
    return config.forward.subscribe or f"$share/forwarders/{config.site}/+/+"


def client_id(config: Config) -> str:
    return config.forward.client_id or f"forwarder-{config.site}"


class Intake:
    """Broker -> outbox. `run` returns after `stop`, with everything received committed."""

    def __init__(
        self,
        config: Config,
        store: AsyncOutbox,
        metrics: ForwarderMetrics,
        policy: RetryPolicy,
        on_stored: Callable[[], None],
    ) -> None:
        self.topic = subscription(config)
        self._exclude = config.forward.exclude
        self.port = MqttPort(
            config.mqtt,
            client_id(config),
            clean_start=False,  # resume the session: the broker kept what we missed
            session_expiry_s=config.forward.session_expiry_s,
            manual_ack=True,
        )
        self.port.on_message = self._on_message
        self._store, self._metrics, self._policy = store, metrics, policy
        self._on_stored = on_stored
        self._pending: list[_Pending] = []
        self._has_pending = asyncio.Event()
        self._commit_lock = asyncio.Lock()
        self._full = asyncio.Event()
        self._generation = 0
        self._connect_log = Throttle(60.0)
        self._full_log = Throttle(300.0)
        # told True on every (re)connect, False on every loss (systemd status, health)
        self.on_connection: Callable[[bool], None] = lambda _up: None

    async def run(self, stop: asyncio.Event) -> None:
        try:
            async with asyncio.TaskGroup() as tasks:
                # a failing commit (disk full) ends the group, and with it the side-car
                committer = tasks.create_task(self._commit_loop(), name="forward-commit")
                await self._session_loop(stop)
                committer.cancel()
        finally:
            if self.port.connected:
                await self.port.disconnect()

    # -- sessions -----------------------------------------------------------------------

    async def _session_loop(self, stop: asyncio.Event) -> None:
        """A visible reconnect loop with capped, jittered backoff."""
        attempt = 0
        while not stop.is_set():
            if self._full.is_set():
                await self._wait_for_room(stop)
            elif await self._connect():
                attempt = 0
                await self._session(stop)
            else:
                await _sleep_unless(stop, self._policy.broker.delay(attempt, jitter()))
                attempt += 1

    async def _connect(self) -> bool:
        # A new generation before CONNACK: messages the broker resends right behind it
        # belong to this connection and must be acked on it.
        self._generation += 1
        try:
            await self.port.connect(CONNECT_TIMEOUT_S)
        except MqttError as exc:
            level = logging.WARNING if self._connect_log.due(time.monotonic()) else logging.DEBUG
            log.log(level, "broker unreachable, retrying: %s", exc)
            return False
        self._connect_log.reset()
        # Re-subscribing is harmless when the session kept the subscription, and needed
        # when the broker lost it (restarted without persistence, session expired).
        self.port.subscribe(self.topic, qos=1)
        log.info(
            "connected to %s as %s, subscribed to %s",
            self.port.cfg.url,
            self.port.client_id,
            self.topic,
        )
        return True

    async def _session(self, stop: asyncio.Event) -> None:
        self._metrics.broker_connected.set(1)
        self.on_connection(True)
        await _first_of(stop.wait(), self.port.wait_disconnected(), self._full.wait())
        self._metrics.broker_connected.set(0)
        self.on_connection(False)
        if stop.is_set() or self._full.is_set():
            await self._commit()  # ack what we hold before saying goodbye: fewer redeliveries
            await self.port.disconnect()
        else:
            log.warning("lost the broker connection; reconnecting (the session keeps our messages)")

    async def _wait_for_room(self, stop: asyncio.Event) -> None:
        """Outbox full: stay away from the broker (it queues for our session) until room."""
        low = int(self._store.sync.max_items * LOW_WATER)
        self._metrics.outbox_full.set(1)
        while not stop.is_set() and self._store.depth > low:
            await _sleep_unless(stop, ROOM_CHECK_S)
        if stop.is_set():
            return
        self._metrics.outbox_full.set(0)
        self._full.clear()
        self._full_log.reset()
        log.warning(
            "outbox has room again (%d queued): taking readings from the broker", self._store.depth
        )

    # -- messages -----------------------------------------------------------------------

    def _on_message(self, msg: Message) -> None:
        parsed = parse_message(msg.topic, msg.payload, msg.retain, self._exclude)
        if isinstance(parsed, Ignored):
            self._metrics.ignored.labels(parsed.reason).inc()
            log.debug("ignored: %s", parsed.detail)
            parsed_item = None
        else:
            self._metrics.received.inc()
            parsed_item = parsed
        self._pending.append(_Pending(msg.mid, msg.qos, self._generation, parsed_item))
        self._has_pending.set()

    async def _commit_loop(self) -> None:
        while True:
            await self._has_pending.wait()
            await asyncio.sleep(GROUP_WINDOW_S)
            await self._commit()

    async def _commit(self) -> None:
        """One transaction for everything pending, then the acks, in arrival order."""
        async with self._commit_lock:
            batch, self._pending = self._pending, []
            self._has_pending.clear()
            items = [p.item for p in batch if p.item is not None]
            consumed = 0
            if items:
                added = await self._store.add(items)
                consumed = added.consumed
                self._metrics.outbox_depth.set(self._store.depth)
                if added.stored:
                    self._on_stored()
            self._ack(batch, consumed)
            if consumed < len(items):
                self._outbox_is_full(len(items) - consumed)

    def _ack(self, batch: list[_Pending], stored: int) -> None:
        """Ack the prefix of the batch that is safe: up to the first item that did not fit."""
        left = stored
        for pending in batch:
            if pending.item is not None:
                if left == 0:
                    return  # not stored: unacked, the broker sends it again after reconnect
                left -= 1
            if pending.generation == self._generation:  # a mid means nothing on another one
                self.port.ack(pending.mid, pending.qos)

    def _outbox_is_full(self, refused: int) -> None:
        self._full.set()
        if self._full_log.due(time.monotonic()):
            log.warning(
                "outbox full (%d readings): leaving %d and all new readings at the broker"
                " until delivery makes room",
                self._store.depth,
                refused,
            )


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


async def _first_of(*waits: Awaitable[object]) -> None:
    """Return when the first of these completes; cancel the others."""
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
