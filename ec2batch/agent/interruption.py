"""Spot interruption notices and rebalance recommendations, read from instance metadata while the job runs.

What AWS documents, and what this relies on:
- Spot interruption notices
  (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/spot-instance-termination-notices.html): a
  warning two minutes before EC2 stops or terminates a Spot instance (for hibernation it comes as the
  hibernation begins), served at `/latest/meta-data/spot/instance-action` as
  `{"action": "terminate", "time": "2017-09-18T08:22:00Z"}` (action terminate, stop or hibernate; time in
  UTC), 404 while there is none; AWS recommends checking every 5 seconds.
- Rebalance recommendations (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/rebalance-recommendations.html):
  the instance is at elevated risk of interruption; served at `/latest/meta-data/events/recommendations/
  rebalance` as `{"noticeTime": "2020-11-05T08:22:00Z"}`, 404 while there is none. It may come long
  before a notice, with one, or not at all: the agent only logs it (a batch job cannot move elsewhere
  mid-run, and the notice is what it acts on).
The same paths and shapes are what aws/aws-node-termination-handler polls (pkg/ec2metadata).
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.error
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from ..jsonlog import fields
from ..ledger import utcnow

log = logging.getLogger(__name__)

INSTANCE_ACTION_PATH = "/latest/meta-data/spot/instance-action"
REBALANCE_PATH = "/latest/meta-data/events/recommendations/rebalance"
LIFECYCLE_PATH = "/latest/meta-data/instance-life-cycle"
ACTIONS = ("terminate", "stop", "hibernate")
POLL_SECONDS = 5.0  # AWS's recommendation


class Metadata(Protocol):
    def peek(self, path: str) -> str | None: ...


@dataclass(frozen=True)
class Notice:
    """A Spot interruption notice: what EC2 will do to the machine (`action`), and when (`time`, UTC)."""

    action: str
    time: datetime

    @classmethod
    def parse(cls, text: str) -> Notice:
        document = json.loads(text)
        action, when = document["action"], document["time"]
        if action not in ACTIONS:
            raise ValueError(f"unknown interruption action {action!r}")
        moment = datetime.fromisoformat(when)
        return cls(action=action, time=moment if moment.tzinfo else moment.replace(tzinfo=UTC))

    @property
    def time_text(self) -> str:
        return self.time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def as_json(self) -> str:
        """The notice as instance metadata serves it: what the job finds in its interruption file."""
        return json.dumps({"action": self.action, "time": self.time_text})


class InterruptionWatcher:
    """Polls instance metadata in a daemon thread; `event` is set once a Spot interruption notice is there.

    Metadata that does not answer never fails the agent: each kind of error is logged once, and the
    watcher keeps polling (the notice matters more than the noise).
    """

    def __init__(
        self, imds: Metadata, *, poll_seconds: float = POLL_SECONDS, clock: Callable[[], datetime] = utcnow
    ) -> None:
        self.imds = imds
        self.poll_seconds = poll_seconds
        self.clock = clock
        self.notice: Notice | None = None
        self.event = threading.Event()
        self.rebalance_at: str | None = None
        self.lifecycle: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._errors_seen: set[str] = set()

    def start(self) -> InterruptionWatcher:
        self._thread = threading.Thread(target=self._loop, name="interruption-watcher", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        self.lifecycle = self._read(LIFECYCLE_PATH)
        log.info(
            "watching for Spot interruption notices",
            extra=fields(lifecycle=self.lifecycle, poll_seconds=self.poll_seconds),
        )
        while not self._stop.is_set() and self.notice is None:
            self.check()
            self._stop.wait(self.poll_seconds)

    def check(self) -> None:
        """One poll of both items (the thread's loop; tests call it to poll at a moment of their choosing)."""
        if self.notice is None:
            text = self._read(INSTANCE_ACTION_PATH)
            if text is not None:
                self._noticed(text)
        if self.rebalance_at is None:
            text = self._read(REBALANCE_PATH)
            if text is not None:
                self._rebalance(text)

    def _noticed(self, text: str) -> None:
        try:
            notice = Notice.parse(text)
        except (ValueError, KeyError, TypeError) as exc:
            self._error_once("unreadable notice", INSTANCE_ACTION_PATH, f"{exc}: {text[:200]!r}")
            return
        self.notice = notice
        self.event.set()
        log.warning(
            "Spot interruption notice",
            extra=fields(
                action=notice.action,
                time=notice.time_text,
                seconds_left=round((notice.time - self.clock()).total_seconds(), 1),
            ),
        )

    def _rebalance(self, text: str) -> None:
        try:
            notice_time = str(json.loads(text)["noticeTime"])
        except (ValueError, KeyError, TypeError):
            notice_time = text.strip()[:64]  # logged either way: it is advice, never acted on
        self.rebalance_at = notice_time
        log.warning(
            "rebalance recommendation: the instance is at elevated risk of interruption",
            extra=fields(notice_time=notice_time),
        )

    def _read(self, path: str) -> str | None:
        try:
            return self.imds.peek(path)
        except Exception as exc:  # never fatal: the next poll tries again
            self._error_once(_kind(exc), path, str(exc))
            return None

    def _error_once(self, kind: str, path: str, error: str) -> None:
        if kind in self._errors_seen:
            return
        self._errors_seen.add(kind)
        log.warning(
            "instance metadata: could not read the interruption items; still polling",
            extra=fields(path=path, kind=kind, error=error),
        )


def _kind(exc: BaseException) -> str:
    """What went wrong, coarsely: HTTP 500 and connection refused are two kinds; two refusals are one."""
    cause = exc.__cause__ or exc
    if isinstance(cause, urllib.error.HTTPError):
        return f"HTTP {cause.code}"
    if isinstance(cause, urllib.error.URLError) and isinstance(cause.reason, BaseException):
        cause = cause.reason
    return type(cause).__name__
