"""Structured logs: one JSON object per line (level, message, and context such as run_id, item)."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from typing import Any

LOG_LEVEL_ENV = "COSMICAI_LOG_LEVEL"


class JsonFormatter(logging.Formatter):
    """Render a record as one JSON line; keys passed via `extra={"ctx": {...}}` are merged in."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        doc.update(getattr(record, "ctx", {}) or {})
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


def get_logger(name: str) -> logging.Logger:
    """A logger writing JSON lines to stdout at COSMICAI_LOG_LEVEL (default INFO)."""
    logger = logging.getLogger(name)
    if not any(isinstance(h.formatter, JsonFormatter) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(JsonFormatter())
        logger.addHandler(handler)
        logger.propagate = False
    logger.setLevel(os.environ.get(LOG_LEVEL_ENV, "INFO").upper())
    return logger


def log(logger: logging.Logger, level: int, message: str, **ctx: Any) -> None:
    """Log `message` with context fields (run_id=..., item=...)."""
    logger.log(level, message, extra={"ctx": ctx})
