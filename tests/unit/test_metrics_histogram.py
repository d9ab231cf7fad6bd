"""CompactHistogram gives the samples prometheus_client's Histogram gives, observation
for observation, in a fraction of the memory per labelled child."""

from __future__ import annotations

import math
import tracemalloc

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram

from modbus_mqtt_bridge.observe.metrics import LATENCY_BUCKETS, CompactHistogram

amounts = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, *LATENCY_BUCKETS, math.inf, -math.inf]),
)


def _pair(buckets: tuple[float, ...]) -> tuple[Histogram, CompactHistogram]:
    kwargs = {"labelnames": ["connection"], "buckets": buckets}
    plain = Histogram("h", "help", registry=CollectorRegistry(), **kwargs)  # type: ignore[arg-type]
    compact = CompactHistogram("h", "help", registry=CollectorRegistry(), **kwargs)  # type: ignore[arg-type]
    return plain, compact


Samples = list[tuple[str, dict[str, str], float]]


def _samples(histogram: Histogram) -> Samples:
    (family,) = histogram.collect()
    return [(s.name, s.labels, s.value) for s in family.samples if not s.name.endswith("_created")]


def _same(a: Samples, b: Samples) -> bool:
    return all(
        x[:2] == y[:2] and (x[2] == y[2] or (math.isnan(x[2]) and math.isnan(y[2])))
        for x, y in zip(a, b, strict=True)
    ) and len(a) == len(b)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(["c1", "c2"]), amounts), max_size=40),
    st.sampled_from([LATENCY_BUCKETS, (-1.0, 0.0, 1.0), (1.0,)]),
)
def test_the_same_samples_as_prometheus_clients_histogram(
    observations: list[tuple[str, float]], buckets: tuple[float, ...]
) -> None:
    plain, compact = _pair(buckets)
    for label, amount in observations:
        plain.labels(label).observe(amount)
        compact.labels(label).observe(amount)
    assert _same(_samples(plain), _samples(compact))
    names = [s.name for s in next(iter(compact.collect())).samples]
    assert names.count("h_created") == len({label for label, _ in observations})


def test_a_labelled_child_takes_much_less_memory() -> None:
    used = []
    for histogram in _pair(LATENCY_BUCKETS):
        tracemalloc.start()
        for i in range(200):
            histogram.labels(f"c{i}").observe(0.01)
        used.append(tracemalloc.get_traced_memory()[0])
        tracemalloc.stop()
    plain, compact = used
    assert compact < plain / 2, (plain, compact)
