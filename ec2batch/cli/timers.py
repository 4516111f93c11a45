"""Commands for exact-time runs: run-at, cancel."""

from __future__ import annotations

import json
import re
import shlex
from datetime import timedelta

import click

from .. import timers
from ..config import load_config
from ..errors import Ec2BatchError
from ..ledger import utcnow
from ..timeutil import parse_iso
from . import Context, friendly_errors
from .runs import _parse_env, job_argument, json_option

pass_ctx = click.make_pass_decorator(Context)
_DURATION = re.compile(r"^(\d+)(s|m|h|d)$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_in(text: str) -> timedelta:
    match = _DURATION.match(text)
    if not match:
        raise click.BadParameter(f"{text!r} is not a duration like 90s, 15m, 2h or 1d", param_hint="--in")
    return timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])


@click.command("run-at")
@job_argument
@click.argument("when", required=False)
@click.option("--in", "in_", metavar="DURATION", help="Instead of WHEN: this long from now, e.g. 90s, 15m, 2h.")
@click.option("--env", "env", multiple=True, metavar="NAME=VALUE", help="Add or override a variable (repeatable).")
@click.option("--command", "command", metavar="CMD", help="Override the command.")
@json_option
@pass_ctx
@friendly_errors
def run_at(
    ctx: Context, job: str, when: str | None, in_: str | None, env: tuple[str, ...], command: str | None, as_json: bool
) -> None:
    """Plan a run of JOB at an exact second: WHEN is ISO 8601 with an offset.

    \b
    Examples:
      ec2batch run-at daily-report 2026-11-24T14:02:30+01:00
      ec2batch run-at daily-report --in 90s
    """
    if (when is None) == (in_ is None):
        raise click.UsageError("give either WHEN or --in")
    now = utcnow()
    due = now + parse_in(in_) if in_ else parse_iso(when)  # type: ignore[arg-type]
    config = load_config(ctx.clients.ssm, job)
    run = timers.plan_run(
        ctx.clients, config, due, command=tuple(shlex.split(command)) if command else None, env=_parse_env(env)
    )
    if as_json:
        click.echo(json.dumps({"job": job, "run_id": run.run_id, "status": run.status, "due": run.scheduled_at}))
        return
    how = "timer sent" if run.start_timer_sent_at else "the planner will send its timer"
    click.echo(f"run {run.run_id} PLANNED for {run.scheduled_at} ({how})")


@click.command("cancel")
@job_argument
@click.argument("run_id")
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
    try:
        run = timers.cancel_run(ctx.clients, config, run_id, reason)
    except timers.TimerError as exc:
        raise Ec2BatchError(str(exc)) from exc
    click.echo(f"run {run.run_id} CANCELLED" + (f"; instance {run.instance_id} stopped" if run.instance_id else ""))


COMMANDS = [run_at, cancel]
