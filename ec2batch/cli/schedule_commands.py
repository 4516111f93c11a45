"""`ec2batch next`: when a schedule fires, with EventBridge Scheduler's time-zone rules."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime

import click

from ..errors import Ec2BatchError, ScheduleError
from ..jobs import get_schedule
from ..ledger import utcnow
from ..schedule import Schedule, zone
from .context import Context, friendly_errors
from .params import ISO_TIME

pass_ctx = click.make_pass_decorator(Context)


def _checked(check: Callable[[str], object]) -> Callable[[click.Context, click.Parameter, str | None], str | None]:
    """An option callback: a value `check` refuses is bad input (exit 2), named on one line, before any AWS call."""

    def callback(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
        if value is not None:
            try:
                check(value)
            except ScheduleError as exc:
                raise click.BadParameter(str(exc), ctx, param) from None
        return value

    return callback


@click.command("next")
@click.argument("job", required=False)
@click.option(
    "--expression",
    "-e",
    callback=_checked(Schedule),
    help="A schedule expression instead of a deployed job's, e.g. 'cron(0 2 * * ? *)'.",
)
@click.option("--tz", callback=_checked(zone), help="IANA time zone (default: the job's schedule's, or UTC).")
@click.option("--after", type=ISO_TIME, help="Start from this ISO 8601 time instead of now.")
@click.option("--count", "-n", type=click.IntRange(1, 1000), default=5, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of UTC ISO 8601 times.")
@pass_ctx
@friendly_errors
def next_(
    ctx: Context,
    job: str | None,
    expression: str | None,
    tz: str | None,
    after: datetime | None,
    count: int,
    as_json: bool,
) -> None:
    """Show the next fire times of JOB's schedule, or of --expression.

    A schedule with nothing left to fire (a past at(), an ended year range, a cron no date matches)
    is an error that says which.

    \b
    Examples:
      ec2batch next daily-report
      ec2batch next -e 'cron(30 2 * * ? *)' --tz Europe/Berlin --after 2026-03-28T00:00:00Z -n 3
    """
    if (job is None) == (expression is None):
        raise click.UsageError("give either JOB or --expression")
    if job is not None:
        found = get_schedule(ctx.clients.scheduler, job)
        if found is None:
            raise Ec2BatchError(f"job {job!r} has no schedule (EventBridge Scheduler schedule ec2batch-{job})")
        expression, tz = found.expression, tz or found.timezone
    timezone = tz or "UTC"
    start = after or utcnow()
    schedule = Schedule(expression, timezone)  # type: ignore[arg-type]
    times = schedule.upcoming(start, count)  # nothing left to fire is an error with its reason, never []
    if as_json:
        click.echo(json.dumps([t.isoformat().replace("+00:00", "Z") for t in times]))
    else:
        local = zone(timezone)
        for moment in times:
            click.echo(f"{moment:%Y-%m-%d %H:%M:%S} UTC   {moment.astimezone(local):%Y-%m-%d %H:%M:%S %Z} ({timezone})")
    if len(times) < count:  # said on stderr, so --json stays one JSON document
        click.echo(f"no more fire times: {schedule.why_nothing_after(times[-1])}", err=True)


COMMANDS = [next_]
