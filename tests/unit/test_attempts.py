"""Attempts, retries and Spot markets, through the launcher, the ledger and the reconciler on moto."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ec2batch import attempts
from ec2batch.errors import TransitionRejected
from ec2batch.launcher import Launcher
from ec2batch.launcher.endings import lost_cause
from ec2batch.launcher.machines import Machines
from ec2batch.ledger import FAILED, INTERRUPTED, PENDING, RUNNING, STARTING, SUCCEEDED, Ledger, Run, run_from_item
from ec2batch.names import TAG_ATTEMPT, TAG_RUN_ID
from tests.conftest import Job, inject_error, load_event, make_job

SCHEDULED = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
T0 = SCHEDULED + timedelta(seconds=5)


def at(job: Job, moment: datetime) -> Launcher:
    return Launcher(
        job.clients,
        clock=lambda: moment,
        machines=Machines(job.clients.ec2, stopping_wait_seconds=5, sleep=lambda s: None),
        sleep=lambda s: None,
    )


def ledger(job: Job, moment: datetime = T0) -> Ledger:
    """The ledger on the test's clock (its lease and grace checks compare with that clock)."""
    return Ledger(job.clients.dynamodb, job.config.names.ledger_table, clock=lambda: moment)


def tags(job: Job, instance_id: str) -> dict[str, str]:
    found = job.clients.ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
    return {t["Key"]: t["Value"] for t in found.get("Tags", [])}


@pytest.fixture
def launches(aws) -> list[dict[str, Any]]:
    """Every RunInstances request the launcher makes."""
    seen: list[dict[str, Any]] = []
    aws.ec2.meta.events.register("provide-client-params.ec2.RunInstances", lambda params, **_: seen.append(params))
    return seen


@pytest.fixture
def timers_sent(aws) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []

    def capture(params: dict[str, Any], **_: Any) -> None:
        seen.append({"body": json.loads(params["MessageBody"]), "delay": params.get("DelaySeconds", 0)})

    aws.sqs.meta.events.register("provide-client-params.sqs.SendMessage", capture)
    return seen


def spot_job(aws, **retry: Any) -> Job:
    return make_job(
        aws,
        strategy="ephemeral",
        market="spot-then-on-demand",
        retry={"attempts": 2, **retry},
        starting_deadline_seconds=3600,
    )


def start(job: Job, moment: datetime = T0) -> Run:
    result = at(job, moment).handle(load_event("schedule"))
    return ledger(job).require(job.name, result["run_id"])


def claim(job: Job, run: Run) -> Run:
    """What the run's agent does at boot."""
    return ledger(job).transition(job.name, run.run_id, RUNNING, attempt=run.attempt)


def end(job: Job, run: Run, moment: datetime, **how: Any) -> Run:
    return attempts.end_attempt(job.clients, job.config, ledger(job, moment), run, ended_at=moment, **how)


def fire_retry(job: Job, run: Run, timers_sent: list[dict[str, Any]]) -> Run:
    [timer] = [m for m in timers_sent if m["body"]["kind"] == "retry"]
    due = datetime.fromisoformat(timer["body"]["due"].replace("Z", "+00:00"))
    event = {"Records": [{"messageId": "m-1", "eventSource": "aws:sqs", "body": json.dumps(timer["body"])}]}
    response = at(job, due).handle(event)
    assert response["batchItemFailures"] == []
    return ledger(job).require(job.name, run.run_id)


