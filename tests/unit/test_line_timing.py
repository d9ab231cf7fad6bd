"""The serial line's silences: never shorter than asked (the spec's t3.5 is a minimum)."""

from __future__ import annotations

import asyncio
import time

import pytest

from modbus_mqtt_bridge.modbus.line import Line, sleep_until


@pytest.mark.parametrize("delay_s", [0.0, 0.0003, 0.0013, 0.00175, 0.004])
def test_sleep_until_never_wakes_before_the_deadline(delay_s: float) -> None:
    async def late_by() -> list[float]:
        out = []
        for _ in range(20):
            deadline = time.monotonic() + delay_s
            await sleep_until(deadline)
            out.append(time.monotonic() - deadline)
        return out

    assert min(asyncio.run(late_by())) >= 0


def test_the_gap_counts_from_the_answers_last_byte_and_from_now_after_a_failure() -> None:
    line = Line(gap_s=10.0, settle_s=0.0)
    line.trace(True, b"request")
    before = time.monotonic()
    line.trace(False, b"answer")
    answered = time.monotonic()
    time.sleep(0.01)  # the worker's own processing after the answer
    line.close_exchange(failed=False)
    assert before + 10.0 <= line._quiet_until <= answered + 10.0
    line = Line(gap_s=10.0, settle_s=0.0)  # (this one's next frame would wait out the 10 s)
    line.trace(True, b"request")
    line.trace(False, b"garbage")
    time.sleep(0.01)
    before = time.monotonic()
    line.close_exchange(failed=True)
    assert line._quiet_until >= before + 10.0


def test_a_frame_handed_over_before_the_silence_is_up_waits_for_it() -> None:
    # wait_turn lets the loop wake up to a millisecond early: the write itself keeps the gap
    line = Line(gap_s=0.003, settle_s=0.0)
    line.trace(True, b"request")
    line.trace(False, b"answer")
    line.close_exchange(failed=False)
    line.trace(True, b"next request")
    assert time.monotonic() >= line._quiet_until
