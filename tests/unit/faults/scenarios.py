"""The lives the fault matrix runs, and the invariants every one of them must keep whatever fault it meets.

A scenario sets the stage without faults (`setup`: the job, maybe an earlier run), then lives its part with
faults armed (`act`), then the world runs on, planner ticks included, for the bound within which every run
must have ended. The invariants (`check`) are the same for every scenario and every fault:
- one trigger, one run: the ledger holds exactly the runs the scenario's triggers asked for;
- at most one machine per run attempt, and never more attempts than the retry policy allows;
- every run ended, within the bound (`Scenario.bound`: BOUND from when the run is due; a scenario whose
  setup already left a lost edge behind for the reconciler allows one more tick, since the fault injected
  may then land on the reconciler's own repair, which the next tick repeats);
- no machine runs: none without a live run, and at the end no run is live;
- every run whose status the config asks to notify was published;
- every run's first write and its ending were published as run events (from the ledger's stream), in the
  documented shape;
- an outcome is never worse than the truth: a run whose job exited 0 is never recorded TIMED_OUT or FAILED,
  unless a fault on its own path made it fail (then the reason says so).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from ec2batch import stopping, timers
from ec2batch.ledger import CANCELLED, FAILED, SKIPPED, SUCCEEDED, TERMINAL, TIMED_OUT, Run
from ec2batch.names import TAG_RUN_ID, tagged_attempt
from ec2batch.run_events import DETAIL_SCHEMA, event_id
from tests.conftest import REGION, Job, Killed, make_job
from tests.unit.agent.fakes import Clock

from .world import PLANNER_PERIOD, World, _tags, follow_clock

T0 = datetime(2026, 11, 24, 1, 59, 0, tzinfo=UTC)
SCHEDULED = datetime(2026, 11, 24, 2, 0, 0, tzinfo=UTC)
FAR = T0 + timedelta(minutes=20)  # beyond one delayed message's 15 minutes
CONFIG = {
    "max_runtime_seconds": 120,
    "stop_grace_seconds": 10,
    "deadline_slack_seconds": 30,
    # The agent assumes it for the job (issue 11), so sts:AssumeRole is a call site like any other.
    "job_role_arn": "arn:aws:iam::123456789012:role/ec2batch-daily-report-job",
}
NOTIFY_ON = ["FAILED", "TIMED_OUT", "SKIPPED"]
RETRIED = {"retry": {"attempts": 2, "exit_codes": [75], "interval_seconds": 20}, "starting_deadline_seconds": 3600}
# max runtime + grace + slack + a lost timer's grace + a start lease + one planner tick, and some room
BOUND = timedelta(seconds=120 + 10 + 30 + 120 + 200) + timedelta(minutes=15) + timedelta(minutes=5)


@dataclass
class Scenario:
    name: str
    act: Callable[[World], None]
    runs: int = 1  # how many runs its triggers ask for
    expect: tuple[str, ...] = (SUCCEEDED,)  # what the run ends as when no fault stops it
    setup: Callable[[World], None] | None = None
    world: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    bound: timedelta = BOUND  # how long the world runs on after `act`: every run must have ended by then


def schedule_event(at: datetime = SCHEDULED) -> dict[str, Any]:
    return {"action": "schedule", "job": "daily-report", "scheduled_time": at.strftime("%Y-%m-%dT%H:%M:%SZ")}


def _fire(world: World) -> None:
    world.clock.moment = SCHEDULED + timedelta(seconds=3)
    world.invoke(schedule_event())


def _earlier_run(world: World) -> None:
    """Yesterday's run, done and powered off: today's start finds the stopped reusable instance."""
    world.clock.moment = SCHEDULED - timedelta(days=1) + timedelta(seconds=3)
    world.invoke(schedule_event(SCHEDULED - timedelta(days=1)))
    world.run_for(timedelta(minutes=5))


def _manual(world: World) -> None:
    world.invoke({"action": "run", "job": "daily-report", "token": "user-token-1"})


def _at(world: World) -> None:
    def plan() -> Run:
        return timers.plan_run(world.job.clients, world.job.config, SCHEDULED, clock=world.clock.now)

    if world.attempt(plan) is None and world.errors:
        world.attempt(plan)  # the user saw an error message and asks once more (a killed command says nothing)


def _at_far(world: World) -> None:
    """A run-at further out than one delayed message reaches: the reconciler's tick sends its timer."""
    world.attempt(lambda: timers.plan_run(world.job.clients, world.job.config, FAR, clock=world.clock.now))


