"""Memory of the status page's history at 20,000 registers (README "Status page" figure).

Fills 20,000 `History` rings past their bound (metrics.history = 120) and reports what
tracemalloc sees: rings alone, rings sharing their timestamps 20 at a time (one read's, as
the board keeps them), and a deque of (ts, value) tuples for comparison.
Run: .venv/bin/python bench/page_history_memory.py
"""

from __future__ import annotations

import collections
import tracemalloc

from modbus_mqtt_bridge.bridge.history import History, Stamps

REGISTERS, BOUND, EXTRA = 20_000, 120, 30
T0 = 1_700_000_000_000


def measure_rings() -> int:
    tracemalloc.start()
    rings = [History(BOUND) for _ in range(REGISTERS)]
    for t in range(BOUND + EXTRA):
        for i, ring in enumerate(rings):
            ring.add(T0 + t * 1000, 230.0 + i * 0.001 + t * 0.01)
    used = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert all(len(ring) == BOUND for ring in rings)
    return used


def measure_shared_rings(per_read: int = 20) -> int:
    """As the board keeps them: the rings of one read's `per_read` registers share their
    timestamps (scenario D: 20 registers a request)."""
    tracemalloc.start()
    groups = [Stamps(BOUND, per_read) for _ in range(REGISTERS // per_read)]
    rings = [History(BOUND, groups[i // per_read]) for i in range(REGISTERS)]
    for t in range(BOUND + EXTRA):
        for i, ring in enumerate(rings):
            ring.put(230.0 + i * 0.001 + t * 0.01)
        for stamps in groups:
            stamps.push(T0 + t * 1000)
    used = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert all(len(ring) == BOUND for ring in rings)
    return used


def measure_deques() -> int:
    tracemalloc.start()
    deques = [collections.deque[tuple[int, float]](maxlen=BOUND) for _ in range(REGISTERS)]
    for t in range(BOUND + EXTRA):
        for i, d in enumerate(deques):
            d.append((T0 + t * 1000, 230.0 + i * 0.001 + t * 0.01))
    used = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return used


def main() -> None:
    for name, used in (
        ("History rings", measure_rings()),
        ("rings, 20 a read", measure_shared_rings()),
        ("deque of tuples", measure_deques()),
    ):
        per = used / REGISTERS / BOUND
        print(f"{name:16} {used / 1e6:7.1f} MB  ({per:5.1f} B a reading)")


if __name__ == "__main__":
    main()
