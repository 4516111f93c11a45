"""Time parsing shared by the launcher and the CLI (kept free of the cron library: the Lambda zip has none)."""

from __future__ import annotations

from datetime import UTC, datetime

from .errors import ScheduleError


def parse_iso(text: str) -> datetime:
    """ISO 8601 with an offset or `Z`; a naive time is refused rather than guessed."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ScheduleError(f"{text!r} is not an ISO 8601 time (e.g. 2026-11-24T14:02:30+01:00)") from exc
    if moment.tzinfo is None:
        raise ScheduleError(f"{text!r} has no UTC offset; add one (e.g. Z or +01:00)")
    return moment.astimezone(UTC)
