"""`ec2batch next` as a person sees it: times, or one line saying why there are none (never an empty list)."""

from __future__ import annotations

import json
import random
import re
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

from ec2batch.cli import main
from ec2batch.errors import ScheduleError
from ec2batch.schedule import Schedule

EXPRESSION_OPTION = "Invalid value for '--expression' / '-e'"


def next_(*args: str):
    return CliRunner().invoke(main, ["next", *args], catch_exceptions=False)


def test_l_in_day_of_week_fires_on_saturdays() -> None:
    result = next_("-e", "cron(0 0 ? * L *)", "--after", "2026-11-24T10:30:00Z", "-n", "2")
    assert result.exit_code == 0
    assert result.output.splitlines() == [
        "2026-11-28 00:00:00 UTC   2026-11-28 00:00:00 UTC (UTC)",
        "2026-12-05 00:00:00 UTC   2026-12-05 00:00:00 UTC (UTC)",
    ]


def test_an_expression_that_never_fires_is_an_error_with_the_reason() -> None:
    for extra in ([], ["--json"]):
        result = next_("-e", "cron(0 0 30 2 ? *)", *extra)
        assert result.exit_code == 1
        assert result.output.count("\n") == 1 and "[]" not in result.output
        assert "never fires" in result.output and "no date from 1970 to 2199" in result.output


def test_an_ended_year_range_says_so() -> None:
    result = next_("-e", "cron(15 10 ? * 6L 2019-2022)", "--after", "2026-11-24T00:00:00Z")
    assert result.exit_code == 1
    assert result.output == (
        "Error: cron(15 10 ? * 6L 2019-2022) (UTC) has no fire time after 2026-11-24 00:00:00 UTC: "
        "its year range ends with 2022 and its last time has passed\n"
    )


