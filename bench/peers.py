"""Benchmark: the bridge's CPU per value against modbus4mqtt's, same map, same run (issue 16).

    .venv/bin/python bench/peers.py [--repeat 3] [--measure 10] [--json F]

modbus4mqtt (PyPI, 0.7.1) needs pymodbus < 3 and paho-mqtt < 2, so it gets its own venv
under ~/.cache/modbus-mqtt-bridge-bench/peers/ (outside the tree; reused while its pins are
unchanged). When it cannot be installed the bench says why and exits 0 with
`{"skipped": reason}` in --json, so `make bench` shows the row as skipped.

Both run scenario A's map against the project's simulator (one process serving 10 ports)
and one Mosquitto, counted by the same `mosquitto_sub`: 10 devices x 100 values (200
holding registers each), polled every second, one topic per value, QoS 0, no retain.
modbus4mqtt runs one process per device (its config holds one host), so 10 processes,
whose CPU is summed. The bridge is `bench/run.py`'s run (`run_scenario`, no floor); the two
alternate, `--repeat` runs each, and the medians are compared.

How modbus4mqtt is configured to do the same work:
- `type: uint32` at the float32's address: it has no float type; the same two registers
  are read and published (as the integer of the float's bits).
- `pub_only_on_change: false`: by default it publishes a value only when it changed.
- `update_rate`: it sleeps that long *after* each poll, and its poll sleeps 50 ms after each
  read (`DEFAULT_READ_SLEEP_S`), so 1 s minus those sleeps gives about one poll a second.
- `mqtt_topic_prefix bench/dNNN/` and `pub_topic rNNNN`: the bridge's topics exactly.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import json
import math
import os
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import venv
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import run
from arrivals import Arrivals, window_counts
from procs import BenchError, Child, Procs, free_ports, machine, port_open, wait_for
from scenarios import (
    INTERVAL_S,
    SCENARIOS,
    SITE,
    Scenario,
    device_name,
    register_name,
    write_configs,
)

CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
VENVS = CACHE / "modbus-mqtt-bridge-bench" / "peers"
TARGET_RATIO = 0.5
PIP_TIMEOUT_S = 600


@dataclass(frozen=True)
class Peer:
    name: str
    pins: tuple[str, ...]  # pip requirements, installed together into the peer's venv
    script: str  # console script in the venv's bin/
    check: str  # a Python import that must work in the venv
    # argv of each process for (scenario, work dir, MQTT port, Modbus ports, venv bin/)
    processes: Callable[[Scenario, Path, int, list[int], Path], list[list[str]]]
    topic: Callable[[int, int], str]  # (device i, value j) -> the topic it publishes on
    raw: Callable[[str], bytes]  # payload -> the value's 4 bytes, as on the wire


# -- modbus4mqtt --------------------------------------------------------------------------

M4M_READ_SLEEP_S = 0.05  # modbus_interface.DEFAULT_READ_SLEEP_S: slept after every read
M4M_BATCH = 100  # modbus_interface.DEFAULT_SCAN_BATCHING: reads aligned blocks of 100


def m4m_reads(registers: int) -> int:
    """Reads per poll: blocks of 100 addresses, aligned, covering 2 x registers words."""
    return math.ceil(2 * registers / M4M_BATCH)


def m4m_yaml(s: Scenario, port: int) -> str:
    update = INTERVAL_S - m4m_reads(s.registers) * M4M_READ_SLEEP_S
    lines = [
        "ip: 127.0.0.1",
        f"port: {port}",
        f"update_rate: {update:g}",
        "device_address: 1",
        "registers:",
    ]
    # protocol address 2j is Modicon 40001 + 2j, where the simulator serves register j
    lines += [
        f"  - {{pub_topic: {register_name(j)}, address: {2 * j}, type: uint32, "
        "pub_only_on_change: false}"
        for j in range(s.registers)
    ]
    return "\n".join(lines) + "\n"


def m4m_processes(
    s: Scenario, workdir: Path, mqtt_port: int, modbus_ports: list[int], bindir: Path
) -> list[list[str]]:
    argvs = []
    for i, port in enumerate(modbus_ports):
        cfg = workdir / f"modbus4mqtt-{device_name(i)}.yaml"
        cfg.write_text(m4m_yaml(s, port))
        argvs.append(
            [str(bindir / "modbus4mqtt"), "--hostname", "127.0.0.1", "--port", str(mqtt_port),
             "--config", str(cfg), "--mqtt_topic_prefix", f"{SITE}/{device_name(i)}/"]
        )  # fmt: skip
    return argvs


MODBUS4MQTT = Peer(
    name="modbus4mqtt",
    # its own requirements: pymodbus < 3, paho-mqtt < 2; the newest of each that fit
    pins=("modbus4mqtt==0.7.1", "pymodbus==2.5.3", "paho-mqtt==1.6.1"),
    script="modbus4mqtt",
    check="import modbus4mqtt.modbus4mqtt",
    processes=m4m_processes,
    # the bridge's topics exactly (SPEC: {site}/{device}/{register})
    topic=lambda i, j: f"{SITE}/{device_name(i)}/{register_name(j)}",
    raw=lambda payload: int(payload).to_bytes(4, "big"),  # the uint32 of the two registers
)


# -- spicierModbus2mqtt (PyPI: modbus2mqtt) -----------------------------------------------

M2M_MAX_POLL = 100  # registers per poller: it refuses more than 123; 50 float32 each
M2M_RATE_S = float(INTERVAL_S)  # a poller is due `rate` s after its last poll ended


def m2m_csv(s: Scenario, device: str, rate: float) -> str:
    """Its CSV: pollers of whole float32s (rate in s), then the references they hold."""
    rows = ["type,topic,col2,col3,col4,col5,col6"]
    per_poll = M2M_MAX_POLL // 2
    for first in range(0, s.registers, per_poll):
        n = min(per_poll, s.registers - first)
        rows.append(f"poller,{device},1,{2 * first},{2 * n},holding_register,{rate:g}")
        # its "float32LE" is the high word first (val[0] << 16 | val[1]): the simulator's order
        rows += [
            f"reference,{register_name(j)},{2 * j},r,float32LE," for j in range(first, first + n)
        ]
    return "\n".join(rows) + "\n"


def m2m_processes(
    s: Scenario, workdir: Path, mqtt_port: int, modbus_ports: list[int], bindir: Path
) -> list[list[str]]:
    argvs = []
    for i, port in enumerate(modbus_ports):
        cfg = workdir / f"spicier-{device_name(i)}.csv"
        cfg.write_text(m2m_csv(s, device_name(i), M2M_RATE_S))
        argvs.append(
            [str(bindir / "modbus2mqtt"), "--tcp", "127.0.0.1", "--tcp-port", str(port),
             "--mqtt-host", "127.0.0.1", "--mqtt-port", str(mqtt_port), "--mqtt-topic",
             f"{SITE}/", "--config", str(cfg), "--always-publish", "--verbosity", "1"]
        )  # fmt: skip
    return argvs


SPICIER = Peer(
    name="spicierModbus2mqtt",
    # unpinned requirements; its calls pass `slave=`, which pymodbus 3.10 renamed
    pins=("modbus2mqtt==0.73", "pymodbus==3.9.2", "paho-mqtt==2.2.0"),
    script="modbus2mqtt",
    check="import modbus2mqtt.modbus2mqtt",
    processes=m2m_processes,
    topic=lambda i, j: f"{SITE}/{device_name(i)}/state/{register_name(j)}",
    raw=lambda payload: struct.pack(">f", float(payload)),  # str() of the float32
)
PEERS = {p.name: p for p in (MODBUS4MQTT, SPICIER)}


# -- the peer's venv ----------------------------------------------------------------------


def ensure_venv(peer: Peer) -> Path | str:
    """The peer's venv bin/ (created and installed once per set of pins), or why not."""
    key = hashlib.sha256("\n".join(peer.pins).encode()).hexdigest()[:10]
    home = VENVS / f"{peer.name}-{key}"
    stamp = home / ".installed"
    if stamp.exists() and (home / "bin" / peer.script).exists():
        return home / "bin"
    shutil.rmtree(home, ignore_errors=True)
    run.progress(f"installing {' '.join(peer.pins)} into {home}")
    reason = _install(peer, home)
    if reason is not None:
        shutil.rmtree(home, ignore_errors=True)  # a half-made venv would pass for installed
        return reason
    stamp.write_text("\n".join(peer.pins) + "\n")
    return home / "bin"


