"""The HTTP half of the side-car: outbox -> Laravel, `concurrency` requests at once, order per key.

Each request's answer goes through `laravel.classify`; this module only carries the
verdict out. Failures that are about the API (429, 5xx, network, a refused token) close
one API-wide gate, since retrying other readings sooner would only hit the same wall.

A storage error (disk full, a lock held too long) backs off like a network error: the
verdict the API gave is kept and only the outbox write is retried, with the entry's key
still busy, so nothing is POSTed again while the disk cannot take the answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import httpx

from ..observe.metrics import ForwarderMetrics
from ..retry import RetryPolicy, Throttle, jitter
from .jobs import Entry
from .laravel import (
    Answer,
    DeadLetter,
    Done,
    NetworkError,
    Outcome,
    Pause,
    RetryAfter,
    batch_body,
    batch_idempotency_key,
    classify,
)
from .outbox import AsyncOutbox, OutboxError

log = logging.getLogger(__name__)

IDLE_CHECK_S = 1.0  # with nothing to do, look at the outbox this often (new items wake us)
DRAIN_GRACE_S = 5.0  # on stop, in-flight requests get their timeout plus this
RESPONSE_KEPT = 65536  # bytes of an answer kept with a dead letter


@dataclass(frozen=True, slots=True)
class Endpoints:
    api_url: str
    batch_url: str | None
    batch_size: int
    concurrency: int
    timeout_s: float


def shown_url(url: str | None) -> str | None:
    """A URL for a log line or /status: no query string, which could carry an api_token.

    (Credentials in the URL are refused at load, so the rest holds no secret.)"""
    if url is None:
        return None
    base, sep, _query = url.partition("?")
    return f"{base}?…" if sep else base


class Gate:
    """API-wide retry state: when the next request may go, and how hard we back off."""

    def __init__(self, policy: RetryPolicy, metrics: ForwarderMetrics) -> None:
        self.policy, self.metrics = policy, metrics
        self.not_before = 0.0  # monotonic
        self.attempt = 0
        self.epoch = 0  # bumped when the gate closes: a wave of failures counts once
        self.paused = False
        self.failing = False
        self.storage_attempt = 0  # outbox failures in a row
        self._storage_op = ""  # the operation that failed last
        self._retry_log = Throttle(60.0)
        self._pause_log = Throttle(600.0)
        self._storage_log = Throttle(60.0)

    async def wait(self, stop: asyncio.Event) -> None:
        while not stop.is_set() and (delay := self.not_before - time.monotonic()) > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)

    def succeeded(self) -> None:
        if self.paused or self.failing:
            log.warning("the API accepts readings again: delivering")
        self.attempt, self.paused, self.failing = 0, False, False
        self.metrics.paused.set(0)
        self._retry_log.reset()
        self._pause_log.reset()

    def retry(self, outcome: RetryAfter, epoch: int, queued: int) -> None:
        now = time.monotonic()
        if outcome.seconds is not None:  # the API said when: honour it whatever the epoch
            delay = self.policy.after_failure(outcome.seconds, self.attempt, jitter())
            self._close(now + delay)
        elif epoch == self.epoch:  # first failure of this wave: back off one step further
            delay = self.policy.after_failure(None, self.attempt, jitter())
            self.attempt += 1
            self._close(now + delay)
        else:
            return
        self.failing = True
        level = logging.WARNING if self._retry_log.due(now) else logging.DEBUG
        log.log(
            level,
            "API not taking readings (%s); retrying in %.1fs, %d queued",
            outcome.reason,
            delay,
            queued,
        )

    def pause(self, outcome: Pause, queued: int) -> None:
        now = time.monotonic()
        self.paused = True
        self.metrics.paused.set(1)
        delay = self.policy.pause(jitter())
        self._close(now + delay)
        if self._pause_log.due(now):
            log.error(
                "delivery PAUSED: the API refuses us (%s). Check forward.token /"
                " LARAVEL_API_TOKEN and forward.api_url. All %d readings are kept;"
                " probing every ~%.0fs",
                outcome.reason,
                queued,
                self.policy.pause_s,
            )

    def storage_failed(self, op: str, exc: OutboxError, queued: int) -> float:
        """An outbox operation failed: hold every request back, longer each time in a row."""
        delay = self.policy.storage.delay(self.storage_attempt, jitter())
        self.storage_attempt += 1
        self._storage_op = op
        self.metrics.storage_errors.labels(op).inc()
        self._close(time.monotonic() + delay)
        held = self._storage_log.allow(time.monotonic(), op)
        if held is not None:
            log.error(
                "outbox %s failed (%s); retrying in %.1fs, %d readings kept%s",
                *(op, exc, delay, queued),
                f" ({held} more failures since the last report)" if held else "",
            )
        return delay

    def storage_ok(self, op: str) -> None:
        """`op` worked; a read working says nothing about a failing write."""
        if not self.storage_attempt or (op == "take" and self._storage_op != "take"):
            return
        log.warning("the outbox works again (after %d failures)", self.storage_attempt)
        for name in ("done", "dead_letter", "take"):
            self._storage_log.reset(name)
        self.storage_attempt = 0

    @property
    def storage_failing(self) -> bool:
        return self.storage_attempt > 0

    def _close(self, until: float) -> None:
        self.not_before = max(self.not_before, until)
        self.epoch += 1


class Delivery:
    """Outbox -> API until `stop`; on stop, in-flight requests finish (bounded)."""

    def __init__(
        self,
        endpoints: Endpoints,
        store: AsyncOutbox,
        http: httpx.AsyncClient,
        metrics: ForwarderMetrics,
        policy: RetryPolicy,
    ) -> None:
        self.ep, self._store, self._http, self._metrics = endpoints, store, http, metrics
        self.gate = Gate(policy, metrics)
        self._busy: set[str] = set()  # keys with a request in flight
        self._jobs = 0  # requests in flight (a finished one leaves before it wakes us)
        self._in_flight = 0  # entries in those requests
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._dead_log = Throttle(1.0)
        self._dropped_log = Throttle(600.0)
        self._stop = asyncio.Event()
        self.delivered = 0
        self.dead_lettered = 0

    def notify(self) -> None:
        """New readings are in the outbox."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        self._stop = stop
        try:
            while not stop.is_set():
                await self.gate.wait(stop)
                if stop.is_set():
                    break
                self._wake.clear()  # before looking, so a wake-up during the look is kept
                try:
                    started = await self._start_jobs()
                except OutboxError as exc:
                    self.gate.storage_failed("take", exc, self._store.depth)
                    continue
                if not started:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(_either(stop, self._wake), IDLE_CHECK_S)
        finally:
            await self._drain()

    async def _start_jobs(self) -> int:
        # while the API or the outbox fails, one request probes it; success reopens all
        gate = self.gate
        width = 1 if gate.paused or gate.failing or gate.storage_failing else self.ep.concurrency
        free = width - len(self._tasks)
        if free <= 0:
            return 0
        per_job = self.ep.batch_size if self.ep.batch_url else 1
        if self._jobs and self._store.depth - self._in_flight < per_job:
            return 0  # not a full batch waiting: see below
        jobs = await self._store.take(free, per_job, self._busy)
        self.gate.storage_ok("take")
        if self._jobs:
            # While a request is in flight a partial batch waits for more readings or for
            # that request's end (Nagle's rule): at a steady trickle every commit of the
            # intake would otherwise leave as its own small batch, and each request costs
            # the API (a framework boot) and us (a connection, SQL, an answer) far more
            # than a reading does. An idle side-car still sends the first reading at once.
            jobs = [job for job in jobs if len(job) >= per_job]
        for job in jobs:
            self._busy.update(e.key for e in job)
            self._jobs += 1
            self._in_flight += len(job)
            task = asyncio.create_task(self._deliver(job, self.gate.epoch), name="forward-post")
            self._tasks.add(task)
            task.add_done_callback(self._finished)
        return len(jobs)

    def _finished(self, task: asyncio.Task[None]) -> None:
        """Every job's end is looked at: a bug in one is logged, never left unretrieved."""
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("delivery job failed; its readings stay queued", exc_info=exc)

    async def _drain(self) -> None:
        if not self._tasks:
            return
        _, late = await asyncio.wait(set(self._tasks), timeout=self.ep.timeout_s + DRAIN_GRACE_S)
        for task in late:  # still queued in the outbox: sent again next time
            task.cancel()

    # -- one job --------------------------------------------------------------------

    async def _deliver(self, job: list[Entry], epoch: int) -> None:
        try:
            if self.ep.batch_url is None:
                await self._send_one(job[0], epoch)
            else:
                await self._send_batch(job, self.ep.batch_url, epoch)
        finally:
            self._busy.difference_update(e.key for e in job)
            self._jobs -= 1
            self._in_flight -= len(job)
            self._wake.set()

    async def _send_one(self, entry: Entry, epoch: int) -> bool:
        """True when the entry is settled (stored or dead-lettered)."""
        answer = await self._post(self.ep.api_url, entry.body, entry.idempotency_key)
        return await self._settle([entry], answer, classify(answer, time.time()), epoch)

    async def _send_batch(self, job: list[Entry], url: str, epoch: int) -> None:
        body = batch_body([e.body for e in job])
        answer = await self._post(
            url, body, batch_idempotency_key([e.idempotency_key for e in job])
        )
        outcome = classify(answer, time.time())
        if isinstance(outcome, DeadLetter) and len(job) > 1:
            # The API rejects a whole batch for one bad reading: find it by sending singly.
            self._count(answer)
            log.info(
                "batch of %d rejected (%s); sending its readings one by one",
                len(job),
                outcome.reason,
            )
            for entry in job:
                if not await self._send_one(entry, epoch):
                    return
            return
        await self._settle(job, answer, outcome, epoch)

    async def _post(self, url: str, body: str, idempotency_key: str) -> Answer | NetworkError:
        try:
            response = await self._http.post(
                url, content=body.encode(), headers={"Idempotency-Key": idempotency_key}
            )
        except httpx.HTTPError as exc:
            return NetworkError(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
        headers = {name.lower(): value for name, value in response.headers.items()}
        return Answer(response.status_code, headers, response.content)

    async def _settle(
        self, entries: Sequence[Entry], answer: Answer | NetworkError, outcome: Outcome, epoch: int
    ) -> bool:
        self._count(answer)
        if isinstance(outcome, Done):
            if not await self._write("done", lambda: self._store.done(entries)):
                return False
            self._stored(entries)
            return True
        if isinstance(outcome, DeadLetter):
            return await self._dead_letter(entries, answer, outcome)
        if isinstance(outcome, Pause):
            self.gate.pause(outcome, self._store.depth)
        else:
            self.gate.retry(outcome, epoch, self._store.depth)
        return False

    async def _write(self, op: str, call: Callable[[], Awaitable[object]]) -> bool:
        """Run an outbox write, retrying with backoff while it fails; False if stopped first.

        The entries' keys stay busy meanwhile, so no other job takes (and re-POSTs) them.
        """
        while True:
            try:
                await call()
            except OutboxError as exc:
                delay = self.gate.storage_failed(op, exc, self._store.depth)
                if self._stop.is_set():
                    return False  # still queued: sent again after the restart
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), delay)
            else:
                self.gate.storage_ok(op)
                return True

    def _stored(self, entries: Sequence[Entry]) -> None:
        self.gate.succeeded()
        now = time.time()
        for entry in entries:
            self._metrics.delivery_latency.observe(max(0.0, now - entry.ts_ms / 1000))
        self._metrics.delivered.inc(len(entries))
        self._metrics.outbox_depth.set(self._store.depth)
        self.delivered += len(entries)

    async def _dead_letter(
        self, entries: Sequence[Entry], answer: Answer | NetworkError, outcome: DeadLetter
    ) -> bool:
        status = answer.status if isinstance(answer, Answer) else None
        text = (
            answer.body[:RESPONSE_KEPT].decode("utf-8", "replace")
            if isinstance(answer, Answer)
            else None
        )
        dropped: list[int] = []

        async def move() -> None:
            dropped.append(await self._store.dead_letter(entries, status, outcome.reason, text))

        if not await self._write("dead_letter", move):
            return False
        if dropped[0]:
            self._dropped(dropped[0])
        self._metrics.dead_letters.inc(len(entries))
        self._metrics.dead_letters_kept.set(self._store.dead)
        self._metrics.outbox_depth.set(self._store.depth)
        self.dead_lettered += len(entries)
        level = logging.WARNING if self._dead_log.due(time.monotonic()) else logging.DEBUG
        log.log(level, "dead letter (%s): %s", entries[0].key, outcome.reason)
        return True

    def _dropped(self, count: int) -> None:
        self._metrics.dead_letters_dropped.inc(count)
        if self._dropped_log.due(time.monotonic()):
            log.warning(
                "more than forward.dead_letter_max dead letters: dropped the oldest %d"
                " (see `dead-letters list`; counted in modbus_forwarder_dead_letters_dropped)",
                count,
            )

    def _count(self, answer: Answer | NetworkError) -> None:
        """One attempt per request (a batch is one), the unit the API sees."""
        label = str(answer.status) if isinstance(answer, Answer) else "network"
        self._metrics.deliveries.labels(label).inc()


async def _either(first: asyncio.Event, second: asyncio.Event) -> None:
    tasks = [asyncio.ensure_future(first.wait()), asyncio.ensure_future(second.wait())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