def _orphaned(world: World) -> None:
    """A manual run whose launcher was killed after recording it PENDING, before it asked for a machine
    (a timeout, an OOM): only the reconciler's tick, once the start lease lapses, gets it one."""
    launcher = world.launcher()

    def killed(*args: Any, **kwargs: Any) -> Any:
        raise Killed("launcher killed before getting a machine")

    launcher.machines.get_machine = killed  # type: ignore[method-assign]
    with suppress(Killed):
        launcher.handle({"action": "run", "job": "daily-report", "token": "user-token-orphan"})


def _start_recorded_then_killed(world: World) -> None:
    """Yesterday's run left the reusable instance stopped; today's launcher recorded the run STARTING on it and
    was killed before tagging and starting it: the reconciler's tick, once the start lease lapses, starts it."""
    _earlier_run(world)
    world.clock.moment = SCHEDULED + timedelta(seconds=3)
    launcher = world.launcher()

    def killed(*args: Any, **kwargs: Any) -> Any:
        raise Killed("launcher killed before starting the machine")

    launcher.machines.start_recorded = killed  # type: ignore[method-assign]
    with suppress(Killed):
        launcher.handle(schedule_event())


def _outcome_left_on_instance(world: World) -> None:
    """A manual run whose agent could not write its outcome (the ledger out of reach for a minute): the
    outcome is on the instance's tag and the machine is off; the deadline timer or the reconciler records it."""
    from ec2batch.ledger import TERMINAL as ENDS

    db = world.job.clients.dynamodb
    ending: list[bool] = [False]

    def look(params: dict[str, Any], **_: Any) -> None:
        values = params.get("ExpressionAttributeValues", {})
        ending[0] = any(v.get("S") in ENDS for k, v in values.items() if k.startswith(":v"))

    def fail(**_: Any) -> None:
        if ending[0]:
            from botocore.exceptions import ClientError

            raise ClientError({"Error": {"Code": "ServiceUnavailable", "Message": "setup"}}, "UpdateItem")

    db.meta.events.register("before-parameter-build.dynamodb.UpdateItem", look)
    db.meta.events.register("before-call.dynamodb.UpdateItem", fail)
    try:
        _manual(world)
        world.step()  # the instance boots, the job exits 3, the final write fails for a minute: tag, power-off
    finally:
        db.meta.events.unregister("before-parameter-build.dynamodb.UpdateItem", look)
        db.meta.events.unregister("before-call.dynamodb.UpdateItem", fail)


def _nothing(world: World) -> None:
    """The lost edge is in the setup; the world (timers, planner ticks) does the rest."""


def _cancel_midway(world: World) -> None:
    def cancel(w: World) -> None:
        [run] = w.ledger.list_runs(w.job.name)
        w.attempt(lambda: stopping.cancel_run(w.job.clients, w.job.config, run.run_id))

    world.on_wait = cancel
    _manual(world)


SCENARIOS = {
    s.name: s
    for s in (
        Scenario("schedule-first-launch", _fire),
        Scenario("schedule-reuse-start", _fire, setup=_earlier_run),
        Scenario("manual-run", _manual),
        Scenario("run-at", _at),
        Scenario("cancel-while-running", _cancel_midway, expect=(CANCELLED,)),
        Scenario("hung-machine-deadline", _manual, expect=(TIMED_OUT,), world={"hang": True}),
        Scenario("ephemeral-launch", _fire, config={"strategy": "ephemeral"}),
        Scenario("run-at-far", _at_far, bound=FAR - T0 + BOUND),
        Scenario("orphaned-pending", _nothing, setup=_orphaned, bound=BOUND + PLANNER_PERIOD),
        Scenario("orphaned-recorded-start", _nothing, setup=_start_recorded_then_killed, bound=BOUND + PLANNER_PERIOD),
        # The job exits with a code its policy retries, every time: attempt 1 ends, the run waits out the
        # backoff, its retry timer starts attempt 2 (on the job's instance, started again, or a fresh one),
        # which ends the run FAILED once the attempts are used up.
        Scenario("retry-exit-code-reuse", _fire, expect=(FAILED,), world={"exit_code": 75}, config=RETRIED),
        Scenario(
            "retry-exit-code-ephemeral",
            _fire,
            expect=(FAILED,),
            world={"exit_code": 75},
            config={**RETRIED, "strategy": "ephemeral"},
        ),
        Scenario(
            "outcome-on-instance",
            _nothing,
            expect=(FAILED,),
            setup=_outcome_left_on_instance,
            world={"exit_code": 3},
            bound=BOUND + PLANNER_PERIOD,
        ),
    )
}


