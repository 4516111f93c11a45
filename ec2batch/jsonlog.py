"""Structured JSON log lines, one object per line, for CloudWatch Logs Insights.

Fields passed as `extra={"fields": {...}}` are merged into the object, so call sites stay
ordinary `logging` calls and tests can read `record.fields`.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        line.update(getattr(record, "fields", {}) or {})
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, sort_keys=False)


def configure(level: int = logging.INFO, stream: TextIO | None = None) -> None:
    """Route the `ec2batch` loggers to JSON lines (idempotent: Lambda re-imports nothing, tests call it often)."""
    logger = logging.getLogger("ec2batch")
    logger.setLevel(level)
    for handler in list(logger.handlers):
        if getattr(handler, "_ec2batch", False):
            logger.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(JsonFormatter())
    handler._ec2batch = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.propagate = False


def fields(**kwargs: Any) -> dict[str, Any]:
    """`log.info("started", extra=fields(run_id=...))` reads better than the raw dict."""
    return {"fields": kwargs}
