"""The outbox: readings on disk (SQLite, WAL) from the broker's ack until the API's 2xx.

Durability. A batch of readings is committed with `synchronous=FULL` before the broker
gets its PUBACKs, so an acked reading survives kill -9 *and* power loss (on a disk that
honours fsync). Deletes and dead-letter moves run with `synchronous=NORMAL`, which in WAL
mode is still safe against a process crash; a power cut can at worst undo a delete, and
that reading is then sent again (at least once, never lost). Group commits make the fsync
cost one per batch, not one per reading.

Bound. `max_items` readings at most; the policy is *refuse*: `add` takes only what fits
and the caller leaves the rest unacknowledged at the broker (which keeps them in the
persistent session, up to its own `max_queued_messages`). Nothing already accepted is
ever dropped, so the oldest data is never silently replaced by newer data.

Order. Entries leave in arrival order per key (device_id|parameter): `take` never hands
out an entry while an older entry of its key is queued behind a busy key or another job.

Dead letters. What the API refused for good is kept, with its answer, in its own table, at
most `dead_letter_max` rows (beyond it the oldest go, counted); the `dead-letters` command
lists, re-queues or purges them, also while the side-car runs: `take` notices another
process's commit (SQLite's data_version) and recounts its keys.

Errors. Every SQLite error leaves as OutboxError; the caller backs off and retries.

One outbox file per side-car: two processes sharing one would send the same rows twice.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from ..errors import BridgeError
from .jobs import Entry, enough, plan_jobs
from .laravel import Item

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY,           -- rowid: arrival order
    key TEXT NOT NULL,                -- device_id|parameter
    body TEXT NOT NULL,               -- the exact POST body
    idem TEXT NOT NULL UNIQUE,        -- Idempotency-Key; a broker redelivery is stored once
    ts_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS delivered (  -- recent 2xx keys: a late broker redelivery is dropped
    id INTEGER PRIMARY KEY,
    idem TEXT NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS dead_letter (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL,
    body TEXT NOT NULL,
    idem TEXT NOT NULL,
    ts_ms INTEGER NOT NULL,
    status INTEGER,                   -- the HTTP status that condemned it
    reason TEXT NOT NULL,
    response TEXT,                    -- the API's answer body, for the operator
    failed_at REAL NOT NULL           -- unix time
);
"""

_SQL_VARS = 500  # stay far below SQLite's bound variables limit per statement
MAX_WINDOW = 8192  # rows `take` looks at, at most, to find free keys
REMEMBER_DELIVERED = 100_000  # keys of delivered readings kept to drop redeliveries

_INSERT = """
INSERT OR IGNORE INTO outbox (key, body, idem, ts_ms)
SELECT ?, ?, ?, ? WHERE NOT EXISTS (SELECT 1 FROM delivered WHERE idem = ?)
"""


class OutboxError(BridgeError):
    """The outbox file cannot be opened or written."""


@dataclass(frozen=True, slots=True)
class DeadLetterRow:
    entry: Entry
    status: int | None
    reason: str
    response: str | None
    failed_at: float


@dataclass(frozen=True, slots=True)
class Added:
    consumed: int  # items taken from the front of the input; the rest did not fit
    stored: int  # of those, new rows (the others were already queued: redeliveries)


