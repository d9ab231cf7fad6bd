"""Scrape and check Prometheus text: parse it, and lint it with promtool when installed."""

from __future__ import annotations

import shutil
import subprocess
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def get(url: str, timeout: float = 5) -> tuple[int, str, str]:
    """(status, content type, body) of a GET; HTTP errors are answers too."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode()


def status_or_zero(url: str) -> int:
    """The HTTP status, or 0 while nothing listens yet (for bounded polling at startup)."""
    try:
        return get(url, timeout=2)[0]
    except urllib.error.URLError:
        return 0


def samples(text: str) -> Samples:
    """Every sample as {(name, sorted labels): value}; raises on text Prometheus cannot parse."""
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(all_samples: Samples, name: str, **labels: str) -> float | None:
    return all_samples.get((name, tuple(sorted(labels.items()))))


def promtool_check(text: str) -> None:
    """`promtool check metrics` (naming and format lint); skipped without promtool."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian package prometheus; `make test` adds it)")
    result = subprocess.run(
        [promtool, "check", "metrics"],
        input=text,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
