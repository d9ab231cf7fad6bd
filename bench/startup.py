"""Start-up benchmark: load and plan a 20,000-register config (issue 16: under 1 s).

    .venv/bin/python bench/startup.py [--runs 3] [--compare main] [--json OUT]

Writes scenario C's config (10 devices x 2,000 float32 registers, bench/scenarios.py) and
times `load_config` + `build_plan` in a fresh interpreter per run (what `run`, `validate` and
`simulate` pay before their first read), as wall time and as CPU time. `--compare REV`
times the same file with the package as of git revision REV in the same run (exported with
`git archive` into a temp dir), so the before/after ratio is taken under the same load.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scenarios import Scenario, bridge_yaml

ROOT = Path(__file__).resolve().parents[1]
TARGET_S = 1.0
SCENARIO = Scenario("C", 10, 2000)
_TIMER = """
import sys, time, json
t0, c0 = time.perf_counter(), time.process_time()
from modbus_mqtt_bridge.config.load import load_config
from modbus_mqtt_bridge.plan import build_plan
t1, c1 = time.perf_counter(), time.process_time()
plan = build_plan(load_config(sys.argv[1], env={}))
t2, c2 = time.perf_counter(), time.process_time()
print(json.dumps({"wall_s": t2 - t1, "cpu_s": c2 - c1, "import_s": t1 - t0,
                  "requests": len(plan.requests), "values": plan.value_count}))
"""


def time_once(config: Path, source: Path) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(source)}
    out = subprocess.run(
        [sys.executable, "-c", _TIMER, str(config)],
        env=env,
        cwd=source,
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, float] = json.loads(out.stdout)
    return result


def export(rev: str, into: Path) -> Path:
    """The package as of `rev`, unpacked into `into` (no install needed: PYTHONPATH)."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev, "modbus_mqtt_bridge"],
        capture_output=True,
        check=True,
    )
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into


def measure(runs: int, compare: str | None) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="startup-bench-") as tmp:
        work = Path(tmp)
        config = work / "bridge-C.yaml"
        config.write_text(bridge_yaml(SCENARIO, 1883, [15020 + i for i in range(10)]))
        sources = {"this": ROOT}
        if compare:
            (work / "baseline").mkdir()
            sources[compare] = export(compare, work / "baseline")
        samples: dict[str, list[dict[str, float]]] = {name: [] for name in sources}
        for _ in range(runs):  # interleaved, so both see the same machine
            for name, source in sources.items():
                samples[name].append(time_once(config, source))
    result: dict[str, object] = {"registers": SCENARIO.values, "runs": runs}
    for name, rows in samples.items():
        result[name] = {
            "wall_s": statistics.median(r["wall_s"] for r in rows),
            "cpu_s": statistics.median(r["cpu_s"] for r in rows),
            "all_wall_s": [round(r["wall_s"], 3) for r in rows],
        }
    return result


def main() -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--compare", default=None, help="also time this git revision (e.g. main)")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    result = measure(args.runs, args.compare)
    this = result["this"]
    assert isinstance(this, dict)
    line = f"start-up, load + plan {SCENARIO.values:,} registers: median {this['wall_s']:.2f} s"
    line += f" wall, {this['cpu_s']:.2f} s CPU (runs {this['all_wall_s']})"
    if args.compare:
        base = result[args.compare]
        assert isinstance(base, dict)
        line += f"; {args.compare}: {base['wall_s']:.2f} s wall, {base['cpu_s']:.2f} s CPU"
    verdict = "met" if this["wall_s"] < TARGET_S else "not met"
    print(f"{line}; target < {TARGET_S:.0f} s: {verdict}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
