"""What both YAML walkers share: the Document they fill, and a scalar's value and problems.

`yaml_source` walks a composed node tree, `yaml_events` libyaml's event stream; a scalar
becomes the same value, `${VAR}` expansion and problem whichever of them met it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NoReturn

import yaml

from ..errors import ConfigError, Problem
from .fields import EnvText, Unresolved

# Keys whose integer value must be kept as written (Modicon 00010 is coil 9, not octal 8).
TEXT_KEYS = frozenset({"address", "register_address"})
# Secrets and endpoints that may stay unset: `${VAR}` with VAR unset gives null, not a problem.
OPTIONAL_PATHS = frozenset(
    {"mqtt.username", "mqtt.password", "forward.token", "forward.api_url", "forward.batch_url"}
)
INT_TAG = "tag:yaml.org,2002:int"
STR_TAG = "tag:yaml.org,2002:str"
COLLECTION_TAGS = frozenset({"tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"})
# Keys that make `flatten_mapping` rewrite a mapping: `<<` merges and `=` value keys.
SPECIAL_KEY_TAGS = frozenset({"tag:yaml.org,2002:merge", "tag:yaml.org,2002:value"})

_REFERENCE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?:(:?-)(.*))?", re.DOTALL)


@dataclass
class Document:
    """Parsed data, the 1-based line of each path, and problems found while reading."""

    data: object
    lines: dict[str, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)


class ScalarReader:
    """Scalars into values, problems with their line, and the budget of values read."""

    def __init__(
        self, loader: yaml.SafeLoader | yaml.CSafeLoader, env: Mapping[str, str], limit: int
    ) -> None:
        self.loader = loader
        self.env = env
        self.doc = Document(None)
        self.limit = limit
        self.budget = limit  # values left before the config counts as too big

    def problem(self, path: str, message: str, node: yaml.Node) -> None:
        self.doc.problems.append(Problem(path, message, node.start_mark.line + 1))

    def over_budget(self) -> NoReturn:
        raise ConfigError([Problem("", f"the config has more than {self.limit} values")])

    def scalar(self, node: yaml.Node, path: str, key: str | None) -> object:
        tag = node.tag
        if tag == STR_TAG:  # most values: the text itself, as construct_yaml_str gives it
            text: str = node.value
            return self.expand(text, path, node) if "$" in text else text
        if key in TEXT_KEYS and tag == INT_TAG:
            return EnvText(node.value)  # the digits as written; never octal
        try:
            value = self.loader.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, OverflowError, TypeError) as exc:
            reason = exc.problem if isinstance(exc, yaml.MarkedYAMLError) else exc
            self.problem(path, f"cannot read this value: {reason}", node)
            return Unresolved(str(node.value))
        if isinstance(value, str) and "$" in value:
            return self.expand(value, path, node)
        return value

    def expand(self, text: str, path: str, node: yaml.Node) -> object:
        result = expand_env(text, self.env)
        for message in result.errors:
            self.problem(path, message, node)
        if result.errors:
            return Unresolved(text)
        if path in OPTIONAL_PATHS and (result.unset or not result.value):
            return None  # an unset or empty secret means "none", not a problem
        for name in result.unset:
            hint = f"set it, or write ${{{name}:-default}}"
            self.problem(path, f"environment variable {name} is not set ({hint})", node)
        return Unresolved(text) if result.unset else EnvText(result.value)


@dataclass
class Expansion:
    value: str
    unset: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def expand_env(text: str, env: Mapping[str, str]) -> Expansion:
    """Shell-style `${VAR}`, `${VAR:-default}` (unset or empty), `${VAR-default}` (unset);
    `$${` is a literal `${`. Any other `$` is left alone."""
    result = Expansion("")
    out: list[str] = []
    pos = 0
    while (start := text.find("$", pos)) >= 0:
        out.append(text[pos:start])
        if text.startswith("$${", start):
            out.append("${")
            pos = start + 3
        elif not text.startswith("${", start):
            out.append("$")
            pos = start + 1
        else:
            end = text.find("}", start)
            if end < 0:
                result.errors.append("unterminated ${ (write $${ for a literal ${)")
                return result
            out.append(_substitute(text[start + 2 : end], env, result))
            pos = end + 1
    out.append(text[pos:])
    result.value = "".join(out)
    return result


def _substitute(body: str, env: Mapping[str, str], result: Expansion) -> str:
    match = _REFERENCE.fullmatch(body)
    if match is None:
        result.errors.append(f"invalid ${{{body}}}: use ${{NAME}} or ${{NAME:-default}}")
        return ""
    name, operator, default = match.groups()
    value = env.get(name)
    if operator == ":-" and not value:
        return str(default)
    if operator == "-" and value is None:
        return str(default)
    if value is None:
        result.unset.append(name)
        return ""
    return value
