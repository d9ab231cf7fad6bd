"""Benchmark: readings/s the side-car delivers into the real Laravel app, single POST and batch.

Every figure is set against the app's own ceiling measured in the same run: a plain httpx
loop (the same client settings as the side-car, the same concurrency, the same bodies)
that does nothing but POST and check for 201. The side-car is the product's own process
(`python -m modbus_mqtt_bridge forward -c CFG`) draining an outbox pre-filled with N
readings, so the figure is its delivery rate: outbox -> HTTP -> outcome -> delete. Its
rate is counted from the first stored row to the last, read from the app's SQLite file
(the poll costs the app nothing). An end-to-end row adds the MQTT side: N readings
published to Mosquitto while the side-car runs, from the first publish to the last row.

    .venv/bin/python bench/forward_bench.py [--single 1500] [--batch 20000] [--rounds 2]
        [--concurrency 4] [--workers 4] [--batch-size 100] [--write docs/benchmarks-forward.md]

Targets (issue 5): single POST >= 90% of the ceiling; batch >= 10x single POST.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from modbus_mqtt_bridge.forward.delivery import Endpoints  # noqa: E402
from modbus_mqtt_bridge.forward.laravel import (  # noqa: E402
    Item,
    batch_body,
    batch_idempotency_key,
    parse_message,
)
from modbus_mqtt_bridge.forward.outbox import Outbox  # noqa: E402
from modbus_mqtt_bridge.forward.service import Target, http_client  # noqa: E402
from tests.support.forwarder import Publisher, readings  # noqa: E402
from tests.support.laravel import LaravelApp, missing_reason  # noqa: E402
from tests.support.mosquitto import Mosquitto  # noqa: E402
from tests.support.ports import wait_until  # noqa: E402

ROWS = ("ceiling single", "sidecar single", "ceiling batch", "sidecar batch")


@dataclass
class Bench:
    app: LaravelApp
    broker: Mosquitto
    tmp: Path
    concurrency: int
    batch_size: int
    next_start: int = 0
    cpu_ms: dict[str, list[float]] = field(
        default_factory=lambda: {k: [] for k in ROWS}
    )  # client CPU per reading, by row

    def items(self, n: int) -> list[Item]:
        """n fresh readings (distinct timestamps, so distinct idempotency keys)."""
        start, self.next_start = self.next_start, self.next_start + n
        out = []
        for message in readings("bench", "b", n, start=start):
            item = parse_message(message.topic, json.dumps(message.payload).encode(), False)
            assert isinstance(item, Item)
            out.append(item)
        return out


# -- the ceiling: a bare HTTP loop --------------------------------------------------------


def ceiling(b: Bench, n: int, batch: bool) -> float:
    """Readings/s a plain loop gets into the app: POST, check 201, next."""
    items = b.items(n)
    size = b.batch_size if batch else 1
    requests = [items[i : i + size] for i in range(0, n, size)]
    url = b.app.batch_url if batch else b.app.api_url
    endpoints = Endpoints(url, None, size, b.concurrency, 30.0)

    async def run() -> float:
        async with http_client(Target(endpoints, b.app.token)) as client:

            async def worker() -> None:
                while requests:
                    chunk = requests.pop()
                    if batch:
                        body = batch_body([i.body for i in chunk])
                        key = batch_idempotency_key([i.idempotency_key for i in chunk])
                    else:
                        body, key = chunk[0].body, chunk[0].idempotency_key
                    answer = await client.post(
                        url, content=body.encode(), headers={"Idempotency-Key": key}
                    )
                    assert answer.status_code == 201, answer.text[:200]

            started, cpu = time.perf_counter(), time.process_time()
            await asyncio.gather(*(worker() for _ in range(b.concurrency)))
            b.cpu_ms[f"ceiling {'batch' if batch else 'single'}"].append(
                (time.process_time() - cpu) * 1000 / n
            )
            return n / (time.perf_counter() - started)

    return asyncio.run(run())


# -- the side-car ---------------------------------------------------------------------------


def sidecar(b: Bench, n: int, batch: bool, name: str) -> float:
    """Readings/s the side-car process delivers from a pre-filled outbox."""
    outbox_path = b.tmp / f"{name}.db"
    outbox = Outbox(outbox_path, 10 * n)
    items = b.items(n)
    for i in range(0, n, 1000):
        outbox.add(items[i : i + 1000])
    outbox.close()
    after = b.app.last_id()
    proc = start_sidecar(b, name, outbox_path, batch, subscribe=f"bench-idle/{name}/+")
    try:
        return measure(b, proc, after, n, f"sidecar {'batch' if batch else 'single'}")
    finally:
        stop(proc)


def end_to_end(b: Bench, n: int, name: str) -> float:
    """Readings/s from the first MQTT publish to the last row stored (single POST)."""
    site = f"e2e-{name}"
    proc = start_sidecar(b, name, b.tmp / f"{name}.db", False, subscribe=f"{site}/+/+")
    log = b.tmp / f"{name}.log"
    wait_until(lambda: "subscribed to" in log.read_text(), 30, "the side-car to subscribe")
    messages = readings(site, "e", n, start=b.next_start)
    b.next_start += n
    after = b.app.last_id()
    publisher = Publisher(b.broker.port)
    try:
        started = time.perf_counter()
        publisher.publish(messages)
        wait_until(lambda: b.app.count(after) >= n, 600, "end-to-end delivery", every=0.02)
        return n / (time.perf_counter() - started)
    finally:
        publisher.close()
        stop(proc)


def start_sidecar(
    b: Bench, name: str, outbox: Path, batch: bool, subscribe: str
) -> subprocess.Popen[bytes]:
    config = b.tmp / f"{name}.yaml"
    lines = [
        "site: bench",
        f"mqtt: {{url: {b.broker.url}}}",
        "forward:",
        f"  subscribe: {json.dumps(subscribe)}",
        f"  outbox: {json.dumps(str(outbox))}",
        f"  concurrency: {b.concurrency}",
        f"  client_id: bench-{name}",
        f"  batch_size: {b.batch_size}",
    ]
    if batch:
        lines.append(f"  batch_url: {b.app.batch_url}")
    config.write_text("\n".join(lines) + "\n")
    env = {**os.environ, "LARAVEL_API_URL": b.app.api_url, "LARAVEL_API_TOKEN": b.app.token}
    log = b.tmp / f"{name}.log"
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "modbus_mqtt_bridge", "forward", "-c", str(config)],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def measure(b: Bench, proc: subprocess.Popen[bytes], after: int, n: int, row: str) -> float:
    """From the first stored row to the last: the steady delivery rate (and its CPU)."""
    app = b.app
    first = wait_until(lambda: app.count(after), 60, "the first delivery", every=0.005)
    started, cpu = time.perf_counter(), cpu_s(proc.pid)
    wait_until(lambda: app.count(after) >= n, 600, f"{n} deliveries", every=0.02)
    elapsed = time.perf_counter() - started
    b.cpu_ms[row].append((cpu_s(proc.pid) - cpu) * 1000 / (n - first))
    return (n - first) / elapsed


def cpu_s(pid: int) -> float:
    """utime + stime of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    proc.wait(30)


