"""The agent's start-up, measured and tidied: when the process started, what each step took, and the memory
start-up used handed back before the long wait (docs/agent.md#start-up-time-and-memory)."""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import botocore

from ..ledger import utcnow

T = TypeVar("T")


def process_started_at(stat: Path = Path("/proc/self/stat")) -> datetime | None:
    """When this process started (its exec, before the interpreter's imports), from the kernel's own record.

    /proc/self/stat's field 22 is the start in clock ticks since boot; CLOCK_BOOTTIME is the same clock, so
    their difference is the process's age. Only /proc/self is read: the unit's ProcSubset=pid allows that."""
    try:
        ticks = int(stat.read_text().rsplit(")", 1)[1].split()[19])
        age = time.clock_gettime(time.CLOCK_BOOTTIME) - ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None
    return utcnow() - timedelta(seconds=max(0.0, age))


class StartupTimings:
    """Seconds each start-up step took, from the process's exec; logged with the claim (`make bench` prints them)."""

    def __init__(self, started: datetime | None) -> None:
        self.started = started
        self._last = started
        self.steps: dict[str, float] = {}

    def mark(self, step: str) -> None:
        now = utcnow()
        if self._last is not None:
            self.steps[step] = round((now - self._last).total_seconds(), 3)
        self._last = now

    def take(self) -> dict[str, float]:
        """The steps marked so far, for a log line; the next steps start a new set (from the last mark)."""
        steps, self.steps = self.steps, {}
        return steps


def release_memory() -> None:
    """Collect start-up's garbage and return the heap pages it freed to the system (glibc keeps them mapped
    until `malloc_trim`). botocore caches every operation name it has turned into a method name: cleared too,
    it is only a cache. Measured: ~2 MB of the agent's resident memory."""
    botocore_names = getattr(botocore, "_xform_cache", None)
    if isinstance(botocore_names, dict):
        botocore_names.clear()
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to trim with
        ctypes.CDLL(None).malloc_trim(0)


def in_background(name: str, function: Callable[..., T], *args: Any) -> Future[T]:
    """Run `function(*args)` in a daemon thread; its result, or its error, comes out of the future.

    Daemon, not a ThreadPoolExecutor's: a step begun early (an image pull) must never hold up the power-off of
    a machine whose run ended without it (an executor's threads are joined at the interpreter's exit)."""
    future: Future[T] = Future()

    def work() -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(function(*args))
        except BaseException as exc:  # handed to whoever asks for the result, as if they had made the call
            future.set_exception(exc)

    threading.Thread(target=work, name=f"ec2batch-{name}", daemon=True).start()
    return future
