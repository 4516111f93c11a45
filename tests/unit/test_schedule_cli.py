"""`ec2batch next` as a person sees it: times, or one line saying why there are none (never an empty list)."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

from ec2batch.cli import main


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
    else:
        assert result.exit_code == 1
        assert result.output.startswith(f"Error: invalid cron expression {expression!r}: {field} ")


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
    assert result.exit_code == (1 if output.startswith("Error:") else 0)


def test_the_docs_show_at_least_a_dozen_next_examples() -> None:
    assert len(documented_next_examples()) >= 12
