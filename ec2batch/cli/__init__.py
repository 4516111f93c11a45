"""The `ec2batch` command: a thin layer that parses, calls the library, and prints.

Every error a person can cause or fix is printed as one line (`Error: ...`) with exit code 1. Bad input (a
wrong option, argument or value) is one line naming it, with exit code 2, and nothing is read or written
before it is checked. A traceback means a bug.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any, TextIO, cast

import click

from .. import jsonlog
from . import (
    cost_commands,
    graph_commands,
    job_commands,
    local_commands,
    report_commands,
    run_commands,
    schedule_commands,
    timer_commands,
)
from .context import Context, OneLineUsageError


class Ec2BatchGroup(click.Group):
    """The `ec2batch` group: bad input anywhere below it is reported on one line (exit code 2)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except OneLineUsageError:
            raise
        except click.UsageError as exc:
            raise OneLineUsageError(exc.format_message(), exc.ctx) from exc


@click.group(cls=Ec2BatchGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--profile", envvar="AWS_PROFILE", help="AWS profile (default: the standard credential chain).")
@click.option("--region", envvar="AWS_REGION", help="AWS region (default: the profile's or AWS_DEFAULT_REGION).")
@click.version_option(package_name="ec2batch")
@click.pass_context
def main(ctx: click.Context, profile: str | None, region: str | None) -> None:
    """Scheduled container jobs on a dedicated EC2 instance that runs only while the job does.

    AWS_ENDPOINT_URL points every call elsewhere (the local stack sets it).
    """
    ctx.obj = Context(profile, region)
    _library_logs()


class _CurrentStderr:
    """Writes to whatever sys.stderr is at the time (a handler must not keep a stream that is gone)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def _library_logs() -> None:
    """The CLI speaks in its own lines; the library's JSON log lines (what the launcher and the agent send to
    CloudWatch) are off, so a warning never becomes a second line of an error. EC2BATCH_LOG=info (or debug,
    warning) shows them on stderr."""
    wanted = logging.getLevelName(os.environ.get("EC2BATCH_LOG", "").upper() or "OFF")
    level = wanted if isinstance(wanted, int) else logging.CRITICAL + 1
    jsonlog.configure(level=level, stream=cast(TextIO, _CurrentStderr()))


def _register() -> None:
    for module in (
        run_commands,
        timer_commands,
        schedule_commands,
        job_commands,
        cost_commands,
        local_commands,
        graph_commands,
        report_commands,
    ):
        for command in module.COMMANDS:
            main.add_command(command)


_register()


def run() -> None:  # pragma: no cover - console entry point alias
    sys.exit(main())