# ---------------------------------------------------------------- markets
def test_spot_capacity_errors_fall_back_through_types_and_subnets_then_to_on_demand(aws, launches) -> None:
    job = spot_job(aws)
    inject_error(job.clients.ec2, "RunInstances", ["InsufficientInstanceCapacity"] * 3 + ["SpotMaxPriceTooLow"])

    run = start(job)

    a, b = job.config.subnet_ids
    assert [(p.market, p.instance_type, p.subnet_id, (p.error or "").split(":")[0]) for p in run.placements] == [
        ("spot", "m7i.large", a, "InsufficientInstanceCapacity"),
        ("spot", "m7i.large", b, "InsufficientInstanceCapacity"),
        ("spot", "m6i.large", a, "InsufficientInstanceCapacity"),
        ("spot", "m6i.large", b, "SpotMaxPriceTooLow"),
        (None, "m7i.large", a, ""),  # on-demand, in the same order, once no Spot capacity is left
    ]
    assert [r.get("InstanceMarketOptions") for r in launches] == [attempts_spot()] * 4 + [None]
    assert run.status == STARTING and run.market is None and run.instance_type == "m7i.large"


def attempts_spot() -> dict[str, Any]:
    return {
        "MarketType": "spot",
        "SpotOptions": {"SpotInstanceType": "one-time", "InstanceInterruptionBehavior": "terminate"},
    }


def test_a_spot_launch_records_its_market_and_tags_its_attempt(aws, launches) -> None:
    job = make_job(aws, strategy="ephemeral", market="spot", instance_types=["m7i.large"])
    run = start(job)
    assert run.market == "spot" and launches[0]["InstanceMarketOptions"] == attempts_spot()
    assert tags(job, run.instance_id)[TAG_ATTEMPT] == "1"


def test_a_spot_only_job_never_goes_on_demand(aws, launches) -> None:
    job = make_job(aws, strategy="ephemeral", market="spot", instance_types=["m7i.large"])
    inject_error(job.clients.ec2, "RunInstances", ["InsufficientInstanceCapacity"] * 2)
    failed = at(job, T0).handle({"action": "run", "job": job.name})
    assert failed["outcome"] == "failed"
    assert failed["reason"].startswith("no capacity after 2 tries: launch spot m7i.large")
    assert len(launches) == 2 and all(r.get("InstanceMarketOptions") for r in launches)


# ---------------------------------------------------------------- the policy
def test_an_exit_code_in_the_retry_list_retries_and_one_outside_fails_at_once(aws, timers_sent) -> None:
    job = make_job(aws, retry={"attempts": 3, "exit_codes": [75, "100-119"]}, starting_deadline_seconds=3600)
    first = claim(job, start(job))

    retried = end(
        job, first, T0 + timedelta(minutes=5), status=FAILED, cause="exit-code", exit_code=75, reason="exit code 75"
    )

    assert retried.status == PENDING and retried.attempt == 2 and retried.instance_id is None
    assert retried.reason.startswith("attempt 1 FAILED (exit code 75); attempt 2 of 3 at ")
    [ended] = retried.attempts
    assert (ended.number, ended.status, ended.exit_code, ended.instance_id) == (1, FAILED, 75, first.instance_id)
    assert job.notifications() == []  # the run has not ended
    job.clients.ec2.stop_instances(InstanceIds=[first.instance_id])  # its agent powers off

    second = fire_retry(job, retried, timers_sent)
    assert second.status == STARTING and second.attempt == 2
    assert second.instance_id == first.instance_id  # reuse: the job's instance, started again
    assert tags(job, second.instance_id)[TAG_RUN_ID] == second.run_id
    assert tags(job, second.instance_id)[TAG_ATTEMPT] == "2"  # its agent claims attempt 2, never attempt 1's
    second = claim(job, second)

    final = end(
        job, second, T0 + timedelta(minutes=9), status=FAILED, cause="exit-code", exit_code=3, reason="exit code 3"
    )

    assert final.status == FAILED and final.exit_code == 3
    assert final.reason == "exit code 3; not retried: exit code 3 is not in retry.exit_codes"
    assert [a.number for a in final.all_attempts()] == [1, 2]
    [message] = job.notifications()
    assert [a["exit_code"] for a in message["attempts"]] == [75, 3]


