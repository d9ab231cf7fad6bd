"""Command payload bytes -> a `Command` (values by register, id, ts), pure and strict.

Accepted shapes (SPEC 3): a bare value (`21.5`, `true`/`false`, `ON`/`OFF`, `1`/`0`, or text
for a string register), `{"value": ..., "id": ..., "ts": ...}` on a register's `/set`
topic, and `{"setpoint": 21.5, "pump_on": true, "id": ..., "ts": ...}` on a device's
`/set` topic. Anything else is a `CommandError` saying exactly what is wrong; what a value
means for its register (type, range) is check's job, not this module's.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..errors import BridgeError

RawValue = bool | int | float | str
CommandId = str | int

META_KEYS = ("id", "ts")
# Epoch numbers above this are milliseconds: 1e11 s is the year 5138, 1e11 ms is 1973.
_EPOCH_MS_ABOVE = 1e11
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_WORDS: dict[str, RawValue] = {
    "true": True,
    "false": False,
    "on": True,
    "off": False,
    "nan": math.nan,
    "+inf": math.inf,
    "inf": math.inf,
    "-inf": -math.inf,
    "infinity": math.inf,
    "-infinity": -math.inf,
}
_MAX_TEXT_IN_ERRORS = 40


class CommandError(BridgeError):
    """A command is refused; `outcome` is its metrics label, the message goes to the result.

    `command_id` is the payload's id when it could be read, so the sender can match the
    refusal to its command even when the rest of the payload was wrong (SPEC 3).
    """

    outcome = "refused"
    command_id: CommandId | None = None


class CommandExpired(CommandError):
    outcome = "expired"


class CommandIgnored(CommandError):
    """Not answered at all (a retained command): only logged and counted."""

    outcome = "ignored"


@dataclass(frozen=True, slots=True)
class Command:
    """What a payload asks for: register name -> value, with the sender's id and timestamp."""

    values: tuple[tuple[str, RawValue], ...]
    id: CommandId | None = None
    ts: float | None = None  # UTC seconds since the epoch, when the sender gave one


def parse(payload: bytes, register: str | None, max_bytes: int) -> Command:
    """Parse a payload from `{...}/{register}/set`, or from `{...}/set` when register is None."""
    text = _text(payload, max_bytes)
    if text[0] in "{[":
        document = _json_document(text)
        try:
            if register is None:
                return _device_command(document)
            return _register_command(document, register)
        except CommandError as exc:
            exc.command_id = readable_id(document)
            raise
    if register is None:
        raise CommandError('a device command needs a JSON object such as {"setpoint": 21.5}')
    return Command(((register, bare_value(text)),))


def parse_named(payload: bytes, max_bytes: int) -> tuple[str, Command]:
    """A body that names its register, `{"register": R, "value": V, "id": ...}` (the HTTP
    write endpoint): the same JSON rules as a `/set` payload, and its id on every refusal."""
    document = _json_document(_text(payload, max_bytes))
    try:
        return _named_command(document)
    except CommandError as exc:
        exc.command_id = readable_id(document)
        raise


def _named_command(document: Any) -> tuple[str, Command]:
    if not isinstance(document, dict):
        raise CommandError('body must be a JSON object {"register": NAME, "value": VALUE}')
    rest = dict(document)
    register = rest.pop("register", None)
    if not isinstance(register, str) or not register:
        raise CommandError('body needs "register": the register name as a string')
    return register, _register_command(rest, register)


def _text(payload: bytes, max_bytes: int) -> str:
    if len(payload) > max_bytes:
        raise CommandError(
            f"payload of {len(payload)} bytes is over the limit of {max_bytes} bytes"
        )
    try:
        text = payload.decode("utf-8").strip()
    except UnicodeDecodeError as exc:
        raise CommandError(f"payload is not valid UTF-8 (byte {exc.start})") from None
    if not text:
        raise CommandError("empty payload")
    return text


