"""Read YAML text into plain data plus the line of every path, expanding `${VAR}` on the way.

Built on libyaml's nodes or events (not `safe_load`) for three reasons: line numbers per
path, duplicate keys reported instead of silently overwritten, and `address: 00010` taken
from its source text, since YAML 1.1 would read it as the octal number 8. A text without
anchors is read from the event stream (`yaml_events`), without the node tree's memory; one
with anchors, or any document the event walker leaves to it, from the composed tree here.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import operator
from collections.abc import Iterator, Mapping

import yaml

from ..errors import ConfigError, Problem
from .fields import EnvText, Unresolved, join
from .yaml_events import EventWalker, NeedsTree
from .yaml_scalars import (
    COLLECTION_TAGS,
    INT_TAG,
    SPECIAL_KEY_TAGS,
    STR_TAG,
    TEXT_KEYS,
    Document,
    ScalarReader,
)

__all__ = ["MAX_NODES", "Document", "collector_paused", "parse_yaml", "yaml_lines"]

MAX_NODES = 1_000_000  # guards against alias bombs ("billion laughs")
_ScalarNode = yaml.ScalarNode
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


def parse_yaml(text: str, env: Mapping[str, str]) -> Document:
    """The data of one YAML document; ConfigError on a syntax error (with its line)."""
    if "&" not in text:  # no anchor, so no alias: no value is shared and events suffice
        with contextlib.suppress(NeedsTree):
            return read_events(text, env)
    return read_tree(text, env)


def read_events(text: str, env: Mapping[str, str]) -> Document:
    """As parse_yaml, from the event stream; NeedsTree if only `read_tree` reads it alike."""
    with _reading(text) as loader:
        return EventWalker(loader, env, MAX_NODES).document()


def read_tree(text: str, env: Mapping[str, str]) -> Document:
    """As parse_yaml, from the composed node tree (anchors, aliases and merge keys)."""
    with _reading(text) as loader:
        root = loader.get_single_node()
        if root is None:
            return Document(None)
        walker = _Walker(loader, env, MAX_NODES)
        # With no anchor no node is shared, so each walked item's subtree can go at once:
        # the node tree and the data it becomes are then never both whole in memory.
        walker.release = "&" not in text
        return walker.document(root)


@contextlib.contextmanager
def _reading(text: str) -> Iterator[_Loader]:
    """A loader for `text`, with YAML's errors turned into ConfigError and the GC paused."""
    loader = _Loader(text)
    try:
        with collector_paused():
            yield loader
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


class _Walker(ScalarReader):
    """Turns nodes into data; records lines and problems instead of stopping at the first."""

    def __init__(
        self, loader: yaml.SafeLoader | yaml.CSafeLoader, env: Mapping[str, str], limit: int
    ) -> None:
        super().__init__(loader, env, limit)
        self.active: set[int] = set()  # nodes on the current path: a repeat is a recursive alias
        self.own_keys: dict[int, set[int]] = {}
        self.release = False  # drop each walked sequence item from the tree (no node shared)

    def document(self, root: yaml.Node) -> Document:
        self.doc.data = self.walk(root, "", None)
        return self.doc

    def walk(self, node: yaml.Node, path: str, key: str | None) -> object:
        self.budget -= 1
        if self.budget < 0:
            self.over_budget()
        if isinstance(node, yaml.ScalarNode):  # no children: never part of an alias loop
            return self.scalar(node, path, key)
        node_id = id(node)
        if node_id in self.active:
            self.problem(path, "an alias refers to itself", node)
            return Unresolved("*")
        if node.tag not in COLLECTION_TAGS:
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
            if item.__class__ is _ScalarNode and item.tag == STR_TAG and "$" not in item.value:
                self.budget -= 1  # what `walk` would do, without the call
                items.append(item.value)
            else:
                items.append(self.walk(item, child, None))
            if self.release:
                node.value[i] = None
        if self.budget < 0:
            self.over_budget()
        return items

    def mapping(self, node: yaml.MappingNode, path: str) -> dict[str, object]:
        # Keys written in this mapping (not merged in) are the ones a duplicate is reported
        # for; taken before the first flatten, which rewrites node.value. None: all are own.
        own = self.own_keys.get(id(node)) if self.own_keys else None
        if own is None and not SPECIAL_KEY_TAGS.isdisjoint([k.tag for k, _ in node.value]):
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
                if tag == STR_TAG and "$" not in text:
                    self.budget -= 1
                    result[key] = text
                    continue
                if tag == INT_TAG and key in TEXT_KEYS:
                    self.budget -= 1
                    result[key] = EnvText(text)
                    continue
            result[key] = self.walk(value_node, child, key)
        if self.budget < 0:
            self.over_budget()
        return result
