"""Golden invalid configs: tests/cases/<name>/config.yaml (or .json) + errors.txt, line for line.

Each errors.txt holds the exact lines `validate` prints, one per problem, in order. To review a
change in wording, run with GOLDEN_UPDATE=1 to rewrite the files, then read the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from modbus_mqtt_bridge.config.load import load_config
from modbus_mqtt_bridge.errors import ConfigError

CASES = Path(__file__).resolve().parents[1] / "cases"


def _error_cases() -> list[Path]:
    return sorted(d for d in CASES.iterdir() if (d / "errors.txt").exists())


def _config_of(case: Path) -> Path:
    found = [p for p in case.iterdir() if p.stem == "config" and p.suffix in (".yaml", ".json")]
    assert len(found) == 1, f"{case.name}: expected one config.yaml or config.json"
    return found[0]


def test_cases_exist() -> None:
    assert len(_error_cases()) >= 10


@pytest.mark.parametrize("case", _error_cases(), ids=lambda p: p.name)
def test_case(case: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(_config_of(case), env={})
    actual = [str(problem) for problem in info.value.problems]
    expected_file = case / "errors.txt"
    if os.environ.get("GOLDEN_UPDATE") == "1":
        expected_file.write_text("\n".join(actual) + "\n")
    assert actual == expected_file.read_text().splitlines()
