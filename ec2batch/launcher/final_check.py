"""The launcher's side of exact-time runs and deadlines: the planner action and the final check."""

from __future__ import annotations

import logging

from .. import attempts, shards, stopping, timers
from ..config import load_config
from ..cost import run_cost
from ..errors import TransitionRejected
from ..jsonlog import fields
from ..ledger import FAILED, PENDING, PLANNED, SKIPPED, TIMED_OUT, iso
from ..notify import notify
from . import endings
from .events import TimerFire
from .port import LauncherPort, Result

log = logging.getLogger(__name__)
EARLY_WAIT_LIMIT = 2.0  # seconds; a message earlier than that is a clock problem, not rounding


def fire(launcher: LauncherPort, timer: TimerFire) -> Result:
    _wait_until_due(launcher, timer)
    if timer.kind == timers.START:
        return _start(launcher, timer)
    if timer.kind == timers.RETRY:
        return _retry(launcher, timer)
    return _deadline(launcher, timer)


def _retry(launcher: LauncherPort, timer: TimerFire) -> Result:
    """Start a run's next attempt: only a run still PENDING for this very retry time, once (the start lease)."""
    ledger = launcher.ledger(timer.job)
    run = ledger.get(timer.job, timer.run_id)
    if run is None or run.status != PENDING:
        return _nothing(launcher, timer, timers.describe_skip(run, timer.kind), run.status if run else None)
    if run.retry_at != iso(timer.due):
        return _nothing(
            launcher, timer, f"run waits for {run.retry_at}; this timer was for {iso(timer.due)}", run.status
        )
    taken = ledger.take_start_lease(timer.job, run.run_id)
    if taken is None:  # a duplicate message, or the reconciler, is starting it
        return _nothing(launcher, timer, "another launcher is starting the next attempt", run.status)
    log.info("timer: starting the next attempt", extra=fields(job=run.job, run_id=run.run_id, attempt=run.attempt))
    return launcher.start_run(load_config(launcher.clients.ssm, timer.job), taken)


def _wait_until_due(launcher: LauncherPort, timer: TimerFire) -> None:
    """DelaySeconds is whole seconds, rounded down when sent: the message may come up to a second early."""
    early = (timer.due - launcher.clock()).total_seconds()
    if 0 < early <= EARLY_WAIT_LIMIT:
        launcher.sleep(early)


def _nothing(launcher: LauncherPort, timer: TimerFire, why: str, status: str | None = None) -> Result:
    log.info("timer: nothing to do", extra=fields(job=timer.job, run_id=timer.run_id, kind=timer.kind, reason=why))
    return Result(timer.job, timer.run_id, status or "?", "nothing", reason=why)


def _start(launcher: LauncherPort, timer: TimerFire) -> Result:
    """Final check, then start: only a run still PLANNED for this very time, and allowed by the policy."""
    config = load_config(launcher.clients.ssm, timer.job)
    ledger = launcher.ledger(timer.job)
    run = ledger.get(timer.job, timer.run_id)
    if run is None or run.status != PLANNED:
        return _nothing(launcher, timer, timers.describe_skip(run, timer.kind), run.status if run else None)
    if run.scheduled_at != iso(timer.due):
        return _nothing(
            launcher, timer, f"run moved to {run.scheduled_at}; this timer was for {iso(timer.due)}", run.status
        )
    now = launcher.clock()
    late = (now - timer.due).total_seconds()
    if late > config.starting_deadline_seconds:
        missed = timers.mark_missed(ledger, run, late, config.starting_deadline_seconds)
        if missed:
            notify(launcher.clients.sns, config, missed, ledger)
        return Result(run.job, run.run_id, SKIPPED, "skipped", reason=missed.reason if missed else "missed")
    try:
        run = ledger.transition(
            timer.job, run.run_id, PENDING, triggered_at=iso(now), start_lease_until=launcher.lease_until()
        )
    except TransitionRejected as exc:  # a duplicate message, or a cancel, got there first
        return _nothing(launcher, timer, str(exc))
    if config.concurrency == "forbid":
        holder = ledger.claim_slot(timer.job, run.run_id)
        if holder is not None:
            skipped = ledger.transition(timer.job, run.run_id, SKIPPED, reason=f"run {holder} active")
            notify(launcher.clients.sns, config, skipped, ledger)
            return Result(run.job, run.run_id, SKIPPED, "skipped", reason=skipped.reason)
    log.info("timer: starting planned run", extra=fields(job=run.job, run_id=run.run_id, late_seconds=round(late, 3)))
    return launcher.start_run(config, run)