def test_exhausted_retries_fail_listing_every_attempt_with_its_cost_and_notify_once(aws, timers_sent) -> None:
    job = spot_job(aws)
    first = claim(job, start(job))
    retried = end(
        job,
        first,
        T0 + timedelta(minutes=30),
        status=INTERRUPTED,
        cause="interruption",
        reason="interruption: notice",
        cost={"billed_seconds": 1800, "cost_usd": 0.02},
    )
    second = claim(job, fire_retry(job, retried, timers_sent))
    assert second.market is None  # the retry of a spot-then-on-demand job runs on-demand

    final = end(
        job,
        second,
        T0 + timedelta(minutes=70),
        status=INTERRUPTED,
        cause="interruption",
        reason="interruption: again",
        cost={"billed_seconds": 2400, "cost_usd": 0.07},
    )

    assert final.status == FAILED
    assert final.reason == "interruption: again; no attempts left (2 of 2)"
    assert [(a.status, a.market, a.cost_usd) for a in final.all_attempts()] == [
        (INTERRUPTED, "spot", 0.02),
        (INTERRUPTED, None, 0.07),
    ]
    assert (final.billed_seconds, final.cost_usd) == (4200, 0.09)  # the run's cost is the sum
    [message] = job.notifications()
    assert message["status"] == FAILED and len(message["attempts"]) == 2


def test_the_backoff_grows_by_its_rate_up_to_its_cap_and_holds_the_next_attempt_until_then(aws, timers_sent) -> None:
    job = make_job(
        aws,
        retry={"attempts": 5, "interval_seconds": 10, "backoff_rate": 3, "max_delay_seconds": 60},
        starting_deadline_seconds=3600,
    )
    assert [job.config.retry.delay_before(n) for n in (2, 3, 4, 5)] == [10, 30, 60, 60]
    run = claim(job, start(job))
    ended_at = T0 + timedelta(minutes=1)
    retried = end(job, run, ended_at, status=FAILED, cause="instance-lost", reason="instance-lost: gone")
    assert retried.retry_at == "2026-11-24T02:01:15.000Z"
    [timer] = timers_sent
    assert timer["body"]["kind"] == "retry" and timer["delay"] == 10

    # Before its time nobody starts it: not a duplicate trigger, not the reconciler.
    early = at(job, ended_at + timedelta(seconds=5))
    early.handle({"action": "plan", "job": job.name})
    assert ledger(job).require(job.name, run.run_id).status == PENDING
    assert ledger(job, ended_at + timedelta(seconds=5)).take_start_lease(job.name, run.run_id) is None


def test_a_retry_that_would_start_after_the_starting_deadline_is_not_started(aws, timers_sent) -> None:
    job = make_job(aws, retry={"attempts": 3, "interval_seconds": 60}, starting_deadline_seconds=120)
    run = claim(job, start(job))

    final = end(job, run, SCHEDULED + timedelta(seconds=90), status=FAILED, cause="agent-lost", reason="agent-lost: x")

    assert final.status == FAILED
    assert (
        "not retried: attempt 2 would start at 2026-11-24T02:02:30.000Z, after the run's starting deadline "
        in final.reason
    )
    assert [m for m in timers_sent if m["body"]["kind"] == "retry"] == []
    assert len(job.notifications()) == 1


def test_a_cause_outside_retry_on_is_not_retried(aws) -> None:
    job = make_job(aws, retry={"attempts": 3, "on": ["interruption"]}, starting_deadline_seconds=3600)
    run = claim(job, start(job))
    final = end(job, run, T0 + timedelta(minutes=2), status=FAILED, cause="instance-lost", reason="instance-lost: x")
    assert final.status == FAILED and final.reason.endswith("not retried: instance-lost is not in retry.on")


def test_a_timeout_is_never_retried(aws) -> None:
    job = make_job(aws, retry={"attempts": 3, "exit_codes": ["1-255"]}, starting_deadline_seconds=3600)
    run = claim(job, start(job))
    final = end(job, run, T0 + timedelta(minutes=2), status="TIMED_OUT", cause="timeout", reason="max runtime")
    assert final.status == "TIMED_OUT" and "a timeout is never retried" in final.reason


