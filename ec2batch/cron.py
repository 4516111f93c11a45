"""AWS's six-field cron, parsed and walked in local wall-clock time, as EventBridge documents it.

    cron(minutes hours day-of-month month day-of-week year)

| field        | values          | wildcards       |
| minutes      | 0-59            | , - * /         |
| hours        | 0-23            | , - * /         |
| day-of-month | 1-31            | , - * ? / L W   |
| month        | 1-12 or JAN-DEC | , - * /         |
| day-of-week  | 1-7 or SUN-SAT  | , - * ? L #     |
| year         | 1970-2199       | , - * /         |

Exactly one of day-of-month and day-of-week is `?`. In day-of-month: `L` (last day), `L-n` (n days
before it), `nW` (the weekday nearest day n, never leaving the month), `LW` (the last weekday). In
day-of-week: `L` alone (the last day of the week: Saturday), `nL` (the last n-day of the month),
`n#k` (the k-th n-day of the month, alone in its field). A range may wrap (`20-2` in hours, `SAT-MON`),
except in years.

Our own and not aws-croniter's, because aws-croniter let `L` in day-of-week never fire, refused `/`
in years, crashed with a Python message on `LW`, and gives up after ten skipped months or years, so an
expression as plain as `cron(0 0 ? 2 2#5 *)` (the fifth Monday of February: 2044-02-29) "never fires".
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta

_MONTHS = {
    name: n
    for n, name in enumerate(
        ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"], start=1
    )
}
_WEEKDAYS = {name: n for n, name in enumerate(["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"], start=1)}
_SATURDAY = 7


class CronSyntaxError(ValueError):
    """One line naming the field that is wrong; `ec2batch.schedule` adds the expression."""


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: dict[str, int]
    steps: bool = True  # "/" is in the field's wildcards
    wraps: bool = True  # a range may run past the end and start again (20-2), not so for years

    def error(self, text: str, why: str) -> CronSyntaxError:
        return CronSyntaxError(f"{self.name} field {text!r}: {why}")

    def value(self, token: str, text: str) -> int:
        named = self.names.get(token.upper()) if token.isascii() else None  # non-ASCII can upper() into a name
        if named is not None:
            return named
        if not re.fullmatch(r"[0-9]{1,4}", token) or not self.low <= int(token) <= self.high:
            raise self.error(text, f"{token!r} is not in {self._spelled()}")
        return int(token)

    def _spelled(self) -> str:
        if not self.names:
            return f"{self.low}-{self.high}"
        first, last = next(iter(self.names)), list(self.names)[-1]
        return f"{self.low}-{self.high} or {first}-{last}"

    def values(self, text: str) -> frozenset[int]:
        """A list of values, ranges (which may wrap) and steps: `1,15`, `MON-FRI`, `0/15`, `20-2`, `*`."""
        found: set[int] = set()
        for item in text.split(","):
            base, slash, step_text = item.partition("/")
            if slash and not self.steps:
                raise self.error(text, f"'/' is not allowed in {self.name}")
            step = self._step(step_text, text) if slash else 1
            if base == "*":
                start, end = self.low, self.high
            elif "-" in base:
                first, _, last = base.partition("-")
                start, end = self.value(first, text), self.value(last, text)
                if start > end and not self.wraps:
                    raise self.error(text, f"the range {base} runs backwards")
            else:
                start = self.value(base, text)
                end = self.high if slash else start  # 5/10 means from 5 to the end, every 10th
            found.update(self._walk(start, end, step))
        return frozenset(found)

    def _step(self, token: str, text: str) -> int:
        if not re.fullmatch(r"[0-9]{1,4}", token) or not 1 <= int(token) <= self.high - self.low + 1:
            raise self.error(text, f"the step after '/' must be a whole number from 1 to {self.high - self.low + 1}")
        return int(token)

    def _walk(self, start: int, end: int, step: int) -> range | list[int]:
        if start <= end:
            return range(start, end + 1, step)
        size = self.high - self.low + 1  # a wrapping range: 20-2 in hours is 20..23 then 0..2
        return [self.low + (start - self.low + offset) % size for offset in range(0, size - start + end + 1, step)]


_MINUTE = _Field("minutes", 0, 59, {})
_HOUR = _Field("hours", 0, 23, {})
_DAY_OF_MONTH = _Field("day-of-month", 1, 31, {})
_MONTH = _Field("month", 1, 12, _MONTHS)
_DAY_OF_WEEK = _Field("day-of-week", 1, 7, _WEEKDAYS, steps=False)
_YEAR = _Field("year", 1970, 2199, {}, wraps=False)


def _aws_weekday(day: date) -> int:
    """AWS numbers the days of the week from Sunday = 1 to Saturday = 7."""
    return day.isoweekday() % 7 + 1


@dataclass(frozen=True)
class _DayRule:
    """Which days of a month match: `kind` says how, `values` and `n` carry what the field said."""

    kind: str  # "days" | "last" | "nearest-weekday" | "last-weekday" | "weekdays" | "last-of" | "nth"
    values: frozenset[int] = frozenset()
    n: int = 0
    k: int = 0

    def days(self, year: int, month: int) -> list[int]:
        length = calendar.monthrange(year, month)[1]
        first_weekday = _aws_weekday(date(year, month, 1))
        if self.kind == "days":
            return [d for d in sorted(self.values) if d <= length]
        if self.kind == "last":
            return [length - self.n] if length - self.n >= 1 else []
        if self.kind == "nearest-weekday":
            return [_nearest_weekday(year, month, self.n, length)] if self.n <= length else []
        if self.kind == "last-weekday":
            return [_nearest_weekday(year, month, length, length)]
        if self.kind == "weekdays":
            return [d for d in range(1, length + 1) if (first_weekday + d - 2) % 7 + 1 in self.values]
        first = 1 + (self.n - first_weekday) % 7  # the month's first n-day
        if self.kind == "last-of":
            return [first + 7 * ((length - first) // 7)]
        day = first + 7 * (self.k - 1)  # "nth": the k-th n-day, if the month has one
        return [day] if day <= length else []


def _nearest_weekday(year: int, month: int, day: int, length: int) -> int:
    """The weekday nearest `day` without leaving the month (Quartz's W, which AWS's syntax comes from)."""
    weekday = date(year, month, day).weekday()  # Monday = 0 … Sunday = 6
    if weekday == 5:  # Saturday: the Friday before, or the Monday after when the 1st is a Saturday
        return day - 1 if day > 1 else day + 2
    if weekday == 6:  # Sunday: the Monday after, or the Friday before when the month ends on a Sunday
        return day + 1 if day < length else day - 2
    return day


def _day_of_month_rule(text: str) -> _DayRule:
    upper = text.upper()
    if upper == "L":
        return _DayRule("last")
    if upper == "LW":
        return _DayRule("last-weekday")
    if m := re.fullmatch(r"L-([0-9]{1,2})", upper):
        if not 1 <= int(m.group(1)) <= 30:
            raise _DAY_OF_MONTH.error(text, "L-n counts back from the last day: n must be 1 to 30")
        return _DayRule("last", n=int(m.group(1)))
    if m := re.fullmatch(r"([0-9]{1,2})W", upper):
        return _DayRule("nearest-weekday", n=_DAY_OF_MONTH.value(m.group(1), text))
    if "L" in upper or "W" in upper:
        raise _DAY_OF_MONTH.error(text, "L and W stand alone in the field: L, L-3, LW or 15W")
    return _DayRule("days", _DAY_OF_MONTH.values(text))


def _day_of_week_rule(text: str) -> _DayRule:
    upper = text.upper()
    if upper == "L":  # alone, the last day of the week
        return _DayRule("weekdays", frozenset({_SATURDAY}))
    if m := re.fullmatch(r"([0-9A-Z]+)L", upper):
        return _DayRule("last-of", n=_DAY_OF_WEEK.value(m.group(1), text))
    if "#" in upper:
        m = re.fullmatch(r"([0-9A-Z]+)#([0-9])", upper)
        if m is None:
            raise _DAY_OF_WEEK.error(text, "'#' takes one day and its week, alone in the field: 3#2 or TUE#2")
        if not 1 <= int(m.group(2)) <= 5:
            raise _DAY_OF_WEEK.error(text, "the week after '#' must be 1 to 5")
        return _DayRule("nth", n=_DAY_OF_WEEK.value(m.group(1), text), k=int(m.group(2)))
    if re.fullmatch(r"L-[0-9]+", upper):
        raise _DAY_OF_WEEK.error(text, "L-n belongs in day-of-month; day-of-week takes L (Saturday) or nL (6L, FRIL)")
    return _DayRule("weekdays", _DAY_OF_WEEK.values(text))


@dataclass(frozen=True)
class Cron:
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    day_rule: _DayRule
    months: tuple[int, ...]
    years: tuple[int, ...]

    @classmethod
    def parse(cls, body: str) -> Cron:
        """The fields inside `cron(...)`; raises CronSyntaxError naming the first bad field."""
        fields = body.split()
        if len(fields) != 6:
            raise CronSyntaxError(
                f"needs 6 fields (minutes hours day-of-month month day-of-week year), got {len(fields)}"
            )
        minute, hour, day_of_month, month, day_of_week, year = fields
        if (day_of_month == "?") == (day_of_week == "?"):
            raise CronSyntaxError(
                f"exactly one of day-of-month ({day_of_month!r}) and day-of-week ({day_of_week!r}) must be '?'"
            )
        return cls(
            minutes=tuple(sorted(_MINUTE.values(minute))),
            hours=tuple(sorted(_HOUR.values(hour))),
            day_rule=_day_of_week_rule(day_of_week) if day_of_month == "?" else _day_of_month_rule(day_of_month),
            months=tuple(sorted(_MONTH.values(month))),
            years=tuple(sorted(_YEAR.values(year))),
        )

    def wall_times(self, after: datetime) -> Iterator[datetime]:
        """Every matching wall-clock time strictly after the naive `after`, in order, to the last year."""
        first = (after + timedelta(minutes=1)).replace(second=0, microsecond=0)
        for year in self.years:
            if year < first.year:
                continue
            for month in self.months:
                if (year, month) < (first.year, first.month):
                    continue
                for day in self.day_rule.days(year, month):
                    if date(year, month, day) < first.date():
                        continue
                    for hour in self.hours:
                        for minute in self.minutes:
                            moment = datetime(year, month, day, hour, minute)
                            if moment >= first:
                                yield moment

    def fires_ever(self) -> bool:
        """Whether any date in the year range matches the day and month fields (`cron(0 0 30 2 ? *)` does not)."""
        return next(self.wall_times(datetime(self.years[0], 1, 1) - timedelta(minutes=1)), None) is not None
