"""What a person types, checked before anything is read or written: times, durations, run ids, overrides.

A bad value is a `click.BadParameter` naming its option or argument; the `ec2batch` group prints it as one
line and exits 2 (see `OneLineUsageError`).
"""

from __future__ import annotations

import re
import shlex
from datetime import UTC, datetime, timedelta
from typing import Any

import click

from ..errors import EventError, ScheduleError
from ..launcher.events import parse_event
from ..ledger import RUN_ID_PATTERN
from ..timeutil import parse_iso

# The years AWS's own cron expressions accept: wide enough for any real use, and far from datetime's limits.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2199, 12, 31, 23, 59, 59, tzinfo=UTC)
_DURATION = re.compile(r"^(\d+)(s|m|h|d)$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class IsoTime(click.ParamType):
    """ISO 8601 with a UTC offset (or Z), between 1970 and 2199; converted to an aware UTC datetime."""

    name = "TIME"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> datetime:
        if isinstance(value, datetime):
            return value
        try:
            moment = parse_iso(str(value))
        except ScheduleError as exc:
            self.fail(str(exc), param, ctx)
        except (OverflowError, ValueError):  # the offset pushed it past datetime's own range
            moment = None
        if moment is None or not EARLIEST <= moment <= LATEST:
            self.fail(f"{value!r} is out of range: give a time from 1970 to 2199", param, ctx)
        return moment


class Duration(click.ParamType):
    """A span like 90s, 15m, 2h or 1d, at most `most`."""

    name = "DURATION"

    def __init__(self, most: timedelta) -> None:
        self.most = most

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> timedelta:
        if isinstance(value, timedelta):
            return value
        match = _DURATION.match(str(value))
        if not match:
            self.fail(f"{value!r} is not a duration like 90s, 15m, 2h or 1d", param, ctx)
        digits, unit = match.groups()
        most = self.most.total_seconds()
        # Compared before a timedelta is made: a huge number would overflow it (or int() itself).
        if len(digits) > 12 or int(digits) * _UNITS[unit] > most:
            self.fail(f"{value!r} is too long: at most {most / 86400:g} days", param, ctx)
        return timedelta(seconds=int(digits) * _UNITS[unit])


class RunId(click.ParamType):
    """A run id as the ledger makes them (`ledger.RUN_ID_PATTERN`); bookkeeping keys like `~active` are not."""

    name = "RUN_ID"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        if not RUN_ID_PATTERN.match(str(value)):
            self.fail(
                f"{value!r} is not a run id (like 20261124T140230.000Z-at-1a2b3c4d; `ec2batch runs JOB` lists them)",
                param,
                ctx,
            )
        return str(value)


ISO_TIME = IsoTime()
RUN_ID = RunId()


def parse_command(text: str | None) -> tuple[str, ...] | None:
    """`--command "python -m report --rows 10"` split as a shell would, without running one."""
    if text is None:
        return None
    try:
        words = tuple(shlex.split(text))
    except ValueError as exc:  # "No closing quotation", "No escaped character"
        raise click.BadParameter(f"{text!r}: {exc}", param_hint="'--command'") from exc
    if not words:
        raise click.BadParameter("is empty: give the command and its arguments", param_hint="'--command'")
    return words


def parse_env(values: tuple[str, ...]) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{item!r} is not NAME=value", param_hint="'--env'")
        env[name] = value
    return env


_OPTION_OF_FIELD = {"env": "'--env'", "command": "'--command'", "token": "'--token'"}


def check_overrides(job: str, command: tuple[str, ...] | None, env: dict[str, str], token: str | None = None) -> None:
    """Refuse here what the launcher would refuse (names, sizes, token), with the option that carries it."""
    event: dict[str, Any] = {"action": "run", "job": job, "env": env}
    if command is not None:
        event["command"] = list(command)
    if token is not None:
        event["token"] = token
    try:
        parse_event(event)
    except EventError as exc:
        field = re.split(r"[.:\[ ]", str(exc), maxsplit=1)[0]
        raise click.BadParameter(str(exc), param_hint=_OPTION_OF_FIELD.get(field)) from exc
