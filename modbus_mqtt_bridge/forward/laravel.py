"""The Laravel contract of the side-car, pure: reading message in, POST body out, answer -> outcome.

Three jobs that must agree with SPEC 3 and SPEC 5 and nothing else: turn a reading message
into the exact legacy body (plus its Idempotency-Key and ordering key), say which messages
are not readings, and classify every HTTP answer in one table (`classify`).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

from ..mqtt.topics import topic_matches

# Last topic segments that never carry a reading (SPEC 3: `status` and `set` are reserved
# register names, so these cannot clash with a reading topic).
NOT_READING_LAST = frozenset({"status", "set"})

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


@dataclass(frozen=True, slots=True)
class Item:
    """One reading ready for Laravel: its exact body and the keys delivery needs."""

    key: str  # "device_id|parameter": delivery order is kept per key
    body: str  # the JSON body of POST /api/readings, exactly the legacy payload
    idempotency_key: str
    ts_ms: int  # when the value was read, for the delivery latency metric


@dataclass(frozen=True, slots=True)
class Ignored:
    """A message that is not a reading for Laravel; acked and counted, never delivered."""

    reason: str  # short and fixed: a metric label
    detail: str


def parse_message(
    topic: str, payload: bytes, retain: bool, exclude: Sequence[str] = ()
) -> Item | Ignored:
    """A reading message (SPEC 3) as an Item, or why it is not one."""
    if not_reading_topic(topic):
        return Ignored("topic", f"{topic} is a status or command topic")
    if any(topic_matches(pattern, topic) for pattern in exclude):
        return Ignored("excluded", f"{topic} matches forward.exclude")
    if retain:
        # Sent because we (re)subscribed, not because it was published now: a repeat of a
        # reading the broker already handed to our session, or one from before it existed.
        return Ignored("retained", f"retained message on {topic}")
    try:
        data = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return Ignored("json", f"{topic}: payload is not JSON")
    if not isinstance(data, dict):
        return Ignored("json", f"{topic}: payload is not a JSON object")
    return reading_item(topic, data)


def not_reading_topic(topic: str) -> bool:
    """Status, command and command-result topics ({site}/{device}/{register}/set/result)."""
    parts = topic.split("/")
    return parts[-1] in NOT_READING_LAST or parts[-2:] == ["set", "result"]


def reading_item(topic: str, data: Mapping[str, object]) -> Item | Ignored:
    """The legacy body for one reading JSON object."""
    device_id, parameter, ts = data.get("device_id"), data.get("parameter"), data.get("ts")
    if device_id is None and "parameter" in data:
        return Ignored("no_device_id", f"{topic}: the device has no Laravel id")
    if not isinstance(device_id, int) or isinstance(device_id, bool):
        return Ignored("fields", f"{topic}: no integer device_id (not a reading)")
    if not isinstance(parameter, str) or not parameter:
        return Ignored("fields", f"{topic}: no parameter")
    when = parse_ts(ts)
    if when is None:
        return Ignored("fields", f"{topic}: ts {ts!r} is not an ISO-8601 time")
    value = legacy_value(data.get("value"))
    if value is None:
        return Ignored("value", f"{topic}: value {data.get('value')!r} is not a finite number")
    timestamp = when.strftime("%Y-%m-%dT%H:%M:%SZ")  # what the legacy API takes
    ts_ms = (when - EPOCH) // timedelta(milliseconds=1)
    body = {
        "device_id": device_id,
        "parameter": parameter,
        "value": value,
        "unit": data.get("unit"),
        "timestamp": timestamp,
        "register_address": data.get("register_address"),
        "data_type": data.get("data_type"),
        "description": data.get("description"),
    }
    return Item(
        key=f"{device_id}|{parameter}",
        body=_dumps(body),
        idempotency_key=idempotency_key(device_id, parameter, ts_ms),
        ts_ms=ts_ms,
    )


def parse_ts(ts: object) -> datetime | None:
    """A reading's ts as an aware UTC datetime; a time without offset is taken as UTC."""
    if not isinstance(ts, str):
        return None
    try:
        when = datetime.fromisoformat(ts)
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    try:
        return when.astimezone(UTC)
    except OverflowError:  # "0001-01-01T00:00:00+14:00": before year 1 in UTC
        return None


def legacy_value(value: object) -> int | float | str | None:
    """The value Laravel's `numeric` rule accepts; None when it cannot be a reading.

    Booleans (coils) become 1/0, since Laravel rejects true/false. A string is passed on
    as it is: numeric strings are valid, others are Laravel's to reject (dead letter).
    """
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | str):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    return None


