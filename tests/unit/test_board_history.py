"""The page's per-register history ring: bounded, oldest first, `since` filters, bools kept."""

from __future__ import annotations

from modbus_mqtt_bridge.bridge.history import History


def test_keeps_only_the_last_readings_oldest_first() -> None:
    ring = History(3)
    for t in range(10):
        ring.add(1000 + t, float(t))
        assert len(ring) == min(t + 1, 3)
    assert list(ring.since()) == [(1007, 7.0), (1008, 8.0), (1009, 9.0)]


def test_since_returns_only_newer_readings() -> None:
    ring = History(5)
    for t in range(7):
        ring.add(1000 + t, t)
    assert [ts for ts, _ in ring.since(1004)] == [1005, 1006]
    assert list(ring.since(2000)) == []


def test_booleans_come_back_as_booleans_and_strings_are_not_kept() -> None:
    ring = History(4)
    ring.add(1, True)
    ring.add(2, False)
    assert list(ring.since()) == [(1, True), (2, False)]
    text = History(4)
    text.add(1, "SN-123")
    assert len(text) == 0
