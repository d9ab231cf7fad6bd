"""Shared fixtures for integration tests: one real Mosquitto per session, helpers to run parts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.forwarder import Publisher, Sidecars
from tests.support.laravel import LaravelApp, missing_reason
from tests.support.mosquitto import Mosquitto
from tests.support.subscriber import Subscriber


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture
def own_broker() -> Iterator[Mosquitto]:
    """A broker this test alone may stop, kill and restart."""
    mq = Mosquitto()
    mq.start()
    yield mq
    mq.close()


@pytest.fixture
def subscriber(broker: Mosquitto) -> Iterator[Subscriber]:
    sub = Subscriber(broker.port, "#")
    yield sub
    sub.close()


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LaravelApp]:
    """The real Laravel app, one fresh copy per test module that uses it."""
    if reason := missing_reason():
        pytest.skip(reason)
    laravel = LaravelApp(tmp_path_factory.mktemp("laravel")).start()
    yield laravel
    laravel.close()


@pytest.fixture
def sidecars(tmp_path: Path, broker: Mosquitto, app: LaravelApp) -> Iterator[Sidecars]:
    made = Sidecars(tmp_path, broker.port, app)
    yield made
    made.close()


@pytest.fixture
def publisher(broker: Mosquitto) -> Iterator[Publisher]:
    pub = Publisher(broker.port)
    yield pub
    pub.close()
