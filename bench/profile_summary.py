"""Summarise py-spy collapsed stacks (`py-spy record -f raw`): where the bridge's CPU goes.

    .venv/bin/python bench/profile_summary.py PROFILE.txt [--top 25] [--match payloads.py]

Prints the share of samples per function, self (the function itself) and inclusive
(anywhere on the stack), so a hot path can be read as "X% of the bridge's CPU".
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import re
from pathlib import Path

_FRAME = re.compile(r"^(?P<fn>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def frame_key(frame: str) -> str:
    m = _FRAME.match(frame)
    if not m:
        return frame
    path = m["file"]
    for marker in ("site-packages/", "modbus_mqtt_bridge/", "python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{m['fn']} ({path})"


def load(path: Path) -> list[tuple[list[str], int]]:
    stacks = []
    for line in path.read_text().splitlines():
        body, _, count = line.rpartition(" ")
        if not body or not count.isdigit():
            continue
        frames = [frame_key(f) for f in body.split(";")]
        stacks.append((frames, int(count)))
    return stacks


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("profile", type=Path)
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--match", default=None, help="only functions whose key contains this")
    args = p.parse_args()
    stacks = load(args.profile)
    total = sum(n for _, n in stacks) or 1
    own: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    for frames, n in stacks:
        # py-spy's raw format lists the thread name first; skip frames that are not functions
        real = [f for f in frames if "(" in f]
        if real:
            own[real[-1]] += n
        for f in set(real):
            incl[f] += n
    print(f"{total} samples")
    for title, counter in (("inclusive", incl), ("self", own)):
        print(f"\n-- {title} --")
        shown = 0
        for key, n in counter.most_common():
            if args.match and args.match not in key:
                continue
            print(f"{n / total:6.1%}  {key}")
            shown += 1
            if shown >= args.top:
                break


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):  # piped into head
        main()