# ---------------------------------------------------------------- one writer per attempt
def test_a_writer_late_for_an_attempt_changes_nothing(aws, timers_sent) -> None:
    job = make_job(aws, retry={"attempts": 2}, starting_deadline_seconds=3600)
    first = claim(job, start(job))
    retried = end(job, first, T0 + timedelta(minutes=3), status=FAILED, cause="instance-lost", reason="lost")

    # Attempt 1's agent (or its deadline timer) comes back with an outcome: refused, attempt 2 untouched.
    with pytest.raises(TransitionRejected):
        end(job, first, T0 + timedelta(minutes=4), status=SUCCEEDED, cause=None, reason=None, exit_code=0)
    with pytest.raises(TransitionRejected):
        ledger(job).transition(job.name, first.run_id, RUNNING, attempt=1)
    now = ledger(job).require(job.name, first.run_id)
    assert (now.status, now.attempt, len(now.attempts)) == (PENDING, 2, 1)

    # The same end written twice (a response lost, the write retried) is recognised, not doubled.
    again = end(job, first, T0 + timedelta(minutes=3), status=FAILED, cause="instance-lost", reason="lost")
    assert again.attempt == 2 and len(again.attempts) == 1 and again.retry_at == retried.retry_at


def test_the_reconciler_retries_a_lost_machine_and_starts_a_retry_whose_timer_was_lost(aws) -> None:
    job = make_job(aws, retry={"attempts": 2}, starting_deadline_seconds=3600)
    first = claim(job, start(job))
    job.clients.ec2.terminate_instances(InstanceIds=[first.instance_id])  # gone, no outcome, no notice

    at(job, T0 + timedelta(minutes=5)).handle({"action": "plan", "job": job.name})
    waiting = ledger(job).require(job.name, first.run_id)
    assert waiting.status == PENDING and waiting.attempt == 2
    assert waiting.attempts[0].cause == "instance-lost"

    # Its retry timer never arrives: the next tick after the retry time starts attempt 2.
    at(job, T0 + timedelta(minutes=20)).handle({"action": "plan", "job": job.name})
    second = ledger(job).require(job.name, first.run_id)
    assert second.status == STARTING and second.attempt == 2 and second.instance_id != first.instance_id


def test_an_instance_ec2_took_back_is_an_interruption_and_one_that_shut_itself_down_a_lost_agent() -> None:
    assert lost_cause({"StateReason": {"Code": "Server.SpotInstanceTermination"}}) == "interruption"
    assert lost_cause({"StateReason": {"Code": "Client.InstanceInitiatedShutdown"}}) == "agent-lost"
    assert lost_cause({"StateReason": {"Code": "Client.UserInitiatedShutdown"}}) == "instance-lost"
    assert lost_cause(None) == "instance-lost"


# ---------------------------------------------------------------- the ledger stays readable
def test_a_run_recorded_before_attempts_existed_reads_as_one_attempt_with_its_placements() -> None:
    item = {
        "job": {"S": "daily-report"},
        "run_id": {"S": "20261120T020000.000Z-schedule"},
        "status": {"S": "SUCCEEDED"},
        "trigger": {"S": "schedule"},
        "triggered_at": {"S": "2026-11-20T02:00:01.000Z"},
        "instance_id": {"S": "i-0123"},
        "instance_type": {"S": "m7i.large"},
        "billed_seconds": {"N": "600"},
        "cost_usd": {"N": "0.0168"},
        "attempts": {"L": [{"M": {"action": {"S": "start"}, "instance_id": {"S": "i-0123"}, "at": {"S": "x"}}}]},
    }
    run = run_from_item(item)
    assert [p.action for p in run.placements] == ["start"]
    [only] = run.all_attempts()
    assert (only.number, only.status, only.instance_id, only.cost_usd) == (1, SUCCEEDED, "i-0123", 0.0168)