def _install(peer: Peer, home: Path) -> str | None:
    python = str(home / "bin" / "python")
    try:
        venv.EnvBuilder(with_pip=True, clear=True).create(home)
        done = subprocess.run(
            [python, "-m", "pip", "install", "--quiet", *peer.pins],
            capture_output=True, text=True, timeout=PIP_TIMEOUT_S, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            return f"pip install {' '.join(peer.pins)} failed: {_last_error(done.stderr)}"
        done = subprocess.run(
            [python, "-c", peer.check], capture_output=True, text=True, timeout=60, check=False
        )
        if done.returncode != 0:
            return f"{peer.name} does not import: {_last_error(done.stderr)}"
    except (OSError, subprocess.SubprocessError) as exc:
        return f"cannot create its venv in {home}: {exc}"
    return None


def _last_error(stderr: str) -> str:
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("ERROR")]
    return (errors or lines or ["(no message)"])[-1]


# -- one run of the peer ------------------------------------------------------------------


def run_peer(
    peer: Peer,
    bindir: Path,
    s: Scenario,
    args: argparse.Namespace,
    procs: Procs,
    workdir: Path,
    broker: Child,
    mqtt_port: int,
    arrivals: Arrivals,
) -> dict[str, Any]:
    """The peer on the same map, simulator and broker; CPU of all its processes per value."""
    ports = free_ports(s.devices)
    _, sim_cfgs = write_configs(s, workdir, mqtt_port, ports)
    sims = start_simulators(sim_cfgs, procs, workdir, peer.name, args.refresh)
    peers: list[Child] = []
    try:
        wait_for(lambda: all(port_open(p) for p in ports), 90, "the simulator", sims, every=0.2)
        run.progress(f"  {peer.name}: starting {s.devices} process(es)")
        started = time.monotonic()
        for i, argv in enumerate(peer.processes(s, workdir, mqtt_port, ports, bindir)):
            # spread over the interval, as the bridge spreads its connections' phases: the
            # processes' bursts do not coincide, so a window's edges cut no more than one
            # device's burst and its count is not whole seconds off
            time.sleep(max(0.0, started + i * INTERVAL_S / s.devices - time.monotonic()))
            log = workdir / f"{peer.name}-{device_name(i)}.log"
            peers.append(procs.spawn(f"{peer.name} {i + 1}", argv, log, cwd=workdir))
        # running = every process publishing: a whole cycle's worth arrived within 1.5 s
        wait_for(
            lambda: (
                arrivals.values_between(time.monotonic() - 1.5, time.monotonic())[0] >= s.values
            ),
            90,
            f"{peer.name} to publish {s.values:,} values within 1.5 s",
            [*peers, *sims],
            every=0.2,
        )
        startup = time.monotonic() - started
        run.progress(f"  all publishing after {startup:.1f}s; warming up {args.warmup:g}s")
        time.sleep(args.warmup)
        mine = [f"p{i}" for i in range(len(peers))]
        watched = {
            **dict(zip(mine, peers, strict=True)),
            **{f"sim{k + 1}": c for k, c in enumerate(sims)},
            "mosquitto": broker,
            "mosquitto_sub": arrivals.child,
        }
        sampler = run.CpuSampler(watched).start()
        busy0, own0 = run.machine_busy_s(), run._own_cpu()
        t0 = time.monotonic()
        time.sleep(args.measure)
        t1 = time.monotonic()
        busy1, own1 = run.machine_busy_s(), run._own_cpu()
        sampler.stop()
        for c in peers:
            c.check_alive()
    finally:
        for c in peers:
            procs.stop(c)
        for sim in sims:
            procs.stop(sim)
    time.sleep(0.3)  # what was in flight at t1 reaches the counter (counted by arrival time)
    values, value_bytes = arrivals.values_between(t0, t1)
    secs = t1 - t0
    cpu = sum(sampler.used(k, t0, t1) for k in mine)
    measured = sum(sampler.used(k, t0, t1) for k in watched)
    foreign = (busy1 - busy0 - measured - (own1 - own0)) / secs
    counts = window_counts(_arrival_times(arrivals, t0, t1), t0, int(secs))
    return {
        "peer": peer.name,
        "processes": len(peers),
        "startup_s": round(startup, 2),
        "published": values,
        "values_per_s": values / secs,
        "completeness_min": min(counts) / s.values,
        "completeness_mean": values / secs / s.values,
        "payload_bytes": value_bytes / values if values else 0.0,
        "cpu_s": cpu,
        "cpu_share": round(cpu / secs, 3),
        "us_per_value": cpu / values * 1e6 if values else math.inf,
        "foreign_cpu_cores": round(foreign, 2),
    }


