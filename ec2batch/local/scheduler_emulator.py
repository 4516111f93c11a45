"""Schedules in the local stack: stored in moto's EventBridge Scheduler, fired by the emulator here.

moto stores schedules and validates nothing and fires nothing; `SchedulerEmulator` reads them and
invokes the launcher in-process at each fire time, with the Input the real Scheduler would send
(context attributes filled in), using `ec2batch.schedule` for the cron / time-zone semantics.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from ..aws import Clients
from ..jsonlog import fields
from ..launcher.events import schedule_target_input
from ..ledger import utcnow
from ..names import JobNames
from ..schedule import Schedule
from .paths import ACCOUNT_ID, REGION

log = logging.getLogger(__name__)


def launcher_arn(job: str) -> str:
    return f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{JobNames(job).launcher_function}"


def put_job_schedule(
    clients: Clients, job: str, expression: str, timezone: str, *, starting_deadline_seconds: int = 900
) -> None:
    """Create or update the job's schedule as Terraform's aws_scheduler_schedule "job" does (its events are kept
    as long as the run could still start: the starting deadline, at least 60 s)."""
    max_age = max(60, starting_deadline_seconds)
    put_schedule(clients, job, JobNames(job).schedule, expression, timezone, schedule_target_input(job), max_age)


def put_planner_schedule(clients: Clients, job: str) -> None:
    """The 15-minute planner, as Terraform's aws_scheduler_schedule "planner" does."""
    put_schedule(
        clients,
        job,
        JobNames(job).planner_schedule,
        "rate(15 minutes)",
        "UTC",
        json.dumps({"action": "plan", "job": job}),
        600,
    )


def put_schedule(
    clients: Clients, job: str, name: str, expression: str, timezone: str, target_input: str, max_event_age: int
) -> None:
    Schedule(expression, timezone)  # moto accepts anything: refuse what AWS would refuse
    names = JobNames(job)
    scheduler = clients.scheduler
    # Only when missing: moto's CreateScheduleGroup on an existing group replaces it, and its schedules with it
    # (AWS answers ConflictException), which dropped the planner when the job's schedule was put after it.
    try:
        scheduler.get_schedule_group(Name=names.schedule_group)
    except scheduler.exceptions.ResourceNotFoundException:
        with contextlib.suppress(scheduler.exceptions.ConflictException):
            scheduler.create_schedule_group(Name=names.schedule_group)
    arguments = {
        "Name": name,
        "GroupName": names.schedule_group,
        "ScheduleExpression": expression,
        "ScheduleExpressionTimezone": timezone,
        "FlexibleTimeWindow": {"Mode": "OFF"},
        "State": "ENABLED",
        "Target": {
            "Arn": launcher_arn(job),
            "RoleArn": f"arn:aws:iam::{ACCOUNT_ID}:role/{names.scheduler_role}",
            "Input": target_input,
            "RetryPolicy": {"MaximumEventAgeInSeconds": max_event_age, "MaximumRetryAttempts": 3},
        },
    }
    try:
        scheduler.create_schedule(**arguments)
    except scheduler.exceptions.ConflictException:
        scheduler.update_schedule(**arguments)


def fill_context(template: str, scheduled: datetime, schedule_arn: str, execution_id: str) -> dict[str, Any]:
    """What the Scheduler does to the Input before invoking the target."""
    text = (
        template.replace("<aws.scheduler.scheduled-time>", scheduled.strftime("%Y-%m-%dT%H:%M:%SZ"))
        .replace("<aws.scheduler.schedule-arn>", schedule_arn)
        .replace("<aws.scheduler.execution-id>", execution_id)
        .replace("<aws.scheduler.attempt-number>", "1")
    )
    return json.loads(text)


class SchedulerEmulator:
    """Fires every ENABLED schedule in moto at its times (within about a second)."""

    def __init__(
        self, clients: Clients, invoke: Callable[[dict[str, Any]], Any], clock: Callable[[], datetime] = utcnow
    ) -> None:
        self.clients = clients
        self.invoke = invoke
        self.clock = clock
        self.next_due: dict[str, datetime | None] = {}
        self.seen: dict[str, tuple[str, str]] = {}

    def run_forever(self, stop: threading.Event, interval: float = 0.5) -> None:
        while not stop.is_set():
            try:
                self.step()
            except Exception:
                log.exception("scheduler emulator step failed")
            stop.wait(interval)

    def step(self) -> list[dict[str, Any]]:
        now = self.clock()
        fired = []
        for schedule in self._schedules():
            key = schedule["Arn"]
            shape = (schedule["ScheduleExpression"], schedule.get("ScheduleExpressionTimezone") or "UTC")
            if self.seen.get(key) != shape:  # new or changed: plan from now on
                self.seen[key] = shape
                self.next_due[key] = self._next(shape, now - timedelta(seconds=1))
            due = self.next_due.get(key)
            if due is None or due > now:
                continue
            event = fill_context(schedule["Target"]["Input"], due, key, f"local-{due:%Y%m%dT%H%M%S}")
            log.info("schedule fired", extra=fields(schedule=schedule["Name"], scheduled=due.isoformat()))
            try:
                fired.append(self.invoke(event))
            except Exception:
                log.exception("launcher invocation failed", extra=fields(schedule=schedule["Name"]))
            self.next_due[key] = self._next(shape, due)
        return fired

    def _next(self, shape: tuple[str, str], after: datetime) -> datetime | None:
        times = Schedule(*shape).next_fire_times(after, 1)
        return times[0] if times else None

    def _schedules(self) -> list[dict[str, Any]]:
        scheduler = self.clients.scheduler
        found = []
        for group in scheduler.list_schedule_groups()["ScheduleGroups"]:
            for summary in scheduler.list_schedules(GroupName=group["Name"])["Schedules"]:
                if summary.get("State", "ENABLED") != "ENABLED":
                    continue
                found.append(scheduler.get_schedule(Name=summary["Name"], GroupName=group["Name"]))
        return found
