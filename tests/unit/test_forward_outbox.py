"""The outbox on a real SQLite file: order per key, the bound, dead letters, surviving reopen."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from modbus_mqtt_bridge.forward.jobs import Entry, plan_jobs
from modbus_mqtt_bridge.forward.laravel import Item, parse_message
from modbus_mqtt_bridge.forward.outbox import Outbox


def make(i: int, key: str = "A") -> Item:
    payload = {
        "value": i,
        "ts": f"2025-07-08T16:{i // 60 % 60:02d}:{i % 60:02d}.000Z",
        "device_id": 1,
        "parameter": key,
    }
    parsed = parse_message("p/d/r", json.dumps(payload).encode(), False)
    assert isinstance(parsed, Item)
    return parsed


def values(entries: list[Entry]) -> list[int]:
    return [json.loads(e.body)["value"] for e in entries]


def keys_of(jobs: list[list[Entry]]) -> list[set[str]]:
    return [{e.key for e in job} for job in jobs]


@pytest.fixture
def outbox(tmp_path: Path) -> Outbox:
    return Outbox(tmp_path / "outbox.db", max_items=100)


def test_single_requests_take_one_head_per_free_key(outbox: Outbox) -> None:
    outbox.add([make(0, "A"), make(1, "A"), make(2, "B"), make(3, "C"), make(4, "B")])
    jobs = outbox.take(jobs=4, per_job=1, busy=())
    assert [values(j) for j in jobs] == [[0], [2], [3]]  # one per key, oldest first


def test_a_busy_key_holds_back_all_its_entries(outbox: Outbox) -> None:
    outbox.add([make(0, "A"), make(1, "A"), make(2, "B")])
    assert [values(j) for j in outbox.take(4, 1, busy={"1|A"})] == [[2]]


def test_a_backlog_is_spread_over_jobs_by_key(outbox: Outbox) -> None:
    outbox.add([make(i, "AB"[i % 2]) for i in range(6)] + [make(9, "C")])
    jobs = outbox.take(jobs=2, per_job=3, busy=())
    assert [values(j) for j in jobs] == [[0, 2, 4], [1, 3, 5]]  # each key in one job, in order
    assert keys_of(jobs) == [{"1|A"}, {"1|B"}]  # C waits: both jobs are full


def test_a_trickle_shares_one_job(outbox: Outbox) -> None:
    outbox.add([make(0, "A"), make(1, "B"), make(2, "C")])
    assert [values(j) for j in outbox.take(jobs=4, per_job=10, busy=())] == [[0, 1, 2]]


def test_nothing_to_take_when_every_key_is_busy(outbox: Outbox) -> None:
    outbox.add([make(i, "AB"[i % 2]) for i in range(10)])
    assert outbox.take(4, 5, busy={"1|A", "1|B"}) == []


def test_plan_jobs_never_lets_a_later_entry_pass_an_earlier_one() -> None:
    entries = [Entry(i, k, "{}", str(i), 0) for i, k in enumerate("AABACBBA")]
    for per_job in (1, 2, 3):
        jobs = plan_jobs(entries, jobs=3, per_job=per_job, busy={"C"})
        taken = {e.id for job in jobs for e in job}
        for key in "AB":
            ids = [e.id for e in entries if e.key == key]
            # what is taken of a key is a prefix of its queue
            assert [i for i in ids if i in taken] == ids[: len([i for i in ids if i in taken])]


def test_done_deletes_and_depth_follows(outbox: Outbox) -> None:
    outbox.add([make(i, "AB"[i % 2]) for i in range(4)])
    assert outbox.depth == 4
    first = outbox.take(4, 1, ())
    outbox.done([job[0] for job in first])
    assert outbox.depth == 2
    assert [values(j) for j in outbox.take(4, 1, ())] == [[2], [3]]


def test_bounded_refuses_what_does_not_fit(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.db", max_items=3)
    added = outbox.add([make(i) for i in range(5)])
    assert (added.consumed, added.stored, outbox.depth, outbox.room) == (3, 3, 3, 0)
    assert outbox.add([make(9)]).consumed == 0
    outbox.done([outbox.take(1, 1, ())[0][0]])
    assert outbox.add([make(3), make(4)]).consumed == 1  # the oldest data stays


def test_redelivered_reading_is_stored_once(outbox: Outbox) -> None:
    added = outbox.add([make(1), make(1), make(2)])
    assert (added.consumed, added.stored, outbox.depth) == (3, 2, 2)


def test_dead_letter_keeps_body_and_answer(outbox: Outbox) -> None:
    outbox.add([make(1), make(2, "B")])
    bad = outbox.take(1, 1, ())[0]
    outbox.dead_letter(bad, 422, "HTTP 422: invalid", '{"message":"invalid"}')
    assert outbox.depth == 1
    (row,) = outbox.dead_letters()
    assert row.entry.body == bad[0].body
    assert (row.status, row.reason, row.response) == (
        422,
        "HTTP 422: invalid",
        '{"message":"invalid"}',
    )


def test_survives_reopen_in_order(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    first = Outbox(path, 100)
    first.add([make(i, "AB"[i % 2]) for i in range(6)])
    first.done([first.take(1, 1, ())[0][0]])
    first.close()
    again = Outbox(path, 100)
    assert again.depth == 5
    assert values(again.take(1, 10, ())[0]) == [1, 2, 3, 4, 5]


def test_committed_rows_survive_kill_9(tmp_path: Path) -> None:
    """A process that commits, reports, and is SIGKILLed before closing loses nothing."""
    path = tmp_path / "o.db"
    script = (
        "import os, sys, signal, json\n"
        "from modbus_mqtt_bridge.forward.outbox import Outbox\n"
        "from tests.unit.test_forward_outbox import make\n"
        f"o = Outbox({str(path)!r}, 1000)\n"
        "for n in range(10): o.add([make(n * 10 + i) for i in range(10)])\n"
        "print('committed', flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run(
        [sys.executable, "-c", script],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(root)},
        check=False,
    )
    assert proc.returncode == -9 and "committed" in proc.stdout, proc.stderr
    again = Outbox(path, 1000)
    assert again.depth == 100
    assert values(again.take(1, 100, ())[0]) == list(range(100))


def test_a_late_redelivery_of_a_delivered_reading_is_dropped(outbox: Outbox) -> None:
    outbox.add([make(1), make(2, "B")])
    outbox.done([job[0] for job in outbox.take(2, 1, ())])
    assert outbox.depth == 0
    added = outbox.add([make(1), make(3)])  # the broker sends 1 again after a lost ack
    assert (added.consumed, added.stored) == (2, 1)
    assert [values(j) for j in outbox.take(2, 1, ())] == [[3]]


def test_take_looks_past_a_long_run_of_a_busy_key(outbox: Outbox) -> None:
    outbox.add([make(i, "A") for i in range(70)] + [make(70, "B")])
    assert [values(j) for j in outbox.take(2, 1, busy={"1|A"})] == [[70]]


def test_a_batch_fills_from_behind_busy_keys(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.db", 10_000)
    keys = "ABCDEFGHIJK"
    outbox.add([make(i, keys[i % len(keys)]) for i in range(1100)])  # 100 per key
    busy = {f"1|{k}" for k in keys[:-1]}  # all but K in flight
    (job,) = outbox.take(1, 100, busy)
    assert len(job) == 100
    assert {e.key for e in job} == {"1|K"}


def test_dead_letters_beyond_the_bound_drop_the_oldest(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.db", 100, dead_letter_max=3)
    outbox.add([make(i, f"K{i}") for i in range(5)])
    dropped = [outbox.dead_letter(job, 422, "bad", None) for job in outbox.take(5, 1, ())]
    assert dropped == [0, 0, 0, 1, 1]
    assert [values([r.entry])[0] for r in outbox.dead_letters()] == [2, 3, 4]
    assert outbox.dead == 3


def test_the_bound_counts_rows_kept_not_ids_after_a_retry(tmp_path: Path) -> None:
    """4 dead of at most 4, 2 of them retried: 2 rows are left, so a new one drops nothing."""
    outbox = Outbox(tmp_path / "outbox.db", 100, dead_letter_max=4)
    outbox.add([make(i, f"K{i}") for i in range(4)])
    for job in outbox.take(4, 1, ()):
        outbox.dead_letter(job, 422, "bad", None)
    one, two, three, four = (r.entry.id for r in outbox.dead_letters())
    assert outbox.retry_dead_letters([two, three]) == 2
    outbox.take(2, 1, ())  # delivered this time: gone from the outbox
    outbox.add([make(9, "K9")])
    assert [outbox.dead_letter(job, 422, "bad", None) for job in outbox.take(1, 1, ())] == [0]
    assert [r.entry.id for r in outbox.dead_letters()][:2] == [one, four]
    assert len(outbox.dead_letters()) == 3 and outbox.dead == 3


def test_retry_puts_dead_letters_back_behind_the_queue(outbox: Outbox) -> None:
    outbox.add([make(1), make(2, "B"), make(3, "C")])
    for job in outbox.take(2, 1, ()):
        outbox.dead_letter(job, 422, "bad", None)
    first, second = outbox.dead_letters()
    assert outbox.retry_dead_letters([first.entry.id, 999]) == 1
    assert [values(j)[0] for j in outbox.take(3, 1, ())] == [3, 1]
    assert [r.entry.id for r in outbox.dead_letters()] == [second.entry.id]
    assert outbox.retry_dead_letters(None) == 1
    assert (outbox.depth, outbox.dead) == (3, 0)


def test_purge_forgets_dead_letters(outbox: Outbox) -> None:
    outbox.add([make(1), make(2, "B")])
    for job in outbox.take(2, 1, ()):
        outbox.dead_letter(job, 422, "bad", None)
    assert outbox.purge_dead_letters() == 2
    assert (outbox.dead_letters(), outbox.dead, outbox.depth) == ([], 0, 0)


def test_take_sees_what_another_process_put_back(tmp_path: Path) -> None:
    """`dead-letters retry` runs beside the side-car: its commit is noticed, not ignored."""
    running = Outbox(tmp_path / "outbox.db", 100)
    running.add([make(1)])
    running.dead_letter(running.take(1, 1, ())[0], 422, "bad", None)
    assert running.take(1, 1, ()) == []
    command = Outbox(tmp_path / "outbox.db", 100)
    assert command.retry_dead_letters(None) == 1
    command.close()
    jobs = running.take(1, 1, ())
    assert [values(j) for j in jobs] == [[1]]
    assert (running.depth, running.dead) == (1, 0)
