"""Schedule expressions with EventBridge Scheduler's semantics: cron / rate / at, in an IANA time zone.

moto stores any expression without a look, so validation is ours. `ec2batch.cron` parses AWS's
6-field cron and walks *local wall-clock time*; we map each wall time to UTC, which gives the
Scheduler's daylight-saving behaviour:
- a local time that does not exist (spring forward) is skipped;
- a local time that happens twice (fall back) fires once, at its first occurrence.
rate() counts fixed durations in UTC (AWS: a day is 24 hours, whatever the clocks do).
The local stack's scheduler emulator uses `next_fire_times`; `ec2batch next` uses `upcoming`, which
says why when nothing is left to fire.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .cron import Cron, CronSyntaxError
from .errors import ScheduleError
from .timeutil import parse_iso  # noqa: F401  (re-exported: `from ec2batch.schedule import parse_iso`)

# Matched whole (fullmatch: no trailing newline) and with ASCII digits only (`\d` would take "٣").
_CRON = re.compile(r"cron\((.*)\)", re.ASCII)
_RATE = re.compile(r"rate\(([0-9]+) (minute|minutes|hour|hours|day|days)\)", re.ASCII)
_AT = re.compile(r"at\(([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2})\)", re.ASCII)
_RATE_UNIT = {"minute": 60, "hour": 3600, "day": 86400}
# The last moment AWS's schedules reach (the cron year field ends with 2199); a rate stops there too,
# so a huge rate has no time to give instead of overflowing datetime.
_LAST = datetime(2199, 12, 31, 23, 59, 59, tzinfo=UTC)


@dataclass(frozen=True)
class Schedule:
    expression: str
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        zone(self.timezone)
        _parse(self.expression)

    def next_fire_times(self, after: datetime, count: int = 1, start: datetime | None = None) -> list[datetime]:
        """The next `count` fire times strictly after `after`, as aware UTC datetimes (fewer if no more exist).

        `start` anchors a rate() expression (the schedule's start date; AWS counts from its creation);
        it defaults to `after`.
        """
        return list(_take(self._iter(after, start), count))

    def upcoming(self, after: datetime, count: int = 1, start: datetime | None = None) -> list[datetime]:
        """`next_fire_times`, but a schedule with nothing left to fire is a ScheduleError saying why."""
        times = self.next_fire_times(after, count, start)
        if not times:
            moment = _aware_utc(after)
            raise ScheduleError(
                f"{self.expression} ({self.timezone}) has no fire time after {moment:%Y-%m-%d %H:%M:%S} UTC: "
                + self.why_nothing_after(moment)
            )
        return times

    def why_nothing_after(self, after: datetime) -> str:
        """Why a schedule yields no time after `after` (call it once `next_fire_times` came back short)."""
        tz = zone(self.timezone)
        kind, value = _parse(self.expression)
        if kind == "at":
            local: datetime = value  # type: ignore[assignment]
            when = _to_utc(local, tz)
            if when is None:
                return f"{local:%Y-%m-%d %H:%M:%S} does not exist in {self.timezone} (the clocks jump over it)"
            return f"it was a one-off, due at {when:%Y-%m-%d %H:%M:%S} UTC"
        if kind == "rate":
            return (
                f"its next time falls after {_LAST:%Y-%m-%d %H:%M:%S} UTC, "
                "the end of the years AWS schedules (1970-2199)"
            )
        cron: Cron = value  # type: ignore[assignment]
        if not cron.fires_ever():
            return (
                f"no date from {cron.years[0]} to {cron.years[-1]} matches its day-of-month, month and "
                "day-of-week fields, so it never fires"
            )
        # What is left on the wall clock either does not exist (spring forward) or, in a fall-back hour,
        # already fired at its first occurrence; only the first kind is the clocks' doing.
        remaining = cron.wall_times(_aware_utc(after).astimezone(tz).replace(tzinfo=None))
        if any(_to_utc(wall, tz) is None for wall in remaining):
            return f"its remaining local times do not exist in {self.timezone} (the clocks jump over them)"
        return f"its year range ends with {cron.years[-1]} and its last time has passed"

    def _iter(self, after: datetime, start: datetime | None) -> Iterator[datetime]:
        after = _aware_utc(after)
        tz = zone(self.timezone)
        kind, value = _parse(self.expression)
        if kind == "cron":
            yield from _cron_times(value, tz, after)  # type: ignore[arg-type]
        elif kind == "rate":
            step: int = value  # type: ignore[assignment]  # seconds, an int of any size
            anchor = _aware_utc(start) if start else after
            second = timedelta(seconds=1)
            room = (_LAST - anchor) // second  # whole seconds from the anchor to the end of 2199
            n = max(0, (after - anchor) // second // step + 1)  # floor divisions: the first n with a time > after
            while n * step <= room:
                yield anchor + n * second * step
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
    return _parse_text(expression)


@functools.lru_cache(maxsize=256)  # the scheduler emulator asks again for every schedule on every step
def _parse_text(expression: str) -> tuple[str, object]:
    if m := _CRON.fullmatch(expression):
        try:
            return "cron", Cron.parse(m.group(1))
        except CronSyntaxError as exc:
            raise ScheduleError(f"invalid cron expression {expression!r}: {exc}") from None
    if m := _RATE.fullmatch(expression):
        n, unit = int(m.group(1)), m.group(2)
        if n < 1:
            raise ScheduleError(f"invalid rate expression {expression!r}: the value must be 1 or more")
        if (n == 1) != (not unit.endswith("s")):
            raise ScheduleError(
                f"invalid rate expression {expression!r}: AWS wants the singular unit for 1 and the plural otherwise"
            )
        return "rate", n * _RATE_UNIT[unit.rstrip("s")]
    if m := _AT.fullmatch(expression):
        try:
            return "at", datetime.fromisoformat(m.group(1))
        except ValueError:
            raise ScheduleError(f"invalid at expression {expression!r}: {m.group(1)} is not a date and time") from None
    raise ScheduleError(
        f"invalid schedule expression {expression!r}: expected cron(min hour day-of-month month day-of-week year), "
        "rate(N minute(s)|hour(s)|day(s)) or at(yyyy-mm-ddThh:mm:ss)"
    )


def _cron_times(cron: Cron, tz: ZoneInfo, after: datetime) -> Iterator[datetime]:
    # Walk wall-clock time from a little before `after`: during a fall-back hour the wall time of
    # `after` is ambiguous, and the filter below keeps exactly the times strictly after it.
    wall = after.astimezone(tz).replace(tzinfo=None) - timedelta(hours=3)
    for found in cron.wall_times(wall):
        when = _to_utc(found, tz)
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
