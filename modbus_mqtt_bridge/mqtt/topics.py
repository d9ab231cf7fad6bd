"""Topic builders and parsers: the topic half of the MQTT contract (SPEC 3), pure."""

from __future__ import annotations

from dataclasses import dataclass

STATUS = "status"
SET = "set"
BRIDGE = "bridge"


def bridge_status(site: str) -> str:
    return f"{site}/{BRIDGE}/{STATUS}"


def device_status(site: str, device: str) -> str:
    return f"{site}/{device}/{STATUS}"


def reading(site: str, device: str, register: str) -> str:
    return f"{site}/{device}/{register}"


def device_payload(site: str, device: str) -> str:
    return f"{site}/{device}"


def register_set(site: str, device: str, register: str) -> str:
    return f"{site}/{device}/{register}/{SET}"


def device_set(site: str, device: str) -> str:
    return f"{site}/{device}/{SET}"


def set_result(site: str, device: str, register: str) -> str:
    return f"{site}/{device}/{register}/{SET}/result"


def command_subscriptions(site: str) -> tuple[str, str]:
    """Both command topic shapes: per register and per device."""
    return (f"{site}/+/+/{SET}", f"{site}/+/{SET}")


@dataclass(frozen=True)
class CommandTopic:
    device: str
    register: str | None  # None: a several-register command on {site}/{device}/set


def parse_command(site: str, topic: str) -> CommandTopic | None:
    """The target of a command topic, or None when the topic is not a command."""
    parts = topic.split("/")
    if len(parts) < 3 or parts[0] != site or parts[-1] != SET:
        return None
    if len(parts) == 3:
        return CommandTopic(parts[1], None)
    if len(parts) == 4:
        return CommandTopic(parts[1], parts[2])
    return None


def is_reading_topic(topic: str) -> bool:
    """site/device/register, excluding status and the bridge's own topics."""
    parts = topic.split("/")
    return len(parts) == 3 and parts[2] not in (STATUS, SET) and parts[1] != BRIDGE


def topic_matches(topic_filter: str, topic: str) -> bool:
    """MQTT filter matching (MQTT 5 section 4.7): `+` is one whole level, a last `#` any
    number of levels (also none); a shared subscription's `$share/group/` prefix is not
    part of the filter; a wildcard first level never matches a `$SYS`-style topic."""
    if topic_filter.startswith("$share/"):
        topic_filter = topic_filter.split("/", 2)[2]
    want, have = topic_filter.split("/"), topic.split("/")
    if topic.startswith("$") and want[0] in ("+", "#"):
        return False
    for i, level in enumerate(want):
        if level == "#":
            return True
        if i >= len(have) or (level != "+" and level != have[i]):
            return False
    return len(want) == len(have)