# -- report ---------------------------------------------------------------------------------


def report(b: Bench, rows: dict[str, list[float]], args: argparse.Namespace, load: str) -> str:
    med = {k: statistics.median(v) for k, v in rows.items()}
    single_share = med["sidecar single"] / med["ceiling single"]
    batch_factor = med["sidecar batch"] / med["sidecar single"]
    lines = [
        "| run | " + " | ".join(f"round {i + 1}" for i in range(args.rounds)) + " | median |",
        "|---|" + "---:|" * (args.rounds + 1),
    ]
    for key, values in rows.items():
        cells = " | ".join(f"{v:,.0f}" for v in values)
        pad = " | " * (args.rounds - len(values))
        lines.append(f"| {key} (readings/s) | {cells}{pad} | {med[key]:,.0f} |")
    lines += [
        "",
        f"- single POST: side-car / ceiling = **{single_share:.0%}** (target >= 90%)",
        f"- batch ({args.batch_size}/request) / single POST = **{batch_factor:.1f}x**"
        " (target >= 10x)",
        f"- batch: side-car / ceiling = {med['sidecar batch'] / med['ceiling batch']:.0%}",
        "- client CPU per reading (ms): "
        + ", ".join(f"{k} {statistics.median(v):.2f}" for k, v in b.cpu_ms.items() if v),
        f"- setup: concurrency {args.concurrency}, PHP_CLI_SERVER_WORKERS={args.workers},"
        f" {args.single} single / {args.batch} batch readings per run, rate limit off;"
        f" {os.cpu_count()} CPUs, Python {platform.python_version()}, load before: {load}",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--single", type=int, default=1500)
    parser.add_argument("--batch", type=int, default=20000)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--write", type=Path, help="also write the table into this markdown file")
    args = parser.parse_args()
    if reason := missing_reason():
        print(f"cannot run: {reason}", file=sys.stderr)
        return 2
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    tmp = Path(tempfile.mkdtemp(prefix="fwd-bench-"))
    app = LaravelApp(tmp, rate_limit=0, workers=args.workers).start()
    broker = Mosquitto()
    broker.start()
    b = Bench(app, broker, tmp, args.concurrency, args.batch_size)
    rows: dict[str, list[float]] = {k: [] for k in ROWS}
    try:
        b.items(0)
        ceiling(b, 50, batch=False)  # warm-up: opcache, DB file, connection paths
        for r in range(args.rounds):
            rows["ceiling single"].append(ceiling(b, args.single, batch=False))
            rows["sidecar single"].append(sidecar(b, args.single, False, f"single-{r}"))
            rows["ceiling batch"].append(ceiling(b, args.batch, batch=True))
            rows["sidecar batch"].append(sidecar(b, args.batch, True, f"batch-{r}"))
            print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:,.0f}/s" for k, v in rows.items()))
        rows["end-to-end single (MQTT -> Laravel)"] = [end_to_end(b, args.single, "e2e")]
    finally:
        broker.close()
        app.close()
    table = report(b, rows, args, load)
    print(table)
    if args.write:
        write(args.write, table)
    return 0


def write(path: Path, table: str) -> None:
    text = path.read_text() if path.exists() else ""
    marker = "<!-- results -->"
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    block = f"{marker}\nLast run: {stamp}\n\n{table}\n"
    if marker in text:
        text = text.split(marker, 1)[0] + block
    else:
        text = text.rstrip("\n") + "\n\n" + block if text else block
    path.write_text(text)


if __name__ == "__main__":
    sys.exit(main())
