"""The reconciler: on every planner tick, drive each run of the job toward its end from what is observed.

Edges get lost: a launcher killed between two writes, a timer that reached the dead-letter queue, a response
that never came back, an agent that could not reach the ledger at the end. Nothing here trusts that an edge
was seen; each tick reads the ledger (the runs of a bounded time window) and EC2 (the job's instances, one
call) and repairs what does not agree:

| observed | repair |
| --- | --- |
| PLANNED, due before the next tick, no timer sent | send its timer (the planner's old job) |
| PLANNED, its timer sent but it is past due | the timer was lost: do its final check and start now (or SKIPPED) |
| PENDING, its launcher's start lease lapsed | the launcher died: take the lease, get the machine (idempotent) |
| STARTING, recorded before its start, its instance never started | lease lapsed: tag and start it again (`starts`) |
| STARTING/RUNNING without a deadline | arm it (from when the machine was requested) |
| STARTING/RUNNING, deadline before the next tick | send the deadline timer |
| STARTING/RUNNING, past its deadline | the timer was lost: enforce the deadline now |
| STARTING/RUNNING, its instance has our outcome tag | record that outcome (the agent could not) |
| STARTING/RUNNING, its instance stopped or gone | attempt ended (interruption, agent/instance lost): retry or FAILED |
| STARTING for 10 min, its instance running | the agent never came up: machine stopped, attempt ended agent-lost |
| PENDING for a retry, its retry time passed (timer lost) | start the next attempt (its lease lapsed then) |
| ended, its machine still up for it | stop it |
| ended, its notification not published | publish it (once: claimed in the ledger) |
| an instance of the job running with no live run | stop it |

Each repair is a conditional write or an idempotent call, so two reconcilers at once (an overlapping tick)
do no harm; the work per tick is bounded (`MAX_REPAIRS`, `TIME_BUDGET_SECONDS`), and what is left waits for
the next tick. Every repair is logged (`reconciler: ...`), noted on the run (`repaired`), and a run it ends
carries the reason and is notified as the config asks.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from .. import attempts, shards, stopping, timers
from ..config import JobConfig
from ..cost import run_cost
from ..errors import TransitionRejected, describe_error
from ..jsonlog import fields
from ..ledger import FAILED, PENDING, PLANNED, STARTING, Ledger, Run, iso, parse_time
from ..names import TAG_JOB, TAG_RUN_ID
from ..notify import notify, wanted
from . import endings, starts
from .events import TimerFire
from .final_check import fire
from .port import LauncherPort

log = logging.getLogger(__name__)

MAX_REPAIRS = 50  # per tick; the rest waits for the next one (never the 100-missed-schedules cliff)
TIME_BUDGET_SECONDS = 60.0  # the launcher Lambda has 180 s
# A delayed message is due within a second of its time; a timer this late was lost (dead-lettered, or its
# launcher died after receiving it).
TIMER_GRACE = timedelta(minutes=2)
# An ended run's machine may still be powering itself off; after this the reconciler stops it.
POWEROFF_GRACE = timedelta(minutes=2)
# Between StartInstances and the instance showing `pending` EC2 may answer with the old state for a moment.
INSTANCE_LOST_GRACE = timedelta(seconds=60)
# A machine that is up this long after its start was requested without its agent claiming the run (RUNNING)
# has a dead agent: a boot takes a minute or two, and the image pull happens after the claim.
AGENT_CLAIM_TIMEOUT = timedelta(minutes=10)
# Ended runs older than this are not looked at again for a missing notification.
NOTIFY_LOOKBACK = timedelta(hours=6)
LIVE_STATES = endings.LIVE_STATES


@dataclass
class Report:
    job: str
    runs_seen: int = 0
    instances_seen: int = 0
    timers: list[dict[str, str]] = field(default_factory=list)
    repairs: list[dict[str, str]] = field(default_factory=list)
    deferred: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"job": self.job, "outcome": "planned", **{k: v for k, v in self.__dict__.items() if k != "job"}}


class ReconcileFailed(Exception):
    """Some repairs of a tick failed; the others were done. The next tick (or the Lambda's retry) tries again."""


def reconcile(launcher: LauncherPort, config: JobConfig, *, monotonic: Callable[[], float] = time.monotonic) -> Report:
    """One tick for one job. Safe to run twice at once; bounded; returns what it did."""
    return _Tick(launcher, config, monotonic).run()


class _Tick:
    def __init__(self, launcher: LauncherPort, config: JobConfig, monotonic: Callable[[], float]) -> None:
        self.launcher = launcher
        self.config = config
        self.clients = launcher.clients
        self.ledger: Ledger = launcher.ledger(config.job)
        self.now = launcher.clock()
        self.report = Report(config.job)
        self.monotonic = monotonic
        self.started = monotonic()
        self.queue_url: str | None = None
        self.failures: list[str] = []

    def run(self) -> Report:
        runs = self._runs()
        instances = self._instances()
        self.report.runs_seen, self.report.instances_seen = len(runs), len(instances)
        by_id = {i["InstanceId"]: i for i in instances}
        for run in runs:
            if not self._budget_left():
                break
            try:
                self._one(run, by_id.get(run.instance_id or ""))
            except TransitionRejected as exc:  # another writer (an agent, a second tick) got there first
                log.info("reconciler: run moved meanwhile", extra=fields(run_id=run.run_id, error=str(exc)))
            except Exception as exc:
                self._failed(f"run {run.run_id}", exc)
        live = {r.run_id for r in runs if not r.terminal}
        for instance in instances:
            if not self._budget_left():
                break
            try:
                self._stray(instance, live)
            except Exception as exc:
                self._failed(f"instance {instance['InstanceId']}", exc)
        log.info(
            "reconciled",
            extra=fields(
                job=self.config.job,
                runs=self.report.runs_seen,
                instances=self.report.instances_seen,
                timers_sent=len(self.report.timers),
                repairs=len(self.report.repairs),
                deferred=self.report.deferred,
            ),
        )
        if self.failures:
            # Every other run was repaired; the tick still fails, so the Lambda's retries and error alarm see it.
            raise ReconcileFailed(f"reconciler: {len(self.failures)} repair(s) failed: " + "; ".join(self.failures))
        return self.report

    def _failed(self, what: str, exc: Exception) -> None:
        """One run's repair failing (throttling, a network fault) must not keep the tick from the others."""
        reason = f"{what}: {describe_error(exc)}"
        self.failures.append(reason)
        log.warning("reconciler: a repair failed; going on with the others", extra=fields(error=reason))

    # ---------------------------------------------------------------- observe
    def _runs(self) -> list[Run]:
        config = self.config
        runtime = timedelta(
            seconds=config.max_runtime_seconds + config.stop_grace_seconds + config.deadline_slack_seconds
        )
        since = self.now - max(runtime + timedelta(days=1), NOTIFY_LOOKBACK)
        return self.ledger.runs_between(config.job, since, self.now + timers.PLANNER_HORIZON)

    def _instances(self) -> list[dict[str, Any]]:
        pages = self.clients.ec2.get_paginator("describe_instances").paginate(
            Filters=[
                {"Name": f"tag:{TAG_JOB}", "Values": [self.config.job]},
                {"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]},
            ]
        )
        return [i for page in pages for r in page["Reservations"] for i in r["Instances"]]

    def _budget_left(self) -> bool:
        if len(self.report.repairs) >= MAX_REPAIRS or self.monotonic() - self.started > TIME_BUDGET_SECONDS:
            self.report.deferred += 1
            return False
        return True

    # ---------------------------------------------------------------- one run
    def _one(self, run: Run, instance: dict[str, Any] | None) -> None:
        if run.terminal:
            self._ended(run, instance)
        elif run.status == PLANNED:
            self._planned(run)
        elif run.status == PENDING:
            self._pending(run)
        else:
            self._under_way(run, instance)

    def _planned(self, run: Run) -> None:
        if not run.scheduled_at:
            return
        due = parse_time(run.scheduled_at)
        if not run.start_timer_sent_at:
            if due <= self.now + timers.PLANNER_HORIZON:
                self._send(run, timers.START, due)
                self.ledger.update_fields(run.job, run.run_id, start_timer_sent_at=iso(self.now))
            return
        if self.now > due + TIMER_GRACE:
            result = self._fire(run, timers.START, due)
            self._repaired(run, f"start timer lost: final check done by the reconciler ({result.outcome})")

    def _pending(self, run: Run) -> None:
        lease = run.start_lease_until
        if lease and parse_time(lease) > self.now:
            return  # its launcher is at work
        orphan = self.ledger.take_start_lease(run.job, run.run_id)
        if orphan is None:
            return
        result = self.launcher.start_run(self.config, orphan)
        self._repaired(run, f"launcher died with the run PENDING: start repeated ({result.outcome})")

    def _under_way(self, run: Run, instance: dict[str, Any] | None) -> None:
        if run.batch_job_id:  # a sharded run: Batch's view of its children decides (its events may be lost)
            run = shards.refresh(self.clients, self.config, self.ledger, run, self.now)
            if run.terminal:
                self.report.repairs.append({"run_id": run.run_id, "repair": f"shards ended: {run.status}"})
                return
        if self._recorded_start(run, instance):
            return
        outcome = endings.left_outcome(run, instance)
        if outcome is not None:
            endings.record_outcome(
                self.clients,
                self.config,
                self.ledger,
                run,
                outcome,
                "reconciler: outcome recorded from the instance's tag",
            )
            self.report.repairs.append({"run_id": run.run_id, "repair": f"outcome from tag: {outcome.status}"})
            return
        if not run.deadline_at:
            start = parse_time(run.start_requested_at or run.triggered_at)
            deadline = iso(timers.deadline_for(self.config, start))
            run = self.ledger.update_fields(run.job, run.run_id, deadline_at=deadline)
            self._repaired(run, f"no deadline recorded: armed for {deadline}")
        assert run.deadline_at is not None
        deadline_due = parse_time(run.deadline_at)
        if self.now > deadline_due + TIMER_GRACE:
            result = self._fire(run, timers.DEADLINE, deadline_due)
            self._repaired(run, f"deadline timer lost: deadline enforced by the reconciler ({result.outcome})")
            return
        if self._lost(run, instance) or self._agent_lost(run, instance):
            return
        if run.deadline_timer_for != run.deadline_at and deadline_due <= self.now + timers.PLANNER_HORIZON:
            self._send(run, timers.DEADLINE, deadline_due)
            self.ledger.update_fields(run.job, run.run_id, deadline_timer_for=run.deadline_at)

    def _recorded_start(self, run: Run, instance: dict[str, Any] | None) -> bool:
        """A run recorded STARTING before its start (the reuse path) whose instance EC2 shows was never started:
        its launcher is still at it (nothing else to look at), or it died and the start is repeated, or it was
        tried MAX_STARTS times and the attempt ends. False: the start happened, the usual rules apply."""
        verdict = starts.verdict(run, instance, self.now)
        if verdict is None:
            return False
        if verdict == starts.WAIT:
            return True
        if verdict == starts.REPEAT:
            result = self.launcher.repeat_start(self.config, run, instance)  # type: ignore[arg-type]
            if result is not None:
                self._repaired(run, f"launcher died before starting the machine: start repeated ({result.outcome})")
            return True
        self._fail_attempt(
            run,
            "start-failure",
            f"start-failure: instance {run.instance_id} was never started for the run "
            f"({starts.starts_tried(run)} starts tried, none reached EC2)",
            note="reconciler: the run's start never happened",
            repair="start never made",
        )
        return True

    def _lost(self, run: Run, instance: dict[str, Any] | None) -> bool:
        """A STARTING/RUNNING run whose machine is down or gone without an outcome: FAILED, notified."""
        if self.now - parse_time(run.updated_at or run.triggered_at) < INSTANCE_LOST_GRACE:
            return False  # EC2 may still show the old state just after a start
        if instance is None and run.instance_id:
            instance = endings.describe(self.clients, run.instance_id)  # not among the job's: gone, or untagged
        state = endings.machine_lost(run, instance)
        if state is None:
            return False
        ended = endings.fail_lost(
            self.clients, self.config, self.ledger, run, state, self.now, "reconciler: machine lost", instance
        )
        verdict = ended.status if ended.terminal else f"attempt {ended.attempt} due {ended.retry_at}"
        self.report.repairs.append({"run_id": run.run_id, "repair": f"machine lost: {verdict}"})
        return True

    def _agent_lost(self, run: Run, instance: dict[str, Any] | None) -> bool:
        """A machine up for long with its run still STARTING: its agent never came up. Stop it; end the attempt."""
        if run.status != STARTING or instance is None or instance["State"]["Name"] != "running":
            return False
        if self.now - parse_time(run.start_requested_at or run.triggered_at) < AGENT_CLAIM_TIMEOUT:
            return False
        action = stopping.stop_run_machine(self.clients, self.config, run)
        self._fail_attempt(
            run,
            "agent-lost",
            f"agent-lost: instance {run.instance_id} was running for {AGENT_CLAIM_TIMEOUT.seconds // 60} min "
            f"and its agent never claimed the run; machine {action or 'already going down'}",
            note="reconciler: agent never came up",
            repair="agent lost",
            cost=run_cost(run, self.now, self.clients.region, market=run.market),
        )
        return True

    def _fail_attempt(self, run: Run, cause: str, reason: str, *, note: str, repair: str, **extra: Any) -> None:
        """End the run's attempt FAILED for `cause` (the retry policy decides what follows) and report it."""
        ended = attempts.end_attempt(
            self.clients,
            self.config,
            self.ledger,
            run,
            status=FAILED,
            cause=cause,
            reason=reason,
            ended_at=self.now,
            note=note,
            **extra,
        )
        verdict = ended.status if ended.terminal else f"attempt {ended.attempt} due {ended.retry_at}"
        self.report.repairs.append({"run_id": run.run_id, "repair": f"{repair}: {verdict}"})

    def _ended(self, run: Run, instance: dict[str, Any] | None) -> None:
        if (
            instance is not None
            and instance["State"]["Name"] in LIVE_STATES
            and _tags(instance).get(TAG_RUN_ID) == run.run_id
            and (run.status == "CANCELLED" or self.now - parse_time(run.ended_at or run.triggered_at) > POWEROFF_GRACE)
        ):
            action = stopping.stop_instance(self.clients, instance, ephemeral=self.config.strategy == "ephemeral")
            if action:
                self._repaired(run, f"machine still up after the run ended: {action}")
        if (
            wanted(self.config, run)
            and not run.notified_at
            and (not run.notify_claim_until or parse_time(run.notify_claim_until) < self.now)
            and self.now - parse_time(run.ended_at or run.triggered_at) < NOTIFY_LOOKBACK
            and notify(self.clients.sns, self.config, run, self.ledger)
        ):
            self.report.repairs.append({"run_id": run.run_id, "repair": "notification published"})
            log.warning("reconciler: notification published late", extra=fields(run_id=run.run_id))

    # ---------------------------------------------------------------- machines with no live run
    def _stray(self, instance: dict[str, Any], live: set[str]) -> None:
        if instance["State"]["Name"] not in LIVE_STATES:
            return
        run_id = _tags(instance).get(TAG_RUN_ID)
        if run_id in live:
            return
        run = self.ledger.get(self.config.job, run_id) if run_id else None
        if run is not None and not run.terminal:
            return  # live, outside the window (a very long run)
        if (
            run is not None
            and run.status != "CANCELLED"
            and self.now - parse_time(run.ended_at or run.triggered_at) <= POWEROFF_GRACE
        ):
            return  # its agent is powering it off
        action = stopping.stop_instance(self.clients, instance)
        if action:
            why = f"run {run_id} is {run.status}" if run else f"no run {run_id or '(untagged)'} in the ledger"
            log.warning(
                "reconciler: machine running with no live run",
                extra=fields(job=self.config.job, instance_id=instance["InstanceId"], reason=why, action=action),
            )
            self.report.repairs.append({"instance_id": instance["InstanceId"], "repair": f"{action}: {why}"})

    # ---------------------------------------------------------------- acting
    def _send(self, run: Run, kind: str, due: datetime) -> None:
        if self.queue_url is None:
            self.queue_url = timers.queue_url(self.clients, self.config.job)
        timers.send(self.clients, timers.Timer(run.job, run.run_id, kind, due), self.now, self.queue_url)
        self.report.timers.append({"run_id": run.run_id, "kind": kind, "due": iso(due)})

    def _fire(self, run: Run, kind: str, due: datetime) -> Any:
        return fire(self.launcher, TimerFire(run.job, run.run_id, kind, due))

    def _repaired(self, run: Run, what: str) -> None:
        log.warning("reconciler: " + what, extra=fields(job=run.job, run_id=run.run_id))
        self.report.repairs.append({"run_id": run.run_id, "repair": what})
        self.ledger.note_repair(run, what)


_tags = endings.tags
