"""The `forward` service: wires intake (broker -> outbox) and delivery (outbox -> API) together.

`serve` runs until its stop event is set; `run` is the process entry (signals, exit codes).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import httpx

from .. import __version__, statedir
from ..config.fields import FieldError
from ..config.model import Config, ForwardConfig
from ..config.validate import http_url
from ..errors import BridgeError, ConfigError, Problem
from ..observe.metrics import ForwarderMetrics
from ..retry import RetryPolicy
from .delivery import Delivery, Endpoints, shown_url
from .intake import Intake, client_id, subscription
from .observe import Observed
from .outbox import AsyncOutbox, Outbox

log = logging.getLogger(__name__)

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


@dataclass(frozen=True, slots=True)
class Target:
    """Where readings go, resolved from config and the legacy environment variables."""

    endpoints: Endpoints
    token: str | None


def resolve_target(fwd: ForwardConfig, env: Mapping[str, str]) -> Target:
    """forward.* first, then LARAVEL_API_URL / LARAVEL_API_TOKEN; every problem at once."""
    api_url = fwd.api_url or env.get("LARAVEL_API_URL") or ""
    problems = [
        Problem(path, message)
        for path, url in (("forward.api_url", api_url), ("forward.batch_url", fwd.batch_url))
        if (message := _url_problem(url, required=path == "forward.api_url"))
    ]
    if fwd.concurrency < 1:
        problems.append(Problem("forward.concurrency", "must be at least 1"))
    if fwd.batch_size < 1:
        problems.append(Problem("forward.batch_size", "must be at least 1"))
    if problems:
        raise ConfigError(problems)
    endpoints = Endpoints(api_url, fwd.batch_url, fwd.batch_size, fwd.concurrency, fwd.timeout_s)
    return Target(endpoints, fwd.token or env.get("LARAVEL_API_TOKEN") or None)


def _url_problem(url: str | None, *, required: bool) -> str | None:
    """The config's rule, also for LARAVEL_API_URL: credentials refused, never echoed."""
    if not url:
        return "required (or set LARAVEL_API_URL)" if required else None
    try:
        http_url(url)
        parsed = httpx.URL(url)
    except FieldError as exc:
        return str(exc)
    except httpx.InvalidURL as exc:
        return f"not a URL: {exc}"
    if not parsed.host:
        return "the url has no host"
    return None


def outbox_path(config: Config, env: Mapping[str, str]) -> str:
    """forward.outbox, or outbox.db in the state directory (statedir); checked usable."""
    resolved = statedir.prepare("forward.outbox", config.forward.outbox, "outbox.db", env)
    if resolved.warning:
        log.warning("%s", resolved.warning)
    assert resolved.path is not None, "validation refuses an in-memory outbox"
    return resolved.path


def http_client(
    target: Target, transport: httpx.AsyncBaseTransport | None = None
) -> httpx.AsyncClient:
    """One pooled client for the life of the service: connection reuse, bounded waits.

    `transport` replaces the network (tests script the API's answers with it).
    """
    headers = {
        # Without Accept: application/json Laravel answers errors with HTML redirects.
        "Accept": "application/json",
        "Content-Type": "application/json",
        "User-Agent": f"modbus-mqtt-bridge/{__version__} (forward)",
    }
    if target.token:
        headers["Authorization"] = f"Bearer {target.token}"  # "Bearer" is case-sensitive
    n = target.endpoints.concurrency
    return httpx.AsyncClient(
        headers=headers,
        timeout=httpx.Timeout(target.endpoints.timeout_s),
        limits=httpx.Limits(max_connections=n, max_keepalive_connections=n),
        follow_redirects=False,  # a redirect is an error to report, never a page to fetch
        transport=transport,
    )


