"""Readings kept while the broker is unreachable: on disk (SQLite, WAL) or in memory.

Bounded by `max_readings`; beyond it the oldest go first, counted. Rows leave only when
the pipeline says the broker has acknowledged them, so a crash replays rather than loses.
"""

from __future__ import annotations

import logging
import sqlite3
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

log = logging.getLogger(__name__)


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
    """For `demo` and tests: the same contract, gone with the process."""

    def __init__(self, max_readings: int) -> None:
        self.max_readings = max_readings
        self.dropped = 0
        self._rows: deque[Buffered] = deque()
        self._next_id = 1

    def __len__(self) -> int:
        return len(self._rows)

    def append(self, rows: Iterable[tuple[str, str, int, bool]]) -> None:
        for topic, payload, qos, retain in rows:
            self._rows.append(Buffered(self._next_id, topic, payload, qos, retain))
            self._next_id += 1
        while len(self._rows) > self.max_readings:
            self._rows.popleft()
            self.dropped += 1

    def peek(self, after_id: int, limit: int) -> Sequence[Buffered]:
        out: list[Buffered] = []
        for row in self._rows:
            if row.id > after_id:
                out.append(row)
                if len(out) >= limit:
                    break
        return out

    def remove(self, ids: Iterable[int]) -> None:
        gone = set(ids)
        self._rows = deque(r for r in self._rows if r.id not in gone)

    def close(self) -> None:
        return


class DiskBuffer:
    """SQLite in WAL mode: a committed row survives kill -9 of the bridge."""

    def __init__(self, path: str, max_readings: int) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.max_readings = max_readings
        self.dropped = 0
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
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

    def append(self, rows: Iterable[tuple[str, str, int, bool]]) -> None:
        batch = [(t, p, q, int(r)) for t, p, q, r in rows]
        with self._db:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT INTO readings (topic, payload, qos, retain) VALUES (?, ?, ?, ?)", batch
            )
            self._count += len(batch)
            excess = self._count - self.max_readings
            if excess > 0:
                self._db.execute(
                    "DELETE FROM readings WHERE id IN"
                    " (SELECT id FROM readings ORDER BY id LIMIT ?)",
                    (excess,),
                )
                self._count -= excess
                self.dropped += excess

    def peek(self, after_id: int, limit: int) -> Sequence[Buffered]:
        rows = self._db.execute(
            "SELECT id, topic, payload, qos, retain FROM readings WHERE id > ? ORDER BY id LIMIT ?",
            (after_id, limit),
        ).fetchall()
        return [Buffered(i, t, p, q, bool(r)) for i, t, p, q, r in rows]

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
