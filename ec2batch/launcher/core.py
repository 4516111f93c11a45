"""What the launcher does with each event: record the run, then (maybe) get it a machine.

Order matters: the run is written to the ledger *before* any machine is touched, with a conditional
write that is also the idempotency check and (under `forbid`) the concurrency lock. Whatever happens
after that, the run ends up STARTING (a machine is on its way) or FAILED with the reason and every
attempt, and the concurrency slot is freed. If the launcher dies in between, the run stays PENDING with
a start lease that lapses; the reconciler (or a duplicate trigger) then takes it over and repeats the
start, which finds the first machine instead of making a second (`machines`).

The reuse path (a fresh trigger of a `reuse`, on-demand job whose instance is stopped) looks at the instance
first, a read that touches nothing, and records the run STARTING on it in that same creating transaction, with
a start lease: five AWS calls in all, and no write after the start. A launcher that dies before its start
leaves a STARTING run whose instance EC2 shows was never started; once the lease lapses the reconciler (or a
duplicate trigger) repeats the start (`starts`, `repeat_start`).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from .. import attempts, shards, stopping, timers
from ..aws import Clients
from ..config import JobConfig, load_config
from ..errors import EventError, TransitionRejected, describe_error
from ..jsonlog import fields
from ..ledger import (
    FAILED,
    INSTANCE_PREFIX,
    PENDING,
    RUNNING,
    SKIPPED,
    START_LEASE_SECONDS,
    STARTING,
    CreateOutcome,
    InstanceClaim,
    Ledger,
    PlacementTry,
    Run,
    iso,
    new_run_id,
    parse_time,
    scheduled_run_id,
    utcnow,
)
from ..names import TAG_RUN_ID, JobNames
from ..notify import notify
from ..run_events import RunEvents
from . import after, endings, starts
from .events import (
    TOKEN_REUSED,
    BatchChange,
    LedgerChanges,
    ManualRun,
    PlanRequest,
    ScheduleFire,
    TimerFire,
    UpstreamEnded,
    parse_event,
)
from .final_check import fire
from .machines import NOT_LOOKED, ON_DEMAND, InstanceBusy, Machines, NoMachine, Placement
from .port import Result
from .reconciler import reconcile

START_FAILURE = "start-failure"

log = logging.getLogger(__name__)


class Launcher:
    def __init__(
        self,
        clients: Clients,
        *,
        only_job: str | None = None,
        clock: Callable[[], datetime] = utcnow,
        machines: Machines | None = None,
        sleep: Callable[[float], None] = time.sleep,
        event_bus: str | None = None,
    ) -> None:
        self.clients = clients
        self.only_job = only_job
        self.clock = clock
        self.sleep = sleep
        self.machines = machines or Machines(clients.ec2, clock=clock)
        # Where the run events of the ledger's stream go: the job's bus. None (the local stack's one launcher
        # for every job) reads it from each job's config; the Lambda is given its job's in its environment.
        self.event_bus = event_bus
        # The stream consumer's publisher, made on the first stream batch: a launcher that only starts runs
        # never makes an EventBridge client. Its counts are the process's.
        self._run_events: RunEvents | None = None

    @classmethod
    def from_environment(cls, clients: Clients | None = None) -> Launcher:
        """The Lambda's launcher: EC2BATCH_JOB pins it to its own job (one function per job in Terraform)."""
        wait = int(os.environ.get("EC2BATCH_STOPPING_WAIT_SECONDS", "120"))
        clients = clients or Clients()
        return cls(
            clients,
            only_job=os.environ.get("EC2BATCH_JOB") or None,
            machines=Machines(clients.ec2, stopping_wait_seconds=wait),
            # Terraform sets it from var.event_bus_name, the variable it also writes into the config's `event_bus`.
            event_bus=os.environ.get("EC2BATCH_EVENT_BUS") or None,
        )

    def ledger(self, job: str) -> Ledger:
        return Ledger(self.clients.dynamodb, JobNames(job).ledger_table, clock=self.clock)

    @property
    def run_events(self) -> RunEvents:
        if self._run_events is None:
            self._run_events = RunEvents(self.clients.events)
        return self._run_events

    # ---------------------------------------------------------------- dispatch
    def handle(self, event: Any) -> dict[str, Any] | list[dict[str, Any]]:
        parsed = parse_event(event)
        if isinstance(parsed, list):
            return self.on_timers(parsed)
        if isinstance(parsed, LedgerChanges):
            return self.on_ledger_changes(parsed)
        self._check_job(parsed.job)
        if isinstance(parsed, ScheduleFire):
            return self.on_schedule(parsed).as_dict()
        if isinstance(parsed, ManualRun):
            return self.on_manual(parsed).as_dict()
        if isinstance(parsed, PlanRequest):
            return self.on_plan(parsed)
        if isinstance(parsed, BatchChange):
            return self.on_batch_change(parsed).as_dict()
        if isinstance(parsed, UpstreamEnded):
            return self.on_upstream_ended(parsed).as_dict()
        raise EventError(f"unhandled event {parsed!r}")  # pragma: no cover - parse_event covers every shape

    def _check_job(self, job: str) -> None:
        if self.only_job and job != self.only_job:
            raise EventError(f"this launcher serves job {self.only_job!r}, not {job!r}")

    # ---------------------------------------------------------------- triggers
    def on_schedule(self, fire: ScheduleFire) -> Result:
        config = load_config(self.clients.ssm, fire.job)
        now = self.clock()
        run = Run(
            job=fire.job,
            run_id=scheduled_run_id(fire.scheduled_time),
            status=PENDING,
            trigger="schedule",
            triggered_at=iso(now),
            scheduled_at=iso(fire.scheduled_time),
            start_lease_until=self.lease_until(),
        )
        late = (now - fire.scheduled_time).total_seconds()
        if late > config.starting_deadline_seconds:
            missed = Run(
                **{
                    **run.__dict__,
                    "status": SKIPPED,
                    "ended_at": iso(now),
                    "reason": f"missed: triggered {late:.0f}s after its scheduled time "
                    f"(starting deadline {config.starting_deadline_seconds}s)",
                }
            )
            return self._after_create(config, self.ledger(fire.job).record_terminal_at_creation(missed))
        return self._trigger(config, run, token=None)

    def on_manual(self, request: ManualRun) -> Result:
        config = load_config(self.clients.ssm, request.job)
        now = self.clock()
        run = Run(
            job=request.job,
            run_id=new_run_id("manual", now, request.token),
            status=PENDING,
            trigger="manual",
            triggered_at=iso(now),
            command=request.command,
            env=dict(request.env),
            start_lease_until=self.lease_until(),
            with_downstream=request.with_downstream,
        )
        result = self._trigger(config, run, token=request.token)
        if result.outcome == "duplicate" and request.token:
            first = self.ledger(run.job).get(run.job, result.run_id)
            if first is not None and request.differs_from(first):  # say so, rather than silently ignore them
                result = replace(result, reason=TOKEN_REUSED)
        return result

    def lease_until(self) -> str:
        return iso(self.clock() + timedelta(seconds=START_LEASE_SECONDS))

    def on_plan(self, request: PlanRequest) -> dict[str, Any]:
        """The planner tick: send the timers due before the next tick and repair what went wrong."""
        return reconcile(self, load_config(self.clients.ssm, request.job)).as_dict()

    def on_batch_change(self, change: BatchChange) -> Result:
        """A sharded run's array job moved: bring the run up to date now rather than at the next tick."""
        ledger = self.ledger(change.job)
        run = ledger.get(change.job, change.run_id)
        if run is None or run.terminal or run.batch_job_id != change.batch_job_id:
            status = run.status if run else "?"
            return Result(change.job, change.run_id, status, "nothing", reason="not a live sharded run of this job")
        updated = shards.refresh(self.clients, load_config(self.clients.ssm, change.job), ledger, run, self.clock())
        return Result(change.job, change.run_id, updated.status, "recorded", reason=shards.summary(updated))

    def on_upstream_ended(self, ended: UpstreamEnded) -> Result:
        """A run of one of this job's upstream jobs ended: record it, and run this job if all of them are there."""
        config = load_config(self.clients.ssm, ended.job)
        upstream = f"{ended.upstream_job}/{ended.run_id}"
        refused = after.refusal(config, ended)
        if refused:
            log.error("upstream event refused", extra=fields(job=ended.job, upstream=upstream, reason=refused))
            return Result(ended.job, "", "", "nothing", reason=refused)
        ledger = self.ledger(ended.job)
        after.record_arrival(ledger, config, ended)
        decision = after.decide(config, after.arrivals(ledger, ended.job), self.clock(), self.lease_until())
        if decision.run is None:
            log.info("downstream waits", extra=fields(job=ended.job, upstream=upstream, reason=decision.waiting))
            return Result(ended.job, "", "", "waiting", reason=decision.waiting)
        result = self._trigger(config, decision.run, token=None)
        after.consume(ledger, ended.job, decision.used, decision.run.run_id)
        log.info(
            "downstream run triggered",
            extra=fields(
                job=ended.job, run_id=result.run_id, upstream=list(decision.run.upstream), outcome=result.outcome
            ),
        )
        return result

    def on_ledger_changes(self, batch: LedgerChanges) -> dict[str, Any]:
        """A batch of the ledger's stream: publish its run events (ec2batch.run_events).

        A failed publication is reported as the batch's first item to deliver again (Terraform's mapping has
        ReportBatchItemFailures): the mapping retries from that record, the events before it are not resent.
        """
        if len(batch.jobs) > 1:  # one table, one job: only a mistaken caller could mix them
            raise EventError(f"a stream batch holds the records of one job's ledger, got {sorted(batch.jobs)}")
        job = batch.changes[0].job
        self._check_job(job)
        bus = self.event_bus or load_config(self.clients.ssm, job).event_bus
        outcome = self.run_events.publish(batch.changes, bus)
        failures = [{"itemIdentifier": outcome.retry_from}] if outcome.retry_from else []
        return {"batchItemFailures": failures, "published": outcome.published}

    def on_timers(self, fired: list[TimerFire | UpstreamEnded]) -> dict[str, Any]:
        """An SQS batch: each message on its own, failures reported per message so only they come back."""
        results, failures = [], []
        for timer in fired:
            try:
                results.append(self.on_timer(timer).as_dict())
            except Exception as exc:
                log.exception("timer failed", extra=fields(job=timer.job, run_id=timer.run_id, error=str(exc)))
                failures.append({"itemIdentifier": timer.message_id})
        return {"batchItemFailures": failures, "results": results}

    def on_timer(self, timer: TimerFire | UpstreamEnded) -> Result:
        self._check_job(timer.job)
        if isinstance(timer, UpstreamEnded):
            return self.on_upstream_ended(timer)
        return fire(self, timer)

    # ---------------------------------------------------------------- the common path
    def _trigger(self, config: JobConfig, run: Run, token: str | None) -> Result:
        observed = self._look_for_reusable(config, run)
        if observed is not NOT_LOOKED and observed is not None and observed["State"]["Name"] == "stopped":
            folded = self._record_starting(config, run, token, observed)
            if folded is not None:
                return folded
        created = self.ledger(run.job).create_run(run, exclusive=config.concurrency == "forbid", token=token)
        if created.kind != "created":
            return self._after_create(config, created)
        return self.start_run(config, created.run, observed=observed)

    def _look_for_reusable(self, config: JobConfig, run: Run) -> dict[str, Any] | None:
        """A fresh trigger of a `reuse`, on-demand job looks at its instance before recording the run (a read that
        touches nothing): a stopped one lets the run be recorded STARTING on it at once. NOT_LOOKED otherwise, or
        when EC2 does not answer (the run is then recorded PENDING first, as before, and looks again)."""
        if config.shards > 1 or config.strategy != "reuse" or config.market_for(run.attempt) != ON_DEMAND:
            return NOT_LOOKED
        try:
            return self.machines.find_reusable(config.job)
        except Exception as exc:
            log.warning(
                "could not look for the job's instance before recording the run",
                extra=fields(job=run.job, run_id=run.run_id, error=describe_error(exc)),
            )
            return NOT_LOOKED

    def _record_starting(
        self, config: JobConfig, run: Run, token: str | None, instance: dict[str, Any]
    ) -> Result | None:
        """The reuse path: record the run STARTING on its stopped instance, in the one transaction that creates it
        (with its token, the `forbid` slot or, under `allow`, the instance's claim), then tag and start it.

        No ledger write follows a start that succeeds. The start lease on the record says a launcher is making
        the start; if it dies first, the reconciler or a duplicate trigger repeats it (`starts`). None: the
        instance's claim was refused (another run may be placing itself on it): record the run the usual way.
        """
        now = self.clock()
        at = iso(now)
        deadline = timers.deadline_for(config, now)
        start = PlacementTry(
            action="start",
            instance_type=instance.get("InstanceType"),
            subnet_id=instance.get("SubnetId"),
            instance_id=instance["InstanceId"],
            at=at,
        )
        starting = replace(
            run,
            status=STARTING,
            start_requested_at=at,
            instance_id=start.instance_id,
            instance_type=start.instance_type,
            subnet_id=start.subnet_id,
            placements=(start,),
            log_stream=config.names.run_log_stream(run.run_id),
            deadline_at=iso(deadline),
            # The timer is sent right after the start; one that never is (the launcher died) is caught by the
            # reconciler's lost-timer rule, as any lost timer.
            deadline_timer_for=iso(deadline) if timers.within_reach(deadline, now) else None,
            start_lease_until=self.lease_until(),
        )
        claim = None
        if config.concurrency == "allow":
            claim = InstanceClaim(start.instance_id, endings.tags(instance).get(TAG_RUN_ID))  # type: ignore[arg-type]
        ledger = self.ledger(run.job)
        created = ledger.create_run(starting, exclusive=config.concurrency == "forbid", token=token, claim=claim)
        if created.kind == "claim-refused":
            log.info("instance claimed by another run: recording the run first", extra=fields(run_id=run.run_id))
            return None
        if created.kind != "created":
            return self._after_create(config, created)
        return self._start_recorded(config, ledger, created.run, instance)

    def repeat_start(self, config: JobConfig, run: Run, instance: dict[str, Any]) -> Result | None:
        """Repeat a recorded start that EC2 shows was never made (`starts.verdict` said `repeat`): take the run's
        start lease, then tag and start the same instance. None: someone else has it, or the run moved on."""
        now = self.clock()
        deadline = timers.deadline_for(config, now)
        start = PlacementTry(
            action="start",
            instance_type=instance.get("InstanceType"),
            subnet_id=instance.get("SubnetId"),
            instance_id=run.instance_id,
            at=iso(now),
            attempt=run.attempt if run.attempt > 1 else None,
        )
        ledger = self.ledger(run.job)
        taken = ledger.retake_start(
            run,
            start_requested_at=iso(now),
            placements=(*run.placements, start),
            deadline_at=iso(deadline),  # counted from this start, the one that may happen
            deadline_timer_for=iso(deadline) if timers.within_reach(deadline, now) else None,
        )
        if taken is None:
            return None
        return self._start_recorded(config, ledger, taken, instance)

    def _start_recorded(self, config: JobConfig, ledger: Ledger, run: Run, instance: dict[str, Any]) -> Result:
        """Make the start a STARTING run was recorded with; only a start that went otherwise writes again."""
        before = replace(run, placements=run.placements[:-1])  # the recorded try, replaced by the tries made

        def record_failed_start(tries: list[PlacementTry]) -> None:
            ledger.update_fields(run.job, run.run_id, attempt=run.attempt, placements=(*before.placements, *tries))

        try:
            placement, tries = self.machines.start_recorded(
                config, run.run_id, instance, attempt=run.attempt, before_fallback=record_failed_start
            )
        except NoMachine as exc:
            return self._fail(config, ledger, before, exc.reason, tries=exc.attempts, cause=START_FAILURE)
        except InstanceBusy as exc:
            return self._fail(config, ledger, run, f"{exc}: it did not stop in time", cause=START_FAILURE)
        except TransitionRejected as exc:  # cancelled (or ended) before a fallback machine was asked for
            current = exc.current if isinstance(exc.current, Run) else run
            return Result(run.job, run.run_id, current.status, "nothing", reason=str(exc))
        except Exception as exc:
            self._fail(config, ledger, run, f"launcher error: {type(exc).__name__}: {exc}")
            raise
        if placement.instance_id == run.instance_id and len(tries) == 1 and tries[0].error is None:
            updated = run  # the record already says all of it
        else:
            details = {
                "instance_id": placement.instance_id,
                "instance_type": placement.instance_type,
                "subnet_id": placement.subnet_id,
                "placements": (*before.placements, *tries),
            }
            try:
                updated = ledger.update_fields(run.job, run.run_id, attempt=run.attempt, **details)
            except TransitionRejected as exc:
                updated = self._record_placement_late(config, ledger, run, placement, details, exc)
        return self._requested(config, run, updated, placement, tries)

    def _after_create(self, config: JobConfig, created: CreateOutcome) -> Result:
        run = created.run
        if created.kind == "duplicate":
            if run.status == PENDING and not run.instance_id:
                # The trigger that recorded it may have died: if its lease has lapsed, this one goes on.
                orphan = self.ledger(run.job).take_start_lease(run.job, run.run_id)
                if orphan is not None:
                    log.warning("taking over a run whose launcher died", extra=fields(job=run.job, run_id=run.run_id))
                    return self.start_run(config, orphan)
            if starts.recorded_start(run) is not None and starts.lease_lapsed(run, self.clock()):
                # Recorded STARTING, and its launcher's lease has lapsed: if EC2 shows no start, make it.
                instance = endings.describe(self.clients, run.instance_id)
                if starts.verdict(run, instance, self.clock()) == starts.REPEAT:
                    repeated = self.repeat_start(config, run, instance)  # type: ignore[arg-type]
                    if repeated is not None:
                        log.warning(
                            "repeating the start of a run whose launcher died",
                            extra=fields(job=run.job, run_id=run.run_id, instance_id=run.instance_id),
                        )
                        return repeated
            log.info(
                "duplicate trigger: run already recorded, nothing started",
                extra=fields(job=run.job, run_id=run.run_id, status=run.status),
            )
            return Result(run.job, run.run_id, run.status, "duplicate", run.instance_id, run.reason)
        log.info("run skipped", extra=fields(job=run.job, run_id=run.run_id, reason=run.reason))
        notify(self.clients.sns, config, run, self.ledger(run.job))
        return Result(run.job, run.run_id, run.status, "skipped", reason=run.reason)

    def start_run(self, config: JobConfig, run: Run, *, observed: dict[str, Any] | None = NOT_LOOKED) -> Result:
        """Get a machine for a recorded run (PENDING) and record the outcome; never leaves it PENDING."""
        ledger = self.ledger(run.job)
        if config.shards > 1:
            return self._submit_shards(config, ledger, run)
        allow = config.concurrency == "allow"

        def claim_instance(instance_id: str) -> bool:
            return ledger.claim_slot(run.job, run.run_id, INSTANCE_PREFIX + instance_id) is None

        try:
            placement, tries = self.machines.get_machine(
                config,
                run.run_id,
                parallel_allowed=allow,
                claim_instance=claim_instance if allow else None,
                attempt=run.attempt,
                observed=observed,
            )
        except NoMachine as exc:
            return self._fail(config, ledger, run, exc.reason, tries=exc.attempts, cause=START_FAILURE)
        except InstanceBusy as exc:
            return self._fail(
                config,
                ledger,
                run,
                f"{exc}: it did not stop in time and no run owns it; stop it, or set concurrency to allow",
                cause=START_FAILURE,
            )
        except Exception as exc:
            self._fail(config, ledger, run, f"launcher error: {type(exc).__name__}: {exc}")
            raise
        details = {
            "instance_id": placement.instance_id,
            "instance_type": placement.instance_type,
            "subnet_id": placement.subnet_id,
            "market": placement.market if placement.market != "on-demand" else None,
            "placements": (*run.placements, *tries),
            "log_stream": config.names.run_log_stream(run.run_id),
            "deadline_at": iso(timers.deadline_for(config, self.clock())),
            "retry_at": None,
            # The machine is asked for already: no start of this run is left to repeat (`starts`).
            "start_lease_until": None,
        }
        try:
            updated = ledger.transition(run.job, run.run_id, STARTING, attempt=run.attempt, **details)
        except TransitionRejected as exc:
            updated = self._record_placement_late(config, ledger, run, placement, details, exc)
        return self._requested(config, run, updated, placement, tries)

    def _requested(
        self, config: JobConfig, run: Run, updated: Run, placement: Placement, tries: list[PlacementTry]
    ) -> Result:
        self._arm_deadline(config, updated)
        log.info(
            "machine requested",
            extra=fields(
                job=run.job,
                run_id=run.run_id,
                action=placement.action,
                instance_id=placement.instance_id,
                market=placement.market,
                attempt=run.attempt,
                tries=len(tries),
            ),
        )
        outcome = "started" if not updated.terminal else "stopped"
        return Result(run.job, run.run_id, updated.status, outcome, placement.instance_id, updated.reason)

    def _submit_shards(self, config: JobConfig, ledger: Ledger, run: Run) -> Result:
        try:
            updated = shards.submit(self.clients, config, ledger, run, self.clock())
        except TransitionRejected as exc:  # cancelled while submitting: the array job was terminated
            current = exc.current if isinstance(exc.current, Run) else run
            return Result(run.job, run.run_id, current.status, "nothing", reason=str(exc))
        if updated.status != STARTING:
            outcome = "retrying" if not updated.terminal else "failed"
            return Result(run.job, run.run_id, updated.status, outcome, reason=updated.reason)
        self._arm_deadline(config, updated)
        return Result(
            run.job, run.run_id, STARTING, "started", reason=f"array job {updated.batch_job_id}: {config.shards} shards"
        )

    def _record_placement_late(
        self,
        config: JobConfig,
        ledger: Ledger,
        run: Run,
        placement: Placement,
        details: dict[str, Any],
        refused: TransitionRejected,
    ) -> Run:
        """STARTING was refused: the agent got there first (RUNNING), or the run ended meanwhile (a cancel)."""
        current = refused.current if isinstance(refused.current, Run) else ledger.require(run.job, run.run_id)
        if current.attempt != run.attempt:
            # The attempt was ended (and retried) by someone else meanwhile: this machine is nobody's.
            stopping.stop_run_machine(
                self.clients, config, replace(current, instance_id=placement.instance_id, attempt=run.attempt)
            )
            log.warning(
                "attempt moved on while its machine was starting: machine stopped",
                extra=fields(job=run.job, run_id=run.run_id, attempt=run.attempt, now_attempt=current.attempt),
            )
            return current
        if current.status == RUNNING or not current.terminal:
            # The instance booted and its agent moved the run on before we wrote STARTING: keep its
            # status, add what only we know.
            return ledger.update_fields(run.job, run.run_id, unless_terminal=False, **details)
        # Cancelled (or ended) while we were getting the machine: it must not run the job. The agent would
        # power off on its own, but a machine that need not run is stopped now.
        ended = ledger.update_fields(
            run.job, run.run_id, unless_terminal=False, **{k: v for k, v in details.items() if k != "deadline_at"}
        )
        action = stopping.stop_run_machine(self.clients, config, ended)
        log.warning(
            "run ended while its machine was starting: machine stopped",
            extra=fields(job=run.job, run_id=run.run_id, status=current.status, action=action),
        )
        return ended

    def _arm_deadline(self, config: JobConfig, run: Run) -> None:
        """A deadline near enough for one delayed message is sent now; the planner sends the others."""
        if not run.deadline_at:
            return
        due = parse_time(run.deadline_at)
        if timers.within_reach(due, self.clock()):
            timers.send(self.clients, timers.Timer(run.job, run.run_id, timers.DEADLINE, due), self.clock())
            if run.deadline_timer_for != run.deadline_at:  # a recorded start said so in its own write
                self.ledger(run.job).update_fields(
                    run.job, run.run_id, unless_terminal=False, deadline_timer_for=run.deadline_at
                )

    def _fail(
        self,
        config: JobConfig,
        ledger: Ledger,
        run: Run,
        reason: str,
        tries: Any = (),
        cause: str | None = None,
    ) -> Result:
        """No machine for this attempt: the retry policy decides between another attempt and FAILED."""
        now = self.clock()
        try:
            if tries:
                run = ledger.update_fields(
                    run.job, run.run_id, attempt=run.attempt, placements=(*run.placements, *tries)
                )
            ended = attempts.end_attempt(
                self.clients, config, ledger, run, status=FAILED, cause=cause, reason=reason, ended_at=now
            )
        except TransitionRejected as exc:  # cancelled meanwhile: that stands
            current = exc.current if isinstance(exc.current, Run) else run
            return Result(run.job, run.run_id, current.status, "nothing", reason=str(exc))
        if not ended.terminal:
            log.warning(
                "no machine for this attempt: retrying", extra=fields(job=run.job, run_id=run.run_id, reason=reason)
            )
            return Result(run.job, run.run_id, ended.status, "retrying", reason=ended.reason)
        log.error("run failed to start", extra=fields(job=run.job, run_id=run.run_id, reason=reason))
        return Result(run.job, run.run_id, FAILED, "failed", reason=ended.reason)
