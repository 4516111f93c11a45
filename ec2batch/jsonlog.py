"""Structured JSON log lines, one object per line, for CloudWatch Logs Insights.

Fields passed as `extra={"fields": {...}}` are merged into the object, so call sites stay
ordinary `logging` calls and tests can read `record.fields`.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TextIO


class JsonFormatter(logging.Formatter):
    """One JSON object per record. An exception's traceback goes to `traceback`, never over a caller's `error`.

    `redact` (the agent's Redactor) is applied to the message, every string field and the traceback, so
    a secret value inside an exception's message never reaches a log line.
    """

    def __init__(self, redact: Callable[[str], str] | None = None) -> None:
        super().__init__()
        self.redact = redact or (lambda text: text)

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": self.redact(record.getMessage()),
        }
        for key, value in (getattr(record, "fields", {}) or {}).items():
            line[key] = self.redact(value) if isinstance(value, str) else value
        if record.exc_info:
            line["traceback"] = self.redact(self.formatException(record.exc_info))
            line.setdefault("error", self.redact(_one_line(record.exc_info[1])))
        # A last pass over the whole line catches a secret inside a list or dict field.
        return self.redact(json.dumps(line, default=str, sort_keys=False))


def _one_line(exc: BaseException | None) -> str:
    return f"{type(exc).__name__}: {exc}" if exc is not None else ""


def configure(
    level: int = logging.INFO, stream: TextIO | None = None, redact: Callable[[str], str] | None = None
) -> None:
    """Route the `ec2batch` loggers to JSON lines (idempotent: Lambda re-imports nothing, tests call it often)."""
    logger = logging.getLogger("ec2batch")
    logger.setLevel(level)
    for handler in list(logger.handlers):
        if getattr(handler, "_ec2batch", False):
            logger.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(JsonFormatter(redact))
    handler._ec2batch = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.propagate = False


def fields(**kwargs: Any) -> dict[str, Any]:
    """`log.info("started", extra=fields(run_id=...))` reads better than the raw dict."""
    return {"fields": kwargs}
