"""Schedule expressions checked against AWS's own documentation, with every expected time worked out by hand.

Sources: the EventBridge "Cron expressions" reference (the field table, the wildcards, the examples table
and the three `put-rule` examples below it), its "Rate expressions" section, and EventBridge Scheduler's
"Schedule types" page (time zones; a local time skipped by daylight saving does not fire, a repeated one
fires once; a rate of days is 24 hours). The calendars used (from `cal`):
  2026-11: Sun 1, Mon 2 … Tue 24, Wed 25, Thu 26, Fri 27, Sat 28, Sun 29, Mon 30
  2026-12: Tue 1, Sat 5, Tue 8        2022-11: Fri 25 is the last Friday   2022-12: Fri 30 is the last
  2026-01: Sat 3, Sat 31              2026-05: Sun 3, Sun 31               2026-08: Sat 1
  2026-04: Sun 5 (Sydney falls back)  2026-10: Sun 4 (Sydney springs forward), Sun 25 (Berlin falls back)
  2044-02: Mon 1, 8, 15, 22, 29
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ec2batch.errors import ScheduleError
from ec2batch.schedule import Schedule

TUESDAY_MORNING = datetime(2026, 11, 24, 10, 30, tzinfo=UTC)  # Tue 2026-11-24 10:30 UTC


def fire(expression: str, after: datetime, count: int, tz: str = "UTC") -> list[str]:
    return [f"{t:%a %Y-%m-%d %H:%M}" for t in Schedule(expression, tz).next_fire_times(after, count)]


def at(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# The examples table of the cron reference, row by row (all UTC).
@pytest.mark.parametrize(
    ("expression", "meaning", "after", "expected"),
    [
        (
            "cron(0 10 * * ? *)",
            "Run at 10:00 am (UTC+0) every day",
            TUESDAY_MORNING,
            ["Wed 2026-11-25 10:00", "Thu 2026-11-26 10:00"],
        ),
        (
            "cron(15 12 * * ? *)",
            "Run at 12:15 pm (UTC+0) every day",
            TUESDAY_MORNING,
            ["Tue 2026-11-24 12:15", "Wed 2026-11-25 12:15"],
        ),
        (
            "cron(0 18 ? * MON-FRI *)",
            "Run at 6:00 pm (UTC+0) every Monday through Friday",
            TUESDAY_MORNING,
            [
                "Tue 2026-11-24 18:00",
                "Wed 2026-11-25 18:00",
                "Thu 2026-11-26 18:00",
                "Fri 2026-11-27 18:00",
                "Mon 2026-11-30 18:00",  # not Saturday 28 nor Sunday 29
            ],
        ),
        (
            "cron(0 8 1 * ? *)",
            "Run at 8:00 am (UTC+0) every 1st day of the month",
            TUESDAY_MORNING,
            ["Tue 2026-12-01 08:00", "Fri 2027-01-01 08:00"],
        ),
        (
            "cron(0/15 * * * ? *)",
            "Run every 15 minutes",
            TUESDAY_MORNING,
            ["Tue 2026-11-24 10:45", "Tue 2026-11-24 11:00", "Tue 2026-11-24 11:15"],
        ),
        (
            "cron(0/10 * ? * MON-FRI *)",
            "Run every 10 minutes Monday through Friday",
            at(2026, 11, 27, 23, 45),
            ["Fri 2026-11-27 23:50", "Mon 2026-11-30 00:00", "Mon 2026-11-30 00:10"],
        ),
        (
            "cron(0/5 8-17 ? * MON-FRI *)",
            "Run every 5 minutes Monday through Friday between 8:00 am and 5:55 pm (UTC+0)",
            at(2026, 11, 27, 17, 50),
            ["Fri 2026-11-27 17:55", "Mon 2026-11-30 08:00", "Mon 2026-11-30 08:05"],
        ),
        # "Run every 30 minutes Monday through Friday between 10:00 pm on the starting day to 2:00 am on the
        # following day". Hour 20 is 8:00 pm (the table's "10:00 pm" is a slip), and the fields are matched
        # each on its own, as in every cron: the wrapping range 20-2 is hours 20-23 and 0-2 of a weekday,
        # so Friday night stops at 23:30 and Monday starts at 00:00, with 02:30 included (hour 2).
        (
            "cron(0/30 20-2 ? * MON-FRI *)",
            "Run every 30 minutes Monday through Friday between 10:00 pm ... and 2:00 am ... (UTC)",
            at(2026, 11, 27, 23, 0),
            [
                "Fri 2026-11-27 23:30",
                "Mon 2026-11-30 00:00",
                "Mon 2026-11-30 00:30",
                "Mon 2026-11-30 01:00",
                "Mon 2026-11-30 01:30",
                "Mon 2026-11-30 02:00",
                "Mon 2026-11-30 02:30",
                "Mon 2026-11-30 20:00",
            ],
        ),
        # The three put-rule examples under the table.
        ("cron(0 12 * * ? *)", "every day at 12:00pm UTC+0", TUESDAY_MORNING, ["Tue 2026-11-24 12:00"]),
        (
            "cron(5,35 14 * * ? *)",
            "every day, at 2:05pm and 2:35pm UTC+0",
            TUESDAY_MORNING,
            ["Tue 2026-11-24 14:05", "Tue 2026-11-24 14:35", "Wed 2026-11-25 14:05"],
        ),
        (
            "cron(15 10 ? * 6L 2019-2022)",
            "10:15am UTC+0 on the last Friday of each month during the years 2019 to 2022",
            at(2022, 11, 1),
            ["Fri 2022-11-25 10:15", "Fri 2022-12-30 10:15"],  # and nothing after: the range ends with 2022
        ),
    ],
)
def test_the_cron_reference_examples(expression: str, meaning: str, after: datetime, expected: list[str]) -> None:
    assert fire(expression, after, len(expected)) == expected, meaning


def test_the_last_friday_example_ends_with_its_years() -> None:
    assert fire("cron(15 10 ? * 6L 2019-2022)", at(2022, 11, 1), 3) == ["Fri 2022-11-25 10:15", "Fri 2022-12-30 10:15"]
    with pytest.raises(ScheduleError, match="its year range ends with 2022 and its last time has passed"):
        Schedule("cron(15 10 ? * 6L 2019-2022)").upcoming(TUESDAY_MORNING)


# The wildcards, as the reference describes them.
def test_l_alone_in_day_of_week_is_the_last_day_of_the_week_saturday() -> None:
    assert fire("cron(0 0 ? * L *)", TUESDAY_MORNING, 2) == ["Sat 2026-11-28 00:00", "Sat 2026-12-05 00:00"]


def test_l_in_day_of_month_is_the_last_day_of_the_month() -> None:
    assert fire("cron(0 9 L * ? *)", at(2026, 2, 1), 1) == ["Sat 2026-02-28 09:00"]
    assert fire("cron(0 9 L 2 ? *)", at(2027, 3, 1), 1) == ["Tue 2028-02-29 09:00"]  # a leap year


def test_n_l_in_day_of_week_is_the_last_such_day_of_the_month() -> None:
    assert fire("cron(0 9 ? * 6L *)", TUESDAY_MORNING, 2) == ["Fri 2026-11-27 09:00", "Fri 2026-12-25 09:00"]
    assert fire("cron(0 9 ? * FRIL *)", TUESDAY_MORNING, 1) == ["Fri 2026-11-27 09:00"]


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("cron(0 9 3W * ? *)", at(2026, 1, 1), "Fri 2026-01-02 09:00"),  # the 3rd is a Saturday: the Friday before
        ("cron(0 9 3W * ? *)", at(2026, 5, 1), "Mon 2026-05-04 09:00"),  # the 3rd is a Sunday: the Monday after
        ("cron(0 9 1W * ? *)", at(2026, 7, 31), "Mon 2026-08-03 09:00"),  # 1st a Saturday: never back into July
        ("cron(0 9 31W * ? *)", at(2026, 5, 1), "Fri 2026-05-29 09:00"),  # 31st a Sunday: never on into June
        ("cron(0 9 15W * ? *)", at(2026, 11, 1), "Mon 2026-11-16 09:00"),  # 15th a Sunday
    ],
)
def test_w_is_the_weekday_nearest_the_day_within_its_month(expression: str, after: datetime, expected: str) -> None:
    assert fire(expression, after, 1) == [expected]


def test_lw_is_the_last_weekday_of_the_month() -> None:
    got = fire("cron(0 0 LW * ? *)", at(2026, 1, 1), 5)
    # Jan 31 is a Saturday, Feb 28 a Saturday, Mar 31 a Tuesday, Apr 30 a Thursday, May 31 a Sunday.
    assert got == [
        "Fri 2026-01-30 00:00",
        "Fri 2026-02-27 00:00",
        "Tue 2026-03-31 00:00",
        "Thu 2026-04-30 00:00",
        "Fri 2026-05-29 00:00",
    ]


def test_hash_is_the_nth_day_of_the_week_in_the_month() -> None:
    assert fire("cron(0 9 ? * 3#2 *)", TUESDAY_MORNING, 1) == ["Tue 2026-12-08 09:00"]  # the docs' 3#2
    # A fifth Monday of February needs a leap year whose February starts on a Monday: 2044.
    assert fire("cron(0 0 ? 2 2#5 *)", TUESDAY_MORNING, 1) == ["Mon 2044-02-29 00:00"]


def test_l_minus_n_counts_back_from_the_last_day_of_the_month() -> None:
    # Not in AWS's table (which lists L and W for day-of-month); accepted with Quartz's meaning,
    # the syntax AWS's cron comes from. In day-of-week it means nothing and is refused.
    assert fire("cron(0 9 L-3 * ? *)", TUESDAY_MORNING, 2) == ["Fri 2026-11-27 09:00", "Mon 2026-12-28 09:00"]
    with pytest.raises(ScheduleError, match="day-of-week field 'L-3': L-n belongs in day-of-month"):
        Schedule("cron(0 9 ? * L-3 *)")


def test_slash_in_the_year_field_steps_through_years() -> None:
    assert fire("cron(0 0 1 1 ? 2000/2)", TUESDAY_MORNING, 2) == ["Sat 2028-01-01 00:00", "Tue 2030-01-01 00:00"]
    assert fire("cron(0 0 1 1 ? 2027-2031/2)", TUESDAY_MORNING, 4) == [
        "Fri 2027-01-01 00:00",
        "Mon 2029-01-01 00:00",
        "Wed 2031-01-01 00:00",
    ]


def test_slash_from_a_value_runs_to_the_end_of_the_field() -> None:
    # "1/10 ... every tenth minute, starting from the first minute of the hour (the 11th, 21st, and 31st ...)"
    assert fire("cron(1/10 10 * * ? *)", at(2026, 11, 24, 10, 0), 7) == [
        f"Tue 2026-11-24 10:{m:02d}" for m in (1, 11, 21, 31, 41, 51)
    ] + ["Wed 2026-11-25 10:01"]


@pytest.mark.parametrize(
    ("expression", "reason"),
    [
        ("cron(0 0 * * * *)", "exactly one of day-of-month ('*') and day-of-week ('*') must be '?'"),
        ("cron(0 0 ? * ? *)", "exactly one of day-of-month ('?') and day-of-week ('?') must be '?'"),
        ("cron(0 0 1 * MON *)", "exactly one of day-of-month ('1') and day-of-week ('MON') must be '?'"),
        ("cron(0 0 ? * 3#1,6#3 *)", "day-of-week field '3#1,6#3': '#' takes one day and its week"),
        ("cron(0 0 ? * 3#6 *)", "day-of-week field '3#6': the week after '#' must be 1 to 5"),
        ("cron(0 0 ? * MON/2 *)", "day-of-week field 'MON/2': '/' is not allowed in day-of-week"),
        ("cron(0 0 ? * 8 *)", "day-of-week field '8': '8' is not in 1-7 or SUN-SAT"),
        ("cron(0 0 1 13 ? *)", "month field '13': '13' is not in 1-12 or JAN-DEC"),
        ("cron(0 0 1W,15 * ? *)", "day-of-month field '1W,15': L and W stand alone"),
        ("cron(0 0 32W * ? *)", "day-of-month field '32W': '32' is not in 1-31"),
        ("cron(0 0 L-31 * ? *)", "day-of-month field 'L-31': L-n counts back from the last day"),
        ("cron(0 0 1 1 ? 2200)", "year field '2200': '2200' is not in 1970-2199"),
        ("cron(0 0 1 1 ? 2030-2020)", "year field '2030-2020': the range 2030-2020 runs backwards"),
        ("cron(*/0 0 * * ? *)", "minutes field '*/0': the step after '/' must be a whole number from 1 to 60"),
        ("cron(0 24 * * ? *)", "hours field '24': '24' is not in 0-23"),
        ("cron(0 0 ? * MON-FRI L)", "year field 'L': 'L' is not in 1970-2199"),
    ],
)
def test_what_the_reference_does_not_allow_is_refused_naming_the_field(expression: str, reason: str) -> None:
    with pytest.raises(ScheduleError) as raised:
        Schedule(expression)
    assert str(raised.value).startswith(f"invalid cron expression {expression!r}: {reason}")
    assert "\n" not in str(raised.value)


# Rate expressions: "If the value is equal to 1, then the unit must be singular. If the value is greater
# than 1, the unit must be plural. For example, rate(1 hours) and rate(5 hour) aren't valid".
@pytest.mark.parametrize("expression", ["rate(1 minute)", "rate(5 minutes)", "rate(1 hour)", "rate(1 day)"])
def test_the_rate_examples_are_accepted(expression: str) -> None:
    Schedule(expression)


@pytest.mark.parametrize("expression", ["rate(1 hours)", "rate(5 hour)", "rate(1 minutes)", "rate(5 minute)"])
def test_a_rate_unit_of_the_wrong_number_is_refused(expression: str) -> None:
    with pytest.raises(ScheduleError, match="AWS wants the singular unit for 1 and the plural otherwise"):
        Schedule(expression)


def test_rate_fires_at_its_interval_from_its_start() -> None:
    start = at(2026, 11, 24, 10, 0)
    got = Schedule("rate(5 minutes)").next_fire_times(at(2026, 11, 24, 10, 7), 3, start)
    assert [f"{t:%H:%M}" for t in got] == ["10:10", "10:15", "10:20"]


def test_a_rate_of_days_is_24_hours_even_across_a_dst_change() -> None:
    # Sydney springs forward on 2026-10-04: a day later in UTC is an hour later on the local clock.
    start = at(2026, 10, 3, 0, 0)  # 10:00 AEST
    got = Schedule("rate(1 day)", "Australia/Sydney").next_fire_times(start, 2, start)
    assert [f"{t:%Y-%m-%d %H:%M}" for t in got] == ["2026-10-04 00:00", "2026-10-05 00:00"]


# One-time schedules: at(yyyy-mm-ddThh:mm:ss) in the schedule's time zone.
def test_at_is_read_in_its_time_zone() -> None:
    assert fire("at(2026-11-24T14:02:30)", at(2026, 11, 24), 3, "Europe/Berlin") == ["Tue 2026-11-24 13:02"]
    got = Schedule("at(2026-11-24T14:02:30)", "Australia/Sydney").next_fire_times(at(2026, 11, 24), 1)
    assert got == [at(2026, 11, 24, 3, 2, 30)]  # AEDT is UTC+11 in November


def test_an_at_in_a_skipped_local_hour_never_fires_and_says_why() -> None:
    schedule = Schedule("at(2026-10-04T02:30:00)", "Australia/Sydney")
    assert schedule.next_fire_times(at(2026, 10, 1), 1) == []
    with pytest.raises(ScheduleError, match="2026-10-04 02:30:00 does not exist in Australia/Sydney"):
        schedule.upcoming(at(2026, 10, 1))


def test_an_at_in_a_repeated_local_hour_fires_once_at_the_first() -> None:
    got = Schedule("at(2026-04-05T02:30:00)", "Australia/Sydney").next_fire_times(at(2026, 4, 1), 3)
    assert got == [at(2026, 4, 4, 15, 30)]  # 02:30 AEDT (UTC+11), not 02:30 AEST an hour later


def test_an_at_in_the_past_says_when_it_was() -> None:
    with pytest.raises(ScheduleError, match="it was a one-off, due at 2026-11-24 13:02:30 UTC"):
        Schedule("at(2026-11-24T14:02:30)", "Europe/Berlin").upcoming(at(2026, 11, 25))


# Daylight saving in the southern hemisphere: Sydney springs forward on the first Sunday of October
# (02:00 AEST -> 03:00 AEDT) and falls back on the first Sunday of April (03:00 AEDT -> 02:00 AEST).
def test_sydney_spring_forward_skips_the_missing_local_time() -> None:
    got = fire("cron(30 2 * * ? *)", at(2026, 10, 2, 12, 0), 3, "Australia/Sydney")
    # Oct 3 02:30 AEST = Oct 2 16:30 UTC; Oct 4 02:30 does not exist; Oct 5 02:30 AEDT = Oct 4 15:30 UTC.
    assert got == ["Fri 2026-10-02 16:30", "Sun 2026-10-04 15:30", "Mon 2026-10-05 15:30"]


def test_sydney_fall_back_runs_the_repeated_local_time_once() -> None:
    got = fire("cron(30 2 * * ? *)", at(2026, 4, 3, 12, 0), 3, "Australia/Sydney")
    # Apr 4 02:30 AEDT = Apr 3 15:30; Apr 5 02:30 first (AEDT) = Apr 4 15:30, not again at 16:30;
    # Apr 6 02:30 AEST = Apr 5 16:30.
    assert got == ["Fri 2026-04-03 15:30", "Sat 2026-04-04 15:30", "Sun 2026-04-05 16:30"]


def test_sydney_hourly_across_both_changes() -> None:
    # Spring: 00:15, 01:15 AEST, (02:15 does not exist), 03:15 AEDT: UTC stays hourly.
    assert fire("cron(15 * * * ? *)", at(2026, 10, 3, 14, 0), 3, "Australia/Sydney") == [
        "Sat 2026-10-03 14:15",
        "Sat 2026-10-03 15:15",
        "Sat 2026-10-03 16:15",
    ]
    # Autumn: 01:15, 02:15 AEDT, (02:15 AEST is the same local time again: not fired), 03:15 AEST.
    assert fire("cron(15 * * * ? *)", at(2026, 4, 4, 14, 0), 3, "Australia/Sydney") == [
        "Sat 2026-04-04 14:15",
        "Sat 2026-04-04 15:15",
        "Sat 2026-04-04 17:15",
    ]


def test_a_cron_whose_only_times_fall_in_a_dst_gap_says_so() -> None:
    with pytest.raises(ScheduleError, match="its remaining local times do not exist in Australia/Sydney"):
        Schedule("cron(30 2 4 10 ? 2026)", "Australia/Sydney").upcoming(at(2026, 9, 1))


def test_after_the_first_of_a_repeated_local_time_nothing_is_left_and_not_because_of_a_gap() -> None:
    # Berlin falls back on 2026-10-25 (03:00 CEST -> 02:00 CET): 02:30 fired at 00:30 UTC, its first
    # occurrence. At 01:15 UTC (02:15 CET, the second pass) the wall clock still has 02:30 ahead, but
    # that time has had its run: the reason is that the year range is over, not a daylight-saving gap.
    schedule = Schedule("cron(30 2 25 10 ? 2026)", "Europe/Berlin")
    assert schedule.next_fire_times(at(2026, 10, 25, 0, 15), 2) == [at(2026, 10, 25, 0, 30)]
    with pytest.raises(ScheduleError, match="its year range ends with 2026 and its last time has passed"):
        schedule.upcoming(at(2026, 10, 25, 1, 15))
