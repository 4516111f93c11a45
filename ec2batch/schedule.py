"""Schedule expressions with EventBridge Scheduler's semantics: cron / rate / at, in an IANA time zone.

moto stores any expression without a look, so validation is ours. `aws-croniter` parses AWS's
6-field cron (`?`, `L`, `W`, `#`, year) but only in UTC; we walk *local wall-clock time* with it
and map each wall time to UTC, which gives the Scheduler's daylight-saving behaviour:
- a local time that does not exist (spring forward) is skipped;
- a local time that happens twice (fall back) fires once, at its first occurrence.
The local stack's scheduler emulator and `ec2batch next` both use `next_fire_times`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from aws_croniter import AwsCroniter
from aws_croniter.exceptions import AwsCroniterExpressionError

from .errors import ScheduleError
from .timeutil import parse_iso  # noqa: F401  (re-exported: `from ec2batch.schedule import parse_iso`)

_CRON = re.compile(r"^cron\((.*)\)$")
_RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")
_AT = re.compile(r"^at\((\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})\)$")
_RATE_UNIT = {"minute": 60, "hour": 3600, "day": 86400}


@dataclass(frozen=True)
class Schedule:
    expression: str
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        zone(self.timezone)
        _parse(self.expression)

    def next_fire_times(self, after: datetime, count: int = 1, start: datetime | None = None) -> list[datetime]:
        """The next `count` fire times strictly after `after`, as aware UTC datetimes.

        `start` anchors a rate() expression (the schedule's start date; AWS counts from its creation);
        it defaults to `after`.
        """
        return list(_take(self._iter(after, start), count))

    def _iter(self, after: datetime, start: datetime | None) -> Iterator[datetime]:
        after = _aware_utc(after)
        tz = zone(self.timezone)
        kind, value = _parse(self.expression)
        if kind == "cron":
            yield from _cron_times(value, tz, after)  # type: ignore[arg-type]
        elif kind == "rate":
            step = timedelta(seconds=value)  # type: ignore[arg-type]
            anchor = _aware_utc(start) if start else after
            n = max(0, (after - anchor) // step + 1)
            while True:
                yield anchor + n * step
                n += 1
        else:
            local: datetime = value  # type: ignore[assignment]
            when = _to_utc(local, tz)
            if when is not None and when > after:
                yield when


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ScheduleError(f"time zone {name!r} is not an IANA time zone name (e.g. Europe/Berlin, UTC)") from exc


def _parse(expression: str) -> tuple[str, object]:
    if not isinstance(expression, str):
        raise ScheduleError(f"schedule expression must be a string, got {type(expression).__name__}")
    if m := _CRON.match(expression):
        body = m.group(1)
        try:
            return "cron", AwsCroniter(body)
        except (AwsCroniterExpressionError, ValueError) as exc:
            reason = str(exc).replace("'.One", "'. One")  # aws-croniter runs two sentences together
            raise ScheduleError(f"invalid cron expression {expression!r}: {reason}") from exc
    if m := _RATE.match(expression):
        n, unit = int(m.group(1)), m.group(2)
        if n < 1:
            raise ScheduleError(f"invalid rate expression {expression!r}: the value must be 1 or more")
        if (n == 1) != (not unit.endswith("s")):
            raise ScheduleError(
                f"invalid rate expression {expression!r}: AWS wants the singular unit for 1 and the plural otherwise"
            )
        return "rate", n * _RATE_UNIT[unit.rstrip("s")]
    if m := _AT.match(expression):
        try:
            return "at", datetime.fromisoformat(m.group(1))
        except ValueError as exc:
            raise ScheduleError(f"invalid at expression {expression!r}: {exc}") from exc
    raise ScheduleError(
        f"invalid schedule expression {expression!r}: expected cron(min hour day-of-month month day-of-week year), "
        "rate(N minute(s)|hour(s)|day(s)) or at(yyyy-mm-ddThh:mm:ss)"
    )


def _cron_times(cron: AwsCroniter, tz: ZoneInfo, after: datetime) -> Iterator[datetime]:
    # aws-croniter insists on UTC-labelled datetimes: we hand it local wall time labelled UTC.
    wall = after.astimezone(tz).replace(tzinfo=None) - timedelta(hours=3)  # back off to cover a fall-back hour
    while True:
        found = cron.get_next(wall.replace(tzinfo=UTC))[0]
        if found is None:
            return
        wall = found.replace(tzinfo=None)
        when = _to_utc(wall, tz)
        if when is not None and when > after:
            yield when


def _to_utc(wall: datetime, tz: ZoneInfo) -> datetime | None:
    """UTC instant of a local wall time: None if it does not exist, the first one if it happens twice."""
    first = wall.replace(tzinfo=tz, fold=0)
    utc = first.astimezone(UTC)
    if utc.astimezone(tz).replace(tzinfo=None) != wall:
        return None  # skipped by a spring-forward jump
    return utc


def _aware_utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("datetimes passed to the schedule must be timezone-aware")
    return moment.astimezone(UTC)


def _take(it: Iterator[datetime], count: int) -> Iterator[datetime]:
    for _ in range(count):
        try:
            yield next(it)
        except StopIteration:
            return
