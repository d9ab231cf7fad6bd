"""Bad registers isolated: a merged read refused with "illegal data address/value" is split.

One undocumented hole in a device's map would otherwise fail every value merged with it.
The refused request is halved until the offending values stand alone (k bad values cost
about 2·k·log2(n) reads, once); the rest is read in the good chunks from then on, and each
bad value is re-probed alone on a slow, capped backoff. When none is bad any more, the
request is read merged again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from ..errors import ModbusExceptionResponse
from ..plan import PlannedValue, ReadRequest

ISOLATE_CODES = frozenset({2, 3})  # illegal data address, illegal data value
REPROBE_FIRST_S = 30.0
REPROBE_MAX_S = 3600.0

Read = Callable[[ReadRequest], Awaitable[list[int]]]


@dataclass
class BadValue:
    planned: PlannedValue
    error: str
    failures: int = 1
    retry_at: float = 0.0


@dataclass
class Split:
    """How one planned request is read while some of its values are refused."""

    good: list[ReadRequest] = field(default_factory=list)
    bad: list[BadValue] = field(default_factory=list)


@dataclass
class Isolation:
    """The outcome of isolating: the split, plus the blocks read on the way (not lost)."""

    split: Split
    blocks: list[tuple[ReadRequest, list[int]]]


def sub_request(request: ReadRequest, values: Sequence[PlannedValue]) -> ReadRequest:
    """A request for just these values of `request`, offsets rebased to its new start."""
    first = min(v.offset for v in values)
    end = max(v.offset + v.register.count for v in values)
    return ReadRequest(
        connection=request.connection,
        device=request.device,
        table=request.table,
        address=request.address + first,
        count=end - first,
        interval_s=request.interval_s,
        values=tuple(PlannedValue(v.register, v.offset - first) for v in values),
    )


def reprobe_delay(failures: int) -> float:
    return float(min(REPROBE_MAX_S, REPROBE_FIRST_S * 2 ** max(0, failures - 1)))


def is_refusal(exc: ModbusExceptionResponse) -> bool:
    return exc.code in ISOLATE_CODES


async def isolate(
    request: ReadRequest, read: Read, refusal: ModbusExceptionResponse, now: float
) -> Isolation:
    """Halve `request` (already refused with `refusal`) until each refused value stands alone.

    Other Modbus errors (timeouts, a dropped link) propagate: the device is failing,
    not one of its registers.
    """
    result = Isolation(Split(), [])

    async def visit(values: Sequence[PlannedValue], known: ModbusExceptionResponse | None) -> None:
        if known is None:
            part = sub_request(request, values)
            try:
                block = await read(part)
            except ModbusExceptionResponse as exc:
                if not is_refusal(exc):
                    raise
                known = exc
            else:
                result.blocks.append((part, block))
                result.split.good.append(part)
                return
        if len(values) == 1:
            bad = BadValue(values[0], f"device answered {known}", 1, now + reprobe_delay(1))
            result.split.bad.append(bad)
            return
        middle = len(values) // 2
        await visit(values[:middle], None)
        await visit(values[middle:], None)

    await visit(request.values, refusal)
    return result
