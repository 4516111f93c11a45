"""The agent's own log lines, also sent to CloudWatch Logs (stream `<run_id>/agent`).

Lines are buffered and sent in batches within CloudWatch's limits (10,000 events and 1 MiB per
PutLogEvents, counting 26 bytes of overhead per event); moto does not enforce these, so we do.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import Any

MAX_EVENTS = 10_000
MAX_BYTES = 1_048_576
EVENT_OVERHEAD = 26


def batches(events: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Split events (already in time order) into batches PutLogEvents accepts."""
    out: list[list[dict[str, Any]]] = []
    current: list[dict[str, Any]] = []
    size = 0
    for event in events:
        event_size = len(event["message"].encode()) + EVENT_OVERHEAD
        if current and (len(current) >= MAX_EVENTS or size + event_size > MAX_BYTES):
            out.append(current)
            current, size = [], 0
        current.append(event)
        size += event_size
    if current:
        out.append(current)
    return out


class CloudWatchHandler(logging.Handler):
    """Keeps lines from its creation; sends them once it has a stream name (the run's, known once the run is
    claimed) and `connect` has given it a client (made off the path to the job's start: a Logs client costs
    ~10 ms), and from then on in batches, at once for a warning. Created before the start-up's background work
    (the image pull), so those lines are in the run's stream too."""

    def __init__(self, group: str, stream: str | None = None, logs: Any | None = None) -> None:
        super().__init__()
        self.logs = logs
        self.group = group
        self.stream = stream
        self.pending: list[dict[str, Any]] = []
        self.pending_lock = threading.Lock()  # not `lock`: logging.Handler owns that name
        self.created = False

    def emit(self, record: logging.LogRecord) -> None:
        message = self.format(record)[: MAX_BYTES - EVENT_OVERHEAD]
        with self.pending_lock:
            self.pending.append({"timestamp": int(record.created * 1000), "message": message})
        if record.levelno >= logging.WARNING:
            self.flush()

    def put_raw(self, message: str, timestamp_ms: int) -> None:
        """A line that is not a log record (an EMF document): sent as it is, with the next batch."""
        with self.pending_lock:
            self.pending.append({"timestamp": timestamp_ms, "message": message[: MAX_BYTES - EVENT_OVERHEAD]})

    @property
    def connected(self) -> bool:
        return self.logs is not None

    def connect(self, logs: Any) -> None:
        """Make the stream and send what was kept. Always from the agent's main thread (after the job's start,
        or at power-off), so which call makes the stream does not depend on what a background thread logged."""
        self.logs = logs
        if self.stream is None:
            return  # no run, no stream: the journal has the lines
        with contextlib.suppress(Exception):  # losing log lines must never stop the run: the next flush tries again
            self._create_stream()
        self.flush()

    def _create_stream(self) -> None:
        assert self.logs is not None
        with contextlib.suppress(self.logs.exceptions.ResourceAlreadyExistsException):
            self.logs.create_log_stream(logGroupName=self.group, logStreamName=self.stream)
        self.created = True

    def flush(self) -> None:
        if self.logs is None or self.stream is None:
            return  # kept until the stream is named and `connect` has been called
        with self.pending_lock:
            events, self.pending = self.pending, []
        if not events:
            return
        try:
            if not self.created:
                self._create_stream()
            for batch in batches(events):
                self.logs.put_log_events(logGroupName=self.group, logStreamName=self.stream, logEvents=batch)
        except Exception:  # losing log lines must never stop the run or the power-off
            with self.pending_lock:
                self.pending = events + self.pending