class Outbox:
    """Synchronous outbox; use from one thread at a time (AsyncOutbox gives it its own)."""

    def __init__(self, path: str | Path, max_items: int, dead_letter_max: int = 100_000) -> None:
        self.path = str(path)
        self.max_items = max_items
        self.dead_letter_max = dead_letter_max
        try:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA busy_timeout=10000")  # an operator's sqlite3 shell
            self._db.executescript(_SCHEMA)
            # entries per key, kept in memory: `take` knows at once when every key is busy
            self._keys: Counter[str] = Counter()
            self._version = -1
            self._recount()
        except (sqlite3.Error, OSError) as exc:
            raise OutboxError(f"cannot open outbox {self.path}: {exc}") from exc

    def _recount(self) -> None:
        """Entries per key, kept in memory: `take` knows at once when every key is busy."""
        self._version = self._db.execute("PRAGMA data_version").fetchone()[0]
        census = self._db.execute("SELECT key, count(*) FROM outbox GROUP BY key")
        self._keys = Counter(dict(census.fetchall()))
        self.depth = sum(self._keys.values())
        self.dead = int(self._db.execute("SELECT count(*) FROM dead_letter").fetchone()[0])

    def _notice_others(self) -> None:
        """Another connection (the `dead-letters` command) changed the file: recount."""
        if self._db.execute("PRAGMA data_version").fetchone()[0] != self._version:
            self._recount()

    @property
    def room(self) -> int:
        return max(0, self.max_items - self.depth)

    def add(self, items: Sequence[Item]) -> Added:
        """Store as many items as fit, in one fsynced transaction."""
        taken = items[: self.room]
        if not taken:
            return Added(0, 0)
        rows = [(i.key, i.body, i.idempotency_key, i.ts_ms, i.idempotency_key) for i in taken]
        self._db.execute("PRAGMA synchronous=FULL")  # the broker's ack depends on this commit
        try:
            with self._transaction():
                stored = [row[0] for row in rows if self._db.execute(_INSERT, row).rowcount]
        finally:
            self._db.execute("PRAGMA synchronous=NORMAL")
        self._keys.update(stored)
        self.depth += len(stored)
        return Added(len(taken), len(stored))

    def take(self, jobs: int, per_job: int, busy: Collection[str]) -> list[list[Entry]]:
        """Up to `jobs` lists of up to `per_job` entries whose keys are free (see plan_jobs).

        Looks at the oldest entries only, widening the look while busy keys fill it: the
        common case (keys interleaved) reads a few dozen rows per call, not thousands.
        """
        try:
            self._notice_others()
            return self._take(jobs, per_job, busy)
        except sqlite3.Error as exc:
            raise OutboxError(f"outbox read failed: {exc}") from exc

    def _take(self, jobs: int, per_job: int, busy: Collection[str]) -> list[list[Entry]]:
        free = {key for key in self._keys if key not in busy}
        if jobs <= 0 or not free:
            return []
        window = max(32, 2 * jobs * per_job)
        while True:
            rows = self._db.execute(
                "SELECT id, key, body, idem, ts_ms FROM outbox ORDER BY id LIMIT ?", (window,)
            ).fetchall()
            entries = [Entry(*row) for row in rows]
            planned = plan_jobs(entries, jobs, per_job, busy)
            if len(rows) < window or window >= MAX_WINDOW or enough(planned, jobs, per_job):
                return planned
            if not self._could_grow(entries, planned, free, per_job):
                return planned
            window *= 4

    def _could_grow(
        self, entries: list[Entry], planned: list[list[Entry]], free: set[str], per_job: int
    ) -> bool:
        """Would a wider look find more? A free key not seen yet might start a job; a job
        with room might take more of its keys' entries, if they have more queued."""
        seen = Counter(e.key for e in entries)
        if free - seen.keys():
            return True
        return any(
            len(job) < per_job and any(self._keys[e.key] > seen[e.key] for e in job)
            for job in planned
        )

    def done(self, entries: Sequence[Entry]) -> None:
        """Delivered: forget them, but remember their keys for a while (see `add`)."""
        ids = [e.id for e in entries]
        with self._transaction():
            for chunk in _chunks(ids):
                remember = "INSERT OR IGNORE INTO delivered (idem) SELECT idem FROM outbox"
                self._db.execute(f"{remember} WHERE id IN ({_marks(chunk)})", chunk)
            removed = self._delete(ids)
            self._db.execute(
                "DELETE FROM delivered WHERE id <= (SELECT max(id) FROM delivered) - ?",
                (REMEMBER_DELIVERED,),
            )
        self._forget(entries, removed)

    def dead_letter(
        self, entries: Sequence[Entry], status: int | None, reason: str, response: str | None
    ) -> int:
        """Rejected for good: keep them with the answer, out of the delivery queue.

        Returns how many of the oldest dead letters went to stay within dead_letter_max."""
        now = time.time()
        rows = [
            (e.key, e.body, e.idempotency_key, e.ts_ms, status, reason, response, now)
            for e in entries
        ]
        with self._transaction():
            self._db.executemany(
                "INSERT INTO dead_letter (key, body, idem, ts_ms, status, reason, response,"
                " failed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            removed = self._delete([e.id for e in entries])
            dropped = self._db.execute(
                # by rows kept, not by id distance: retry and purge leave gaps in the ids
                "DELETE FROM dead_letter WHERE id NOT IN"
                " (SELECT id FROM dead_letter ORDER BY id DESC LIMIT ?)",
                (self.dead_letter_max,),
            ).rowcount
        self._forget(entries, removed)
        self.dead += len(rows) - dropped
        return dropped

    def dead_letters(self, ids: Collection[int] | None = None) -> list[DeadLetterRow]:
        """Every dead letter (or those with these ids), oldest first."""
        sql = "SELECT id, key, body, idem, ts_ms, status, reason, response, failed_at"
        rows = self._read(f"{sql} FROM dead_letter ORDER BY id", ())
        wanted = None if ids is None else set(ids)
        return [
            DeadLetterRow(Entry(*row[:5]), *row[5:])
            for row in rows
            if wanted is None or row[0] in wanted
        ]

    def retry_dead_letters(self, ids: Collection[int] | None) -> int:
        """Back in line (behind what is queued now), all of them or these ids; how many."""
        where, args = _ids_clause(ids)
        with self._transaction():
            columns = "key, body, idem, ts_ms"
            copy = f"INSERT OR IGNORE INTO outbox ({columns}) SELECT {columns} FROM dead_letter {where} ORDER BY id"  # noqa: S608, E501
            moved = self._db.execute(copy, args).rowcount
            self._db.execute(f"DELETE FROM dead_letter {where}", args)  # noqa: S608
        self._recount()
        return moved

    def purge_dead_letters(self, ids: Collection[int] | None = None) -> int:
        """Forget dead letters for good, all of them or these ids; how many."""
        where, args = _ids_clause(ids)
        with self._transaction():
            purged = int(self._db.execute(f"DELETE FROM dead_letter {where}", args).rowcount)  # noqa: S608
        self.dead -= purged
        return purged

    def _read(self, sql: str, args: Sequence[object]) -> list[Any]:
        try:
            return self._db.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise OutboxError(f"outbox read failed: {exc}") from exc

    def close(self) -> None:
        """Checkpoint the WAL into the main file and close."""
        try:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            self._db.close()

    def _forget(self, entries: Sequence[Entry], removed: int) -> None:
        self.depth -= removed
        self._keys.subtract(e.key for e in entries)
        for key in {e.key for e in entries if self._keys[e.key] <= 0}:
            del self._keys[key]

    def _delete(self, ids: Sequence[int]) -> int:
        removed = 0
        for chunk in _chunks(ids):
            sql = f"DELETE FROM outbox WHERE id IN ({_marks(chunk)})"  # noqa: S608
            removed += self._db.execute(sql, chunk).rowcount
        return removed

    def _transaction(self) -> AbstractContextManager[None]:
        return _transaction(self._db)


def _ids_clause(ids: Collection[int] | None) -> tuple[str, list[int]]:
    """`WHERE id IN (?, ...)` for these ids, or nothing for all; values always bound."""
    if ids is None:
        return "", []
    chosen = sorted(set(ids))
    if len(chosen) > _SQL_VARS:
        raise OutboxError(f"at most {_SQL_VARS} ids at once (or all of them)")
    return f"WHERE id IN ({_marks(chosen)})", chosen


def _chunks(ids: Sequence[int]) -> list[Sequence[int]]:
    return [ids[i : i + _SQL_VARS] for i in range(0, len(ids), _SQL_VARS)]


def _marks(chunk: Sequence[int]) -> str:
    """Placeholders only: values are always bound, never formatted into the SQL."""
    return ",".join("?" * len(chunk))


@contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    """BEGIN IMMEDIATE ... COMMIT, ROLLBACK on any error; SQLite errors become OutboxError."""
    try:
        db.execute("BEGIN IMMEDIATE")
        try:
            yield
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
    except sqlite3.Error as exc:
        raise OutboxError(f"outbox write failed: {exc}") from exc


class AsyncOutbox:
    """The outbox on its own thread, so SQLite (and its fsync) never blocks the event loop."""

    def __init__(self, outbox: Outbox) -> None:
        self.sync = outbox
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox")

    @property
    def depth(self) -> int:
        return self.sync.depth

    @property
    def room(self) -> int:
        return self.sync.room

    async def add(self, items: Sequence[Item]) -> Added:
        return await self._run(lambda: self.sync.add(items))

    async def take(self, jobs: int, per_job: int, busy: Collection[str]) -> list[list[Entry]]:
        frozen = frozenset(busy)  # the caller keeps changing its set while we run
        return await self._run(lambda: self.sync.take(jobs, per_job, frozen))

    async def done(self, entries: Sequence[Entry]) -> None:
        await self._run(lambda: self.sync.done(entries))

    async def dead_letter(
        self, entries: Sequence[Entry], status: int | None, reason: str, response: str | None
    ) -> int:
        return await self._run(lambda: self.sync.dead_letter(entries, status, reason, response))

    @property
    def dead(self) -> int:
        return self.sync.dead

    async def close(self) -> None:
        try:
            await self._run(self.sync.close)
        finally:
            self._pool.shutdown(wait=True)

    async def _run(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn)
