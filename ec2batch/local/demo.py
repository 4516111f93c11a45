"""`make demo`: the example job, scheduled and run end to end on the local stack.

It brings the stack up, then schedules a one-off fire of the example job a few seconds ahead in the
(moto) EventBridge Scheduler, so the run takes the schedule's own path: scheduler emulator -> launcher
-> EC2 (moto) -> instance container -> agent -> CloudWatch -> ledger -> power-off.
"""

from __future__ import annotations

import sys
import time
from datetime import timedelta

import click

from ..ledger import Ledger, scheduled_run_id, utcnow
from ..names import JobNames
from ..runlogs import follow_stream
from ..runview import summary
from .scheduler_emulator import launcher_arn
from .stack import EXAMPLE_JOB, Stack

LEAD_SECONDS = 5


def main() -> int:
    stack = Stack.default(progress=lambda message: click.echo(f"[up] {message}", err=True))
    stack.up()
    clients = stack.clients()
    names = JobNames(EXAMPLE_JOB)
    due = (utcnow() + timedelta(seconds=LEAD_SECONDS)).replace(microsecond=0)
    demo_schedule = f"{names.schedule}-demo"
    from ..launcher.events import schedule_target_input

    scheduler = clients.scheduler
    scheduler.create_schedule(
        Name=demo_schedule,
        GroupName=names.schedule_group,
        ScheduleExpression=f"at({due:%Y-%m-%dT%H:%M:%S})",
        ScheduleExpressionTimezone="UTC",
        FlexibleTimeWindow={"Mode": "OFF"},
        Target={
            "Arn": launcher_arn(EXAMPLE_JOB),
            "RoleArn": "arn:aws:iam::123456789012:role/ec2batch-demo",
            "Input": schedule_target_input(EXAMPLE_JOB),
        },
    )
    click.echo(
        f"scheduled a one-off run of {EXAMPLE_JOB} at {due:%H:%M:%S} UTC (the daily schedule is "
        "cron(0 2 * * ? *) Europe/Berlin); waiting for the scheduler to fire it"
    )
    ledger = Ledger(clients.dynamodb, names.ledger_table)
    run_id = scheduled_run_id(due)
    try:
        run = _wait_for(lambda: ledger.get(EXAMPLE_JOB, run_id), LEAD_SECONDS + 30, "the schedule to fire")
        click.echo(f"run {run_id}: {run.status}")
        status = {"value": run.status}

        def finished() -> bool:
            current = ledger.require(EXAMPLE_JOB, run_id)
            if current.status != status["value"]:
                status["value"] = current.status
                click.echo(f"run {run_id}: {current.status}", err=True)
            return current.terminal

        for line in follow_stream(clients.logs, names.log_group, names.run_log_stream(run_id), finished):
            click.echo(f"  | {line.message}")
        run = ledger.require(EXAMPLE_JOB, run_id)
        stopped = _wait_for(
            lambda: _instance_state(clients, run.instance_id) in ("stopped", "terminated"),
            60,
            "the instance to power off",
        )
        click.echo(summary(run))
        click.echo(f"  instance {run.instance_id} is {_instance_state(clients, run.instance_id)}" if stopped else "")
    finally:
        scheduler.delete_schedule(Name=demo_schedule, GroupName=names.schedule_group)
    click.echo('\nnext: `eval "$(.venv/bin/ec2batch local env)"`, then `.venv/bin/ec2batch runs daily-report`')
    return 0 if run.status == "SUCCEEDED" else 1


def _instance_state(clients, instance_id: str | None) -> str:
    if not instance_id:
        return "unknown"
    reservations = clients.ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
    return reservations[0]["Instances"][0]["State"]["Name"]


def _wait_for(probe, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.3)
    raise SystemExit(f"gave up waiting for {what} after {timeout:.0f}s (see .cache/local/logs/emulators.log)")


if __name__ == "__main__":
    sys.exit(main())
