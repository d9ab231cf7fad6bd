"""Readings kept while the broker is unreachable: on disk (SQLite, WAL) or in memory.

Bounded by `max_readings`; beyond it the oldest go first, counted. Rows leave only when
the pipeline says the broker has acknowledged them, so a crash replays rather than loses.
SQLite errors (locked, disk full, read-only) become `StorageError`: the pipeline keeps the
rows and retries with backoff, as it would after a network error.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ParamSpec, Protocol, TypeVar

from ..errors import StorageError

log = logging.getLogger(__name__)

# How long one statement waits for a lock another process holds (an operator's sqlite3
# shell, a backup). Short, because the buffer runs on the event loop: a longer lock is a
# StorageError, and the pipeline backs off instead of blocking the workers.
BUSY_TIMEOUT_MS = 250
P = ParamSpec("P")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Buffered:
    id: int
    topic: str
    payload: str
    qos: int
    retain: bool


class Buffer(Protocol):
    dropped: int

    def __len__(self) -> int: ...
    def append(self, rows: Iterable[tuple[str, str, int, bool]]) -> None: ...
    def peek(self, after_id: int, limit: int) -> Sequence[Buffered]: ...
    def remove(self, ids: Iterable[int]) -> None: ...
    def close(self) -> None: ...


class MemoryBuffer:
    """For `demo` and tests: the same contract, gone with the process.

    Ids are consecutive, so rows live in a dict by id and `peek` walks ids from the cursor
    (or the oldest row): each call costs what it returns plus the holes it steps over, not
    the whole buffer. Holes are rows acknowledged out of order, which is rare."""

    def __init__(self, max_readings: int) -> None:
        self.max_readings = max_readings
        self.dropped = 0
        self._rows: dict[int, Buffered] = {}
        self._head = 1  # no row has a smaller id
        self._next_id = 1

    def __len__(self) -> int:
        return len(self._rows)

    def append(self, rows: Iterable[tuple[str, str, int, bool]]) -> None:
        for topic, payload, qos, retain in rows:
            self._rows[self._next_id] = Buffered(self._next_id, topic, payload, qos, retain)
            self._next_id += 1
        while len(self._rows) > self.max_readings:
            self._advance_head()
            del self._rows[self._head]
            self.dropped += 1

    def peek(self, after_id: int, limit: int) -> Sequence[Buffered]:
        self._advance_head()
        out: list[Buffered] = []
        row_id = max(after_id + 1, self._head)
        while row_id < self._next_id and len(out) < limit:
            row = self._rows.get(row_id)
            if row is not None:
                out.append(row)
            row_id += 1
        return out

    def remove(self, ids: Iterable[int]) -> None:
        for row_id in ids:
            self._rows.pop(row_id, None)

    def _advance_head(self) -> None:
        if not self._rows:
            self._head = self._next_id
            return
        while self._head not in self._rows:
            self._head += 1

    def close(self) -> None:
        return


def _storage(what: str) -> Callable[[Callable[P, T]], Callable[P, T]]:
    """sqlite3 errors out of a DiskBuffer method become one StorageError naming the step."""

    def wrap(fn: Callable[P, T]) -> Callable[P, T]:
        def guarded(*args: P.args, **kwargs: P.kwargs) -> T:
            try:
                return fn(*args, **kwargs)
            except sqlite3.Error as exc:
                raise StorageError(f"buffer {what} failed: {exc}") from exc

        guarded.__doc__ = fn.__doc__
        return guarded

    return wrap


class DiskBuffer:
    """SQLite in WAL mode: a committed row survives kill -9 of the bridge."""

    def __init__(self, path: str, max_readings: int) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.max_readings = max_readings
        self.dropped = 0
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL: durable against a process crash; a power cut may lose the last commit.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS readings (id INTEGER PRIMARY KEY AUTOINCREMENT,"
            " topic TEXT NOT NULL, payload TEXT NOT NULL, qos INTEGER NOT NULL,"
            " retain INTEGER NOT NULL)"
        )
        self._count = int(self._db.execute("SELECT count(*) FROM readings").fetchone()[0])
        if self._count:
            log.warning("buffer %s holds %d readings from an earlier run", path, self._count)

    def __len__(self) -> int:
        return self._count

    @_storage("write")
    def append(self, rows: Iterable[tuple[str, str, int, bool]]) -> None:
        batch = [(t, p, q, int(r)) for t, p, q, r in rows]
        with self._db:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT INTO readings (topic, payload, qos, retain) VALUES (?, ?, ?, ?)", batch
            )
            excess = max(0, self._count + len(batch) - self.max_readings)
            if excess > 0:
                self._db.execute(
                    "DELETE FROM readings WHERE id IN"
                    " (SELECT id FROM readings ORDER BY id LIMIT ?)",
                    (excess,),
                )
        # counted only once committed: a failed write leaves the count true
        self._count += len(batch) - excess
        self.dropped += excess

    @_storage("read")
    def peek(self, after_id: int, limit: int) -> Sequence[Buffered]:
        rows = self._db.execute(
            "SELECT id, topic, payload, qos, retain FROM readings WHERE id > ? ORDER BY id LIMIT ?",
            (after_id, limit),
        ).fetchall()
        return [Buffered(i, t, p, q, bool(r)) for i, t, p, q, r in rows]

    @_storage("delete")
    def remove(self, ids: Iterable[int]) -> None:
        batch = [(i,) for i in ids]
        if not batch:
            return
        with self._db:
            self._db.execute("BEGIN")
            cur = self._db.executemany("DELETE FROM readings WHERE id = ?", batch)
        self._count -= max(0, cur.rowcount)

    def close(self) -> None:
        self._db.close()


def open_buffer(path: str | None, max_readings: int) -> Buffer:
    return DiskBuffer(path, max_readings) if path else MemoryBuffer(max_readings)