def stage(scenario: Scenario, aws: Any, tmp: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    """The job and the world, AWS on the world's clock (`follow_clock`), and the scenario's setup done."""
    topic = f"arn:aws:sns:{REGION}:123456789012:ec2batch-daily-report"
    job = make_job(aws, **CONFIG, notifications={"topic_arn": topic, "on": NOTIFY_ON}, **scenario.config)
    world = World(job, Clock(T0), tmp, **scenario.world)
    follow_clock(monkeypatch, world.clock)
    with world.quiet():
        world.follow_events()
    if scenario.setup:
        with world.quiet():
            scenario.setup(world)
    return world


def check(world: World, scenario: Scenario, faulted: str | None = None) -> list[str]:
    """Every invariant; returns the violations, each a sentence."""
    with world.quiet():
        return _check(world, scenario, faulted)


def _check(world: World, scenario: Scenario, faulted: str | None) -> list[str]:
    problems: list[str] = []
    job = world.job
    runs = [r for r in world.ledger.list_runs(job.name, limit=50) if not r.scheduled_at or r.scheduled_at >= _iso(T0)]
    if len(runs) != scenario.runs:
        problems.append(f"{len(runs)} runs for {scenario.runs} trigger(s): {[(r.run_id, r.status) for r in runs]}")
    for run in runs:
        if run.status not in TERMINAL:
            problems.append(f"run {run.run_id} still {run.status} after {scenario.bound}")
        for number in range(1, run.attempt + 1):
            machines = [
                i
                for i in job.instances()
                if _tags(i).get(TAG_RUN_ID) == run.run_id and tagged_attempt(_tags(i)) == number
            ]
            if len(machines) > 1:
                problems.append(f"run {run.run_id} has {len(machines)} machines for attempt {number}")
        if run.attempt > job.config.retry.attempts:
            problems.append(f"run {run.run_id} reached attempt {run.attempt} of {job.config.retry.attempts}")
        if run.status not in scenario.expect and not _explained(run, faulted):
            problems.append(f"run {run.run_id} ended {run.status} ({run.reason}), expected {scenario.expect}")
    live = job.instances("pending", "running")
    if live:
        problems.append(f"machines still running: {[(i['InstanceId'], _tags(i).get(TAG_RUN_ID)) for i in live]}")
    world.deliver_stream()  # whatever the mapping still holds (a batch failed at the last step) it delivers
    events = world.run_events()
    for detail in events:
        jsonschema.validate(detail, DETAIL_SCHEMA, format_checker=jsonschema.FormatChecker())
    announced = {d["event_id"] for d in events}
    firsts = {d["run_id"] for d in events if d["previous_status"] is None}
    for run in runs:
        if event_id(job.name, run.run_id, run.attempt, run.status) not in announced:
            problems.append(f"run {run.run_id} ended {run.status} (attempt {run.attempt}) but no run event said so")
        if run.run_id not in firsts:
            problems.append(f"run {run.run_id}: no run event announced its first status")
    published = {n["run_id"] for n in _all_notifications(job)}
    for run in runs:
        if run.status in job.config.notifications.on and run.run_id not in published:
            problems.append(f"run {run.run_id} ended {run.status} but no notification was published")
    return problems


def _explained(run: Run, faulted: str | None) -> bool:
    """A run may end FAILED or SKIPPED instead, if the injected fault is what its reason names."""
    reason = run.reason or ""
    named = ("injected", "InternalError", "instance-lost", "agent-lost")
    return faulted is not None and run.status in (FAILED, SKIPPED) and any(word in reason for word in named)


def _all_notifications(job: Job) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    while batch := job.notifications():
        seen.extend(batch)
    return seen


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")
