"""Benchmark: the bridge against the simulator, reading every value each second (`make bench`).

For each scenario (devices x float32 registers, one TCP connection per device, interval 1 s):
a Mosquitto on a free port, the simulator process(es), the bridge as a separate process
(`python -m modbus_mqtt_bridge run -c CFG`), and `mosquitto_sub` counting the readings that
arrive. After a warm-up it measures, over the same window: values published per second, the
completeness of each 1-second window, the bridge's CPU (utime+stime from /proc) per published
value and its peak RSS. Then a bare paho loop (bench/floor.py) publishes the same number of
same-size messages to the same broker: the floor the bridge's CPU is compared with.

    .venv/bin/python bench/run.py [--scenarios A,B,C] [--warmup 3] [--measure 10] [--json F]

`--baseline DIR --repeat N` also runs the bridge from another checkout (e.g. `git archive
main | tar -x -C DIR`), alternating with this one, N times each, against the same broker
and simulator config in the same run, and prints the median CPU per value of each.

See docs/benchmarks.md for the method and the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import json
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from arrivals import (
    PROBE_TOPIC,
    Arrivals,
    arrival_times,
    quantiles,
    quiet_phase,
    read_lateness,
    tick_counts,
    window_counts,
)
from procs import (
    CLK_TCK,
    BenchError,
    Child,
    Procs,
    cpu_seconds,
    free_ports,
    listening_ports,
    machine,
    port_open,
    status_kib,
    wait_for,
)
from scenarios import SCENARIOS, Scenario, write_configs

ROOT = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

PY = sys.executable
_PATH = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
CHILD_ENV = {**os.environ, "PYTHONPATH": _PATH, "PYTHONUNBUFFERED": "1"}
TARGET_COMPLETENESS = 0.99
TARGET_RATIO = 1.5
FALLBACK_PAYLOAD_BYTES = 162  # a reading JSON of these scenarios, if none arrived
SIM_BUSY = 0.85  # a simulator above this share of a core may be what limits the bridge
FOREIGN_BUSY = 0.15  # cores used by other jobs above which the run is flagged as disturbed
DELIVERY_S = 1.0  # a reading counts as complete if it reached the subscriber this soon
TAIL_S = 3.0  # recording goes on this long after the window: phase shift + late arrivals

_started = time.monotonic()


def progress(msg: str) -> None:
    print(f"[{time.monotonic() - _started:6.1f}s] {msg}", flush=True)


# -- the broker ---------------------------------------------------------------------------


def start_broker(procs: Procs, workdir: Path) -> tuple[Child, int]:
    (port,) = free_ports(1)
    conf = workdir / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\n"
        "allow_anonymous true\n"
        "persistence false\n"
        # as docs/deployment.md advises: with Mosquitto's default (Nagle on its sockets to
        # subscribers) a burst's tail waits for the counter's delayed ACK, ~40 ms, a delay
        # of the broker's hop that would hide the bridge's own latency (A: p99 46 -> 6 ms)
        "set_tcp_nodelay true\n"
        "max_queued_messages 1000000\n"  # the counter must never be the one dropping
        "sys_interval 1\n"
        "log_dest stderr\n"
        "log_type error\n"
        "log_type warning\n"
    )
    broker = procs.spawn("mosquitto", [_mosquitto(), "-c", str(conf)], workdir / "mosquitto.log")
    wait_for(lambda: port_open(port), 10, f"mosquitto on port {port}", [broker])
    return broker, port


def _mosquitto() -> str:
    for candidate in ("/usr/sbin/mosquitto", "/usr/bin/mosquitto"):
        if Path(candidate).exists():
            return candidate
    return "mosquitto"


def broker_dropped(port: int) -> int | None:
    """Mosquitto's count of messages it dropped (e.g. for a slow subscriber), from $SYS."""
    for _ in range(3):
        try:
            out = subprocess.run(
                ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-C", "1", "-W", "3",
                 "-t", "$SYS/broker/publish/messages/dropped"],
                capture_output=True, text=True, timeout=6, check=False,
            ).stdout.strip()  # fmt: skip
            return int(out)
        except (subprocess.TimeoutExpired, ValueError):
            time.sleep(0.5)
    return None