def _deadline(launcher: LauncherPort, timer: TimerFire) -> Result:
    """Final check, then stop: only a run still not ended, whose deadline is this timer's."""
    config = load_config(launcher.clients.ssm, timer.job)
    ledger = launcher.ledger(timer.job)
    run = ledger.get(timer.job, timer.run_id)
    if run is not None and run.status == TIMED_OUT and (run.reason or "").startswith("deadline:"):
        # A redelivery after the stop itself failed: the run is recorded, the machine must still go down,
        # and the notification may not have gone out either (claimed once, so never twice).
        action = stopping.stop_run_machine(launcher.clients, config, run)
        notify(launcher.clients.sns, config, run, ledger)
        return Result(run.job, run.run_id, TIMED_OUT, "stopped" if action else "nothing", run.instance_id, run.reason)
    if run is None or run.terminal:
        return _nothing(launcher, timer, timers.describe_skip(run, timer.kind), run.status if run else None)
    if run.status in (PLANNED, PENDING):
        # Between attempts (a retry waits for its machine): the deadline was the ended attempt's.
        return _nothing(
            launcher, timer, f"run is {run.status} for attempt {run.attempt}: no machine to stop", run.status
        )
    if run.deadline_at and run.deadline_at != iso(timer.due):
        return _nothing(launcher, timer, f"deadline moved to {run.deadline_at}", run.status)
    instance = endings.describe(launcher.clients, run.instance_id)
    outcome = endings.left_outcome(run, instance)
    state = endings.machine_lost(run, instance)
    try:
        if outcome is not None:
            ended = endings.record_outcome(
                launcher.clients, config, ledger, run, outcome, "deadline: outcome recorded from the instance's tag"
            )
            return Result(run.job, run.run_id, ended.status, "recorded", run.instance_id, ended.reason)
        if state is not None:
            ended = endings.fail_lost(
                launcher.clients, config, ledger, run, state, launcher.clock(), "deadline: instance lost", instance
            )
            outcome_word = "failed" if ended.terminal else "retrying"
            return Result(run.job, run.run_id, ended.status, outcome_word, run.instance_id, ended.reason)
    except TransitionRejected as exc:  # the run ended while we looked
        return _nothing(launcher, timer, str(exc))
    try:
        ended = ledger.transition(
            timer.job,
            run.run_id,
            TIMED_OUT,
            attempt=run.attempt,
            cause=attempts.TIMEOUT,
            **attempts.totals(run, run_cost(run, launcher.clock(), launcher.clients.region, market=run.market)),
            reason=(
                f"deadline: still {run.status} at {iso(timer.due)}, max runtime {config.max_runtime_seconds}s + grace "
                f"{config.stop_grace_seconds}s + slack {config.deadline_slack_seconds}s; the machine was stopped "
                "from outside (agent dead or machine hung)"
            ),
        )
    except TransitionRejected as exc:  # the run ended while we looked
        return _nothing(launcher, timer, str(exc))
    action = stopping.stop_run_machine(launcher.clients, config, ended)
    if ended.batch_job_id:
        shards.terminate(launcher.clients, ended.batch_job_id, f"ec2batch deadline {iso(timer.due)}")
        action = "array job terminated"
    log.warning(
        "deadline: run stopped from outside",
        extra=fields(job=run.job, run_id=run.run_id, instance_id=run.instance_id, action=action),
    )
    notify(launcher.clients.sns, config, ended, ledger)
    return Result(
        run.job,
        run.run_id,
        TIMED_OUT if ended.status == TIMED_OUT else FAILED,
        "stopped",
        run.instance_id,
        ended.reason,
    )
