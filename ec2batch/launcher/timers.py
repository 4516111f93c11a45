"""Exact-time runs and external deadlines (planner + SQS DelaySeconds + final check)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import EventError

if TYPE_CHECKING:
    from .core import Launcher, Result
    from .events import TimerFire


def plan(launcher: Launcher, job: str) -> dict[str, Any]:
    raise EventError("plan events are not supported yet by this launcher version")


def fire(launcher: Launcher, timer: TimerFire) -> Result:
    raise EventError("timer events are not supported yet by this launcher version")
