"""The `/metrics` body, rendered on the event loop a slice at a time.

prometheus_client renders a registry in one call. At 1,000 connections that is 51,000 lines
(3.9 MB) and 0.5 s of CPU, 0.9 s in OpenMetrics (what Prometheus asks for). On the loop it
held every worker's poll that long; in a thread it held the GIL instead, and each of the
loop's socket calls then waited up to a switch interval (5 ms) to take it back: scenario D's
schedule lateness p99 was about 1 s around a scrape (docs/benchmarks.md). Here each family's
samples are taken lazily, series by series, and written in slices of `SLICE` samples with a
yield to the loop in between, so a scrape delays a poll by about one slice (~1 ms).

The text is prometheus_client's, byte for byte (tests/unit/test_exposition.py compares the
two on every metric the bridge and the side-car define). What this encoder does not write
itself (units, exemplars, native histograms, info and state sets, target info, a client's
unusual name escaping) is left to prometheus_client's own encoder, whole.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable, Iterable, Iterator
from typing import Any, cast

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.openmetrics import exposition as openmetrics
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

# Go's float format, as both of prometheus_client's encoders write values (untyped there)
_go_float = cast(Callable[[float], str], floatToGoString)

SLICE = 64  # samples written between two yields to the loop (~1 ms on the bench VM)

_TYPES = frozenset({"counter", "gauge", "histogram", "summary"})
# Text format: these samples leave their family for a gauge family of their own at its end.
_OM_SUFFIXES = ("_created", "_gsum", "_gcount")
# Name escapings that leave the bridge's plain metric and label names as they are.
_PLAIN_ESCAPINGS = frozenset({openmetrics.UNDERSCORES, openmetrics.ALLOWUTF8})


class _Unsupported(Exception):
    """A sample this encoder does not write: the whole body goes to prometheus_client."""


async def render(registry: CollectorRegistry, accept: str) -> tuple[bytes, str]:
    """The exposition for an `Accept` header, and its content type; yields while writing."""
    encoder, content_type = choose_encoder(accept)
    options = getattr(encoder, "keywords", {})
    om = getattr(encoder, "func", encoder) is openmetrics.generate_latest
    collectors = _collectors(registry)
    if collectors is not None and options.get("escaping", openmetrics.UNDERSCORES) in (
        _PLAIN_ESCAPINGS
    ):
        try:
            return await _write(collectors, om), content_type
        except _Unsupported:
            pass
    return await asyncio.to_thread(encoder, registry), content_type


def _collectors(registry: CollectorRegistry) -> list[Any] | None:
    """The registry's collectors, as `collect` takes them; None where that is not known."""
    names = getattr(registry, "_collector_to_names", None)
    lock = getattr(registry, "_lock", None)
    if not isinstance(names, dict) or lock is None or getattr(registry, "_target_info", None):
        return None
    with lock:
        return list(copy.copy(names))


async def _write(collectors: Iterable[Any], om: bool) -> bytes:
    """The body, yielding to the loop every SLICE samples.

    Each slice's lines are encoded as soon as it is written, so the body is never held as
    its 51,000 line strings, one text and its bytes at once: at 1,000 connections that took
    the bridge's peak RSS up by ~19 MB on every scrape (docs/benchmarks.md)."""
    write = _om_family if om else _text_family
    out: list[str] = []
    chunks: list[bytes] = []
    written = 0
    for collector in collectors:
        for name, doc, kind, unit, samples in await _families(collector):
            if kind not in _TYPES or unit:
                raise _Unsupported(name)
            for _ in write(out, name, doc, kind, samples):
                written += 1
                if written % SLICE == 0:
                    chunks.append("".join(out).encode())
                    out.clear()
                    await asyncio.sleep(0)
    if om:
        out.append("# EOF\n")
    chunks.append("".join(out).encode())
    return b"".join(chunks)


_Family = tuple[str, str, str, str, Iterable[Sample]]  # name, help, type, unit, samples


async def _families(collector: Any) -> list[_Family]:
    """A collector's families. A metric of labelled series (nearly all of the body) gives its
    samples lazily, series by series, on the loop; any other collector (the process's
    figures from /proc, a custom one that may block) is collected in a thread."""
    if isinstance(collector, MetricWrapperBase) and collector._is_parent():  # type: ignore[no-untyped-call]
        wrapper: Any = collector  # its private parts are untyped
        head = wrapper._get_metric()
        prefix = wrapper._name
        # `_samples` names each sample by its suffix; `collect` prefixes the metric's name
        samples = (s._replace(name=prefix + s.name) for s in wrapper._samples())
        return [(head.name, head.documentation, head.type, head.unit, samples)]
    metrics = await asyncio.to_thread(lambda: list(collector.collect()))
    return [(m.name, m.documentation, m.type, m.unit, m.samples) for m in metrics]


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    pairs = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()))
    return "{" + pairs + "}"


def _escape(text: str) -> str:
    return text.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _check(sample: Sample) -> None:
    if sample.exemplar or sample.native_histogram:
        raise _Unsupported(sample.name)


def _text_family(
    out: list[str], name: str, doc: str, kind: str, samples: Iterable[Sample]
) -> Iterator[None]:
    """Text format 0.0.4 as prometheus_client writes it; yields after each sample."""
    shown = name + "_total" if kind == "counter" else name
    doc = doc.replace("\\", r"\\").replace("\n", r"\n")
    out.append(f"# HELP {shown} {doc}\n# TYPE {shown} {kind}\n")
    special = {name + suffix: suffix for suffix in _OM_SUFFIXES}
    moved: dict[str, list[str]] = {}
    for sample in samples:
        _check(sample)
        stamp = "" if sample.timestamp is None else f" {int(float(sample.timestamp) * 1000):d}"
        line = f"{sample.name}{_labels(sample.labels)} {_go_float(sample.value)}{stamp}\n"
        suffix = special.get(sample.name)
        if suffix is None:
            out.append(line)
        else:
            moved.setdefault(suffix, []).append(line)
        yield
    for suffix, lines in sorted(moved.items()):
        out.append(f"# HELP {name}{suffix} {doc}\n# TYPE {name}{suffix} gauge\n")
        out.extend(lines)


def _om_family(
    out: list[str], name: str, doc: str, kind: str, samples: Iterable[Sample]
) -> Iterator[None]:
    """OpenMetrics 1.0 as prometheus_client writes it; yields after each sample."""
    out.append(f"# HELP {name} {_escape(doc)}\n# TYPE {name} {kind}\n")
    for sample in samples:
        _check(sample)
        stamp = "" if sample.timestamp is None else f" {sample.timestamp}"
        value = "" if sample.value is None else _go_float(sample.value)
        out.append(f"{sample.name}{_labels(sample.labels)} {value}{stamp}\n")
        yield
