"""Turn the raw parsed config into a `Config`, or raise ConfigError listing every problem.

Shape first (each section, key and value), then references (connections named by devices,
duplicate names, overlapping writable registers). Pure: no I/O, no environment.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Literal
from urllib.parse import urlsplit

from ..errors import ConfigError
from .fields import FieldError, Fields, Problems, describe, segment_problem, to_text
from .model import (
    BufferConfig,
    CommandsConfig,
    Config,
    ForwardConfig,
    HomeAssistantConfig,
    LoggingConfig,
    MetricsConfig,
    MqttConfig,
    TlsConfig,
)
from .validate_devices import DeviceEntry, Located, read_connections, read_devices
from .validate_refs import check_references

PROTOCOLS: dict[str, Literal["5", "3.1.1"]] = {
    "5": "5",
    "5.0": "5",
    "v5": "5",
    "mqttv5": "5",
    "3.1.1": "3.1.1",
    "311": "3.1.1",
    "v311": "3.1.1",
    "mqttv311": "3.1.1",
}
LOG_LEVELS: dict[str, str] = {
    "debug": "DEBUG",
    "info": "INFO",
    "warning": "WARNING",
    "warn": "WARNING",
    "error": "ERROR",
    "critical": "CRITICAL",
}


def validate(raw: object, lines: Mapping[str, int] | None = None) -> Config:
    """The Config for `raw` (a parsed YAML mapping); ConfigError with every problem otherwise.

    `lines` maps a path such as `devices[0].registers[2].type` to its line in the YAML file.
    """
    problems = Problems(lines)
    config = build_config(raw, problems)
    if problems.items or config is None:
        raise ConfigError(problems.items)
    return config


def build_config(raw: object, problems: Problems) -> Config | None:
    """Read every section, recording problems; None when the top level is unusable."""
    if not _usable_top(raw, problems):
        return None
    top = Fields(raw, "", problems)
    site = top.required("site", to_site)
    mqtt = read_mqtt(top.section("mqtt"))
    commands = read_commands(top.section("commands"))
    buffer = read_buffer(top.section("buffer"))
    metrics = read_metrics(top.section("metrics"))
    homeassistant = read_homeassistant(top.section("homeassistant"))
    logging = read_logging(top.section("logging"))
    forward = read_forward(top.section("forward"))
    _own_ports(metrics, forward, problems)
    connections = read_connections(top)
    devices = read_devices(top, connections)
    top.finish()
    _cross_check(connections, devices, problems)
    if site is None:
        return None
    return Config(
        site=site,
        connections=tuple(conn for _, conn in connections),
        devices=tuple(entry.device for entry in devices),
        mqtt=mqtt,
        commands=commands,
        buffer=buffer,
        metrics=metrics,
        homeassistant=homeassistant,
        logging=logging,
        forward=forward,
    )


def _own_ports(metrics: MetricsConfig, forward: ForwardConfig, problems: Problems) -> None:
    """The shipped units run the bridge and the side-car on one host from one config."""
    bridge, sidecar = metrics.listen, forward.metrics_listen
    if bridge and sidecar and _may_clash(bridge, sidecar):
        problems.add(
            "forward.metrics_listen",
            f"same port as metrics.listen ({bridge}): the side-car needs its own"
            " port when both run on one host",
        )


def _may_clash(a: str, b: str) -> bool:
    """Two "host:port" listeners that cannot both bind: same port, and the same host or a
    wildcard (empty, 0.0.0.0, ::) on either side."""
    (host_a, _, port_a), (host_b, _, port_b) = a.rpartition(":"), b.rpartition(":")
    wildcard = {"", "0.0.0.0", "::", "[::]"}  # noqa: S104  (compared, never bound)
    return port_a == port_b and (host_a == host_b or host_a in wildcard or host_b in wildcard)


def _usable_top(raw: object, problems: Problems) -> bool:
    if raw is None:
        problems.add("", "the config is empty")
    elif not isinstance(raw, Mapping):
        problems.add("", f"the config must be a mapping (site:, mqtt:, ...), got {describe(raw)}")
    return isinstance(raw, Mapping)


def _cross_check(
    connections: list[Located], devices: list[DeviceEntry], problems: Problems
) -> None:
    """Shape problems first, then cross-entry ones; each group top to bottom in the file."""
    _in_file_order(problems, 0)
    shape_count = len(problems.items)
    check_references(connections, devices, problems)
    _in_file_order(problems, shape_count)


def _in_file_order(problems: Problems, start: int) -> None:
    """Sort problems from `start` on by line (stable), so they read top to bottom."""
    problems.items[start:] = sorted(problems.items[start:], key=lambda p: p.line or 0)


def to_site(value: object) -> str:
    name = to_text(value)
    problem = segment_problem(name)
    if problem:
        raise FieldError(problem)
    if name.startswith("$"):
        raise FieldError(f"{name!r} starts with '$', which MQTT reserves for broker topics")
    return name


def read_mqtt(f: Fields) -> MqttConfig:
    default = MqttConfig()
    seen = len(f.problems.items)
    url = f.convert("url", mqtt_url, default.url)
    url_ok = len(f.problems.items) == seen  # a bad url is one problem, not a TLS one too
    tls = read_tls(f.section("tls"))
    config = MqttConfig(
        url=url,
        client_id=f.text("client_id", default.client_id),
        username=f.opt_text("username"),
        password=f.opt_text("password"),
        tls=tls,
        protocol=f.choice("protocol", default.protocol, PROTOCOLS),
        qos=f.integer("qos", default.qos, 0, 2),
        retain=f.boolean("retain", default.retain),
        per_register=f.boolean("per_register", default.per_register),
        device_payload=f.boolean("device_payload", default.device_payload),
        keepalive_s=f.duration("keepalive", default.keepalive_s),
    )
    if config.keepalive_s > 65535:
        f.report("keepalive", "MQTT allows at most 65535 s (18h12min15s)")
    if not (config.per_register or config.device_payload):
        f.report("per_register", "per_register and device_payload are both false: nothing is sent")
    uses_tls = tls.ca_file or tls.cert_file or tls.insecure
    if uses_tls and url_ok and not url.startswith("mqtts://"):
        f.report("tls", "TLS options are set but the url is not mqtts://")
    f.finish()
    return config


def mqtt_url(value: object) -> str:
    """mqtt://host[:port] or mqtts://host[:port]; credentials belong in username/password."""
    text = to_text(value).strip()
    scheme, sep, rest = text.partition("://")
    if not sep or scheme.lower() not in ("mqtt", "mqtts"):
        raise FieldError(f"unsupported url {text!r}: use mqtt://host:port or mqtts://host:port")
    text = f"{scheme.lower()}://{rest}"
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise FieldError(f"invalid url {text!r}: {exc}") from None
    if "@" in parts.netloc:
        raise FieldError("put credentials in mqtt.username and mqtt.password, not in the url")
    if not parts.hostname:
        raise FieldError(f"url {text!r} has no host")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise FieldError(f"url {text!r} must be only scheme://host:port")
    if port == 0:
        raise FieldError(f"url {text!r}: port 0 is not a port")
    return text


