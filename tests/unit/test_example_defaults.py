"""config/example.yaml says it shows every option with its default: hold it to that. Each
setting either equals the model's default or its comment states the real default."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from modbus_mqtt_bridge.config.load import load_config_text

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config" / "example.yaml"
SECTIONS = ("mqtt", "commands", "buffer", "metrics", "homeassistant", "logging", "forward")
MINIMAL = """
site: plant1
connections: [{name: lan, host: 192.168.100.10}]
devices: [{name: meter1, registers: [{name: r, address: 40001, type: uint16}]}]
"""


def _comment_of(text: str, section: str, key: str) -> str:
    """The comment on `key:` inside the top-level `section:`, with its continuation lines."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{section}:"))
    for i in range(start + 1, len(lines)):
        if re.match(r"^\S", lines[i]):
            break
        if re.match(rf"^  (# )?{key}:", lines[i]):  # a commented-out secret counts
            comment = [lines[i].partition(" # ")[2]]
            for more in lines[i + 1 :]:
                if not re.match(r"^\s+#", more):
                    break
                comment.append(more.strip().lstrip("#").strip())
            return " ".join(comment)
    raise AssertionError(f"{section}.{key} is not in config/example.yaml")


def _yaml_key(field: dataclasses.Field[object]) -> str:
    return field.name.removesuffix("_s")  # durations are `timeout_s` in the model, `timeout` here


def test_every_example_value_is_the_default_or_says_what_the_default_is() -> None:
    text = EXAMPLE.read_text()
    example = load_config_text(text, env={}, source=str(EXAMPLE))
    defaults = load_config_text(MINIMAL, env={}, source="minimal")
    undocumented = []
    compared = 0
    for section in SECTIONS:
        shown, default = getattr(example, section), getattr(defaults, section)
        for field in dataclasses.fields(shown):
            compared += 1
            if getattr(shown, field.name) == getattr(default, field.name):
                continue
            comment = _comment_of(text, section, _yaml_key(field))
            if "default" not in comment:
                undocumented.append(
                    f"{section}.{_yaml_key(field)}: example {getattr(shown, field.name)!r}, "
                    f"default {getattr(default, field.name)!r}, and the comment does not say so"
                )
    assert compared > 30  # the walk really covered the sections
    assert not undocumented, "\n".join(undocumented)


def test_every_model_setting_of_those_sections_appears_in_the_example() -> None:
    text = EXAMPLE.read_text()
    defaults = load_config_text(MINIMAL, env={}, source="minimal")
    missing = []
    for section in SECTIONS:
        for field in dataclasses.fields(getattr(defaults, section)):
            try:
                _comment_of(text, section, _yaml_key(field))
            except AssertionError as exc:
                missing.append(str(exc))
    assert not missing, "\n".join(missing)
