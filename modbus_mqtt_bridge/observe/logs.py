"""Logging setup: stderr (journald picks it up), `LOG_LEVEL` honoured, secrets redacted."""

from __future__ import annotations

import logging
import logging.handlers
import os
import re
import sys

from ..config.model import LoggingConfig

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


def setup_logging(cfg: LoggingConfig | None = None, level: str | None = None) -> None:
    cfg = cfg or LoggingConfig()
    chosen = (level or os.environ.get("LOG_LEVEL") or cfg.level).upper()
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if cfg.file:
        handlers.append(
            logging.handlers.RotatingFileHandler(
                cfg.file, maxBytes=cfg.max_bytes, backupCount=cfg.backup_count
            )
        )
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler.addFilter(RedactSecrets())
        root.addHandler(handler)
    root.setLevel(getattr(logging, chosen, logging.INFO))
