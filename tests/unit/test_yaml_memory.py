"""Start-up peak memory of the YAML read: no node tree for anchor-free text, and where the
tree is needed (anchors), it must not outlive the walk of each item.

On a 1,000-device config the composed node tree (two marks per node) was most of the
bridge's peak RSS; the event walker (config/yaml_events.py) never builds it."""

import tracemalloc

import pytest

from modbus_mqtt_bridge.config.yaml_source import _Loader, parse_yaml, read_events, read_tree


def _config(devices: int) -> str:
    lines = ["devices:"]
    for d in range(devices):
        lines += [f"  - name: dev{d}", "    registers:"]
        lines += [f"      - {{name: r{r}, address: {r}, type: uint16}}" for r in range(20)]
    return "\n".join(lines) + "\n"


def _tree_bytes(text: str) -> int:
    tracemalloc.start()
    try:
        loader = _Loader(text)
        root = loader.get_single_node()
        size = tracemalloc.get_traced_memory()[0]
        del root
        loader.dispose()
        return size
    finally:
        tracemalloc.stop()


def _peak(read: object, text: str) -> int:
    tracemalloc.start()
    try:
        doc = read(text, {})  # type: ignore[operator]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(doc.data["devices"]) == 200
    return int(peak)


def test_an_anchor_free_config_is_read_without_the_tree_at_well_under_its_peak() -> None:
    text = _config(200)
    tree = _tree_bytes(text)
    streamed, walked = _peak(read_events, text), _peak(read_tree, text)
    assert walked < 1.15 * tree, (walked, tree)  # the tree path releases as it walks
    assert streamed < 0.6 * walked, (streamed, walked)
    assert _peak(parse_yaml, text) < 0.6 * walked  # and parse_yaml takes the event path


R3, R7 = "{name: r3, address: 3, type: uint16}", "{name: r7, address: 7, type: uint16}"
BAD = [  # each put into device 150 of 200: a problem (or an odd value) deep in the file
    (R3, "{name: r3, address: 3, type: uint16, scale: [1, 2]}"),
    ("  - name: dev150\n", "  - name: dev150\n    name: again\n"),
    (R7, "{name: r7, address: 00007, type: '${UNSET_TYPE}', x: !!float .inf, y: !odd 1}"),
    (R3, "{name: '${NAME:-r3}', when: 2026-12-04, ok: yes, none: ~, n: 0x1F, f: 1e3}"),
]


@pytest.mark.parametrize(("old", "new"), BAD)
def test_the_event_walker_reads_data_lines_and_problems_as_the_tree_walker_does(
    old: str, new: str
) -> None:
    base = _config(200)
    head, sep, tail = base.partition("  - name: dev150\n")
    text = head + (sep + tail).replace(old, new, 1)
    assert text != base
    env = {"NAME": ""}
    streamed, walked = read_events(text, env), read_tree(text, env)
    assert streamed.data == walked.data
    assert streamed.lines == walked.lines
    assert [(p.path, p.message, p.line) for p in streamed.problems] == [
        (p.path, p.message, p.line) for p in walked.problems
    ]


def test_anchors_still_resolve_when_shared() -> None:
    text = "a: &x [1, {k: v}]\nb: *x\nc: [*x, *x]\n"
    doc = parse_yaml(text, {})
    assert doc.data == {"a": [1, {"k": "v"}], "b": [1, {"k": "v"}], "c": [[1, {"k": "v"}]] * 2}
