"""Benchmark: the side-car in steady state, keeping up with a bridge's per-register readings.

Issue 16: "keeps up with a bridge publishing 670 readings/s (10 x 100 at 1 s) through the
batch URL of the Laravel app with < 25 % of a core; report its CPU per forwarded reading".

Per run: a paced publisher (a thread of this process, paho, QoS 1, MQTT 5, reading JSON as
the bridge publishes it, SPEC 3) sends `--rate` readings/s into Mosquitto for `--seconds`,
as `--devices` bursts a second spread over the second (one device's poll each, as the
bridge's phase-spread connections publish);
the side-car (`python -m modbus_mqtt_bridge forward -c CFG`, the product's process) is
subscribed and forwards through the batch URL of the real Laravel app (a temporary copy of
../shared/laravel-api, `php -S` with PHP_CLI_SERVER_WORKERS workers, rate limit off).

Measured over the publishing window after `--warmup` seconds: the side-car's CPU (utime +
stime, /proc) as a share of a core and per reading the app stored in the same window; the
app's own CPU (every process of serve.sh's group) separately; the outbox depth, read from
the side-car's SQLite file every 0.25 s (max, and at the end of publishing); and whether
every published reading is in the app's SQLite within `--grace` seconds after the last
publish.

    .venv/bin/python bench/forward_steady.py [--rate 670] [--seconds 25] [--runs 3]
        [--warmup 5] [--grace 10] [--json F]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from forward_bench import cpu_s, stop  # noqa: E402

from tests.support.forwarder import readings  # noqa: E402
from tests.support.laravel import LaravelApp, missing_reason  # noqa: E402
from tests.support.mosquitto import Mosquitto  # noqa: E402
from tests.support.ports import wait_until  # noqa: E402

TARGET_SHARE = 0.25


def group_cpu_s(pgid: int) -> float:
    """utime + stime of every live process in a process group (serve.sh, php -S, workers)."""
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # field 5, pgrp
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def thread_cpu_s(pid: int) -> dict[str, float]:
    """utime + stime of the main thread (the event loop: MQTT, HTTP, parsing) and of all
    the others (the outbox's SQLite thread, resolver threads), /proc/PID/task."""
    out = {"loop": 0.0, "threads": 0.0}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            fields = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        out["loop" if int(tid) == pid else "threads"] += cpu
    return out


def outbox_depth(path: Path) -> int:
    """Readings waiting in the side-car's outbox (read-only; WAL lets us read alongside)."""
    if not path.exists():
        return 0
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1)
        try:
            return int(db.execute("SELECT count(*) FROM outbox").fetchone()[0])
        finally:
            db.close()
    except sqlite3.Error:
        return -1


class PacedPublisher(threading.Thread):
    """Publishes as a bridge polling `devices` devices each second does: each device's
    readings in one burst per second, the devices' bursts spread evenly over the second
    (the bridge's connection phases), against absolute deadlines (no drift)."""

    def __init__(
        self, port: int, payloads: list[tuple[str, bytes]], rate: float, devices: int
    ) -> None:
        super().__init__(name="publisher", daemon=True)
        self.payloads, self.rate, self.devices = payloads, rate, devices
        self.client = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=f"steady-pub-{uuid.uuid4().hex[:8]}",
            protocol=paho.MQTTv5,
        )
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.started = self.finished = 0.0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            burst = max(1, round(self.rate / self.devices))
            self.started = time.monotonic()
            for k, i in enumerate(range(0, len(self.payloads), burst)):
                time.sleep(max(0.0, self.started + k / self.devices - time.monotonic()))
                for topic, body in self.payloads[i : i + burst]:
                    self.client.publish(topic, body, qos=1)
            self.finished = time.monotonic()
        except BaseException as exc:  # reported by the caller
            self.error = exc

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def start_sidecar(tmp: Path, app: LaravelApp, broker: Mosquitto, name: str, site: str,
                  args: argparse.Namespace, code: Path) -> tuple[Any, Path, Path]:  # fmt: skip
    outbox = tmp / f"{name}.db"
    config = tmp / f"{name}.yaml"
    config.write_text(
        "\n".join(
            [
                "site: bench",
                f"mqtt: {{url: {broker.url}}}",
                "forward:",
                f'  subscribe: "{site}/+/+"',
                f"  outbox: {json.dumps(str(outbox))}",
                f"  client_id: steady-{name}",
                f"  batch_url: {app.batch_url}",
                f"  batch_size: {args.batch_size}",
                f"  concurrency: {args.concurrency}",
            ]
        )
        + "\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": str(code),
        "LARAVEL_API_URL": app.api_url,
        "LARAVEL_API_TOKEN": app.token,
    }
    log = tmp / f"{name}.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "modbus_mqtt_bridge", "forward", "-c", str(config)],
            cwd=code,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    wait_until(lambda: "subscribed to" in log.read_text(), 30, "the side-car to subscribe")
    return proc, outbox, log