def bare_value(text: str) -> RawValue:
    """A value written without JSON around it: a number, a word, a JSON string, or text."""
    word = _WORDS.get(text.lower())
    if word is not None:
        return word
    if _NUMBER.fullmatch(text):
        return _number(text)
    if text.startswith('"'):
        value = _json_document(text)
        if not isinstance(value, str):
            raise CommandError(f"invalid JSON string {_shorten(text)}")
        return value
    return text  # plain text, meaningful only for a string register


def _number(text: str) -> int | float:
    try:
        if re.fullmatch(r"[+-]?\d+", text):
            return int(text)
        return float(text)
    except ValueError:  # more digits than Python converts (int_max_str_digits)
        raise CommandError(f"number {_shorten(text)} has too many digits") from None


def _json_document(text: str) -> Any:
    try:
        return json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_constant)
    except CommandError:
        raise
    except json.JSONDecodeError as exc:
        raise CommandError(
            f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except (ValueError, RecursionError):  # huge integers, absurd nesting
        raise CommandError("invalid JSON: too deeply nested or too many digits") from None


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # A repeated key would let one value silently win: refuse instead of guessing.
    document: dict[str, Any] = {}
    for key, value in pairs:
        if key in document:
            raise CommandError(f"key {key!r} appears twice")
        document[key] = value
    return document


def _constant(name: str) -> float:
    return {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}[name]


def _register_command(document: Any, register: str) -> Command:
    if not isinstance(document, dict):
        raise CommandError('expected a value or a JSON object such as {"value": 21.5}')
    unknown = sorted(set(document) - {"value", *META_KEYS})
    if unknown:
        raise CommandError(f"unknown field {unknown[0]!r} (expected value, id, ts)")
    if "value" not in document:
        raise CommandError('missing "value"')
    value = _json_value(document["value"], "value")
    return Command(((register, value),), _id(document), _ts(document))


def _device_command(document: Any) -> Command:
    if not isinstance(document, dict):
        raise CommandError('a device command needs a JSON object such as {"setpoint": 21.5}')
    values = tuple(
        (name, _json_value(value, name))
        for name, value in document.items()
        if name not in META_KEYS
    )
    if not values:
        raise CommandError("no register to write: the object names none")
    return Command(values, _id(document), _ts(document))


def _json_value(value: Any, where: str) -> RawValue:
    if isinstance(value, bool | int | float | str):
        return value
    kind = "null" if value is None else "an object" if isinstance(value, dict) else "a list"
    raise CommandError(f"{where}: expected a number, true/false or a string, got {kind}")


def readable_id(document: Any) -> CommandId | None:
    """The document's id if it has a usable one, else None (never raises)."""
    if not isinstance(document, dict):
        return None
    try:
        return _id(document)
    except CommandError:
        return None


def _id(document: dict[str, Any]) -> CommandId | None:
    value = document.get("id")
    if value is None or (isinstance(value, str | int) and not isinstance(value, bool)):
        return value
    raise CommandError(f"id must be a string or an integer, got {_shorten(json.dumps(value))}")


def _ts(document: dict[str, Any]) -> float | None:
    value = document.get("ts")
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
        if not math.isfinite(seconds) or seconds < 0:
            raise CommandError(f"ts {value!r} is not a time")
        return seconds / 1000 if seconds > _EPOCH_MS_ABOVE else seconds
    if isinstance(value, str):
        return _iso_ts(value)
    raise CommandError("ts must be an ISO 8601 time or seconds since the epoch")


def _iso_ts(text: str) -> float:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise CommandError(f"ts {_shorten(text)} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        # A zone-less time is local to someone: guessing could let a stale command through.
        raise CommandError(f"ts {_shorten(text)} has no time zone (add Z or +hh:mm)")
    return moment.astimezone(UTC).timestamp()


def _shorten(text: str) -> str:
    if len(text) > _MAX_TEXT_IN_ERRORS:
        text = text[: _MAX_TEXT_IN_ERRORS - 3] + "..."
    return repr(text)