def read_tls(f: Fields) -> TlsConfig:
    tls = TlsConfig(
        ca_file=f.opt_text("ca_file"),
        cert_file=f.opt_text("cert_file"),
        key_file=f.opt_text("key_file"),
        insecure=f.boolean("insecure", False),
    )
    if tls.key_file and not tls.cert_file:
        f.report("key_file", "key_file needs cert_file (the client certificate)")
    f.finish()
    return tls


def read_commands(f: Fields) -> CommandsConfig:
    default = CommandsConfig()
    config = CommandsConfig(
        max_age_s=f.duration("max_age", default.max_age_s),
        max_payload_bytes=f.integer("max_payload_bytes", default.max_payload_bytes, 1),
    )
    f.finish()
    return config


def read_buffer(f: Fields) -> BufferConfig:
    config = BufferConfig(
        path=f.opt_text("path"),
        max_readings=f.integer("max_readings", BufferConfig().max_readings, 1),
    )
    f.finish()
    return config


def read_metrics(f: Fields) -> MetricsConfig:
    default = MetricsConfig()
    config = MetricsConfig(
        listen=f.convert("listen", listen_address, None),
        history=f.integer("history", default.history, 1, 100_000),
        write_token=f.opt_text("write_token"),
    )
    f.finish()
    return config


def listen_address(value: object) -> str:
    """host:port, [v6]:port or :port (all interfaces)."""
    text = to_text(value).strip()
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise FieldError(f"expected host:port (e.g. 127.0.0.1:9105), got {describe(value)}")
    if host.startswith("[") != host.endswith("]"):
        raise FieldError(f"unbalanced brackets in {text!r} (IPv6: [::1]:9105)")
    return text


