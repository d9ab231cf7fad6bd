"""The Laravel contract: reading message -> exact legacy body and key; answer -> outcome."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest

from modbus_mqtt_bridge.forward.laravel import (
    Answer,
    DeadLetter,
    Done,
    Ignored,
    Item,
    NetworkError,
    Pause,
    RetryAfter,
    batch_body,
    classify,
    idempotency_key,
    parse_message,
    retry_after_s,
)

READING = {
    "value": 228.6,
    "unit": "V",
    "ts": "2025-07-08T16:00:00.000Z",
    "device_id": 1,
    "parameter": "Voltage (L-N)",
    "register_address": 40001,
    "data_type": "float",
    "description": "Line to Neutral Voltage",
}
NOW = 1_800_000_000.0


def item(payload: object, topic: str = "plant1/meter1/voltage_ln", retain: bool = False) -> Item:
    parsed = parse_message(topic, json.dumps(payload).encode(), retain)
    assert isinstance(parsed, Item), parsed
    return parsed


def ignored(topic: str, payload: bytes, retain: bool = False) -> str:
    parsed = parse_message(topic, payload, retain)
    assert isinstance(parsed, Ignored), parsed
    return parsed.reason


# -- body -----------------------------------------------------------------------------


def test_body_is_exactly_the_legacy_payload() -> None:
    body = json.loads(item(READING).body)
    assert body == {
        "device_id": 1,
        "parameter": "Voltage (L-N)",
        "value": 228.6,
        "unit": "V",
        "timestamp": "2025-07-08T16:00:00Z",
        "register_address": 40001,
        "data_type": "float",
        "description": "Line to Neutral Voltage",
    }
    assert list(body) == [
        "device_id",
        "parameter",
        "value",
        "unit",
        "timestamp",
        "register_address",
        "data_type",
        "description",
    ]


def test_idempotency_key_is_sha256_of_device_parameter_millisecond_ts() -> None:
    """SPEC 5: device_id|parameter|ts with the reading's own millisecond ts (SPEC 3 form)."""
    expected = hashlib.sha256(b"1|Voltage (L-N)|2025-07-08T16:00:00.250Z").hexdigest()
    got = item({**READING, "ts": "2025-07-08T16:00:00.250Z"})
    assert got.idempotency_key == expected == idempotency_key(1, "Voltage (L-N)", got.ts_ms)
    assert got.key == "1|Voltage (L-N)"
    assert got.ts_ms == 1_751_990_400_250


def test_two_readings_within_one_second_are_two_keys_with_one_body_timestamp() -> None:
    first = item({**READING, "ts": "2025-07-08T16:00:00.000Z"})
    second = item({**READING, "ts": "2025-07-08T16:00:00.500Z"})
    assert first.idempotency_key != second.idempotency_key
    assert json.loads(first.body)["timestamp"] == json.loads(second.body)["timestamp"]


def test_the_same_instant_in_another_offset_is_the_same_key() -> None:
    utc = item({**READING, "ts": "2025-07-08T16:00:00.250Z"})
    cest = item({**READING, "ts": "2025-07-08T18:00:00.250+02:00"})
    assert utc.idempotency_key == cest.idempotency_key


@pytest.mark.parametrize(
    ("pattern", "topic", "matches"),
    [
        ("plant1/+/setpoint", "plant1/meter1/setpoint", True),
        ("plant1/+/setpoint", "plant1/meter1/current", False),
        ("plant1/boiler/+", "plant1/boiler/pump_on", True),
        ("plant1/boiler/#", "plant1/boiler/pump_on", True),
        ("plant1/#", "plant1/meter1/current", True),
        ("plant1/boiler", "plant1/boiler/pump_on", False),
        ("plant1/+", "plant1/boiler/pump_on", False),
    ],
)
def test_excluded_topics_are_never_readings(pattern: str, topic: str, matches: bool) -> None:
    parsed = parse_message(topic, json.dumps(READING).encode(), False, exclude=(pattern,))
    assert isinstance(parsed, Ignored) == matches, parsed
    if matches:
        assert isinstance(parsed, Ignored)
        assert parsed.reason == "excluded"


@pytest.mark.parametrize(
    ("ts", "timestamp"),
    [
        ("2025-07-08T16:00:00.999Z", "2025-07-08T16:00:00Z"),  # seconds, as Laravel stores
        ("2025-07-08T18:00:00+02:00", "2025-07-08T16:00:00Z"),  # offsets become UTC
        ("2025-07-08T16:00:00", "2025-07-08T16:00:00Z"),  # no offset: UTC
    ],
)
def test_timestamp_is_utc_seconds_with_z(ts: str, timestamp: str) -> None:
    assert json.loads(item({**READING, "ts": ts}).body)["timestamp"] == timestamp


@pytest.mark.parametrize(("value", "sent"), [(True, 1), (False, 0), (7, 7), ("228.6", "228.6")])
def test_values_laravel_accepts(value: object, sent: object) -> None:
    assert json.loads(item({**READING, "value": value}).body)["value"] == sent


def test_missing_optional_fields_are_null_and_unicode_survives() -> None:
    payload = {k: READING[k] for k in ("value", "ts", "device_id")} | {"parameter": "Température"}
    body = json.loads(item(payload).body)
    assert body["unit"] is None and body["description"] is None and body["data_type"] is None
    assert body["parameter"] == "Température"


