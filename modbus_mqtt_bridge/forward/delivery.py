"""The HTTP half of the side-car: outbox -> Laravel, `concurrency` requests at once, order per key.

Each request's answer goes through `laravel.classify`; this module only carries the
verdict out. Failures that are about the API (429, 5xx, network, a refused token) close
one API-wide gate, since retrying other readings sooner would only hit the same wall.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import httpx

from ..observe.metrics import ForwarderMetrics
from ..retry import RetryPolicy, Throttle, jitter
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
from .outbox import AsyncOutbox, Entry

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


class Gate:
    """API-wide retry state: when the next request may go, and how hard we back off."""

    def __init__(self, policy: RetryPolicy, metrics: ForwarderMetrics) -> None:
        self.policy, self.metrics = policy, metrics
        self.not_before = 0.0  # monotonic
        self.attempt = 0
        self.epoch = 0  # bumped when the gate closes: a wave of failures counts once
        self.paused = False
        self.failing = False
        self._retry_log = Throttle(60.0)
        self._pause_log = Throttle(600.0)

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
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._dead_log = Throttle(1.0)
        self.delivered = 0
        self.dead_lettered = 0

    def notify(self) -> None:
        """New readings are in the outbox."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                await self.gate.wait(stop)
                if stop.is_set():
                    break
                self._wake.clear()  # before looking, so a wake-up during the look is kept
                if not await self._start_jobs():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(_either(stop, self._wake), IDLE_CHECK_S)
        finally:
            await self._drain()

    async def _start_jobs(self) -> int:
        # while the API fails or refuses us, one request probes it; success reopens all
        width = 1 if self.gate.paused or self.gate.failing else self.ep.concurrency
        free = width - len(self._tasks)
        if free <= 0:
            return 0
        per_job = self.ep.batch_size if self.ep.batch_url else 1
        jobs = await self._store.take(free, per_job, self._busy)
        for job in jobs:
            self._busy.update(e.key for e in job)
            task = asyncio.create_task(self._deliver(job, self.gate.epoch), name="forward-post")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return len(jobs)

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
            await self._store.done(entries)
            self._stored(entries)
            return True
        if isinstance(outcome, DeadLetter):
            await self._dead_letter(entries, answer, outcome)
            return True
        if isinstance(outcome, Pause):
            self.gate.pause(outcome, self._store.depth)
        else:
            self.gate.retry(outcome, epoch, self._store.depth)
        return False

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
    ) -> None:
        status = answer.status if isinstance(answer, Answer) else None
        text = (
            answer.body[:RESPONSE_KEPT].decode("utf-8", "replace")
            if isinstance(answer, Answer)
            else None
        )
        await self._store.dead_letter(entries, status, outcome.reason, text)
        self._metrics.dead_letters.inc(len(entries))
        self._metrics.outbox_depth.set(self._store.depth)
        self.dead_lettered += len(entries)
        level = logging.WARNING if self._dead_log.due(time.monotonic()) else logging.DEBUG
        log.log(level, "dead letter (%s): %s", entries[0].key, outcome.reason)

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
