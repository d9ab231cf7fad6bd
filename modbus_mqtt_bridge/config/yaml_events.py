"""Read an anchor-free YAML document from libyaml's event stream, never composing its tree.

The composed node tree of a 1,000-device config (a node and two marks per value) was most of
the bridge's start-up peak RSS, and the heap it fragmented stayed resident after it was
freed. Without anchors no value is shared, so the data can be built as the events arrive,
with the same values, lines and problems as `yaml_source`'s node walker: the tags are
resolved by the loader's own `resolve`, called as libyaml's composer calls it, and each
scalar that is not plain text goes through the same `ScalarReader.scalar`, on a node made
for it alone.

Whatever only the tree walker handles the same way as before (an alias, a `<<` merge or `=`
value key, a second document, more than the budget of values) raises `NeedsTree`: the
caller then reads the text again with the node walker, which gives the answer of record.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import yaml

from .fields import EnvText, Unresolved, join
from .yaml_scalars import (
    COLLECTION_TAGS,
    INT_TAG,
    SPECIAL_KEY_TAGS,
    STR_TAG,
    TEXT_KEYS,
    Document,
    ScalarReader,
)

_Scalar = yaml.ScalarEvent
_MappingStart = yaml.MappingStartEvent
_SequenceStart = yaml.SequenceStartEvent
_MappingEnd = yaml.MappingEndEvent
_SequenceEnd = yaml.SequenceEndEvent
_Alias = yaml.AliasEvent
_ScalarNode = yaml.ScalarNode


class NeedsTree(Exception):
    """The document uses what only the node walker reads (see the module docstring)."""


class EventWalker(ScalarReader):
    """Turns events into data; records lines and problems as the node walker does.

    Events are typed `Any`: the stubs give `get_event` no precise type, and the walk tells
    the kinds apart by class (`is`, not `isinstance`: this loop runs once per value).
    `problem` takes an event for a node: it reads `start_mark` alone.
    """

    def __init__(
        self, loader: yaml.SafeLoader | yaml.CSafeLoader, env: Mapping[str, str], limit: int
    ) -> None:
        super().__init__(loader, env, limit)
        self.next_event: Callable[[], Any] = loader.get_event
        # (kind, value, implicit) -> tag; `_Loader` caches it per document
        self.resolve: Callable[[type[yaml.Node], str | None, object], str] = loader.resolve

    def document(self) -> Document:
        check_event: Callable[[type[yaml.Event]], bool] = self.loader.check_event
        self.next_event()  # StreamStartEvent
        if check_event(yaml.StreamEndEvent):
            return self.doc  # an empty stream: no data
        self.next_event()  # DocumentStartEvent
        self.doc.data = self.node(self.next_event(), "", None)
        self.next_event()  # DocumentEndEvent
        if not check_event(yaml.StreamEndEvent):
            raise NeedsTree  # a second document: the composer's error says where
        return self.doc

    def node(self, event: Any, path: str, key: str | None) -> object:
        self.budget -= 1
        if self.budget < 0:
            raise NeedsTree
        cls = event.__class__
        if cls is _Scalar:
            return self.scalar_event(event, self.scalar_tag(event), path, key)
        if cls is _Alias:
            raise NeedsTree
        is_mapping = cls is _MappingStart
        tag = event.tag
        if tag is None or tag == "!":  # non-specific: resolved as the composer does
            kind = yaml.MappingNode if is_mapping else yaml.SequenceNode
            tag = self.resolve(kind, None, event.implicit)
        if tag not in COLLECTION_TAGS:
            self.problem(path, f"unsupported tag {tag}", event)
            self.skip()  # its content is not read, as the node walker leaves it
            return Unresolved(tag)
        return self.mapping(path) if is_mapping else self.sequence(path)

    def scalar_tag(self, event: Any) -> str:
        tag: str | None = event.tag
        if tag is None or tag == "!":  # non-specific: resolved as the composer does
            return self.resolve(_ScalarNode, event.value, event.implicit)
        return tag

    def scalar_event(self, event: Any, tag: str, path: str, key: str | None) -> object:
        node = _ScalarNode(tag, event.value, event.start_mark, event.end_mark, event.style)
        value = self.scalar(node, path, key)
        # The constructor remembers each node it built a value from; none is met twice here.
        self.loader.constructed_objects.pop(node, None)
        return value

    def sequence(self, path: str) -> list[object]:
        items: list[object] = []
        lines = self.doc.lines
        get_event = self.next_event
        resolve = self.resolve
        i = 0
        while (event := get_event()).__class__ is not _SequenceEnd:
            child = f"{path}[{i}]"
            i += 1
            lines.setdefault(child, event.start_mark.line + 1)
            if event.__class__ is _Scalar:
                text, tag = event.value, event.tag
                if tag is None or tag == "!":
                    tag = resolve(_ScalarNode, text, event.implicit)
                if tag == STR_TAG and "$" not in text:
                    self.budget -= 1  # what `node` would do, without the call
                    items.append(text)
                    continue
                self.budget -= 1
                if self.budget < 0:
                    raise NeedsTree
                items.append(self.scalar_event(event, tag, child, None))
                continue
            items.append(self.node(event, child, None))
        if self.budget < 0:
            raise NeedsTree
        return items

    def mapping(self, path: str) -> dict[str, object]:
        result: dict[str, object] = {}
        first: dict[str, int] = {}
        lines = self.doc.lines
        get_event = self.next_event
        resolve = self.resolve
        event: Any  # not narrowed by the class tests: the stubs' event types are too loose
        while (event := get_event()).__class__ is not _MappingEnd:
            if event.__class__ is not _Scalar:
                self.collection_key(event, path)
                continue
            key_event: Any = event  # the stubs give events no common mark type
            key: str = key_event.value
            if self.scalar_tag(event) in SPECIAL_KEY_TAGS:
                raise NeedsTree  # `flatten_mapping` rewrites this mapping: the tree's job
            child = f"{path}.{key}" if path and key.isprintable() else join(path, key)
            line = key_event.start_mark.line + 1
            if key in first:
                self.problem(child, f"duplicate key (first at line {first[key]})", key_event)
            else:
                first[key] = line
            lines[child] = line
            event = get_event()
            # Most values are plain text, or an address's digits: taken as `scalar` would.
            if event.__class__ is _Scalar:
                text, tag = event.value, event.tag
                if tag is None or tag == "!":
                    tag = resolve(_ScalarNode, text, event.implicit)
                self.budget -= 1
                if tag == STR_TAG and "$" not in text:
                    result[key] = text
                elif tag == INT_TAG and key in TEXT_KEYS:
                    result[key] = EnvText(text)
                else:
                    if self.budget < 0:
                        raise NeedsTree
                    result[key] = self.scalar_event(event, tag, child, key)
                continue
            result[key] = self.node(event, child, key)
        if self.budget < 0:
            raise NeedsTree
        return result

    def collection_key(self, event: Any, path: str) -> None:
        """A list or mapping as a key: reported; neither it nor its value is read."""
        if event.__class__ is _Alias or event.tag in SPECIAL_KEY_TAGS:
            raise NeedsTree
        self.problem(path, "a key must be a plain name, not a list or mapping", event)
        self.skip()  # the rest of the key
        self.skip_node(self.next_event())  # and its value

    def skip_node(self, event: Any) -> None:
        if event.__class__ is _Alias:
            raise NeedsTree  # the composer would stop at it
        if event.__class__ is not _Scalar:
            self.skip()

    def skip(self) -> None:
        """Consume the rest of the collection whose start event was the last one read."""
        get_event = self.next_event
        depth = 1
        while depth:
            cls = get_event().__class__
            if cls is _MappingStart or cls is _SequenceStart:
                depth += 1
            elif cls is _MappingEnd or cls is _SequenceEnd:
                depth -= 1
            elif cls is _Alias:
                raise NeedsTree  # the composer would stop at it