async def serve(
    config: Config,
    stop: asyncio.Event,
    metrics: ForwarderMetrics | None = None,
    *,
    policy: RetryPolicy | None = None,
    env: Mapping[str, str] | None = None,
) -> None:
    """Deliver readings until `stop` is set; then finish in-flight requests and close."""
    env = os.environ if env is None else env
    target = resolve_target(config.forward, env)
    path = outbox_path(config, env)
    metrics = metrics or ForwarderMetrics()
    policy = policy or RetryPolicy()
    fwd = config.forward
    store = AsyncOutbox(Outbox(path, fwd.outbox_max, fwd.dead_letter_max))
    metrics.outbox_depth.set(store.depth)
    metrics.dead_letters_kept.set(store.dead)
    _log_start(config, target, store)
    try:
        async with http_client(target) as http:
            delivery = Delivery(target.endpoints, store, http, metrics, policy)
            intake = Intake(config, store, metrics, policy, on_stored=delivery.notify)
            observed = Observed(config, intake, delivery, store, metrics)
            endpoint = await observed.start_http()
            async with asyncio.TaskGroup() as tasks:
                if endpoint is not None:
                    tasks.create_task(endpoint.serve(stop), name="forward-http")
                tasks.create_task(intake.run(stop), name="forward-intake")
                tasks.create_task(delivery.run(stop), name="forward-delivery")
                for name, job in observed.tasks(stop):
                    tasks.create_task(job, name=name)
    finally:
        await store.close()
    log.info(  # tests and operators read this line: keep its shape
        "forward stopped: delivered %d, dead letters %d, %d left in the outbox",
        *(delivery.delivered, delivery.dead_lettered, store.depth),
    )


def _log_start(config: Config, target: Target, store: AsyncOutbox) -> None:
    ep = target.endpoints
    log.info(
        "forward %s -> %s%s as %s, concurrency %d; outbox %s holds %d (%d dead letters)",
        subscription(config),
        shown_url(ep.api_url),
        f" (batches of {ep.batch_size} to {shown_url(ep.batch_url)})" if ep.batch_url else "",
        client_id(config),
        ep.concurrency,
        store.sync.path,
        store.depth,
        store.dead,
    )
    if config.forward.exclude:
        log.info("never forwarded: %s", ", ".join(config.forward.exclude))
    if not target.token:
        log.warning("no API token (forward.token / LARAVEL_API_TOKEN): expect 401 and a pause")


def run(config: Config, *, policy: RetryPolicy | None = None) -> int:
    """Process entry: serve until SIGTERM/SIGINT; 0 clean stop, 1 failure, 2 bad config."""

    quiet = logging.getLogger("httpx")
    if quiet.level == logging.NOTSET:  # httpx logs every request at INFO: hundreds a second
        quiet.setLevel(logging.WARNING)

    async def main() -> None:
        stop = asyncio.Event()
        _install_signals(stop)
        await serve(config, stop, policy=policy)

    try:
        asyncio.run(main())
    except (BridgeError, ExceptionGroup) as exc:
        return _report(exc)
    return EXIT_OK


def _install_signals(stop: asyncio.Event) -> None:
    """SIGTERM/SIGINT stop cleanly; SIGHUP (whose default would kill us) only says so."""
    loop = asyncio.get_running_loop()
    handlers: list[tuple[signal.Signals, Callable[[], None]]] = [
        (signal.SIGTERM, stop.set),
        (signal.SIGINT, stop.set),
    ]
    if hup := getattr(signal, "SIGHUP", None):
        handlers.append((hup, lambda: log.warning("SIGHUP: restart the side-car to apply config")))
    for sig, handler in handlers:
        try:
            loop.add_signal_handler(sig, handler)
        except NotImplementedError:  # Windows (NSSM sends Ctrl-C): no loop signal API
            signal.signal(sig, _threadsafe(loop, handler))


def _threadsafe(
    loop: asyncio.AbstractEventLoop, handler: Callable[[], None]
) -> Callable[[int, object], None]:
    """A signal.signal handler that runs `handler` on the loop."""

    def on_signal(_sig: int, _frame: object) -> None:
        loop.call_soon_threadsafe(handler)

    return on_signal


def _report(exc: BaseException) -> int:
    """Log why the service ended and choose the exit code."""
    root = _first_error(exc)
    if isinstance(root, ConfigError):
        for problem in root.problems:
            log.error("config: %s", problem)
        return EXIT_USAGE
    if isinstance(root, BridgeError):
        log.error("forward failed: %s", root)
    else:  # a bug: keep the traceback
        log.error("forward failed", exc_info=root)
    return EXIT_FAILURE


def _first_error(exc: BaseException) -> BaseException:
    """The root cause inside TaskGroup's ExceptionGroup wrappers."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc
