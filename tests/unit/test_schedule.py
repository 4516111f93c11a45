from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ec2batch.errors import ScheduleError
from ec2batch.schedule import Schedule, parse_iso


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def times(expression: str, tz: str, after: datetime, count: int) -> list[str]:
    return [t.strftime("%Y-%m-%dT%H:%M") for t in Schedule(expression, tz).next_fire_times(after, count)]


def test_daily_cron_in_utc() -> None:
    assert times("cron(0 2 * * ? *)", "UTC", utc(2026, 11, 24, 2, 0), 2) == ["2026-11-25T02:00", "2026-11-26T02:00"]


def test_local_time_is_kept_across_a_dst_change() -> None:
    # 06:00 Berlin is 05:00 UTC in summer time and 05:00 UTC after... no: 04:00 UTC in summer, 05:00 in winter.
    got = times("cron(0 6 * * ? *)", "Europe/Berlin", utc(2026, 10, 24, 12, 0), 2)
    assert got == ["2026-10-25T05:00", "2026-10-26T05:00"]
    assert times("cron(0 6 * * ? *)", "Europe/Berlin", utc(2026, 10, 23, 12, 0), 1) == ["2026-10-24T04:00"]


def test_spring_forward_skips_a_local_time_that_does_not_exist() -> None:
    # Europe/Berlin, 2026-03-29: 02:00 local jumps to 03:00, so 02:30 does not exist that day.
    got = times("cron(30 2 * * ? *)", "Europe/Berlin", utc(2026, 3, 27, 12, 0), 3)
    assert got == ["2026-03-28T01:30", "2026-03-30T00:30", "2026-03-31T00:30"]


def test_fall_back_runs_a_repeated_local_time_once() -> None:
    # Europe/Berlin, 2026-10-25: 03:00 local falls back to 02:00, so 02:30 happens twice; it fires once.
    got = times("cron(30 2 * * ? *)", "Europe/Berlin", utc(2026, 10, 24, 12, 0), 2)
    assert got == ["2026-10-25T00:30", "2026-10-26T01:30"]


def test_fall_back_hourly_fires_once_per_local_hour() -> None:
    got = times("cron(15 * * * ? *)", "Europe/Berlin", utc(2026, 10, 24, 23, 0), 4)
    # 01:15 CEST, 02:15 CEST (first 02:15), then 03:15 CET: the second 02:15 is not fired again.
    assert got == ["2026-10-24T23:15", "2026-10-25T00:15", "2026-10-25T02:15", "2026-10-25T03:15"]


def test_a_run_after_the_first_occurrence_of_a_repeated_hour_does_not_fire_it_again() -> None:
    got = times("cron(30 2 * * ? *)", "Europe/Berlin", utc(2026, 10, 25, 0, 45), 1)
    assert got == ["2026-10-26T01:30"]


def test_aws_cron_specials_last_day_weekday_and_nth() -> None:
    assert times("cron(0 9 L * ? *)", "UTC", utc(2026, 2, 1), 1) == ["2026-02-28T09:00"]
    assert times("cron(0 9 ? * 6#3 *)", "UTC", utc(2026, 11, 1), 1) == ["2026-11-20T09:00"]  # 3rd Friday
    assert times("cron(0 9 15W * ? *)", "UTC", utc(2026, 11, 1), 1) == ["2026-11-16T09:00"]  # 15th is a Sunday


def test_rate_counts_from_its_start() -> None:
    start = utc(2026, 11, 24, 0, 0)
    assert [t.isoformat() for t in Schedule("rate(90 minutes)").next_fire_times(utc(2026, 11, 24, 2, 0), 2, start)] == [
        "2026-11-24T03:00:00+00:00",
        "2026-11-24T04:30:00+00:00",
    ]


def test_at_fires_once_in_its_time_zone() -> None:
    schedule = Schedule("at(2026-11-24T14:02:30)", "Europe/Berlin")
    assert schedule.next_fire_times(utc(2026, 11, 24), 3) == [utc(2026, 11, 24, 13, 2, 30)]
    assert schedule.next_fire_times(utc(2026, 11, 25), 1) == []


@pytest.mark.parametrize(
    ("expression", "reason"),
    [
        ("cron(0 2 * * * *)", "exactly one of day-of-month ('*') and day-of-week ('*') must be '?'"),
        ("cron(0 2 * * ?)", "needs 6 fields (minutes hours day-of-month month day-of-week year), got 5"),
        ("cron(61 2 * * ? *)", "minutes field '61': '61' is not in 0-59"),
        ("rate(0 hours)", "must be 1 or more"),
        ("every day", "expected cron(min hour"),
        ("at(2026-13-01T00:00:00)", "invalid at expression 'at(2026-13-01T00:00:00)': 2026-13-01T00:00:00 is not a"),
        # The whole text must match (a regex `$` would let a trailing newline through), in ASCII digits
        # (Python's \d and int() also take other scripts' digits, such as the Arabic-Indic 3 below).
        ("rate(5 minutes)\n", "invalid schedule expression 'rate(5 minutes)\\n': expected cron("),
        ("cron(0 0 ? * L *)\n", "invalid schedule expression 'cron(0 0 ? * L *)\\n': expected cron("),
        ("rate(\u0663 minutes)", "invalid schedule expression 'rate(\u0663 minutes)': expected cron("),
        ("cron(\u0663 0 ? * L *)", "minutes field '\u0663': '\u0663' is not in 0-59"),
        ("cron(0 0 ? * 3#\u0663 *)", "day-of-week field '3#\u0663': '#' takes one day and its week"),
        ("cron(0 0 ? * \u017fun *)", "day-of-week field '\u017fun': '\u017fun' is not in 1-7 or SUN-SAT"),
    ],
)
def test_invalid_expressions_fail_with_the_reason(expression: str, reason: str) -> None:
    with pytest.raises(ScheduleError) as raised:
        Schedule(expression)
    assert reason in str(raised.value)


def test_unknown_time_zone_is_refused() -> None:
    with pytest.raises(ScheduleError, match="'Mars/Olympus' is not an IANA time zone"):
        Schedule("rate(1 day)", "Mars/Olympus")


def test_parse_iso_needs_an_offset() -> None:
    assert parse_iso("2026-11-24T14:02:30+01:00") == utc(2026, 11, 24, 13, 2, 30)
    with pytest.raises(ScheduleError, match="has no UTC offset"):
        parse_iso("2026-11-24T14:02:30")


def test_a_rate_stops_at_the_end_of_2199() -> None:
    start = utc(2199, 12, 1)
    assert times("rate(10 days)", "UTC", start, 5) == ["2199-12-11T00:00", "2199-12-21T00:00", "2199-12-31T00:00"]
    huge = Schedule("rate(99999999999999999999999 days)")  # no overflow: just no time before 2200
    assert huge.next_fire_times(utc(2026, 11, 24), 1) == []
    with pytest.raises(ScheduleError, match="its next time falls after 2199-12-31 23:59:59 UTC"):
        huge.upcoming(utc(2026, 11, 24))