def idempotency_key(device_id: int, parameter: str, ts_ms: int) -> str:
    """Hex SHA-256 of device_id|parameter|ts (SPEC 5), ts the reading's own millisecond time
    as SPEC 3 writes it (2025-07-08T16:00:00.250Z). Not the body's timestamp: that is cut to
    the second, and two readings within one second are two readings, not a redelivery."""
    return hashlib.sha256(f"{device_id}|{parameter}|{ms_text(ts_ms)}".encode()).hexdigest()


def ms_text(ts_ms: int) -> str:
    """A millisecond UTC time in SPEC 3's form, whatever offset the message was written in."""
    when = EPOCH + timedelta(milliseconds=ts_ms)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def batch_body(bodies: Sequence[str]) -> str:
    """`{"readings":[...]}` for POST /api/readings/batch, spliced from stored bodies."""
    return '{"readings":[' + ",".join(bodies) + "]}"


def batch_idempotency_key(keys: Sequence[str]) -> str:
    """A batch's key: the same readings in the same order give the same key."""
    return hashlib.sha256("\n".join(keys).encode()).hexdigest()


# -- outcomes -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Answer:
    """What the API said: status, headers (names lower-case) and body."""

    status: int
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True, slots=True)
class NetworkError:
    """No answer at all: refused, reset, timed out."""

    reason: str


@dataclass(frozen=True, slots=True)
class Done:
    """Stored: remove from the outbox."""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """Rejected for good: move to the dead-letter table with the answer."""

    reason: str


@dataclass(frozen=True, slots=True)
class Pause:
    """The API refuses us (token, endpoint): stop delivering, keep everything, retry slowly."""

    reason: str


@dataclass(frozen=True, slots=True)
class RetryAfter:
    """Try again later: after `seconds` when the API said so, else after a backoff."""

    seconds: float | None
    reason: str


Outcome = Done | DeadLetter | Pause | RetryAfter

PAUSE_STATUSES = frozenset({401, 403, 404, 405, 410})
RETRY_STATUSES = frozenset({408, 409, 425, 429})


def classify(answer: Answer | NetworkError, now_s: float) -> Outcome:
    """The one table of what an answer means (SPEC 5); now_s dates an HTTP-date Retry-After.

    2xx (JSON, or 204) done; 401/403, and 404/405/410 (wrong endpoint), pause: every other
    reading would get the same answer; 3xx, 408, 409, 425, 429, 5xx and no answer retry;
    a non-JSON answer is never taken for a verdict (Laravel answers browsers with HTML)
    and retries; any other 4xx (422 above all) is a dead letter.
    """
    if isinstance(answer, NetworkError):
        return RetryAfter(None, f"no answer: {answer.reason}")
    status = answer.status
    if status in PAUSE_STATUSES:
        return Pause(f"HTTP {status}: {_summary(answer)}")
    if status < 200 or 300 <= status < 400 or status in RETRY_STATUSES or status >= 500:
        return _retry(answer, now_s)
    if status != 204 and not is_json(answer.headers):
        ctype = answer.headers.get("content-type", "no content type")
        return RetryAfter(None, f"HTTP {status} answer is not JSON ({ctype})")
    return Done() if status < 300 else DeadLetter(f"HTTP {status}: {_summary(answer)}")


def _retry(answer: Answer, now_s: float) -> RetryAfter:
    if 300 <= answer.status < 400:
        where = answer.headers.get("location", "?")
        return RetryAfter(None, f"HTTP {answer.status} redirect to {where} (check api_url)")
    seconds = retry_after_s(answer.headers.get("retry-after"), now_s)
    return RetryAfter(seconds, f"HTTP {answer.status}")


def is_json(headers: Mapping[str, str]) -> bool:
    ctype = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    return ctype == "application/json" or ctype.endswith("+json")


def retry_after_s(value: str | None, now_s: float) -> float | None:
    """Retry-After as seconds from now: delay-seconds or an HTTP-date; None if absent/bad."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        return _seconds_until(text, now_s)
    return max(0.0, seconds) if math.isfinite(seconds) else None


def _seconds_until(http_date: str, now_s: float) -> float | None:
    try:
        when = parsedate_to_datetime(http_date)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now_s)


def _summary(answer: Answer, limit: int = 300) -> str:
    """The answer's message for a log line: one line, bounded."""
    text = answer.body.decode("utf-8", "replace")
    text = " ".join(text.split())
    return text[:limit] + ("…" if len(text) > limit else "") if text else "(empty body)"