def test_batch_body_splices_the_stored_bodies() -> None:
    bodies = [item(READING).body, item({**READING, "value": 1}).body]
    assert json.loads(batch_body(bodies)) == {"readings": [json.loads(b) for b in bodies]}


# -- what is not a reading ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("topic", "payload", "retain", "reason"),
    [
        ("plant1/bridge/status", b"online", False, "topic"),
        ("plant1/meter1/status", b"offline", False, "topic"),
        ("plant1/meter1/set", b'{"setpoint": 1}', False, "topic"),
        ("plant1/meter1/setpoint/set", b"21.5", False, "topic"),
        ("plant1/meter1/setpoint/set/result", b'{"ok": true}', False, "topic"),
        ("plant1/meter1/voltage_ln", json.dumps(READING).encode(), True, "retained"),
        ("plant1/meter1/voltage_ln", b"not json", False, "json"),
        ("plant1/meter1/voltage_ln", b"\xff\xfe", False, "json"),
        ("plant1/meter1/voltage_ln", b"[1, 2]", False, "json"),
        ("plant1/meter1", b'{"ts": "2025-07-08T16:00:00.000Z", "v": 1}', False, "fields"),
    ],
)
def test_not_readings_are_ignored(topic: str, payload: bytes, retain: bool, reason: str) -> None:
    assert ignored(topic, payload, retain) == reason


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"device_id": None}, "no_device_id"),
        ({"device_id": "1"}, "fields"),
        ({"device_id": True}, "fields"),
        ({"parameter": ""}, "fields"),
        ({"parameter": None}, "fields"),
        ({"ts": 1751990400000}, "fields"),
        ({"ts": "yesterday"}, "fields"),
        ({"ts": "0001-01-01T00:00:00+14:00"}, "fields"),  # before year 1 in UTC: no crash
        ({"value": None}, "value"),
        ({"value": [1]}, "value"),
    ],
)
def test_bad_readings_are_ignored(change: dict[str, object], reason: str) -> None:
    assert ignored("plant1/meter1/voltage_ln", json.dumps({**READING, **change}).encode()) == reason


def test_nan_is_not_a_reading() -> None:
    payload = json.dumps(READING).replace("228.6", "NaN").encode()
    assert ignored("plant1/meter1/voltage_ln", payload) == "value"


def test_a_register_named_result_is_a_reading() -> None:
    assert isinstance(
        parse_message("plant1/meter1/result", json.dumps(READING).encode(), False), Item
    )


# -- outcomes ---------------------------------------------------------------------------

JSON = {"content-type": "application/json"}
HTML = {"content-type": "text/html; charset=UTF-8"}


def answer(status: int, headers: dict[str, str] | None = None, body: bytes = b"{}") -> Answer:
    return Answer(status, JSON if headers is None else headers, body)


@pytest.mark.parametrize(
    ("status", "headers", "expected"),
    [
        (201, JSON, Done),
        (200, {"content-type": "application/problem+json"}, Done),
        (204, {}, Done),
        (201, HTML, RetryAfter),  # never trust a page for a verdict
        (200, {}, RetryAfter),
        (422, JSON, DeadLetter),
        (400, JSON, DeadLetter),
        (413, JSON, DeadLetter),
        (422, HTML, RetryAfter),
        (401, JSON, Pause),
        (403, HTML, Pause),
        (404, JSON, Pause),
        (405, JSON, Pause),
        (302, {"location": "http://x/login"}, RetryAfter),
        (301, {}, RetryAfter),
        (408, JSON, RetryAfter),
        (409, JSON, RetryAfter),
        (429, JSON, RetryAfter),
        (429, HTML, RetryAfter),
        (500, HTML, RetryAfter),
        (502, {}, RetryAfter),
        (503, JSON, RetryAfter),
    ],
)
def test_outcome_table(status: int, headers: dict[str, str], expected: type) -> None:
    assert type(classify(answer(status, headers), NOW)) is expected


def test_network_errors_retry_with_backoff() -> None:
    assert classify(NetworkError("ConnectError: refused"), NOW) == RetryAfter(
        None, "no answer: ConnectError: refused"
    )


def test_422_keeps_laravels_message() -> None:
    body = (
        b'{"message":"The given data was invalid.",'
        b'"errors":{"device_id":["The selected device id is invalid."]}}'
    )
    outcome = classify(answer(422, JSON, body), NOW)
    assert isinstance(outcome, DeadLetter)
    assert "The selected device id is invalid." in outcome.reason


def test_429_honours_retry_after_seconds() -> None:
    outcome = classify(answer(429, JSON | {"retry-after": "59"}), NOW)
    assert outcome == RetryAfter(59.0, "HTTP 429")


def test_503_honours_retry_after_http_date() -> None:
    when = format_datetime(datetime.fromtimestamp(NOW + 120, UTC), usegmt=True)
    outcome = classify(answer(503, HTML | {"retry-after": when}), NOW)
    assert isinstance(outcome, RetryAfter)
    assert outcome.seconds == pytest.approx(120)


def test_redirect_names_its_target() -> None:
    outcome = classify(answer(302, {"location": "http://api/login"}), NOW)
    assert isinstance(outcome, RetryAfter)
    assert outcome.seconds is None
    assert "http://api/login" in outcome.reason


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (None, None),
        ("", None),
        ("0", 0.0),
        ("60", 60.0),
        ("-5", 0.0),
        ("soon", None),
        ("inf", None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),  # in the past: now
    ],
)
def test_retry_after_parsing(value: str | None, seconds: float | None) -> None:
    assert retry_after_s(value, NOW) == seconds
