"""The `modbus-mqtt-bridge` command: subcommands, and errors mapped to exit codes 0/1/2.

0 ok, 1 runtime failure, 2 bad usage or invalid config. Never a traceback for bad input.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Callable, Sequence

from . import __version__
from .config.load import legacy_to_yaml, load_config, resolve_config_path
from .config.model import Config
from .errors import BridgeError, ConfigError
from .observe.logs import setup_logging

log = logging.getLogger("modbus_mqtt_bridge")

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def main(argv: Sequence[str] | None = None) -> int:
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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="modbus-mqtt-bridge",
        description="Poll Modbus TCP/RTU devices, publish readings to MQTT, forward them to "
        "a Laravel API.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--log-level", help="DEBUG, INFO, WARNING, ERROR (default: $LOG_LEVEL or INFO)"
    )
    sub = parser.add_subparsers(metavar="COMMAND")
    for name, handler, help_text, extra in _COMMANDS:
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name not in ("convert", "demo"):
            p.add_argument("-c", "--config", help="config file (default: $MODBUS_CONFIG)")
        extra(p)
        p.set_defaults(handler=handler)
    return parser


def _load(args: argparse.Namespace) -> Config:
    path = resolve_config_path(args.config, os.environ)
    config = load_config(path)
    setup_logging(config.logging, args.log_level)
    return config


# -- commands ------------------------------------------------------------------------


def _cmd_run(args: argparse.Namespace) -> int:
    from .service import run_until_signalled  # noqa: PLC0415  (keeps `validate` light)

    config = _load(args)
    asyncio.run(run_until_signalled(config))
    return EXIT_OK


def _cmd_forward(args: argparse.Namespace) -> int:
    from .forward.service import run  # noqa: PLC0415

    return run(_load(args))


def _cmd_validate(args: argparse.Namespace) -> int:
    from .plan import build_plan, format_plan  # noqa: PLC0415

    config = load_config(resolve_config_path(args.config, os.environ))
    print(format_plan(build_plan(config), config))
    print("config ok")
    return EXIT_OK


def _cmd_once(args: argparse.Namespace) -> int:
    from .once import run_once  # noqa: PLC0415

    return asyncio.run(run_once(_load(args), dry_run=args.dry_run, as_json=args.json))


def _cmd_simulate(args: argparse.Namespace) -> int:
    from .service import install_stop_signals  # noqa: PLC0415
    from .simulate import serve  # noqa: PLC0415

    config = _load(args)

    async def _main() -> None:
        stop = asyncio.Event()
        install_stop_signals(stop)
        await serve(config, stop, host=args.host, refresh_s=args.refresh)

    asyncio.run(_main())
    return EXIT_OK


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo  # noqa: PLC0415

    setup_logging(level=args.log_level or "WARNING")
    return asyncio.run(run_demo(args.mqtt_url, duration_s=args.duration, plain=args.plain))


def _cmd_convert(args: argparse.Namespace) -> int:
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
]


if __name__ == "__main__":
    sys.exit(main())
