"""Start-up peak memory of the YAML read: the node tree must not outlive the walk of each item.

On a 1,000-device config the composed node tree (two marks per node) is most of the bridge's
peak RSS; holding it whole while its data is built added a third on top."""

import tracemalloc

from modbus_mqtt_bridge.config.yaml_source import _Loader, parse_yaml


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


def test_parse_peak_stays_near_the_tree_alone() -> None:
    text = _config(200)
    tree = _tree_bytes(text)
    tracemalloc.start()
    try:
        doc = parse_yaml(text, {})
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(doc.data["devices"]) == 200  # type: ignore[index]
    assert peak < 1.15 * tree, (peak, tree)


def test_anchors_still_resolve_when_shared() -> None:
    text = "a: &x [1, {k: v}]\nb: *x\nc: [*x, *x]\n"
    doc = parse_yaml(text, {})
    assert doc.data == {"a": [1, {"k": "v"}], "b": [1, {"k": "v"}], "c": [[1, {"k": "v"}]] * 2}
