"""Commands for exact-time runs: run-at, cancel."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import click

from .. import stopping, timers
from ..config import JobConfig, load_config
from ..ledger import iso, utcnow
from .context import Context, friendly_errors
from .params import ISO_TIME, RUN_ID, Duration, check_overrides, parse_command, parse_env
from .run_commands import job_argument, json_option

pass_ctx = click.make_pass_decorator(Context)
# An exact-time run further ahead than this is almost surely a typo (a schedule is for the far future).
MAX_AHEAD = timedelta(days=366)


def check_due(due: datetime, now: datetime, config: JobConfig, hint: str) -> None:
    """Not further ahead than MAX_AHEAD, not further back than the job's starting deadline."""
    if due > now + MAX_AHEAD:
        raise click.BadParameter(f"{iso(due)} is more than {MAX_AHEAD.days} days ahead", param_hint=hint)
    if due <= now - timedelta(seconds=config.starting_deadline_seconds):
        raise click.BadParameter(
            f"{iso(due)} is more than the starting deadline ({config.starting_deadline_seconds}s) ago",
            param_hint=hint,
        )


@click.command("run-at")
@job_argument
@click.argument("when", required=False, type=ISO_TIME)
@click.option(
    "--in",
    "in_",
    type=Duration(MAX_AHEAD),
    metavar="DURATION",
    help="Instead of WHEN: this long from now, e.g. 90s, 15m, 2h.",
)
@click.option("--env", "env", multiple=True, metavar="NAME=VALUE", help="Add or override a variable (repeatable).")
@click.option("--command", "command", metavar="CMD", help="Override the command.")
@json_option
@pass_ctx
@friendly_errors
def run_at(
    ctx: Context,
    job: str,
    when: datetime | None,
    in_: timedelta | None,
    env: tuple[str, ...],
    command: str | None,
    as_json: bool,
) -> None:
    """Plan a run of JOB at an exact second: WHEN is ISO 8601 with an offset.

    \b
    Examples:
      ec2batch run-at daily-report 2026-11-24T14:02:30+01:00
      ec2batch run-at daily-report --in 90s
    """
    if (when is None) == (in_ is None):
        raise click.UsageError("give either WHEN or --in")
    overrides, argv = parse_env(env), parse_command(command)
    check_overrides(job, argv, overrides)
    now = utcnow()
    due = now + in_ if in_ is not None else when
    config = load_config(ctx.clients.ssm, job)
    check_due(due, now, config, "'--in'" if in_ is not None else "'WHEN'")  # type: ignore[arg-type]
    run = timers.plan_run(ctx.clients, config, due, command=argv, env=overrides)  # type: ignore[arg-type]
    if as_json:
        click.echo(json.dumps({"job": job, "run_id": run.run_id, "status": run.status, "due": run.scheduled_at}))
        return
    how = "timer sent" if run.start_timer_sent_at else "the planner will send its timer"
    click.echo(f"run {run.run_id} PLANNED for {run.scheduled_at} ({how})")


@click.command("cancel")
@job_argument
@click.argument("run_id", type=RUN_ID)
@click.option("--reason", default="cancelled by hand", show_default=True)
@pass_ctx
@friendly_errors
def cancel(ctx: Context, job: str, run_id: str, reason: str) -> None:
    """Cancel a planned or running run; a machine it runs on is stopped.

    \b
    Example:
      ec2batch cancel daily-report 20261124T140230.000Z-at-1a2b3c4d
    """
    config = load_config(ctx.clients.ssm, job)
    run = stopping.cancel_run(ctx.clients, config, run_id, reason)
    click.echo(f"run {run.run_id} CANCELLED" + (f"; instance {run.instance_id} stopped" if run.instance_id else ""))


COMMANDS = [run_at, cancel]
