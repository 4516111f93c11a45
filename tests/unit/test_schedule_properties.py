"""Properties of schedule parsing, over generated expressions rather than hand-picked ones.

1. Whatever the text, `Schedule(...)` either accepts it or raises ScheduleError with one line that names
   the expression: never another exception, never Python's own words.
2. An accepted expression (cron, rate or at) never gives `ec2batch next` an empty answer: `upcoming` returns a
   time or says why.
3. The day-of-month / day-of-week rules (L, L-n, W, LW, nL, n#k) agree, month by month, with a brute-force
   reading of their definitions written independently below.
"""

from __future__ import annotations

import calendar
import random
from datetime import UTC, date, datetime

import pytest

from ec2batch.cron import Cron
from ec2batch.errors import ScheduleError
from ec2batch.schedule import Schedule

# Per field: pieces AWS's reference allows, then pieces it does not (or that make no sense).
GOOD = {
    "minutes": ["0", "59", "*", "*/15", "5-10", "50-10", "1,2", "07", "1/10"],
    "hours": ["0", "23", "*", "20-2", "0/6", "8-17"],
    "dom": ["*", "1", "31", "L", "L-3", "LW", "15W", "5/10", "1-15", "29,30"],
    "month": ["*", "1", "12", "2", "JAN", "jan-mar", "DEC-FEB", "1/3"],
    "dow": ["*", "1", "7", "L", "6L", "FRIL", "3#2", "2#5", "MON-FRI", "SAT-MON"],
    "year": ["*", "2026", "2022", "2000/2", "2019-2022", "2026-2030/2", "2199"],
}
BAD = {
    "minutes": ["60", "0/0", "x", "", "-", "/", "?", "L", "*/61"],
    "hours": ["24", "1,,2", "3-", "*/25", "W"],
    "dom": ["32", "L-0", "L-31", "0W", "W", "1W,2", "L-", "L5", "?/2", "LW/2"],
    "month": ["13", "FOO", "0", "JAN#2", "L"],
    "dow": ["8", "L-2", "3#6", "3#1,6#3", "#", "1/2", "SUNDAY", "0"],
    "year": ["1969", "2200", "2030-2020", "abc", "2000/0", "L"],
}
PYTHON_WORDS = ("Traceback", "invalid literal", "int()", "NoneType", "object has no", "list index", "not supported")


