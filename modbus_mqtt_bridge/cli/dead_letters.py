"""`dead-letters`: what the API refused, with its answer, and putting it back in line (SPEC 5).

    dead-letters -c CONFIG [list]          every dead letter: id, when, what, the API's answer
    dead-letters -c CONFIG retry ID...     these back into the outbox, behind what is queued
    dead-letters -c CONFIG retry --all     all of them
    dead-letters -c CONFIG purge           forget them all

It opens the side-car's outbox file (the same path `forward` resolves), and works while the
side-car runs: the side-car notices the change at its next look into the outbox.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ..config.model import Config
from ..errors import BridgeError
from ..statedir import resolve

if TYPE_CHECKING:  # sqlite3 is imported only when the command runs: keeps `validate` light
    from ..forward.outbox import DeadLetterRow, Outbox

EXIT_OK, EXIT_USAGE = 0, 2
MESSAGE_CHARS = 200  # of the API's answer, per line of `list`


def options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "action", nargs="?", default="list", choices=("list", "retry", "purge"), help="default list"
    )
    p.add_argument("ids", nargs="*", type=int, metavar="ID", help="dead letters to retry")
    p.add_argument("--all", action="store_true", help="retry: every dead letter")


def cmd(args: argparse.Namespace, load: Callable[[argparse.Namespace], Config]) -> int:
    config = load(args)
    if args.action == "retry" and bool(args.ids) == bool(args.all):
        print("retry takes dead letter IDs (see `dead-letters list`) or --all")
        return EXIT_USAGE
    if args.action != "retry" and (args.ids or args.all):
        print(f"{args.action} takes no IDs or --all")
        return EXIT_USAGE
    outbox = open_outbox(config)
    try:
        if args.action == "list":
            print_list(outbox.dead_letters())
        elif args.action == "retry":
            moved = outbox.retry_dead_letters(None if args.all else args.ids)
            missing = "" if args.all else _missing(args.ids, moved)
            print(f"{moved} dead letter(s) back in the outbox{missing}")
        else:
            print(f"{outbox.purge_dead_letters()} dead letter(s) purged")
    finally:
        outbox.close()
    return EXIT_OK


def open_outbox(config: Config) -> Outbox:
    """The side-car's outbox, never a new empty one in the wrong place."""
    from ..forward.outbox import Outbox  # noqa: PLC0415

    path = resolve("forward.outbox", config.forward.outbox, "outbox.db", os.environ).path
    if path is None or not Path(path).is_file():
        raise BridgeError(
            f"forward.outbox {path}: no outbox there (has `forward` run with this config?)"
        )
    fwd = config.forward
    return Outbox(path, fwd.outbox_max, fwd.dead_letter_max)


def print_list(rows: list[DeadLetterRow]) -> None:
    for row in rows:
        print(describe(row))
    print(f"{len(rows)} dead letter(s)" + (": `dead-letters retry ID...` or --all" if rows else ""))


def describe(row: DeadLetterRow) -> str:
    """One line: id, when it failed, the reading, and what the API said about it."""
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(row.failed_at))
    status = f"HTTP {row.status}" if row.status is not None else "no answer"
    return f"{row.entry.id:>6}  {when}  {_reading(row.entry.body)}  {status}: {_message(row)}"


def _reading(body: str) -> str:
    try:
        data = json.loads(body)
        return (
            f"device {data.get('device_id')} {data.get('parameter')!r} = {data.get('value')}"
            f" {data.get('unit') or ''} at {data.get('timestamp')}"
        ).replace("  at", " at")
    except (ValueError, AttributeError):
        return body[:MESSAGE_CHARS]


def _message(row: DeadLetterRow) -> str:
    """Laravel's own words: its `message` and every field error, else the stored reason."""
    try:
        answer = json.loads(row.response or "")
    except ValueError:
        answer = None
    if isinstance(answer, dict):
        errors = answer.get("errors")
        parts = [str(answer.get("message") or "")]
        if isinstance(errors, dict):
            parts = [f"{field}: {' '.join(map(str, msgs))}" for field, msgs in errors.items()]
        text = "; ".join(p for p in parts if p)
    else:
        text = row.reason
    text = " ".join(text.split()) or row.reason
    return text[:MESSAGE_CHARS] + ("…" if len(text) > MESSAGE_CHARS else "")


def _missing(ids: list[int], moved: int) -> str:
    wanted = len(set(ids))
    return f" ({wanted - moved} of the IDs given are not dead letters)" if moved < wanted else ""