def start_simulators(
    cfgs: list[Path], procs: Procs, workdir: Path, tag: str, refresh: float
) -> list[Child]:
    """The project's simulator, started as bench/run.py starts it: one process per config."""
    return [
        procs.spawn(
            f"simulator {k + 1}",
            [
                run.PY,
                "-m",
                "modbus_mqtt_bridge",
                "simulate",
                "-c",
                str(cfg),
                "--refresh",
                str(refresh),
            ],
            workdir / f"sim-{tag}-{k + 1}.log",
            cwd=run.ROOT,
            env=run.CHILD_ENV,
        )
        for k, cfg in enumerate(cfgs)
    ]


def _arrival_times(arrivals: Arrivals, t0: float, t1: float) -> list[float]:
    out: list[float] = []
    for c in arrivals.between(t0, t1):
        out.extend([c.t] * c.values)
    return out


def spot_check(peer: Peer, bindir: Path, s: Scenario, procs: Procs, workdir: Path) -> str:
    """One device of the peer: every value arrives on its topic, equal to the simulator's.

    Its own broker, so these topics never reach the counter of the measured runs; the
    simulator's values stay put (no refresh) and are read here with pymodbus to compare.
    """
    spot = workdir / "spot"
    broker, port = run.start_broker(procs, spot)
    ports = free_ports(s.devices)
    _, sim_cfgs = write_configs(s, spot, port, ports)
    (sim,) = start_simulators(sim_cfgs[:1], procs, spot, "spot", 1e6)
    child = None
    try:
        wait_for(lambda: port_open(ports[0]), 90, "the simulator", [sim], every=0.2)
        want = simulator_values(ports[0], s.registers)
        argv = peer.processes(s, spot, port, ports, bindir)[0]
        child = procs.spawn(f"{peer.name} (spot check)", argv, spot / "peer.log")
        topics = {peer.topic(0, j): j for j in range(s.registers)}
        filters = [
            x for f in sorted({t.rsplit("/", 1)[0] + "/+" for t in topics}) for x in ("-t", f)
        ]
        got = subprocess.run(
            ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), *filters, "-v",
             "-C", str(2 * s.registers + 5), "-W", "20"],
            capture_output=True, text=True, timeout=30, check=False,
        ).stdout  # fmt: skip
        child.check_alive()
    finally:
        for c in (child, sim, broker):
            if c is not None:
                procs.stop(c)
    seen: dict[int, bytes] = {}
    for line in got.splitlines():
        topic, _, payload = line.partition(" ")
        if topic in topics:
            with contextlib.suppress(ValueError, OverflowError):
                seen[topics[topic]] = peer.raw(payload)
    missing = [peer.topic(0, j) for j in range(s.registers) if j not in seen]
    if missing:
        raise BenchError(
            f"{peer.name} spot check: {len(missing)} of {s.registers} topics did not arrive "
            f"(e.g. {missing[0]}); its log:\n{child.log_tail() if child else ''}"
        )
    wrong = [j for j in range(s.registers) if seen[j] != want[j]]
    if wrong:
        j = wrong[0]
        raise BenchError(
            f"{peer.name} spot check: {len(wrong)} values differ from the simulator's, e.g. "
            f"{peer.topic(0, j)}: {seen[j].hex()} instead of {want[j].hex()}"
        )
    first = struct.unpack(">f", want[0])[0]
    return (
        f"{s.registers} of {s.registers} topics arrived, every value equal to the "
        f"simulator's float32 (e.g. {peer.topic(0, 0)} = {first:.6g})"
    )