def generated_expressions(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        fields = [
            rng.choice(GOOD[name] if rng.random() < 0.9 else BAD[name])
            for name in ("minutes", "hours", "dom", "month", "dow", "year")
        ]
        if rng.random() < 0.9:  # mostly keep AWS's rule that exactly one day field is "?"
            fields[2 if rng.random() < 0.5 else 4] = "?"
        if rng.random() < 0.05:
            fields = fields[: rng.randint(0, 7)]
        out.append(f"cron({' '.join(fields)})")
    return out


EXPRESSIONS = generated_expressions(3000, seed=12)
AFTER = datetime(2026, 11, 24, 10, 30, tzinfo=UTC)


def test_every_generated_expression_is_accepted_or_refused_in_one_plain_line() -> None:
    accepted = refused = 0
    for expression in EXPRESSIONS:
        try:
            Schedule(expression, "Europe/Berlin")
            accepted += 1
        except ScheduleError as exc:
            message = str(exc)
            assert message.startswith(f"invalid cron expression {expression!r}: "), message
            assert "\n" not in message and not any(word in message for word in PYTHON_WORDS), message
            refused += 1
    assert accepted > 200 and refused > 200  # the generator reaches both sides


def test_an_accepted_expression_gives_next_a_time_or_a_reason() -> None:
    answered = explained = 0
    for expression in EXPRESSIONS:
        try:
            schedule = Schedule(expression, "Australia/Sydney")
        except ScheduleError:
            continue
        try:
            assert schedule.upcoming(AFTER, 2)
            answered += 1
        except ScheduleError as exc:
            assert "has no fire time after 2026-11-24 10:30:00 UTC: " in str(exc)
            explained += 1
    assert answered > 100 and explained > 10


_UNITS = ("minute", "hour", "day")


def test_every_rate_and_at_also_gives_a_time_or_a_reason() -> None:
    # rate(): values from 1 to far past what fits before 2200 (the end of AWS's years), singular for 1.
    # at(): times around the Sydney and Berlin daylight-saving changes, before and after AFTER.
    rng = random.Random(12)
    rates = [f"rate({v} {u if v == 1 else u + 's'})" for v in (1, 2, 59, 10**5, 10**9, 10**30) for u in _UNITS]
    ats = [
        f"at({year}-{month:02d}-{day:02d}T{hour:02d}:{rng.choice([0, 30]):02d}:00)"
        for year in (2026, 2027)
        for month, day in ((3, 29), (4, 5), (10, 4), (10, 25), (11, 24))
        for hour in (1, 2, 3, 10)
    ]
    answered = explained = 0
    for expression in rates + ats:
        for tz in ("Australia/Sydney", "Europe/Berlin"):
            try:
                assert Schedule(expression, tz).upcoming(AFTER, 2, start=AFTER)
                answered += 1
            except ScheduleError as exc:
                assert "has no fire time after 2026-11-24 10:30:00 UTC: " in str(exc) and "\n" not in str(exc)
                explained += 1
    assert answered > 40 and explained > 40


# An independent, slow reading of the day rules: test every day of the month against the definition.
def _weekday(day: date) -> int:
    return {6: 1, 0: 2, 1: 3, 2: 4, 3: 5, 4: 6, 5: 7}[day.weekday()]  # AWS: SUN=1 … SAT=7


def _matches(rule: str, field: str, day: date) -> bool:
    month_days = [date(day.year, day.month, d) for d in range(1, calendar.monthrange(day.year, day.month)[1] + 1)]
    workdays = [d for d in month_days if d.weekday() < 5]
    if field == "dom":
        if rule == "L":
            return day == month_days[-1]
        if rule.startswith("L-"):
            return day.day == len(month_days) - int(rule[2:])
        if rule == "LW":
            return day == workdays[-1]
        if rule.endswith("W"):
            n = int(rule[:-1])
            return n <= len(month_days) and day == min(workdays, key=lambda d: abs(d.day - n))
        return day.day == int(rule)
    if rule == "L":
        return _weekday(day) == 7
    if rule.endswith("L"):
        same = [d for d in month_days if _weekday(d) == int(rule[:-1])]
        return day == same[-1]
    if "#" in rule:
        n, k = map(int, rule.split("#"))
        same = [d for d in month_days if _weekday(d) == n]
        return len(same) >= k and day == same[k - 1]
    return _weekday(day) == int(rule)


DAY_RULES = (
    [("dom", r) for r in ["L", "LW", "1", "29", "30", "31"]]
    + [("dom", f"L-{n}") for n in (1, 2, 5, 15, 27, 28, 29, 30)]
    + [("dom", f"{n}W") for n in range(1, 32)]
    + [("dow", r) for r in ["L"] + [str(n) for n in range(1, 8)]]
    + [("dow", f"{n}L") for n in range(1, 8)]
    + [("dow", f"{n}#{k}") for n in range(1, 8) for k in range(1, 6)]
)


@pytest.mark.parametrize(("field", "rule"), DAY_RULES, ids=[f"{f}:{r}" for f, r in DAY_RULES])
def test_day_rules_agree_with_their_definition_for_every_month_2026_to_2033(field: str, rule: str) -> None:
    body = f"0 0 {rule} * ? *" if field == "dom" else f"0 0 ? * {rule} *"
    cron = Cron.parse(body)
    for year in range(2026, 2034):
        for month in range(1, 13):
            expected = [d.day for d in _all_days(year, month) if _matches(rule, field, d)]
            assert cron.day_rule.days(year, month) == expected, (rule, year, month)


def _all_days(year: int, month: int) -> list[date]:
    return [date(year, month, d) for d in range(1, calendar.monthrange(year, month)[1] + 1)]