def wait_subscribed(arrivals: Arrivals, port: int) -> None:
    """Publish probes until the counter sees one: then it is subscribed."""
    deadline = time.monotonic() + 10
    while not arrivals.probe_seen.is_set():
        arrivals.child.check_alive()
        if time.monotonic() > deadline:
            raise BenchError("mosquitto_sub did not receive the probe message within 10 s")
        subprocess.run(
            ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-t", PROBE_TOPIC, "-m", "x"],
            capture_output=True, timeout=5, check=False,
        )  # fmt: skip
        arrivals.probe_seen.wait(0.3)


# -- CPU, sampled --------------------------------------------------------------------------


class CpuSampler:
    """utime+stime of some processes every 50 ms, so any window can be cut out afterwards."""

    def __init__(self, children: dict[str, Child], every: float = 0.05) -> None:
        self.children = children
        self.every = every
        self.samples: list[tuple[float, dict[str, float]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cpu", daemon=True)

    def start(self) -> CpuSampler:
        self._sample()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def _sample(self) -> None:
        with contextlib.suppress(OSError):
            now = time.monotonic()
            self.samples.append((now, {k: cpu_seconds(c.pid) for k, c in self.children.items()}))

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self._sample()

    def at(self, name: str, t: float) -> float:
        """CPU seconds of `name` at time t, interpolated between samples."""
        times = [s[0] for s in self.samples]
        i = max(
            1, min(len(times) - 1, next((k for k, x in enumerate(times) if x >= t), len(times) - 1))
        )
        (ta, a), (tb, b) = self.samples[i - 1], self.samples[i]
        if tb == ta:
            return b[name]
        return a[name] + (b[name] - a[name]) * (t - ta) / (tb - ta)

    def used(self, name: str, t0: float, t1: float) -> float:
        return self.at(name, t1) - self.at(name, t0)


def machine_busy_s() -> float:
    """CPU seconds the whole machine has been busy (all but idle and iowait), /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / CLK_TCK


def _own_cpu() -> float:
    t = os.times()
    return t.user + t.system


# -- the bridge's own schedule lateness, from its /metrics ----------------------------------

LATENESS = "modbus_bridge_schedule_lateness_seconds_bucket{"


def scrape_lateness(port: int) -> dict[str, Any]:
    """The lateness histogram summed over every connection (le -> count), and what the
    scrape cost: the bridge renders /metrics on its event loop."""
    started = time.monotonic()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as answer:
        text = answer.read()
    took = time.monotonic() - started
    buckets: dict[float, float] = {}
    for line in text.decode().splitlines():
        if line.startswith(LATENESS):
            labels, _, count = line.rpartition(" ")
            le = labels[labels.index('le="') + 4 : labels.rindex('"')]
            bound = math.inf if le == "+Inf" else float(le)
            buckets[bound] = buckets.get(bound, 0.0) + float(count)
    return {"buckets": buckets, "scrape_s": took, "bytes": len(text)}


def histogram_quantile(q: float, buckets: dict[float, float]) -> float:
    """Prometheus' histogram_quantile: linear within the bucket holding the q-quantile."""
    bounds = sorted(buckets)
    total = buckets[math.inf] if bounds else 0.0
    if total <= 0:
        return math.nan
    rank, lower, below = q * total, 0.0, 0.0
    for bound in bounds:
        if buckets[bound] >= rank:
            if math.isinf(bound):
                return lower
            return lower + (bound - lower) * (rank - below) / (buckets[bound] - below)
        lower, below = bound, buckets[bound]
    return lower


def lateness_figures(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    diff = {le: n - before["buckets"].get(le, 0.0) for le, n in after["buckets"].items()}
    total = diff.get(math.inf, 0.0)
    return {
        "lateness_polls": int(total),
        "lateness_p50_s": histogram_quantile(0.5, diff),
        "lateness_p99_s": histogram_quantile(0.99, diff),
        "lateness_within_50ms": diff.get(0.05, 0.0) / total if total else math.nan,
        "lateness_buckets": {str(k): v for k, v in sorted(diff.items())},
        "metrics_scrape_s": max(before["scrape_s"], after["scrape_s"]),
        "metrics_bytes": after["bytes"],
    }


# -- one scenario -------------------------------------------------------------------------


def plan_figures(cfg_path: Path) -> dict[str, int]:
    from modbus_mqtt_bridge.config.load import load_config  # noqa: PLC0415
    from modbus_mqtt_bridge.plan import (  # noqa: PLC0415
        MAX_READ_REGISTERS,
        build_plan,
        minimum_requests_for,
    )

    config = load_config(cfg_path, env={})
    plan = build_plan(config)
    # minimum_requests_for counts registers (ceil(words / 125)); a float32 cannot be split
    # across two reads, so whole values allow floor(125 / 2) = 62 per read.
    whole = 0
    for device in config.devices:
        widths = {r.count for r in device.registers}
        if len(widths) != 1:
            raise BenchError("the benchmark's register maps are uniform")
        whole += math.ceil(len(device.registers) / (MAX_READ_REGISTERS // widths.pop()))
    return {
        "requests": len(plan.requests),
        "minimum": minimum_requests_for(config),
        "minimum_whole_values": whole,
        "values": plan.value_count,
    }


def wait_quiet(limit_s: float, watched_pids: list[int]) -> float:
    """Wait (up to limit_s) until other jobs use less than FOREIGN_BUSY cores; their load."""
    deadline = time.monotonic() + limit_s
    while True:
        b0, o0 = machine_busy_s(), _own_cpu() + sum(_cpu_or_0(p) for p in watched_pids)
        time.sleep(2.0)
        b1, o1 = machine_busy_s(), _own_cpu() + sum(_cpu_or_0(p) for p in watched_pids)
        load = (b1 - b0 - (o1 - o0)) / 2.0
        if load <= FOREIGN_BUSY or time.monotonic() >= deadline:
            return load
        progress(f"  other jobs use {load:.2f} cores; waiting for a quieter machine")


def _cpu_or_0(pid: int) -> float:
    try:
        return cpu_seconds(pid)
    except OSError:
        return 0.0


def run_scenario(
    s: Scenario,
    args: argparse.Namespace,
    procs: Procs,
    workdir: Path,
    broker: Child,
    mqtt_port: int,
    arrivals: Arrivals,
    code: Path = ROOT,
) -> dict[str, Any]:
    """One scenario; the bridge process runs the package found in `code`."""
    bridge_env = {**CHILD_ENV, "PYTHONPATH": os.pathsep.join([str(code), _PATH])}
    if args.quiet_wait > 0:
        load = wait_quiet(args.quiet_wait, [broker.pid, arrivals.child.pid])
        progress(f"other jobs use {load:.2f} cores before scenario {s.key}")
    progress(f"scenario {s.label}: starting {s.simulators} simulator process(es)")
    (metrics_port,) = free_ports(1)
    ports = listening_ports(s.connections)
    bridge_cfg, sim_cfgs = write_configs(s, workdir, mqtt_port, ports, metrics_port)
    dropped0 = broker_dropped(mqtt_port)
    sims = [
        procs.spawn(
            f"simulator {k + 1}",
            [
                PY,
                "-m",
                "modbus_mqtt_bridge",
                "simulate",
                "-c",
                str(cfg),
                "--refresh",
                str(args.refresh),
            ],
            workdir / f"sim-{s.key}-{k + 1}.log",
            cwd=ROOT,
            env=CHILD_ENV,
        )
        for k, cfg in enumerate(sim_cfgs)
    ]
    result: dict[str, Any] = {
        "scenario": s.key,
        "label": s.label,
        "devices": s.devices,
        "registers": s.registers,
        "expected_per_s": s.values,
        "expected_messages_per_s": s.messages,
        "connections": s.connections,
        "device_payload": s.device_payload,
        "simulators": s.simulators,
    }
    secs = args.measure
    try:
        # the plan is computed while the simulator(s) load the same config
        plan = plan_figures(bridge_cfg)
        result.update({f"plan_{k}": v for k, v in plan.items()})
        progress(
            f"  plan: {plan['requests']} requests/cycle, minimum {plan['minimum']} "
            f"(whole float32 values: {plan['minimum_whole_values']}), {plan['values']} values"
        )
        wait_for(
            lambda: all(port_open(p) for p in ports),
            90,
            f"{len(sims)} simulator process(es) to listen on {len(ports)} ports",
            sims,
            every=0.2,
        )
        progress(f"  simulator(s) listening on {len(ports)} ports; starting the bridge")
        started = time.monotonic()
        bridge = procs.spawn(
            "bridge",
            [PY, "-m", "modbus_mqtt_bridge", "run", "-c", str(bridge_cfg)],
            workdir / f"bridge-{s.key}.log",
            cwd=code,
            env=bridge_env,
        )
        try:
            wait_for(
                lambda: (arrivals.last_value_time() or 0) > started,
                90,
                "the bridge's first reading at the subscriber",
                [bridge, *sims],
                every=0.1,
            )
            result["startup_s"] = round(time.monotonic() - started, 2)
            progress(f"  first reading after {result['startup_s']}s; warming up {args.warmup:g}s")
            # Scraped before the warm-up: rendering 1,000 connections' histograms takes the
            # bridge seconds of CPU, which would otherwise fall into the window.
            late0 = scrape_lateness(metrics_port)
            time.sleep(args.warmup)
            bridge.check_alive()

            progress(f"  measuring {secs}s (+{TAIL_S}s for late arrivals)")
            watched = {
                "bridge": bridge,
                **{f"sim{k + 1}": c for k, c in enumerate(sims)},
                "mosquitto": broker,
                "mosquitto_sub": arrivals.child,
            }
            spy = start_profiler(procs, args, s, bridge) if args.profile else None
            t0 = time.monotonic()
            busy0, own0 = machine_busy_s(), _own_cpu()
            sampler = CpuSampler(watched).start()
            time.sleep(secs + TAIL_S)
            sampler.stop()
            busy1, own1 = machine_busy_s(), _own_cpu()
            hwm_kib = status_kib(bridge.pid, "VmHWM")
            late1 = scrape_lateness(metrics_port)
            if spy is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    spy.proc.wait(30)
                procs.stop(spy)
            bridge.check_alive()
        finally:
            progress("  stopping the bridge and the simulator(s)")
            stop_t = time.monotonic()
            procs.stop(bridge, timeout=15)
            result["bridge_stop_s"] = round(time.monotonic() - stop_t, 2)
            result["bridge_exit"] = bridge.proc.returncode
    finally:
        for sim in sims:
            procs.stop(sim)

    result.update(measure(arrivals, sampler, t0, secs, s))
    # CPU used on the machine by anything else than the processes measured (other jobs)
    window = sampler.samples[-1][0] - sampler.samples[0][0]
    ours = sum(sampler.samples[-1][1][k] - sampler.samples[0][1][k] for k in sampler.children)
    result["foreign_cpu_cores"] = round((busy1 - busy0 - ours - (own1 - own0)) / window, 2)
    result["bench_cpu_cores"] = round((own1 - own0) / window, 3)
    dropped1 = broker_dropped(mqtt_port)
    if dropped0 is not None and dropped1 is not None:
        result["broker_dropped"] = dropped1 - dropped0
    result["bridge_peak_rss_mib"] = hwm_kib / 1024
    result.update(lateness_figures(late0, late1))
    r = result
    progress(
        f"  {r['values_per_s']:,.0f} values/s; completeness (per tick, delivered within "
        f"{DELIVERY_S:.0f} s of due) min {r['completeness_min']:.3f} mean "
        f"{r['completeness_mean']:.3f} ({r['repeats']} repeated)"
        f", by read time min {r['read_completeness_min']:.3f}, by arrival min "
        f"{r['arrival_completeness_min']:.3f} mean {r['arrival_completeness_mean']:.3f}; latency "
        f"p50/p99/max {r['latency_p50_s']:.3f}/{r['latency_p99_s']:.3f}/{r['latency_max_s']:.3f}s"
    )
    progress(
        f"  schedule lateness ({r['lateness_polls']:,} polls): p99 {r['lateness_p99_s']:.3f}s, "
        f"{r['lateness_within_50ms']:.4f} within 50 ms; /metrics scrape "
        f"{r['metrics_scrape_s']:.2f}s, {r['metrics_bytes'] / 1e6:.1f} MB; from the ts in the "
        f"window: p50/p99 {r['read_lateness_p50_s']:.3f}/{r['read_lateness_p99_s']:.3f}s, "
        f"{r['read_lateness_within_50ms']:.4f} within 50 ms"
    )
    progress(
        f"  bridge {r['bridge_us_per_value']:.1f} us/value ({r['cpu_share']['bridge']:.0%} of a "
        f"core), peak RSS {hwm_kib / 1024:.0f} MiB; other CPU shares {r['cpu_share']}"
    )
    if r["foreign_cpu_cores"] > FOREIGN_BUSY:
        progress(
            f"  WARNING: other jobs used {r['foreign_cpu_cores']:.2f} cores during the window: "
            "the figures are disturbed"
        )
    busy = [k for k, v in r["cpu_share"].items() if k.startswith("sim") and v > SIM_BUSY]
    if busy:
        progress(f"  WARNING: {', '.join(busy)} above {SIM_BUSY:.0%} of a core: may be the limit")

    # The floor publishes what the bridge published (or, if it published nothing, what the
    # scenario asks for), at the same size, in bursts of one device's registers.
    per_tick = round(r["published"] / secs) or s.messages
    size = round(r["payload_bytes"]) or FALLBACK_PAYLOAD_BYTES
    for mode in args.floors:
        progress(f"  floor ({mode}): {secs} x {per_tick:,} messages of {size} bytes")
        burst = 1 if s.device_payload else s.registers
        f = run_floor(procs, workdir, mqtt_port, arrivals, mode, secs, per_tick, burst, size, s.qos)
        result[f"floor_{mode.replace('-', '_')}"] = f
        progress(
            f"  floor ({mode}): {f['cpu_us_per_msg']:.1f} us/publish, "
            f"{f['delivered']:,}/{f['published']:,} delivered"
        )
    if "floor_thread" in result:
        result["ratio"] = r["bridge_us_per_value"] / result["floor_thread"]["cpu_us_per_msg"]
    if "floor_asyncio" in result:
        result["ratio_asyncio"] = (
            r["bridge_us_per_value"] / result["floor_asyncio"]["cpu_us_per_msg"]
        )
    return result


def measure(
    arrivals: Arrivals, sampler: CpuSampler, t0: float, secs: int, s: Scenario
) -> dict[str, Any]:
    """The figures of one measuring window [t0, t0 + secs), cut at the quiet point of the cycle."""
    # by arrival: windows (and the CPU window) start where the fewest readings arrive
    phase = quiet_phase(arrival_times(arrivals, t0, t0 + secs), t0)
    start = t0 + phase
    arrival_counts = window_counts(arrival_times(arrivals, start, start + secs), start, secs)
    values = sum(arrival_counts)
    _, value_bytes = arrivals.values_between(start, start + secs)
    # by read time: windows start where the fewest values are read
    arrived, read = arrivals.readings_since(t0 - 5)
    in_window = [x for x in read if t0 <= x < t0 + secs]
    read_start = t0 + quiet_phase(in_window, t0)
    read_counts = window_counts(read, read_start, secs)
    # completeness, the figure the targets use: of each tick's reads, those delivered
    # within one interval of when they were due, each topic once. The connections' phase
    # slots are spread over the interval, so the readings arrive as a steady stream with no quiet
    # point between ticks: any window cuts through it, and jitter at a cut moves readings
    # from one window to the next (0.95 then 1.05) with nothing lost. Counting by tick is
    # immune to that; a read schedule or a publish backlog falling behind still fails it.
    counts, repeats = tick_counts(arrivals, t0, secs, DELIVERY_S)
    latency = [
        a - r for a, r in zip(arrived, read, strict=True) if read_start <= r < read_start + secs
    ]
    p50, p99, pmax = quantiles(latency)
    # the schedule's regularity from the readings' `ts` (no scrape: the window's own)
    late = read_lateness(arrivals.read_times_by_device(t0, t0 + secs))
    late_p50, late_p99, late_max = quantiles(late)
    cpu = {k: sampler.used(k, start, start + secs) for k in sampler.children}
    ratios = [n / s.messages for n in counts]
    arrival_ratios = [n / s.messages for n in arrival_counts]
    read_ratios = [n / s.messages for n in read_counts]
    read_values = values * s.values_per_message
    return {
        "published": values,
        "values_per_s": read_values / secs,
        "messages_per_s": values / secs,
        "completeness": [round(x, 4) for x in ratios],
        "completeness_min": min(ratios),
        "completeness_mean": sum(ratios) / secs,
        "repeats": repeats,
        "arrival_completeness": [round(x, 4) for x in arrival_ratios],
        "arrival_completeness_min": min(arrival_ratios),
        "arrival_completeness_mean": sum(arrival_ratios) / secs,
        "window_phase_s": phase,
        "read_completeness": [round(x, 4) for x in read_ratios],
        "read_completeness_min": min(read_ratios),
        "read_completeness_mean": sum(read_ratios) / secs,
        "latency_p50_s": p50,
        "latency_p99_s": p99,
        "latency_max_s": pmax,
        "read_lateness_p50_s": late_p50,
        "read_lateness_p99_s": late_p99,
        "read_lateness_max_s": late_max,
        "read_lateness_within_50ms": sum(x < 0.05 for x in late) / len(late) if late else math.nan,
        "bridge_cpu_s": cpu["bridge"],
        "bridge_us_per_value": cpu["bridge"] / read_values * 1e6 if values else math.inf,
        "bridge_us_per_message": cpu["bridge"] / values * 1e6 if values else math.inf,
        "payload_bytes": value_bytes / values if values else 0.0,
        "cpu_share": {k: round(v / secs, 3) for k, v in cpu.items()},
    }


def start_profiler(procs: Procs, args: argparse.Namespace, s: Scenario, bridge: Child) -> Child:
    """py-spy on the bridge for the measuring window (it perturbs the CPU figures a little)."""
    args.profile.mkdir(parents=True, exist_ok=True)
    spy = Path(PY).parent / "py-spy"
    if not spy.exists():
        raise BenchError(f"--profile needs py-spy: {Path(PY).parent}/pip install py-spy")
    out = args.profile / f"bridge-{s.key}.txt"
    return procs.spawn(
        "py-spy",
        [str(spy), "record", "--nonblocking", "-r", "200", "-d", str(args.measure),
         "-f", "raw", "-o", str(out), "-p", str(bridge.pid)],
        args.profile / f"py-spy-{s.key}.log",
    )  # fmt: skip


def run_floor(
    procs: Procs,
    workdir: Path,
    mqtt_port: int,
    arrivals: Arrivals,
    mode: str,
    ticks: int,
    per_tick: int,
    batch: int,
    size: int,
    qos: int = 0,
) -> dict[str, Any]:
    log = workdir / f"floor-{mode}.log"
    with contextlib.suppress(FileNotFoundError):
        log.unlink()
    t0 = time.monotonic()
    child = procs.spawn(
        f"floor ({mode})",
        [PY, str(BENCH / "floor.py"), "--port", str(mqtt_port), "--mode", mode,
         "--ticks", str(ticks), "--per-tick", str(per_tick), "--batch", str(batch),
         "--size", str(size), "--qos", str(qos)],
        log,
        cwd=ROOT,
        env=CHILD_ENV,
    )  # fmt: skip
    try:
        child.proc.wait(ticks + 30)
    except subprocess.TimeoutExpired:
        raise BenchError(f"floor ({mode}) did not finish within {ticks + 30}s") from None
    finally:
        procs.stop(child)
    if child.proc.returncode != 0:
        raise BenchError(
            f"floor ({mode}) failed, exit {child.proc.returncode}:\n{child.log_tail()}"
        )
    lines = [ln for ln in log.read_text().splitlines() if ln.startswith("{")]
    if not lines:
        raise BenchError(f"floor ({mode}) printed no result:\n{child.log_tail()}")
    result: dict[str, Any] = json.loads(lines[-1])
    time.sleep(0.3)  # the last messages reach the counter
    result["delivered"] = arrivals.floor_between(t0, time.monotonic())
    return result


# -- the report ---------------------------------------------------------------------------


def table(results: list[dict[str, Any]]) -> str:
    cols = [
        "scenario",
        "requests/cycle: plan / min / min whole values",
        "values/s (expected)",
        f"completeness (per tick, delivered within {DELIVERY_S:.0f} s of due): min / mean",
        "by arrival: min / mean",
        "latency p50 / p99 / max s",
        "schedule lateness p99 s (within 50 ms): /metrics, incl. a scrape / from ts",
        "bridge CPU us/value (core share)",
        "floor us/publish: thread / asyncio",
        "ratio to thread floor (to asyncio)",
        "peak RSS MiB",
        "other jobs (cores)",
    ]
    rows = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in results:
        ft = r.get("floor_thread", {}).get("cpu_us_per_msg")
        fa = r.get("floor_asyncio", {}).get("cpu_us_per_msg")
        cells = [
            r["label"],
            f"{r['plan_requests']} / {r['plan_minimum']} / {r['plan_minimum_whole_values']}",
            f"{r['values_per_s']:,.0f} ({r['expected_per_s']:,})",
            f"{r['completeness_min']:.3f} / {r['completeness_mean']:.3f}",
            f"{r['arrival_completeness_min']:.3f} / {r['arrival_completeness_mean']:.3f}",
            f"{r['latency_p50_s']:.3f} / {r['latency_p99_s']:.3f} / {r['latency_max_s']:.3f}",
            f"{r['lateness_p99_s']:.3f} ({r['lateness_within_50ms']:.3f}) / "
            f"{r['read_lateness_p99_s']:.3f} ({r['read_lateness_within_50ms']:.3f})",
            f"{r['bridge_us_per_value']:.1f} ({r['cpu_share']['bridge']:.0%})",
            f"{_f(ft)} / {_f(fa)}",
            f"{_f(r.get('ratio'), 2)} ({_f(r.get('ratio_asyncio'), 2)})",
            f"{r['bridge_peak_rss_mib']:.0f}",
            f"{r['foreign_cpu_cores']:.2f}",
        ]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def _f(x: float | None, digits: int = 1) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def verdicts(results: list[dict[str, Any]]) -> list[str]:
    out = []
    for r in results:
        checks = [
            (
                "requests = minimum",
                r["plan_requests"] == r["plan_minimum"],
                f"{r['plan_requests']} vs {r['plan_minimum']} "
                f"(whole-value minimum {r['plan_minimum_whole_values']})",
            ),
            (
                f"completeness >= {TARGET_COMPLETENESS}",
                r["completeness_min"] >= TARGET_COMPLETENESS,
                f"min {r['completeness_min']:.3f} (by arrival {r['arrival_completeness_min']:.3f})",
            ),
        ]
        if "ratio" in r:
            checks.append(
                (
                    f"CPU <= {TARGET_RATIO}x floor",
                    r["ratio"] <= TARGET_RATIO,
                    f"{r['ratio']:.2f}x",
                )
            )
        for name, ok, detail in checks:
            out.append(f"{r['scenario']}: {'MET  ' if ok else 'UNMET'} {name}: {detail}")
    return out


def comparison(results: list[dict[str, Any]]) -> list[str]:
    """Median CPU per value of each code per scenario, and this code's cost against the
    baseline's."""
    lines = []
    for key in dict.fromkeys(r["scenario"] for r in results):
        medians = {}
        for code in ("this", "baseline"):
            runs = [
                r["bridge_us_per_value"]
                for r in results
                if (r["scenario"], r["code"]) == (key, code)
            ]
            if runs:
                medians[code] = statistics.median(runs)
                shown = ", ".join(f"{x:.1f}" for x in runs)
                n = len(runs)
                lines.append(
                    f"{key} {code}: median {medians[code]:.1f} us/value, {n} runs: {shown}"
                )
        if len(medians) == 2:
            cost = medians["this"] / medians["baseline"] - 1
            lines.append(f"{key}: this code costs {cost:+.1%} CPU per value against the baseline")
    return lines


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM too: the finally below stops every child


def main() -> int:
    signal.signal(signal.SIGTERM, _interrupt)
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--scenarios", default="A,B,C", help="comma-separated keys (default A,B,C)")
    p.add_argument("--warmup", type=float, default=3.0)
    p.add_argument("--measure", type=int, default=10, help="seconds measured per scenario")
    p.add_argument("--refresh", type=float, default=1.0, help="simulator value refresh (s)")
    p.add_argument("--simulators", type=int, default=None, help="simulator processes")
    p.add_argument("--units", type=int, default=None, help="devices per TCP connection")
    p.add_argument(
        "--floors", default="thread,asyncio", help="thread,asyncio,asyncio-noack,asyncio-batch"
    )
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    p.add_argument("--keep", action="store_true", help="keep the work dir (configs, logs)")
    p.add_argument("--profile", type=Path, default=None, help="py-spy the bridge into this dir")
    p.add_argument(
        "--quiet-wait",
        type=float,
        default=0.0,
        help="before each scenario, wait up to this many seconds for other jobs to go quiet",
    )
    p.add_argument("--qos", type=int, default=0, choices=(0, 1, 2), help="the bridge's mqtt.qos")
    p.add_argument("--baseline", type=Path, default=None, help="also run the bridge from DIR")
    p.add_argument("--repeat", type=int, default=1, help="runs per scenario (and per code)")
    args = p.parse_args()
    if args.measure < 3:
        p.error("--measure: at least 3 seconds (each register's grid is found from its reads)")
    args.floors = [m for m in args.floors.split(",") if m]
    chosen = {k.strip().upper() for k in args.scenarios.split(",")}
    scenarios = [s for s in SCENARIOS if s.key in chosen]
    if not scenarios:
        p.error(f"no such scenario: {args.scenarios}")
    if args.simulators:
        scenarios = [dataclasses.replace(s, simulators=args.simulators) for s in scenarios]
    if args.units:
        scenarios = [dataclasses.replace(s, units=args.units) for s in scenarios]
    scenarios = [dataclasses.replace(s, qos=args.qos) for s in scenarios]
    codes = [("this", ROOT)] + ([("baseline", args.baseline.resolve())] if args.baseline else [])
    for tool in ("mosquitto_sub", "mosquitto_pub"):
        if shutil.which(tool) is None:
            print(
                f"error: {tool} is not installed (apt-get install mosquitto-clients)",
                file=sys.stderr,
            )
            return 1

    info = machine()
    progress(
        f"machine: {info['nproc']} CPUs, {info['cpu']}, {info['memory']}; "
        f"python {sys.version.split()[0]}"
    )
    workdir = Path(tempfile.mkdtemp(prefix="bench-"))
    procs = Procs()
    results: list[dict[str, Any]] = []
    failed = False
    try:
        broker, mqtt_port = start_broker(procs, workdir)
        arrivals = Arrivals(procs, mqtt_port, workdir / "mosquitto_sub.log")
        wait_subscribed(arrivals, mqtt_port)
        progress(f"mosquitto on port {mqtt_port}, counter subscribed; work dir {workdir}")
        for s in scenarios:
            for n in range(args.repeat):
                for name, code in codes if n % 2 == 0 else codes[::-1]:
                    progress(f"run {n + 1}/{args.repeat} of {s.key}, code: {name} ({code})")
                    r = run_scenario(s, args, procs, workdir, broker, mqtt_port, arrivals, code)
                    results.append({**r, "code": name})
                    broker.check_alive()
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        failed = True
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        failed = True
    finally:
        procs.close()
        if failed or args.keep:
            print(f"configs and logs kept in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    if failed:
        return 1

    print()
    print(table(results))
    print()
    for line in verdicts(results):
        print(line)
    if args.baseline or args.repeat > 1:
        print()
        for line in comparison(results):
            print(line)
    progress("done")
    if args.json:
        payload = {
            "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "machine": info,
            "python": sys.version.split()[0],
            "args": {k: v for k, v in vars(args).items() if k != "json"},
            "results": results,
        }
        args.json.write_text(json.dumps(payload, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