def simulator_values(port: int, registers: int) -> list[bytes]:
    """The 4 bytes of each float32 the simulator serves (registers 40001, 40003, ...)."""
    from pymodbus.client import ModbusTcpClient  # noqa: PLC0415

    client = ModbusTcpClient("127.0.0.1", port=port, timeout=3)
    try:
        if not client.connect():
            raise BenchError(f"spot check: cannot connect to the simulator on port {port}")
        words: list[int] = []
        for start in range(0, 2 * registers, 100):
            reply = client.read_holding_registers(
                start, count=min(100, 2 * registers - start), device_id=1
            )
            if reply.isError():
                raise BenchError(f"spot check: the simulator answered {reply}")
            words += reply.registers
    finally:
        client.close()
    data = b"".join(w.to_bytes(2, "big") for w in words)
    return [data[4 * j : 4 * j + 4] for j in range(registers)]


# -- the comparison -----------------------------------------------------------------------


def bridge_args(args: argparse.Namespace) -> argparse.Namespace:
    """What run.run_scenario reads from its command line: no floor, no profile."""
    return argparse.Namespace(
        warmup=args.warmup,
        measure=args.measure,
        refresh=args.refresh,
        quiet_wait=0.0,
        profile=None,
        floors=[],
    )


def stats(runs: list[dict[str, Any]]) -> dict[str, Any]:
    us = [r["us_per_value"] for r in runs]
    return {
        "median_us_per_value": statistics.median(us),
        "us_per_value": [round(x, 2) for x in us],
        "values_per_s": [round(r["values_per_s"]) for r in runs],
        "completeness_min": [round(r["completeness_min"], 3) for r in runs],
        "cpu_share": [r["cpu_share"] for r in runs],
        "foreign_cpu_cores": [r["foreign_cpu_cores"] for r in runs],
        "payload_bytes": statistics.median(r["payload_bytes"] for r in runs),
    }


