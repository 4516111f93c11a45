"""Issue 9's findings on the launcher's side, each as a user would notice it, and the reconciler that repairs
what a lost edge leaves behind (in-process moto that honours idempotency tokens; faults injected at the wire)."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from ec2batch import stopping, timers
from ec2batch.launcher import Launcher
from ec2batch.launcher.machines import Machines
from ec2batch.ledger import (
    CANCELLED,
    FAILED,
    PENDING,
    PLANNED,
    RUNNING,
    SKIPPED,
    STARTING,
    SUCCEEDED,
    TIMED_OUT,
    Ledger,
    Run,
    iso,
)
from ec2batch.names import TAG_OUTCOME, TAG_RUN_ID
from ec2batch.outcome_tag import OutcomeTag
from tests.conftest import Job, Killed, load_event, make_job

NOW = datetime(2026, 11, 24, 2, 0, 5, tzinfo=UTC)


def at(job: Job, moment: datetime = NOW, wait: int = 5) -> Launcher:
    return Launcher(
        job.clients,
        clock=lambda: moment,
        machines=Machines(job.clients.ec2, stopping_wait_seconds=wait, sleep=lambda s: None),
        sleep=lambda s: None,
    )


def tick(job: Job, moment: datetime) -> dict[str, Any]:
    return at(job, moment).handle({"action": "plan", "job": job.name})


def ledger(job: Job) -> Ledger:
    return Ledger(job.clients.dynamodb, job.config.names.ledger_table)


def run_of(job: Job, run_id: str) -> Run:
    return ledger(job).require(job.name, run_id)


def only_run(job: Job) -> Run:
    [run] = ledger(job).list_runs(job.name)
    return run


def live_instances(job: Job) -> list[dict[str, Any]]:
    return job.instances("pending", "running")


def sqs_event(body: dict[str, Any]) -> dict[str, Any]:
    return {"Records": [{"messageId": "m-1", "eventSource": "aws:sqs", "body": json.dumps(body)}]}


# ---------------------------------------------------------------- 1: ambiguous conditional updates
def test_a_timer_start_whose_write_was_applied_but_lost_still_starts_the_run(job: Job, faults) -> None:
    planned = timers.plan_run(job.clients, job.config, NOW, clock=lambda: NOW - timedelta(seconds=30))
    faults.at("dynamodb", "UpdateItem", "lost")  # PLANNED -> PENDING applied; botocore's retry fails its condition

    body = {"job": job.name, "run_id": planned.run_id, "kind": "start", "due": iso(NOW)}
    result = at(job).handle(sqs_event(body))

    assert result["results"][0]["outcome"] == "started"
    assert run_of(job, planned.run_id).status == STARTING
    assert len(live_instances(job)) == 1


# ---------------------------------------------------------------- 2: idempotency tokens, across invocations
def test_a_retried_launch_finds_the_first_machine_not_a_second(job: Job, faults) -> None:
    faults.at("ec2", "RunInstances", "lost")
    result = at(job).handle(load_event("schedule"))
    assert result["outcome"] == "started"
    assert len(live_instances(job)) == 1


def test_a_launcher_killed_after_launching_is_repaired_with_the_same_machine(job: Job, faults) -> None:
    faults.at("ec2", "RunInstances", "kill")
    with pytest.raises(Killed):
        at(job).handle(load_event("schedule"))
    [machine] = live_instances(job)
    assert only_run(job).status == PENDING

    tick(job, NOW + timedelta(minutes=5))  # the start lease (200 s) has lapsed: the run is an orphan

    run = only_run(job)
    assert run.status == STARTING and run.instance_id == machine["InstanceId"]
    assert len(live_instances(job)) == 1
    assert any("launcher died" in line for line in run.repaired)


# ---------------------------------------------------------------- 3: orphans
def test_a_pending_run_whose_launcher_died_before_any_machine_gets_one(job: Job, faults) -> None:
    faults.at("dynamodb", "TransactWriteItems", "kill")  # recorded PENDING, nothing asked of EC2
    with pytest.raises(Killed):
        at(job).handle(load_event("schedule"))

    quiet = tick(job, NOW + timedelta(seconds=60))  # within the lease: its launcher may still be at work
    assert quiet["repairs"] == [] and only_run(job).status == PENDING
    tick(job, NOW + timedelta(minutes=15))

    assert only_run(job).status == STARTING and len(live_instances(job)) == 1


def test_a_duplicate_trigger_after_the_lease_lapsed_takes_the_orphan_over(job: Job, faults) -> None:
    faults.at("dynamodb", "TransactWriteItems", "kill")  # recorded PENDING, nothing asked of EC2
    with pytest.raises(Killed):
        at(job).handle(load_event("schedule"))

    again = at(job, NOW + timedelta(minutes=4)).handle(load_event("schedule"))  # EventBridge delivers again

    assert again["outcome"] == "started" and only_run(job).status == STARTING


def test_a_starting_run_without_a_deadline_gets_one_so_a_hung_machine_is_stopped(aws) -> None:
    job = make_job(aws, max_runtime_seconds=600, stop_grace_seconds=10, deadline_slack_seconds=60)
    faults_free = at(job).handle({"action": "run", "job": job.name})
    ledger(job).update_fields(job.name, faults_free["run_id"], deadline_at=None)  # the STARTING write lost it

    tick(job, NOW + timedelta(minutes=1))
    run = run_of(job, faults_free["run_id"])
    assert run.deadline_at == iso(NOW + timedelta(seconds=670))

    tick(job, NOW + timedelta(minutes=15))  # the machine hangs: past the deadline, stopped from outside
    assert run_of(job, faults_free["run_id"]).status == TIMED_OUT
    assert live_instances(job) == []


# ---------------------------------------------------------------- 4: dead-lettered timers
def test_a_planned_run_whose_timer_was_dead_lettered_still_runs(job: Job) -> None:
    planned = timers.plan_run(job.clients, job.config, NOW + timedelta(minutes=2), clock=lambda: NOW)
    assert planned.start_timer_sent_at  # ...and that message dies in the DLQ

    tick(job, NOW + timedelta(minutes=5))

    run = run_of(job, planned.run_id)
    assert run.status == STARTING and len(live_instances(job)) == 1
    assert any("start timer lost" in line for line in run.repaired)


def test_a_hung_machine_whose_deadline_timer_was_dead_lettered_is_stopped(aws) -> None:
    job = make_job(aws, max_runtime_seconds=60, stop_grace_seconds=5, deadline_slack_seconds=10)
    started = at(job).handle({"action": "run", "job": job.name})
    ledger(job).transition(job.name, started["run_id"], RUNNING)  # the deadline message then dies in the DLQ

    tick(job, NOW + timedelta(minutes=15))

    run = run_of(job, started["run_id"])
    assert run.status == TIMED_OUT and live_instances(job) == []
    assert [n["status"] for n in job.notifications()] == [TIMED_OUT]


# ---------------------------------------------------------------- 6: two triggers racing for the reusable instance
def test_allow_two_triggers_never_both_place_themselves_on_the_stopped_instance(aws) -> None:
    job = make_job(aws, concurrency="allow")
    first = at(job).handle({"action": "run", "job": job.name})
    ledger(job).transition(job.name, first["run_id"], SUCCEEDED, exit_code=0)
    job.clients.ec2.stop_instances(InstanceIds=[first["instance_id"]])

    results: list[dict[str, Any]] = []
    barrier = threading.Barrier(2)

    def trigger() -> None:
        barrier.wait()
        results.append(at(job, NOW + timedelta(minutes=10)).handle({"action": "run", "job": job.name}))

    threads = [threading.Thread(target=trigger) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    machines = {r["instance_id"] for r in results}
    assert len(machines) == 2  # one on the reusable instance, the other on an extra one
    for result in results:
        [instance] = [i for i in job.instances() if i["InstanceId"] == result["instance_id"]]
        tagged = {t["Key"]: t["Value"] for t in instance["Tags"]}[TAG_RUN_ID]
        assert tagged == result["run_id"]  # each machine boots into its own run


# ---------------------------------------------------------------- 7: cancel races
def test_a_cancel_while_the_launcher_gets_the_machine_stops_the_machine(job: Job) -> None:
    launcher = at(job)
    original = launcher.machines.get_machine

    def machine_then_cancel(config, run_id, **kwargs):
        placement = original(config, run_id, **kwargs)
        stopping.cancel_run(job.clients, job.config, run_id)  # the user cancels meanwhile
        return placement

    launcher.machines.get_machine = machine_then_cancel  # type: ignore[method-assign]
    result = launcher.handle({"action": "run", "job": job.name})

    run = run_of(job, result["run_id"])
    assert run.status == CANCELLED and run.instance_id == result["instance_id"]
    assert live_instances(job) == []


def test_cancelling_a_run_whose_instance_is_pending_is_finished_by_the_reconciler(job: Job, injector) -> None:
    started = at(job).handle({"action": "run", "job": job.name})
    injector(job.clients.ec2, "StopInstances", ["IncorrectInstanceState"])  # EC2 cannot stop a pending instance

    cancelled = stopping.cancel_run(job.clients, job.config, started["run_id"])
    assert cancelled.status == CANCELLED and live_instances(job)
    again = stopping.cancel_run(job.clients, job.config, started["run_id"])  # a second cancel is no error
    assert again.status == CANCELLED and live_instances(job) == []


def test_the_reconciler_stops_the_machine_of_a_cancelled_run(job: Job, injector) -> None:
    started = at(job).handle({"action": "run", "job": job.name})
    injector(job.clients.ec2, "StopInstances", ["IncorrectInstanceState"])
    stopping.cancel_run(job.clients, job.config, started["run_id"])

    tick(job, NOW + timedelta(minutes=1))

    assert live_instances(job) == []


# ---------------------------------------------------------------- 10: deadline notifications
def test_a_redelivered_deadline_that_stops_the_machine_notifies_once(aws, injector) -> None:
    job = make_job(aws, max_runtime_seconds=60, stop_grace_seconds=5, deadline_slack_seconds=10)
    started = at(job).handle({"action": "run", "job": job.name})
    ledger(job).transition(job.name, started["run_id"], RUNNING)
    body = {"job": job.name, "run_id": started["run_id"], "kind": "deadline", "due": iso(NOW + timedelta(seconds=75))}
    injector(job.clients.sns, "Publish", ["InternalError"])
    injector(job.clients.ec2, "StopInstances", ["RequestLimitExceeded"])

    at(job, NOW + timedelta(seconds=76)).handle(sqs_event(body))
    at(job, NOW + timedelta(seconds=110)).handle(sqs_event(body))
    at(job, NOW + timedelta(seconds=140)).handle(sqs_event(body))

    assert [n["status"] for n in job.notifications()] == [TIMED_OUT]
    assert live_instances(job) == []


def test_a_deadline_for_a_vanished_instance_records_and_notifies_instead_of_raising(aws) -> None:
    job = make_job(aws, max_runtime_seconds=60, stop_grace_seconds=5, deadline_slack_seconds=10)
    started = at(job).handle({"action": "run", "job": job.name})
    ledger(job).update_fields(job.name, started["run_id"], instance_id="i-0123456789abcdef0")  # gone for good
    body = {"job": job.name, "run_id": started["run_id"], "kind": "deadline", "due": iso(NOW + timedelta(seconds=75))}

    result = at(job, NOW + timedelta(seconds=76)).handle(sqs_event(body))

    assert result["batchItemFailures"] == []
    run = run_of(job, started["run_id"])
    assert run.status == FAILED and run.reason.startswith("instance-lost: instance i-0123456789abcdef0 is terminated")
    assert [n["status"] for n in job.notifications()] == [FAILED]


# ---------------------------------------------------------------- 13: EC2 states
def _stopped_reusable(job: Job) -> str:
    first = at(job).handle({"action": "run", "job": job.name})
    ledger(job).transition(job.name, first["run_id"], SUCCEEDED, exit_code=0)
    job.clients.ec2.stop_instances(InstanceIds=[first["instance_id"]])
    return first["instance_id"]


def _states(job: Job, instance_id: str, states: list[str]) -> None:
    """EC2 states moto never shows: DescribeInstances answers these, one per call, then the truth."""
    pending = list(states)

    def rewrite(parsed: dict[str, Any], **_: Any) -> None:
        if pending:
            for reservation in parsed.get("Reservations", []):
                for instance in reservation["Instances"]:
                    if instance["InstanceId"] == instance_id:
                        instance["State"]["Name"] = pending.pop(0)

    job.clients.ec2.meta.events.register("after-call.ec2.DescribeInstances", rewrite)


def test_a_pending_reusable_instance_is_waited_for_not_failed_at_once(job: Job) -> None:
    instance_id = _stopped_reusable(job)
    _states(job, instance_id, ["pending", "running", "stopping"])  # a previous start powering off again

    result = at(job, NOW + timedelta(hours=1)).handle({"action": "run", "job": job.name})

    assert result["outcome"] == "started" and result["instance_id"] == instance_id


def test_a_start_refused_while_still_stopping_is_tried_again(job: Job, injector) -> None:
    instance_id = _stopped_reusable(job)
    injector(job.clients.ec2, "StartInstances", ["IncorrectInstanceState"])

    result = at(job, NOW + timedelta(hours=1)).handle({"action": "run", "job": job.name})

    assert result["outcome"] == "started" and result["instance_id"] == instance_id


def test_an_instance_terminated_by_hand_while_stopping_is_replaced(job: Job) -> None:
    instance_id = _stopped_reusable(job)
    _states(job, instance_id, ["stopping", "terminated"])

    result = at(job, NOW + timedelta(hours=1)).handle({"action": "run", "job": job.name})

    assert result["outcome"] == "started" and result["instance_id"] != instance_id


def test_an_instance_that_dies_right_after_the_start_fails_the_run_at_the_next_tick(job: Job) -> None:
    started = at(job).handle({"action": "run", "job": job.name})
    job.clients.ec2.terminate_instances(InstanceIds=[started["instance_id"]])  # it never booted

    tick(job, NOW + timedelta(minutes=15))

    run = run_of(job, started["run_id"])
    assert run.status == FAILED and run.reason.startswith("instance-lost:")
    assert [n["status"] for n in job.notifications()] == [FAILED]


# ---------------------------------------------------------------- the invariant's other half
def test_a_machine_running_with_no_live_run_is_stopped(job: Job) -> None:
    started = at(job).handle({"action": "run", "job": job.name})
    at(job).ledger(job.name).transition(job.name, started["run_id"], SUCCEEDED, exit_code=0)  # never powered off

    tick(job, NOW + timedelta(seconds=30))  # its agent may be powering it off right now
    assert live_instances(job)
    report = tick(job, NOW + timedelta(minutes=15))

    assert live_instances(job) == []
    assert report["repairs"]


def test_an_outcome_left_on_the_instance_is_recorded_not_timed_out(aws) -> None:
    job = make_job(aws, max_runtime_seconds=60, stop_grace_seconds=5, deadline_slack_seconds=10)
    started = at(job).handle({"action": "run", "job": job.name})
    ledger(job).transition(job.name, started["run_id"], RUNNING)
    ended = iso(NOW + timedelta(seconds=40))
    tag = OutcomeTag(started["run_id"], SUCCEEDED, ended, exit_code=0).encode()
    job.clients.ec2.create_tags(Resources=[started["instance_id"]], Tags=[{"Key": TAG_OUTCOME, "Value": tag}])
    job.clients.ec2.stop_instances(InstanceIds=[started["instance_id"]])  # the agent powered off

    tick(job, NOW + timedelta(minutes=15))  # long past the deadline

    run = run_of(job, started["run_id"])
    assert run.status == SUCCEEDED and run.exit_code == 0 and run.ended_at == ended


def test_two_reconcilers_at_once_repair_once(job: Job, faults) -> None:
    faults.at("dynamodb", "TransactWriteItems", "kill")  # recorded PENDING, nothing asked of EC2
    with pytest.raises(Killed):
        at(job).handle(load_event("schedule"))

    threads = [threading.Thread(target=tick, args=(job, NOW + timedelta(minutes=15))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert only_run(job).status == STARTING and len(live_instances(job)) == 1


def test_a_missed_planned_run_ends_skipped_not_stuck(job: Job) -> None:
    planned = timers.plan_run(job.clients, job.config, NOW + timedelta(minutes=2), clock=lambda: NOW)

    tick(job, NOW + timedelta(hours=2))  # the timer was lost and the planner was down for two hours

    assert run_of(job, planned.run_id).status == SKIPPED
    assert PLANNED not in {r.status for r in ledger(job).list_runs(job.name)}


# ---------------------------------------------------------------- the reconciler's own bounds
def _unnotified_failures(job: Job, count: int) -> list[str]:
    """Runs that ended FAILED without their notification going out (their launcher died before publishing)."""
    book = ledger(job)
    ids = []
    for i in range(count):
        moment = NOW - timedelta(minutes=30) + timedelta(seconds=i)
        run = Run(
            job=job.name,
            run_id=f"{iso(moment).replace('-', '').replace(':', '')}-manual-{i:08x}",
            status=FAILED,
            trigger="manual",
            triggered_at=iso(moment),
            ended_at=iso(moment + timedelta(seconds=5)),
            reason="launcher error: injected",
        )
        ids.append(book.record_terminal_at_creation(run).run.run_id)
    return ids


def test_a_tick_does_at_most_max_repairs_and_the_next_tick_does_the_rest(job: Job) -> None:
    from ec2batch.launcher.reconciler import MAX_REPAIRS

    ids = _unnotified_failures(job, MAX_REPAIRS + 7)

    first = tick(job, NOW + timedelta(minutes=15))
    assert len(first["repairs"]) == MAX_REPAIRS and first["deferred"] >= 1
    second = tick(job, NOW + timedelta(minutes=30))
    assert len(second["repairs"]) == 7 and second["deferred"] == 0
    third = tick(job, NOW + timedelta(minutes=45))
    assert third["repairs"] == []

    published = []
    while batch := job.notifications():
        published.extend(n["run_id"] for n in batch)
    assert sorted(published) == sorted(ids)  # each exactly once, none lost to the bound


def test_a_tick_stops_repairing_when_its_time_budget_is_spent(job: Job) -> None:
    from ec2batch.launcher.reconciler import TIME_BUDGET_SECONDS, reconcile

    _unnotified_failures(job, 5)
    elapsed = iter([0.0] + [TIME_BUDGET_SECONDS / 2 * n for n in range(1, 100)])  # each look costs half the budget

    report = reconcile(at(job, NOW + timedelta(minutes=15)), job.config, monotonic=lambda: next(elapsed))

    assert len(report.repairs) == 2 and report.deferred >= 1
    assert len(tick(job, NOW + timedelta(minutes=30))["repairs"]) == 3


def test_one_runs_failing_repair_does_not_keep_the_tick_from_the_others_and_the_tick_still_fails(aws) -> None:
    from ec2batch.launcher.reconciler import ReconcileFailed

    job = make_job(aws, concurrency="allow", max_runtime_seconds=60, stop_grace_seconds=5, deadline_slack_seconds=10)
    first, second = (at(job).handle({"action": "run", "job": job.name})["run_id"] for _ in range(2))
    for run_id in (first, second):  # both machines hang, their deadline messages die in the DLQ
        ledger(job).transition(job.name, run_id, RUNNING)
    stuck = run_of(job, first).instance_id
    ec2 = job.clients.ec2
    stop = ec2.stop_instances

    def throttled_for_the_first(**kwargs: Any) -> Any:
        if stuck in kwargs["InstanceIds"]:
            raise ClientError({"Error": {"Code": "Throttling", "Message": "Rate exceeded"}}, "StopInstances")
        return stop(**kwargs)

    ec2.stop_instances = throttled_for_the_first
    with pytest.raises(ReconcileFailed, match=f"run {first}: Throttling: Rate exceeded"):
        tick(job, NOW + timedelta(minutes=15))
    ec2.stop_instances = stop

    # The other run was repaired in the same tick: ended, and its machine stopped; the first's still runs.
    assert run_of(job, second).status == TIMED_OUT
    assert [i["InstanceId"] for i in live_instances(job)] == [stuck]
    tick(job, NOW + timedelta(minutes=30))  # the next tick (or the Lambda's retry) stops the one left
    assert run_of(job, first).status == TIMED_OUT and live_instances(job) == []
