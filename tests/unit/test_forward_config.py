"""The side-car's config keys: its own port, exclude, dead_letter_max, the outbox path, and
an API URL with credentials refused without echoing them."""

from __future__ import annotations

import pytest

from modbus_mqtt_bridge.config.model import ForwardConfig
from modbus_mqtt_bridge.config.validate import validate
from modbus_mqtt_bridge.errors import ConfigError
from modbus_mqtt_bridge.forward.delivery import shown_url
from modbus_mqtt_bridge.forward.service import resolve_target

SECRET = "pa55-w0rd-Xy"


def problems(forward: dict[str, object], **top: object) -> list[str]:
    try:
        validate({"site": "p", "forward": forward, **top})
    except ConfigError as exc:
        return [str(p) for p in exc.problems]
    return []


def test_defaults() -> None:
    fwd = validate({"site": "p"}).forward
    assert (fwd.outbox, fwd.exclude, fwd.dead_letter_max, fwd.metrics_listen) == (
        None,
        (),
        100_000,
        None,
    )


def test_the_new_keys_are_read() -> None:
    fwd = validate(
        {
            "site": "p",
            "forward": {
                "exclude": ["p/+/setpoint", "p/boiler/#"],
                "dead_letter_max": 10,
                "metrics_listen": "127.0.0.1:9106",
                "outbox": "/data/outbox.db",
            },
        }
    ).forward
    assert fwd.exclude == ("p/+/setpoint", "p/boiler/#")
    assert (fwd.dead_letter_max, fwd.metrics_listen, fwd.outbox) == (
        10,
        "127.0.0.1:9106",
        "/data/outbox.db",
    )


@pytest.mark.parametrize(
    ("forward", "expected"),
    [
        ({"exclude": ["p/#/x"]}, "forward.exclude[0]: 'p/#/x': '#' may only be the last level"),
        ({"exclude": ["$share/g/p/+"]}, "forward.exclude[0]: '$share/g/p/+': an exclude filter"),
        ({"exclude": "p/+/x"}, "forward.exclude: expected a list"),
        ({"dead_letter_max": 0}, "forward.dead_letter_max: 0 is out of range"),
        ({"metrics_listen": "9106"}, "forward.metrics_listen: expected host:port"),
        ({"outbox": ":memory:"}, "forward.outbox: the outbox must be a file"),
    ],
)
def test_bad_values_are_one_line_each(forward: dict[str, object], expected: str) -> None:
    found = problems(forward)
    assert len(found) == 1, found
    assert found[0].startswith(expected), found


def test_the_sidecar_may_not_take_the_bridges_port() -> None:
    found = problems({"metrics_listen": "127.0.0.1:9105"}, metrics={"listen": "0.0.0.0:9105"})
    assert found == [
        "forward.metrics_listen: same port as metrics.listen (0.0.0.0:9105): the side-car"
        " needs its own port when both run on one host"
    ]


@pytest.mark.parametrize(
    ("bridge", "sidecar"),
    [("10.0.0.1:9105", "127.0.0.1:9105"), ("127.0.0.1:9105", "127.0.0.1:9106")],
)
def test_listeners_that_can_both_bind_are_accepted(bridge: str, sidecar: str) -> None:
    assert problems({"metrics_listen": sidecar}, metrics={"listen": bridge}) == []


@pytest.mark.parametrize("key", ["api_url", "batch_url"])
def test_credentials_in_the_api_url_are_refused_and_never_echoed(key: str) -> None:
    found = problems({key: f"https://poller:{SECRET}@em.example/api/readings"})
    assert found == [
        f"forward.{key}: put the API token in forward.token (sent as a Bearer token),"
        " not in the url"
    ]
    assert SECRET not in found[0]
    bad_port = problems({key: f"https://poller:{SECRET}@em.example:x/api"})
    assert SECRET not in " ".join(bad_port)


def test_credentials_in_laravel_api_url_are_refused_too() -> None:
    env = {"LARAVEL_API_URL": f"http://poller:{SECRET}@127.0.0.1/api/readings"}
    with pytest.raises(ConfigError) as caught:
        resolve_target(ForwardConfig(), env)
    assert "forward.api_url: put the API token in forward.token" in str(caught.value)
    assert SECRET not in str(caught.value)


def test_urls_are_shown_without_their_query() -> None:
    assert shown_url(f"https://em.example/api/readings?api_token={SECRET}") == (
        "https://em.example/api/readings?…"
    )
    assert shown_url("https://em.example/api/readings") == "https://em.example/api/readings"