def one_run(
    tmp: Path,
    app: LaravelApp,
    broker: Mosquitto,
    k: int,
    start: int,
    args: argparse.Namespace,
    code: Path = REPO,
) -> dict[str, Any]:
    site = f"steady{k}"
    n = int(args.rate * args.seconds)
    payloads = [
        (m.topic, json.dumps(m.payload, separators=(",", ":")).encode())
        for m in readings(site, f"steady{k}", n, start=start)
    ]
    proc, outbox, _log = start_sidecar(tmp, app, broker, f"run{k}", site, args, code)
    after = app.last_id()
    app_pgid = app.proc.pid if app.proc is not None else 0
    depths: list[tuple[float, int]] = []
    publisher = PacedPublisher(broker.port, payloads, args.rate, args.devices)
    try:
        publisher.start()
        t_a = publisher_time(publisher, args.warmup)
        spy = profile(proc.pid, args, k) if args.profile else None
        side_a, app_a, rows_a = cpu_s(proc.pid), group_cpu_s(app_pgid), app.count(after)
        threads_a = thread_cpu_s(proc.pid)
        end = publisher.started + args.seconds
        while time.monotonic() < end - 0.05:
            depths.append((time.monotonic(), outbox_depth(outbox)))
            time.sleep(0.25)
        publisher.join(30)
        if publisher.error is not None:
            raise publisher.error
        t_b = time.monotonic()
        side_b, app_b, rows_b = cpu_s(proc.pid), group_cpu_s(app_pgid), app.count(after)
        threads_b = thread_cpu_s(proc.pid)
        depth_end = outbox_depth(outbox)
        grace_deadline = publisher.finished + args.grace
        while app.count(after) < n and time.monotonic() < grace_deadline:
            time.sleep(0.05)
        stored = app.count(after)
        drained_s = time.monotonic() - publisher.finished
        side_total = cpu_s(proc.pid)
        if spy is not None:
            spy.wait(60)
    finally:
        publisher.close()
        stop(proc)
    window = t_b - t_a
    forwarded = rows_b - rows_a
    return {
        "published": n,
        "rate": args.rate,
        "window_s": round(window, 2),
        "forwarded_in_window": forwarded,
        "forwarded_per_s": forwarded / window,
        "sidecar_share": (side_b - side_a) / window,
        "sidecar_ms_per_reading": (side_b - side_a) * 1000 / forwarded if forwarded else None,
        "sidecar_total_ms_per_reading": side_total * 1000 / n,
        "sidecar_threads_share": {
            name: round((cpu - threads_a.get(name, 0.0)) / window, 3)
            for name, cpu in threads_b.items()
            if cpu - threads_a.get(name, 0.0) > 0
        },
        "app_share": (app_b - app_a) / window,
        "app_ms_per_reading": (app_b - app_a) * 1000 / forwarded if forwarded else None,
        "outbox_max": max((d for _, d in depths), default=0),
        "outbox_end": depth_end,
        "stored": stored,
        "all_stored": stored >= n,
        "stored_within_s": round(drained_s, 2) if stored >= n else None,
        "load": os.getloadavg(),
    }