def rotations(names: list[str], n: int) -> list[str]:
    """Run n's order: each takes every place in turn, so none always follows the same one."""
    k = n % len(names)
    return names[k:] + names[:k]


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def measure_all(
    s: Scenario,
    args: argparse.Namespace,
    bindirs: dict[str, Path],
    report: dict[str, dict[str, Any]],
    procs: Procs,
    workdir: Path,
) -> list[dict[str, Any]]:
    """Spot-check each peer, then run the bridge and each peer `--repeat` times, rotating."""
    results: list[dict[str, Any]] = []
    for name, bindir in bindirs.items():
        report[name]["spot_check"] = spot_check(PEERS[name], bindir, s, procs, workdir)
        run.progress(f"{name} spot check: {report[name]['spot_check']}")
    broker, mqtt_port = run.start_broker(procs, workdir)
    arrivals = Arrivals(procs, mqtt_port, workdir / "mosquitto_sub.log")
    run.wait_subscribed(arrivals, mqtt_port)
    run.progress(f"mosquitto on port {mqtt_port}, counter subscribed; work dir {workdir}")
    for n in range(args.repeat):
        for who in rotations(["bridge", *bindirs], n):
            run.progress(f"run {n + 1}/{args.repeat}: {who} on {s.label}")
            if who == "bridge":
                r = run.run_scenario(
                    s, bridge_args(args), procs, workdir, broker, mqtt_port, arrivals
                )
                r["us_per_value"] = r["bridge_us_per_value"]
                r["cpu_share"] = r["cpu_share"]["bridge"]
            else:
                peer = PEERS[who]
                r = run_peer(
                    peer, bindirs[who], s, args, procs, workdir, broker, mqtt_port, arrivals
                )
                run.progress(
                    f"  {who}: {r['values_per_s']:,.0f} values/s, "
                    f"{r['us_per_value']:.1f} us/value ({r['cpu_share']:.0%} of a core); "
                    f"other jobs {r['foreign_cpu_cores']:.2f} cores"
                )
            results.append({**r, "who": who, "run": n + 1})
            broker.check_alive()
    return results


