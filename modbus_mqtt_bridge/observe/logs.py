"""Logging setup: stderr (journald picks it up), an optional rotated file, `LOG_LEVEL`
honoured, secrets redacted."""

from __future__ import annotations

import logging
import logging.handlers
import os
import re
import sys

from ..config.model import LoggingConfig
from ..errors import BridgeError

_SECRET = re.compile(
    r"(?i)((?:password|passwd|token|secret|authorization)[\"']?\s*[:=]\s*[\"']?(?:bearer\s+)?)[^\s\"',}]+"
)


class RedactSecrets(logging.Filter):
    """Last line of defence: a password or token that slipped into a message is masked."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = _SECRET.sub(r"\1***", message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# journald stamps each line itself; under systemd ($JOURNAL_STREAM) a second time is noise
JOURNAL_FORMAT = "%(levelname)s %(name)s: %(message)s"


def setup_logging(cfg: LoggingConfig | None = None, level: str | None = None) -> None:
    """stderr always; also a size-rotated file with `logging.file`. Level: the argument,
    else $LOG_LEVEL, else the config's."""
    cfg = cfg or LoggingConfig()
    chosen = (level or os.environ.get("LOG_LEVEL") or cfg.level).upper()
    stderr = logging.StreamHandler(sys.stderr)
    stderr.setFormatter(
        logging.Formatter(JOURNAL_FORMAT if os.environ.get("JOURNAL_STREAM") else FORMAT)
    )
    handlers: list[logging.Handler] = [stderr]
    if cfg.file:
        handlers.append(_file_handler(cfg))
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    for handler in handlers:
        handler.addFilter(RedactSecrets())
        root.addHandler(handler)
    root.setLevel(getattr(logging, chosen, logging.INFO))


def _file_handler(cfg: LoggingConfig) -> logging.Handler:
    assert cfg.file is not None
    try:
        handler = logging.handlers.RotatingFileHandler(
            cfg.file, maxBytes=cfg.max_bytes, backupCount=cfg.backup_count, encoding="utf-8"
        )
    except OSError as exc:  # a clear one-line error (exit 1), not a traceback
        raise BridgeError(f"logging.file {cfg.file}: {exc.strerror or exc}") from exc
    handler.setFormatter(logging.Formatter(FORMAT))
    return handler
