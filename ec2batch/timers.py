"""Exact-time runs and external run deadlines: planner + SQS DelaySeconds + a final check.

A timer is "do X for run R at time T". SQS can delay a message by at most 900 s, so:
- a timer due within the next 15 minutes is sent at once with DelaySeconds = seconds until due;
- the planner (every 15 minutes) sends the timers that come due before its next tick;
- when the message arrives, the launcher does a final check (is the run still PLANNED / still running
  past its deadline? did its time move?) and acts, or records why it did nothing.
Duplicate or stale messages are therefore harmless: the check reads the ledger, not the message.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from .aws import Clients
from .config import JobConfig
from .errors import Ec2BatchError, TransitionRejected
from .jsonlog import fields
from .ledger import PLANNED, TERMINAL, Ledger, Run, iso, new_run_id, utcnow
from .names import JobNames

log = logging.getLogger(__name__)

MAX_DELAY_SECONDS = 900  # SQS's limit
PLANNER_PERIOD = timedelta(minutes=15)
# The planner looks a little past its next tick: EventBridge fires within a minute of its time.
PLANNER_HORIZON = PLANNER_PERIOD + timedelta(minutes=2)
START, DEADLINE, RETRY = "start", "deadline", "retry"  # RETRY: start a run's next attempt


class TimerError(Ec2BatchError):
    pass


@dataclass(frozen=True)
class Timer:
    job: str
    run_id: str
    kind: str
    due: datetime

    def body(self) -> str:
        return json.dumps({"job": self.job, "run_id": self.run_id, "kind": self.kind, "due": iso(self.due)})


def queue_url(clients: Clients, job: str) -> str:
    return clients.sqs.get_queue_url(QueueName=JobNames(job).timer_queue)["QueueUrl"]


def send(clients: Clients, timer: Timer, now: datetime, url: str | None = None) -> int:
    """Send the timer's message, delayed until it is due; returns the delay used.

    DelaySeconds is whole seconds: rounded down, so the message arrives up to a second early and the
    launcher waits out the rest (`launcher.final_check`), rather than up to a second late.
    """
    delay = max(0, min(MAX_DELAY_SECONDS, math.floor((timer.due - now).total_seconds())))
    clients.sqs.send_message(
        QueueUrl=url or queue_url(clients, timer.job), MessageBody=timer.body(), DelaySeconds=delay
    )
    log.info(
        "timer sent",
        extra=fields(job=timer.job, run_id=timer.run_id, kind=timer.kind, due=iso(timer.due), delay_seconds=delay),
    )
    return delay


def within_reach(due: datetime, now: datetime) -> bool:
    """Can one delayed message cover it (and will the planner not get a better chance first)?"""
    return (due - now).total_seconds() <= MAX_DELAY_SECONDS


# ---------------------------------------------------------------- one-off runs


def plan_run(
    clients: Clients,
    config: JobConfig,
    due: datetime,
    *,
    command: tuple[str, ...] | None = None,
    env: dict[str, str] | None = None,
    clock: Callable[[], datetime] = utcnow,
) -> Run:
    """Record a PLANNED run due at `due` (second precision) and send its timer now if it is near.

    All or nothing: if the timer cannot be queued, the PLANNED run is deleted again (only while it is still
    PLANNED) and TimerError says nothing was planned, so the person's retry is the only run. A run left
    behind only when the delete fails too: then the error names it, and the planner sends its timer later.
    """
    now = clock()
    due = due.replace(microsecond=0)
    if due <= now - timedelta(seconds=config.starting_deadline_seconds):
        raise TimerError(f"{iso(due)} is more than the starting deadline ({config.starting_deadline_seconds}s) ago")
    ledger = Ledger(clients.dynamodb, config.names.ledger_table)
    run = Run(
        job=config.job,
        run_id=new_run_id("at", due),
        status=PLANNED,
        trigger="at",
        triggered_at=iso(now),
        scheduled_at=iso(due),
        command=command,
        env=env or {},
    )
    try:
        ledger.record_terminal_at_creation(run)  # a conditional put: a planned run is "recorded as seen"
        if not within_reach(due, now):
            return run  # the planner sends its timer when it comes within reach
        send(clients, Timer(config.job, run.run_id, START, due), clock())  # the delay counts from the send
    except Exception as exc:  # whatever failed (AWS, the network), the run is taken back
        raise _withdraw(ledger, run, exc) from exc
    try:
        return ledger.update_fields(config.job, run.run_id, start_timer_sent_at=iso(now))
    except Exception as exc:
        # The timer is queued: the run will start. Unmarked, the planner sends a second (harmless) timer.
        log.warning("timer sent but not marked", extra=fields(job=config.job, run_id=run.run_id, error=str(exc)))
        return Run(**{**run.__dict__, "start_timer_sent_at": iso(now)})


def _withdraw(ledger: Ledger, run: Run, cause: Exception) -> Ec2BatchError:
    """Take back a PLANNED run whose timer could not be queued; the error to show says what is left."""
    why = f"{type(cause).__name__}: {cause}"
    try:
        left = ledger.withdraw_planned(run.job, run.run_id)
    except Exception as exc:
        return TimerError(
            f"run {run.run_id} was recorded but its timer could not be queued ({why}), nor could the run be "
            f"removed ({type(exc).__name__}): the planner will send its timer within 15 minutes, or cancel it "
            f"with `ec2batch cancel {run.job} {run.run_id}`"
        )
    if left is not None:  # its timer got through after all and the run went on
        return TimerError(f"run {run.run_id} is {left.status}: its timer was queued despite an error ({why})")
    log.warning("planned run withdrawn", extra=fields(job=run.job, run_id=run.run_id, error=why))
    return TimerError(f"nothing was planned: the run's timer could not be queued ({why}); try again")


# ---------------------------------------------------------------- deadlines


def deadline_for(config: JobConfig, started: datetime) -> datetime:
    """After this, a run still not ended is stopped from outside (the agent is dead or the machine hangs)."""
    return started + timedelta(
        seconds=config.max_runtime_seconds + config.stop_grace_seconds + config.deadline_slack_seconds
    )


def describe_skip(run: Run | None, kind: str) -> str:
    if run is None:
        return "no such run"
    if run.status in TERMINAL:
        return f"run already {run.status}"
    wanted = {START: "PLANNED", RETRY: "PENDING"}.get(kind, "running")
    return f"run is {run.status}, not {wanted}"


def mark_missed(ledger: Ledger, run: Run, late: float, limit: int) -> Run | None:
    try:
        return ledger.transition(
            run.job,
            run.run_id,
            "SKIPPED",
            reason=f"missed: timer fired {late:.0f}s after its time (starting deadline {limit}s)",
        )
    except TransitionRejected:
        return None