def main() -> int:
    signal.signal(signal.SIGTERM, _interrupt)
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--peers", default=",".join(PEERS), help=f"comma-separated, of {list(PEERS)}")
    p.add_argument("--scenario", default="A", help="a key of bench/scenarios.py (default A)")
    p.add_argument("--repeat", type=int, default=3, help="runs of each, in rotating order")
    p.add_argument("--warmup", type=float, default=3.0)
    p.add_argument("--measure", type=int, default=10, help="seconds measured per run")
    p.add_argument("--refresh", type=float, default=1.0, help="simulator value refresh (s)")
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    p.add_argument("--keep", action="store_true", help="keep the work dir (configs, logs)")
    args = p.parse_args()
    wanted = [x for x in args.peers.split(",") if x]
    unknown = [x for x in wanted if x not in PEERS]
    if unknown or not wanted:
        p.error(f"no such peer: {', '.join(unknown) or '(none)'}; known: {', '.join(PEERS)}")
    chosen = [s for s in SCENARIOS if s.key == args.scenario.upper()]
    if not chosen:
        p.error(f"no such scenario: {args.scenario}")
    s = chosen[0]

    report: dict[str, dict[str, Any]] = {}
    bindirs: dict[str, Path] = {}
    for name in wanted:
        got = ensure_venv(PEERS[name])
        if isinstance(got, str):
            run.progress(f"skipped: {name}: {got}")
            report[name] = {"skipped": got}
        else:
            bindirs[name] = got
            report[name] = {"pins": list(PEERS[name].pins)}
    payload: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "scenario": s.key,
        "target_peer": MODBUS4MQTT.name,
        "target_ratio": TARGET_RATIO,
        "loadavg_before": os.getloadavg(),
        "peers": report,
    }
    if not bindirs:
        if args.json:
            args.json.write_text(json.dumps(payload, indent=1))
        return 0

    workdir = Path(tempfile.mkdtemp(prefix="bench-peers-"))
    (workdir / "spot").mkdir()
    procs = Procs()
    results: list[dict[str, Any]] = []
    failed = False
    try:
        results = measure_all(s, args, bindirs, report, procs, workdir)
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

    bridge = payload["bridge"] = stats([r for r in results if r["who"] == "bridge"])
    for name in bindirs:
        report[name].update(stats([r for r in results if r["who"] == name]))
        report[name]["ratio"] = bridge["median_us_per_value"] / report[name]["median_us_per_value"]
    print()
    print(f"{s.label}, {args.repeat} runs each, {args.measure} s measured per run")
    for who, x in ((f"bridge ({run.ROOT.name})", bridge), *((n, report[n]) for n in bindirs)):
        print(
            f"{who}: median {x['median_us_per_value']:.1f} us/value (runs "
            f"{', '.join(f'{u:.1f}' for u in x['us_per_value'])}); values/s "
            f"{', '.join(f'{v:,}' for v in x['values_per_s'])}; payload "
            f"{x['payload_bytes']:.0f} B; other jobs (cores) "
            f"{', '.join(f'{c:.2f}' for c in x['foreign_cpu_cores'])}"
        )
    for name in wanted:
        x = report[name]
        if "skipped" in x:
            print(f"SKIP  {name}: {x['skipped']}")
        elif name == MODBUS4MQTT.name:
            verdict = "MET  " if x["ratio"] <= TARGET_RATIO else "UNMET"
            print(f"{verdict} bridge CPU/value <= {TARGET_RATIO} x {name}: {x['ratio']:.2f} x")
        else:
            print(f"INFO  bridge CPU/value = {x['ratio']:.2f} x {name}'s")
    load = payload["loadavg_before"]
    print(f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    if args.json:
        payload["results"] = results
        args.json.write_text(json.dumps(payload, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