def test_fewer_times_than_asked_are_printed_with_a_note_on_stderr() -> None:
    result = next_("-e", "cron(0 0 1 1 ? 2027-2028)", "--after", "2026-11-24T00:00:00Z", "-n", "5", "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == ["2027-01-01T00:00:00Z", "2028-01-01T00:00:00Z"]
    assert result.stderr == "no more fire times: its year range ends with 2028 and its last time has passed\n"


@pytest.mark.parametrize(
    ("expression", "field"),
    [
        ("cron(0 0 LW * ? *)", None),
        ("cron(0 0 1 1 ? 2000/2)", None),
        ("cron(0 0 LW,15 * ? *)", "day-of-month field"),
        ("cron(0 0 ? * L-3 *)", "day-of-week field"),
        ("cron(0 0 1 1 ? 2000/0)", "year field"),
        ("cron(0 0 ? * 3#1,6#3 *)", "day-of-week field"),
    ],
)
def test_the_three_issue_cases_and_their_neighbours_never_show_python_errors(expression: str, field: str) -> None:
    result = next_("-e", expression, "--after", "2026-11-24T00:00:00Z", "-n", "1")
    assert "int()" not in result.output and "Traceback" not in result.output
    if field is None:
        assert result.exit_code == 0 and result.output.count("\n") == 1
    else:  # a refused --expression is bad input: exit 2, like every other bad value (docs/cli.md)
        assert result.exit_code == 2 and result.output.count("\n") == 1
        assert result.output.startswith(f"Error: {EXPRESSION_OPTION}: invalid cron expression {expression!r}: {field} ")


def documented_next_examples() -> list[tuple[str, str]]:
    """Each `$ ec2batch next ...` in docs/cli.md's `next` section, with the output printed under it."""
    text = Path(__file__).parents[2].joinpath("docs", "cli.md").read_text()
    section = text[text.index("### `ec2batch next") : text.index("## Jobs")]
    examples: list[tuple[str, str]] = []
    for block in re.findall(r"```console\n(.*?)```", section, flags=re.DOTALL):
        for chunk in re.split(r"^\$ ", block, flags=re.MULTILINE)[1:]:
            command, _, output = chunk.partition("\n")
            examples.append((command, output))
    return examples


@pytest.mark.parametrize(("command", "output"), documented_next_examples())
def test_the_documented_next_examples_print_what_the_docs_show(command: str, output: str) -> None:
    words = shlex.split(command)
    assert words[:2] == ["ec2batch", "next"]
    result = next_(*words[2:])
    assert result.output == output
    expected_code = 2 if output.startswith("Error: Invalid value") else 1 if output.startswith("Error:") else 0
    assert result.exit_code == expected_code


def test_the_docs_show_at_least_a_dozen_next_examples() -> None:
    assert len(documented_next_examples()) >= 12


def test_a_bad_time_zone_is_bad_input() -> None:
    result = next_("-e", "rate(1 day)", "--tz", "Mars/Olympus")
    assert result.exit_code == 2
    assert result.output == (
        "Error: Invalid value for '--tz': time zone 'Mars/Olympus' is not an IANA time zone name "
        "(e.g. Europe/Berlin, UTC)\n"
    )


def test_a_rate_with_no_time_left_before_2200_says_so() -> None:
    # Past 2199 (the end of AWS's year field) nothing is scheduled: a huge rate is not an overflow.
    for value in ("100000", "99999999999999999999999"):
        result = next_("-e", f"rate({value} days)", "--after", "2026-11-24T00:00:00Z")
        assert result.exit_code == 1, result.output
        assert result.output == (
            f"Error: rate({value} days) (UTC) has no fire time after 2026-11-24 00:00:00 UTC: its next time "
            "falls after 2199-12-31 23:59:59 UTC, the end of the years AWS schedules (1970-2199)\n"
        )


# Fuzzing `ec2batch next -e`: AWS-shaped expressions with a few characters inserted, deleted or replaced.
SEEDS = [
    "cron(0 0 ? * L *)",
    "cron(0 0 1 1 ? 2000/2)",
    "cron(0 0 LW * ? *)",
    "cron(0/15 8-17 ? * MON-FRI 2026-2030/2)",
    "cron(15 10 ? * 6L 2019-2022)",
    "cron(0 9 ? * 3#2 *)",
    "cron(0 9 L-3 * ? *)",
    "cron(0 9 15W * ? *)",
    "cron(0/30 20-2 ? * MON-FRI *)",
    "rate(5 minutes)",
    "rate(1 day)",
    "at(2026-11-24T14:02:30)",
]
NOISE = [
    *"0123456789 ,-*/?LW#()abcdefhimnorstuyFRIMONJAN:T\t\n",
    "\u0663",  # an Arabic-Indic 3: Python's \d and int() take it; AWS's fields are ASCII digits
    "\x00",
    "\u017f",  # a long s, whose upper() is "S"
    "99999999999999999999",
    "L-",
    "#5",
]
PYTHON_WORDS = ("Traceback", "invalid literal", "int()", "NoneType", "object has no", "index out of range")


def mutated_expressions(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        chars = list(rng.choice(SEEDS))
        for _ in range(1 if rng.random() < 0.5 else rng.randint(2, 4)):
            i = rng.randrange(len(chars))
            roll = rng.random()
            if roll < 0.4:
                chars.insert(i, rng.choice(NOISE))
            elif roll < 0.7:
                del chars[i]
            else:
                chars[i] = rng.choice(NOISE)
        out.append("".join(chars))
    return out


def test_fuzzed_expressions_give_times_or_one_line_never_a_traceback() -> None:
    refused = answered = ended = 0
    for expression in mutated_expressions(600, seed=12):
        result = CliRunner().invoke(main, ["next", "-e", expression, "--after", "2026-11-24T10:30:00Z", "-n", "2"])
        assert result.exception is None or isinstance(result.exception, SystemExit), (expression, result.exception)
        assert not any(word in result.output for word in PYTHON_WORDS), (expression, result.output)
        try:
            Schedule(expression)
        except ScheduleError as exc:  # refused: bad input, one line naming the option and the reason
            assert result.exit_code == 2, (expression, result.output)
            assert result.output == f"Error: {EXPRESSION_OPTION}: {exc}\n", expression
            refused += 1
            continue
        if result.exit_code == 0:  # accepted: times, and at most a note on stderr that no more are left
            assert 1 <= len(result.stdout.splitlines()) <= 2 and result.stderr.count("\n") <= 1, expression
            answered += 1
        else:  # accepted, nothing left to fire: one line saying why
            assert result.exit_code == 1 and result.output.count("\n") == 1, (expression, result.output)
            assert " has no fire time after 2026-11-24 10:30:00 UTC: " in result.output, expression
            ended += 1
    # Most mutations break the syntax (the point here); the few that stay valid are answered as usual.
    assert refused >= 500 and answered + ended >= 5, (refused, answered, ended)