def read_homeassistant(f: Fields) -> HomeAssistantConfig:
    default = HomeAssistantConfig()
    config = HomeAssistantConfig(
        discovery=f.boolean("discovery", default.discovery),
        prefix=f.convert("prefix", topic_prefix, default.prefix),
    )
    f.finish()
    return config


def topic_prefix(value: object) -> str:
    text = to_text(value)
    for level in text.split("/"):
        problem = segment_problem(level)
        if problem:
            raise FieldError(problem if level == text else f"{text!r}: level {problem}")
    return text


def read_logging(f: Fields) -> LoggingConfig:
    default = LoggingConfig()
    config = LoggingConfig(
        level=f.choice("level", default.level, LOG_LEVELS),
        file=f.opt_text("file"),
        max_bytes=f.integer("max_bytes", default.max_bytes, 1),
        backup_count=f.integer("backup_count", default.backup_count, 0),
    )
    f.finish()
    return config


def read_forward(f: Fields) -> ForwardConfig:
    default = ForwardConfig()
    config = ForwardConfig(
        subscribe=f.convert("subscribe", topic_filter, default.subscribe),
        api_url=f.convert("api_url", http_url, None),
        token=f.opt_text("token"),
        batch_url=f.convert("batch_url", http_url, None),
        batch_size=f.integer("batch_size", default.batch_size, 1),
        outbox=f.convert("outbox", outbox_path, None),
        outbox_max=f.integer("outbox_max", default.outbox_max, 1),
        concurrency=f.integer("concurrency", default.concurrency, 1, 256),
        client_id=f.text("client_id", default.client_id),
        session_expiry_s=f.duration("session_expiry", default.session_expiry_s),
        timeout_s=f.duration("timeout", default.timeout_s),
        exclude=_list_of(f, "exclude", plain_topic_filter),
        dead_letter_max=f.integer("dead_letter_max", default.dead_letter_max, 1),
        metrics_listen=f.convert("metrics_listen", listen_address, None),
    )
    if config.session_expiry_s > 0xFFFFFFFF:
        f.report("session_expiry", "MQTT allows at most 4294967295 s")
    f.finish()
    return config


def _list_of(f: Fields, key: str, converter: Callable[[object], str]) -> tuple[str, ...]:
    """Each item of a list through `converter`; a bad item is reported at its own path."""
    good: list[str] = []
    for path, item in f.items(key):
        try:
            good.append(converter(item))
        except FieldError as exc:
            f.problems.add(path, str(exc))
    return tuple(good)


def outbox_path(value: object) -> str:
    text = to_text(value)
    if text.strip() == ":memory:":
        raise FieldError("the outbox must be a file: readings acked at the broker live only there")
    if not text.strip():
        raise FieldError("must not be empty (leave it out for the state directory)")
    return text


def http_url(value: object) -> str:
    """http(s)://host[:port]/path. Never echoes a URL that holds credentials."""
    text = to_text(value).strip()
    if "@" in text.split("://", 1)[-1].split("/", 1)[0]:
        raise FieldError(
            "put the API token in forward.token (sent as a Bearer token), not in the url"
        )
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018  (raises for a port that is not a number)
    except ValueError as exc:
        raise FieldError(f"invalid url {text!r}: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise FieldError(f"expected an http:// or https:// url, got {describe(value)}")
    return text


def plain_topic_filter(value: object) -> str:
    """A topic filter to match against, not to subscribe with: no $share/ prefix."""
    text = topic_filter(value)
    if text.startswith("$share/"):
        raise FieldError(f"{text!r}: an exclude filter matches topics; drop the $share/GROUP/")
    if not text:
        raise FieldError("must not be empty")
    return text


def topic_filter(value: object) -> str:
    """An MQTT subscription: `+` fills a whole level, `#` only the last; `$share/group/` allowed."""
    text = to_text(value)
    levels = text.split("/")
    if text.startswith("$share/"):
        if len(levels) < 3 or not levels[1] or any(c in levels[1] for c in "+#"):
            raise FieldError(f"{text!r}: use $share/GROUP/TOPIC-FILTER")
        levels = levels[2:]
    for i, level in enumerate(levels):
        if ("+" in level and level != "+") or ("#" in level and level != "#"):
            raise FieldError(f"{text!r}: a wildcard must fill a whole topic level")
        if level == "#" and i != len(levels) - 1:
            raise FieldError(f"{text!r}: '#' may only be the last level")
    return text
