"""Reading a run's log streams from CloudWatch Logs, page by page, and following them live."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class LogLine:
    timestamp_ms: int
    message: str


def read_stream(logs: Any, group: str, stream: str, token: str | None = None) -> tuple[list[LogLine], str | None]:
    """Every event after `token`, following pagination to the end.

    get_log_events signals the end by returning the token it was given, not by omitting it.
    """
    lines: list[LogLine] = []
    while True:
        kwargs: dict[str, Any] = {"logGroupName": group, "logStreamName": stream, "startFromHead": True}
        if token:
            kwargs["nextToken"] = token
        try:
            page = logs.get_log_events(**kwargs)
        except logs.exceptions.ResourceNotFoundException:
            return lines, token  # the stream is made when the container starts: nothing yet
        lines.extend(LogLine(e["timestamp"], e["message"]) for e in page["events"])
        next_token = page.get("nextForwardToken")
        if not next_token or next_token == token or not page["events"]:
            return lines, next_token or token
        token = next_token


def follow_stream(
    logs: Any,
    group: str,
    stream: str,
    finished: Callable[[], bool],
    *,
    poll_seconds: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[LogLine]:
    """Yield lines as they arrive until `finished()` is true, then drain what is left."""
    token: str | None = None
    while True:
        done = finished()  # asked before reading, so lines written just before the end are still read
        lines, token = read_stream(logs, group, stream, token)
        yield from lines
        if done:
            return
        sleep(poll_seconds)