def profile(pid: int, args: argparse.Namespace, k: int) -> subprocess.Popen[bytes]:
    """py-spy on the side-car for the measured window (it perturbs the CPU a little)."""
    args.profile.mkdir(parents=True, exist_ok=True)
    seconds = max(1, int(args.seconds - args.warmup))
    out = args.profile / f"sidecar-{k}.txt"
    return subprocess.Popen(
        [str(Path(sys.executable).parent / "py-spy"), "record", "--nonblocking", "--gil",
         "-r", "200", "-d", str(seconds), "-f", "raw", "-o", str(out), "-p", str(pid)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def drained(r: dict[str, Any]) -> str:
    return f"within {r['stored_within_s']} s" if r["all_stored"] else "NOT ALL"


def publisher_time(publisher: PacedPublisher, warmup: float) -> float:
    wait_until(lambda: publisher.started > 0, 10, "the publisher to start")
    t = publisher.started + warmup
    time.sleep(max(0.0, t - time.monotonic()))
    return time.monotonic()


def summarize(runs: list[dict[str, Any]], args: argparse.Namespace) -> dict[str, Any]:
    summary: dict[str, Any] = {
        k: statistics.median(r[k] for r in runs)
        for k in ("forwarded_per_s", "sidecar_share", "sidecar_ms_per_reading", "app_share",
                  "app_ms_per_reading", "outbox_max", "sidecar_total_ms_per_reading")
    }  # fmt: skip
    # What the side-car needs at the published rate: a run that fell behind forwarded less
    # and so used less, which its share alone would hide.
    summary["sidecar_share_at_rate"] = summary["sidecar_total_ms_per_reading"] * args.rate / 1000
    summary["all_stored"] = all(r["all_stored"] for r in runs)
    summary["kept_up"] = summary["all_stored"] and all(
        r["outbox_end"] <= args.rate * 2 for r in runs
    )  # at most two seconds' worth waiting when publishing stopped
    print(
        f"{runs[0]['code']}, median of {len(runs)}: side-car {summary['sidecar_share']:.1%} of a"
        f" core in the window, {summary['sidecar_share_at_rate']:.1%} at {args.rate:g}/s "
        f"(target < {TARGET_SHARE:.0%}); {summary['sidecar_ms_per_reading']:.3f} ms/reading in"
        f" the window, {summary['sidecar_total_ms_per_reading']:.3f} over the run; app "
        f"{summary['app_share']:.0%} of a core ({summary['app_ms_per_reading']:.2f} ms/reading);"
        f" kept up: {summary['kept_up']}"
    )
    return summary


def main() -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--rate", type=float, default=670.0, help="readings published per second")
    p.add_argument("--devices", type=int, default=10, help="bursts per second (one a device)")
    p.add_argument("--seconds", type=float, default=25.0, help="publishing time per run")
    p.add_argument("--warmup", type=float, default=5.0, help="not measured at the start")
    p.add_argument("--grace", type=float, default=10.0, help="after the last publish")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--workers", type=int, default=4, help="PHP_CLI_SERVER_WORKERS")
    p.add_argument("--concurrency", type=int, default=4, help="forward.concurrency")
    p.add_argument("--batch-size", type=int, default=100, help="forward.batch_size")
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--profile", type=Path, default=None, help="py-spy the side-car into DIR")
    p.add_argument("--baseline", type=Path, default=None, help="alternate with the code in DIR")
    args = p.parse_args()
    if reason := missing_reason():
        print(f"cannot run: {reason}", file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="fwd-steady-"))
    app = LaravelApp(tmp, rate_limit=0, workers=args.workers).start()
    broker = Mosquitto()
    broker.start()
    runs: list[dict[str, Any]] = []
    codes = [("this", REPO)] + ([("baseline", args.baseline.resolve())] if args.baseline else [])
    try:
        start = 0
        for k in range(args.runs * len(codes)):
            order = codes if (k // len(codes)) % 2 == 0 else codes[::-1]  # interleaved
            name, code = order[k % len(codes)]
            r = one_run(tmp, app, broker, k, start, args, code) | {"code": name}
            start += r["published"]
            runs.append(r)
            print(
                f"run {k + 1} ({name}): {r['forwarded_per_s']:,.0f} readings/s forwarded "
                f"(published {args.rate:,.0f}/s); side-car {r['sidecar_share']:.1%} of a core, "
                f"{r['sidecar_ms_per_reading']:.3f} ms/reading; app {r['app_share']:.0%} "
                f"({r['app_ms_per_reading']:.2f} ms/reading); outbox max {r['outbox_max']}, "
                f"at the end {r['outbox_end']}; stored {r['stored']:,}/{r['published']:,}"
                f" ({drained(r)})"
                f"; load {', '.join(f'{x:.2f}' for x in r['load'])}; side-car threads "
                f"{r['sidecar_threads_share']}",
                flush=True,
            )
    finally:
        broker.close()
        app.close()
        shutil.rmtree(tmp, ignore_errors=True)
    medians = {name: summarize([r for r in runs if r["code"] == name], args) for name, _ in codes}
    if args.json:
        args.json.write_text(
            json.dumps(
                {"args": vars(args) | {"json": None}, "runs": runs, "median": medians["this"]}
                | {"baseline": medians.get("baseline")},
                indent=1,
                default=str,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
