"""The `modbus-mqtt-bridge` command: subcommands, and errors mapped to exit codes 0/1/2.

0 ok, 1 runtime failure, 2 bad usage or invalid config. Never a traceback for bad input.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from .. import __version__, statedir
from ..config.load import load_config, resolve_config_path
from ..config.model import Config
from ..errors import BridgeError, ConfigError, Problem
from ..observe.logs import setup_logging
from . import commission, dead_letters

log = logging.getLogger("modbus_mqtt_bridge")

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def main(argv: Sequence[str] | None = None) -> int:
    if sys.platform == "win32":  # paho runs on the loop's selector (add_reader/add_writer)
        asyncio.set_event_loop_policy(asyncio.WindowsSelectorEventLoopPolicy())  # type: ignore[attr-defined,unused-ignore]
    _read_dotenv()
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return EXIT_USAGE
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        print(f"config invalid: {len(exc.problems)} problem(s)", file=sys.stderr)
        return EXIT_USAGE
    except BridgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return EXIT_OK


def _read_dotenv() -> None:
    """`.env` in the working directory, as the legacy service read it (MODBUS_CONFIG,
    LARAVEL_API_URL, LOG_LEVEL, ...); a variable already in the environment wins."""
    from dotenv import load_dotenv  # noqa: PLC0415

    path = Path.cwd() / ".env"
    if path.is_file():
        load_dotenv(path, override=False)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="modbus-mqtt-bridge",
        description="Poll Modbus TCP/RTU devices, publish readings to MQTT, forward them to "
        "a Laravel API.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    log_help = "DEBUG, INFO, WARNING, ERROR (default: $LOG_LEVEL or INFO)"
    parser.add_argument("--log-level", help=log_help)
    sub = parser.add_subparsers(metavar="COMMAND")
    for name, handler, help_text, extra in _COMMANDS:
        p = sub.add_parser(name, help=help_text, description=help_text)
        # Also after the command (`run --log-level DEBUG`); SUPPRESS keeps one given before it.
        p.add_argument("--log-level", default=argparse.SUPPRESS, help=log_help)
        if name not in ("convert", "demo", "read", "schema"):
            p.add_argument("-c", "--config", help="config file (default: $MODBUS_CONFIG)")
        extra(p)
        p.set_defaults(handler=handler)
    return parser


def _load(args: argparse.Namespace) -> Config:
    from ..observe.systemd import credentials_env  # noqa: PLC0415

    path = resolve_config_path(args.config, os.environ)
    # systemd LoadCredential= secrets fill LARAVEL_API_TOKEN / MQTT_PASSWORD when unset
    config = load_config(path, env=credentials_env())
    setup_logging(config.logging, args.log_level)
    return config


# -- commands ------------------------------------------------------------------------


def _cmd_run(args: argparse.Namespace) -> int:
    from ..bridge.service import run_until_signalled  # noqa: PLC0415  (keeps `validate` light)

    def reload() -> Config:
        try:
            return with_buffer_path(_load(args))
        except statedir.StatePathError as exc:  # rejected: the running bridge keeps its own
            raise ConfigError([Problem(exc.key, f"{exc.path}: {exc.reason}")]) from None

    config = with_buffer_path(_load(args))
    asyncio.run(run_until_signalled(config, reload=reload))
    return EXIT_OK


def with_buffer_path(config: Config) -> Config:
    """buffer.path resolved and checked (statedir, as the side-car does for its outbox):
    an unusable place is one line and exit 1 before the bridge starts, not a traceback."""
    resolved = statedir.prepare("buffer.path", config.buffer.path, "buffer.db", os.environ)
    if resolved.warning:
        log.warning("%s", resolved.warning)
    return dataclasses.replace(
        config, buffer=dataclasses.replace(config.buffer, path=resolved.path)
    )


def _cmd_forward(args: argparse.Namespace) -> int:
    from ..forward.service import run  # noqa: PLC0415

    return run(_load(args))


def _cmd_validate(args: argparse.Namespace) -> int:
    from ..modbus.wiretime import format_estimates  # noqa: PLC0415
    from ..plan import build_plan, format_plan  # noqa: PLC0415

    config = load_config(resolve_config_path(args.config, os.environ))
    plan = build_plan(config)
    print(format_plan(plan, config))
    if estimates := format_estimates(plan, config):
        print(estimates)
    for warning in state_path_warnings(config, os.environ):
        print(f"warning: {warning}", file=sys.stderr)
    print("config ok")
    return EXIT_OK


def state_path_warnings(config: Config, env: Mapping[str, str]) -> list[str]:
    """Where the buffer and the outbox would go from here, when that place is unusable
    (or is the working directory). The outbox only when this config feeds a side-car."""
    keys = [("buffer.path", config.buffer.path, "buffer.db")]
    fwd = config.forward
    if fwd.api_url or fwd.outbox or env.get("LARAVEL_API_URL"):
        keys.append(("forward.outbox", fwd.outbox, "outbox.db"))
    warnings = []
    for key, configured, filename in keys:
        resolved = statedir.resolve(key, configured, filename, env)
        if resolved.path is None:
            continue
        if problem := statedir.problem(resolved.path):
            warnings.append(f"{key} {resolved.path}: {problem}")
        elif resolved.warning:
            warnings.append(resolved.warning)
    return warnings


def _cmd_once(args: argparse.Namespace) -> int:
    from .once import run_once  # noqa: PLC0415

    return asyncio.run(run_once(_load(args), dry_run=args.dry_run, as_json=args.json))


def _cmd_simulate(args: argparse.Namespace) -> int:
    from ..bridge.service import install_stop_signals  # noqa: PLC0415
    from ..modbus.simulator import Simulator, serve  # noqa: PLC0415

    config = _load(args)
    serial = dict(args.serial or [])

    async def _main() -> None:
        stop = asyncio.Event()
        install_stop_signals(stop)
        sim = Simulator(config)
        sim.emulate_line = args.emulate_line
        if not args.answer_all:
            sim.answer_configured_only()
        await serve(config, stop, host=args.host, refresh_s=args.refresh, sim=sim, serial=serial)

    asyncio.run(_main())
    return EXIT_OK


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo  # noqa: PLC0415

    setup_logging(level=args.log_level or "WARNING")
    return asyncio.run(run_demo(args.mqtt_url, duration_s=args.duration, plain=args.plain))


def _cmd_convert(args: argparse.Namespace) -> int:
    from .convert import legacy_to_yaml  # noqa: PLC0415

    print(legacy_to_yaml(args.legacy), end="")
    return EXIT_OK


def _no_options(_p: argparse.ArgumentParser) -> None:
    return


def _once_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dry-run", action="store_true", help="read and print, publish nothing")
    p.add_argument("--json", action="store_true", help="one reading JSON (SPEC 3) per line")


def _simulate_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1", help="address to serve TCP devices on")
    p.add_argument("--refresh", type=float, default=1.0, help="seconds between value changes")
    p.add_argument(
        "--serial",
        action="append",
        type=_name_and_path,
        metavar="CONNECTION=PORT",
        help="serve an rtu connection on PORT (the other end of its line, e.g. a pty pair's "
        "second end) instead of its configured port; repeatable",
    )
    p.add_argument(
        "--emulate-line",
        action="store_true",
        help="answer rtu requests after the wire time of their baud rate (a pty has none)",
    )
    p.add_argument(
        "--answer-all",
        action="store_true",
        help="answer every address (zeros where nothing is configured) instead of "
        '"illegal data address" outside the configured registers',
    )


def _name_and_path(text: str) -> tuple[str, str]:
    name, sep, path = text.partition("=")
    if not (sep and name and path):
        raise argparse.ArgumentTypeError(f"expected CONNECTION=PORT, got {text!r}")
    return name, path


def _demo_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--mqtt-url",
        default=os.environ.get("MQTT_URL", "mqtt://127.0.0.1:1883"),
        help="broker to use; when none answers there, an embedded broker is started",
    )
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    p.add_argument("--plain", action="store_true", help="print lines instead of a live screen")


def _convert_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("legacy", help="legacy JSON device list (the old poller.py config)")


def _cmd_schema(_args: argparse.Namespace) -> int:
    import json  # noqa: PLC0415

    from ..config.schema import config_schema  # noqa: PLC0415

    print(json.dumps(config_schema(), indent=2, ensure_ascii=False))
    return EXIT_OK


_COMMANDS: list[
    tuple[str, Callable[[argparse.Namespace], int], str, Callable[[argparse.ArgumentParser], None]]
] = [
    ("run", _cmd_run, "run the bridge: poll devices, publish readings", _no_options),
    ("forward", _cmd_forward, "run the side-car: deliver readings to the Laravel API", _no_options),
    (
        "once",
        _cmd_once,
        "poll every register once and print (or publish) the readings",
        _once_options,
    ),
    ("validate", _cmd_validate, "check the config and print the read plan", _no_options),
    (
        "simulate",
        _cmd_simulate,
        "serve the configured devices as simulated Modbus slaves",
        _simulate_options,
    ),
    (
        "demo",
        _cmd_demo,
        "simulator + broker + bridge + live view, on a bare machine",
        _demo_options,
    ),
    (
        "convert",
        _cmd_convert,
        "print the YAML equivalent of a legacy JSON device list",
        _convert_options,
    ),
    (
        "read",
        commission.cmd_read,
        "read one register of a TCP/RTU device and show every plausible decoding",
        commission.read_options,
    ),
    ("schema", _cmd_schema, "print the JSON Schema of the config, for editors", _no_options),
    (
        "dead-letters",
        lambda args: dead_letters.cmd(args, _load),
        "the readings the API refused: list, retry ID... | retry --all, purge",
        dead_letters.options,
    ),
    (
        "write",
        lambda args: commission.cmd_write(args, _load),
        "write one register of a configured device (same checks as MQTT commands); "
        "exit 0 ok, 1 failed, 2 refused",
        commission.write_options,
    ),
]


if __name__ == "__main__":
    sys.exit(main())
