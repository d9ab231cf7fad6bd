"""Read YAML text into plain data plus the line of every path, expanding `${VAR}` on the way.

Built on the composed node tree (not `safe_load`) for three reasons: line numbers per path,
duplicate keys reported instead of silently overwritten, and `address: 00010` taken from its
source text, since YAML 1.1 would read it as the octal number 8.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import operator
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import NoReturn

import yaml

from ..errors import ConfigError, Problem
from .fields import EnvText, Unresolved, join

# Keys whose integer value must be kept as written (Modicon 00010 is coil 9, not octal 8).
TEXT_KEYS = frozenset({"address", "register_address"})
# Secrets and endpoints that may stay unset: `${VAR}` with VAR unset gives null, not a problem.
OPTIONAL_PATHS = frozenset(
    {"mqtt.username", "mqtt.password", "forward.token", "forward.api_url", "forward.batch_url"}
)
MAX_NODES = 1_000_000  # guards against alias bombs ("billion laughs")
_INT_TAG = "tag:yaml.org,2002:int"
_COLLECTION_TAGS = frozenset({"tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"})
_STR_TAG = "tag:yaml.org,2002:str"
_ScalarNode = yaml.ScalarNode
# Keys that make `flatten_mapping` rewrite a mapping: `<<` merges and `=` value keys.
_SPECIAL_KEY_TAGS = frozenset({"tag:yaml.org,2002:merge", "tag:yaml.org,2002:value"})
# libyaml's parser is several times faster on big configs; the pure-Python one is the fallback.
_BaseLoader = yaml.CSafeLoader if yaml.__with_libyaml__ else yaml.SafeLoader


class _Loader(_BaseLoader):  # type: ignore[misc,valid-type]
    """The safe loader, with the resolver calls libyaml's composer makes per node made cheap.

    `resolve` runs up to three regular expressions per scalar in Python, and a register list
    repeats the same keys and types thousands of times. Without path resolvers (the safe
    loader has none) a node's tag depends on its kind, text and implicitness alone: it is
    remembered within one document, by a C-level cache (a hit never enters Python). For the
    same reason `descend_resolver` and `ascend_resolver` do nothing; builtins that do
    nothing either stand in for them, so the composer's two calls per node stay in C.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        if not self.yaml_path_resolvers:  # only yaml.add_path_resolver(...) would add one
            self.resolve = functools.lru_cache(maxsize=None)(super().resolve)
            self.descend_resolver = operator.is_  # (parent, index) -> ignored
            self.ascend_resolver = tuple  # () -> ignored


_REFERENCE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?:(:?-)(.*))?", re.DOTALL)


@dataclass
class Document:
    """Parsed data, the 1-based line of each path, and problems found while reading."""

    data: object
    lines: dict[str, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)


def parse_yaml(text: str, env: Mapping[str, str]) -> Document:
    """The data of one YAML document; ConfigError on a syntax error (with its line)."""
    loader = _Loader(text)
    try:
        with collector_paused():
            root = loader.get_single_node()
            if root is None:
                return Document(None)
            walker = _Walker(loader, env)
            # With no anchor no node is shared, so each walked item's subtree can go at once:
            # the node tree and the data it becomes are then never both whole in memory (on a
            # 1,000-device config the tree is most of the start-up peak RSS).
            walker.release = "&" not in text
            return walker.document(root)
    except yaml.MarkedYAMLError as exc:
        raise ConfigError([Problem("", syntax_message(exc))]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([Problem("", f"YAML error: {' '.join(str(exc).split())}")]) from None
    finally:
        loader.dispose()


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a config is turned into objects.

    Reading a config allocates a node tree, its data and the model: hundreds of thousands of
    objects that all stay alive until the end, none of them garbage. Each allocation burst
    triggers collections that walk every one of them again, which costs about a third of the
    time of loading 20,000 registers. Nested uses keep it paused until the outermost ends.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def syntax_message(exc: yaml.MarkedYAMLError) -> str:
    mark = exc.problem_mark or exc.context_mark
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    what = "; ".join(part for part in (exc.context, exc.problem) if part)
    if "\\t" in what or "tab" in what:
        what += " (indent with spaces: YAML does not allow tabs)"
    return f"YAML syntax error{where}: {what or exc}"


def yaml_lines(text: str) -> dict[str, int]:
    """Best-effort line of each path (used for JSON files); empty if YAML cannot read the text."""
    lines: dict[str, int] = {}
    try:
        root = yaml.compose(text, Loader=_Loader)
    except (yaml.YAMLError, RecursionError):
        return lines
    pending: list[tuple[yaml.Node, str]] = [(root, "")] if root is not None else []
    while pending and len(lines) < MAX_NODES:
        node, path = pending.pop()
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                child = join(path, str(key.value))
                lines.setdefault(child, key.start_mark.line + 1)
                pending.append((value, child))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                lines.setdefault(f"{path}[{i}]", item.start_mark.line + 1)
                pending.append((item, f"{path}[{i}]"))
    return lines


class _Walker:
    """Turns nodes into data; records lines and problems instead of stopping at the first."""

    def __init__(self, loader: yaml.SafeLoader | yaml.CSafeLoader, env: Mapping[str, str]) -> None:
        self.loader = loader
        self.env = env
        self.doc = Document(None)
        self.budget = MAX_NODES
        self.active: set[int] = set()  # nodes on the current path: a repeat is a recursive alias
        self.own_keys: dict[int, set[int]] = {}
        self.release = False  # drop each walked sequence item from the tree (no node shared)

    def document(self, root: yaml.Node) -> Document:
        self.doc.data = self.walk(root, "", None)
        return self.doc

    def problem(self, path: str, message: str, node: yaml.Node) -> None:
        self.doc.problems.append(Problem(path, message, node.start_mark.line + 1))

    def walk(self, node: yaml.Node, path: str, key: str | None) -> object:
        self.budget -= 1
        if self.budget < 0:
            self._over_budget()
        if isinstance(node, yaml.ScalarNode):  # no children: never part of an alias loop
            return self.scalar(node, path, key)
        node_id = id(node)
        if node_id in self.active:
            self.problem(path, "an alias refers to itself", node)
            return Unresolved("*")
        if node.tag not in _COLLECTION_TAGS:
            self.problem(path, f"unsupported tag {node.tag}", node)
            return Unresolved(node.tag)
        self.active.add(node_id)
        try:
            if isinstance(node, yaml.MappingNode):
                return self.mapping(node, path)
            if isinstance(node, yaml.SequenceNode):
                return self.sequence(node, path)
            return self.scalar(node, path, key)
        finally:
            self.active.discard(node_id)

    def sequence(self, node: yaml.SequenceNode, path: str) -> list[object]:
        items: list[object] = []
        lines = self.doc.lines
        for i, item in enumerate(node.value):
            child = f"{path}[{i}]"
            lines.setdefault(child, item.start_mark.line + 1)
            if item.__class__ is _ScalarNode and item.tag == _STR_TAG and "$" not in item.value:
                self.budget -= 1  # what `walk` would do, without the call
                items.append(item.value)
            else:
                items.append(self.walk(item, child, None))
            if self.release:
                node.value[i] = None
        if self.budget < 0:
            self._over_budget()
        return items

    def mapping(self, node: yaml.MappingNode, path: str) -> dict[str, object]:
        # Keys written in this mapping (not merged in) are the ones a duplicate is reported
        # for; taken before the first flatten, which rewrites node.value. None: all are own.
        own = self.own_keys.get(id(node)) if self.own_keys else None
        if own is None and not _SPECIAL_KEY_TAGS.isdisjoint([k.tag for k, _ in node.value]):
            own = self.own_keys[id(node)] = {id(k) for k, _ in node.value}
        if own is not None:
            self.loader.flatten_mapping(node)  # applies `<<: *defaults` merge keys
        result: dict[str, object] = {}
        first: dict[str, int] = {}
        lines = self.doc.lines
        for key_node, value_node in node.value:
            if key_node.__class__ is not _ScalarNode:
                self.problem(path, "a key must be a plain name, not a list or mapping", key_node)
                continue
            key = key_node.value
            child = f"{path}.{key}" if path and key.isprintable() else join(path, key)
            line = key_node.start_mark.line + 1
            if own is None or id(key_node) in own:
                if key in first:
                    self.problem(child, f"duplicate key (first at line {first[key]})", key_node)
                else:
                    first[key] = line
            lines[child] = line
            # Most values are plain text, or an address's digits: taken as `scalar` would.
            if value_node.__class__ is _ScalarNode:
                tag, text = value_node.tag, value_node.value
                if tag == _STR_TAG and "$" not in text:
                    self.budget -= 1
                    result[key] = text
                    continue
                if tag == _INT_TAG and key in TEXT_KEYS:
                    self.budget -= 1
                    result[key] = EnvText(text)
                    continue
            result[key] = self.walk(value_node, child, key)
        if self.budget < 0:
            self._over_budget()
        return result

    def _over_budget(self) -> NoReturn:
        raise ConfigError([Problem("", f"the config has more than {MAX_NODES} values")])

    def scalar(self, node: yaml.Node, path: str, key: str | None) -> object:
        tag = node.tag
        if tag == _STR_TAG:  # most values: the text itself, as construct_yaml_str gives it
            text: str = node.value
            return self.expand(text, path, node) if "$" in text else text
        if key in TEXT_KEYS and tag == _INT_TAG:
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
