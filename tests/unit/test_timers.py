"""Exact-time runs and external deadlines: planner + SQS DelaySeconds + final check (in-process moto)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ec2batch import stopping, timers
from ec2batch.launcher import Launcher
from ec2batch.launcher.machines import Machines
from ec2batch.ledger import CANCELLED, PLANNED, RUNNING, SKIPPED, STARTING, SUCCEEDED, TIMED_OUT, Ledger
from ec2batch.names import TAG_RUN_ID
from tests.conftest import Job, make_job

NOW = datetime(2026, 11, 24, 14, 0, 0, tzinfo=UTC)


@pytest.fixture
def sent(aws) -> list[dict[str, Any]]:
    """Every SendMessage the code makes: body and delay."""
    messages: list[dict[str, Any]] = []

    def capture(params: dict[str, Any], **_: Any) -> None:
        messages.append({"body": json.loads(params["MessageBody"]), "delay": params.get("DelaySeconds", 0)})

    aws.sqs.meta.events.register("provide-client-params.sqs.SendMessage", capture)
    return messages


def at(job: Job, moment: datetime) -> Launcher:
    return Launcher(job.clients, clock=lambda: moment, machines=Machines(job.clients.ec2, stopping_wait_seconds=5))


def sqs_event(message: dict[str, Any]) -> dict[str, Any]:
    return {"Records": [{"messageId": "m-1", "eventSource": "aws:sqs", "body": json.dumps(message["body"])}]}


def ledger(job: Job) -> Ledger:
    return Ledger(job.clients.dynamodb, job.config.names.ledger_table)


def test_a_run_due_within_fifteen_minutes_is_sent_at_once_with_its_delay(job: Job, sent) -> None:
    due = NOW + timedelta(seconds=150)
    run = timers.plan_run(job.clients, job.config, due, clock=lambda: NOW)

    assert run.status == PLANNED and run.trigger == "at" and run.scheduled_at == "2026-11-24T14:02:30.000Z"
    assert sent == [
        {"body": {"job": job.name, "run_id": run.run_id, "kind": "start", "due": run.scheduled_at}, "delay": 150}
    ]


def test_the_final_check_starts_a_planned_run_once_whatever_the_duplicates(job: Job, sent) -> None:
    run = timers.plan_run(job.clients, job.config, NOW + timedelta(seconds=30), clock=lambda: NOW)
    message = sent[0]
    launcher = at(job, NOW + timedelta(seconds=30.4))

    first = launcher.handle(sqs_event(message))
    second = launcher.handle(sqs_event(message))  # SQS is at-least-once

    assert first["results"][0]["outcome"] == "started"
    assert second["results"][0]["outcome"] == "nothing"
    assert second["results"][0]["reason"] == "run is STARTING, not PLANNED"
    assert len(job.instances()) == 1
    assert ledger(job).require(job.name, run.run_id).status == STARTING


def test_a_cancelled_run_never_starts(job: Job, sent) -> None:
    run = timers.plan_run(job.clients, job.config, NOW + timedelta(seconds=60), clock=lambda: NOW)
    stopping.cancel_run(job.clients, job.config, run.run_id)

    result = at(job, NOW + timedelta(seconds=60)).handle(sqs_event(sent[0]))

    assert result["results"][0] == {
        "job": job.name,
        "run_id": run.run_id,
        "status": CANCELLED,
        "outcome": "nothing",
        "reason": "run already CANCELLED",
    }
    assert job.instances() == []


def test_a_timer_for_a_time_the_run_no_longer_has_does_nothing(job: Job, sent) -> None:
    run = timers.plan_run(job.clients, job.config, NOW + timedelta(seconds=60), clock=lambda: NOW)
    ledger(job).update_fields(job.name, run.run_id, scheduled_at="2026-11-24T15:00:00.000Z")  # moved

    result = at(job, NOW + timedelta(seconds=60)).handle(sqs_event(sent[0]))

    assert result["results"][0]["reason"].startswith("run moved to 2026-11-24T15:00:00.000Z")
    assert ledger(job).require(job.name, run.run_id).status == PLANNED


def test_a_timer_later_than_the_starting_deadline_skips_the_run_as_missed(job: Job, sent) -> None:
    run = timers.plan_run(job.clients, job.config, NOW + timedelta(seconds=60), clock=lambda: NOW)
    result = at(job, NOW + timedelta(seconds=60 + 901)).handle(sqs_event(sent[0]))
    assert result["results"][0]["outcome"] == "skipped"
    assert ledger(job).require(job.name, run.run_id).status == SKIPPED


def test_forbid_skips_a_planned_run_while_another_runs(job: Job, sent) -> None:
    busy = at(job, NOW).handle({"action": "run", "job": job.name})
    run = timers.plan_run(job.clients, job.config, NOW + timedelta(seconds=60), clock=lambda: NOW)

    result = at(job, NOW + timedelta(seconds=60)).handle(sqs_event(sent[0]))

    assert result["results"][0]["outcome"] == "skipped"
    assert ledger(job).require(job.name, run.run_id).reason == f"run {busy['run_id']} active"


def test_a_far_run_is_sent_by_the_planner_once_when_it_comes_near(job: Job, sent) -> None:
    due = NOW + timedelta(hours=1)
    run = timers.plan_run(job.clients, job.config, due, clock=lambda: NOW)
    assert sent == []

    at(job, NOW + timedelta(minutes=30)).handle({"action": "plan", "job": job.name})
    assert sent == []  # still more than a tick away
    at(job, NOW + timedelta(minutes=45)).handle({"action": "plan", "job": job.name})
    at(job, NOW + timedelta(minutes=46)).handle({"action": "plan", "job": job.name})  # a second planner run

    assert [(m["body"]["run_id"], m["body"]["kind"], m["delay"]) for m in sent] == [(run.run_id, "start", 900)]


def test_a_timer_in_the_past_is_refused_when_planning(job: Job) -> None:
    with pytest.raises(timers.TimerError, match="more than the starting deadline"):
        timers.plan_run(job.clients, job.config, NOW - timedelta(hours=1), clock=lambda: NOW)


def test_a_running_run_past_its_deadline_is_stopped_from_outside(aws, sent) -> None:
    job = make_job(aws, max_runtime_seconds=60, stop_grace_seconds=5, deadline_slack_seconds=10)
    started = at(job, NOW).handle({"action": "run", "job": job.name})
    ledger(job).transition(job.name, started["run_id"], RUNNING)
    [deadline] = [m for m in sent if m["body"]["kind"] == "deadline"]
    assert deadline["body"]["due"] == "2026-11-24T14:01:15.000Z" and deadline["delay"] == 75

    result = at(job, NOW + timedelta(seconds=75)).handle(sqs_event(deadline))

    assert result["results"][0]["outcome"] == "stopped"
    run = ledger(job).require(job.name, started["run_id"])
    assert run.status == TIMED_OUT and run.reason.startswith("deadline: still RUNNING")
    assert job.instances("stopping", "stopped")[0]["InstanceId"] == started["instance_id"]
    assert [n["status"] for n in job.notifications()] == [TIMED_OUT]
    assert ledger(job).active_run_id(job.name) is None


def test_a_run_that_ended_normally_is_untouched_by_its_deadline(aws, sent) -> None:
    job = make_job(aws, max_runtime_seconds=60, stop_grace_seconds=5, deadline_slack_seconds=10)
    started = at(job, NOW).handle({"action": "run", "job": job.name})
    ledger(job).transition(job.name, started["run_id"], SUCCEEDED, exit_code=0)
    [deadline] = [m for m in sent if m["body"]["kind"] == "deadline"]

    result = at(job, NOW + timedelta(seconds=75)).handle(sqs_event(deadline))

    assert result["results"][0]["reason"] == "run already SUCCEEDED"
    assert ledger(job).require(job.name, started["run_id"]).status == SUCCEEDED
    assert job.instances("running", "pending")


def test_the_deadline_never_stops_an_instance_that_serves_another_run(aws, sent) -> None:
    job = make_job(aws, max_runtime_seconds=60, stop_grace_seconds=5, deadline_slack_seconds=10)
    started = at(job, NOW).handle({"action": "run", "job": job.name})
    job.clients.ec2.create_tags(Resources=[started["instance_id"]], Tags=[{"Key": TAG_RUN_ID, "Value": "other"}])
    [deadline] = [m for m in sent if m["body"]["kind"] == "deadline"]

    at(job, NOW + timedelta(seconds=75)).handle(sqs_event(deadline))

    assert job.instances("running", "pending")


def test_long_runs_get_their_deadline_timer_from_the_planner(job: Job, sent) -> None:
    started = at(job, NOW).handle({"action": "run", "job": job.name})  # max runtime 3600 s: too far for SQS
    assert [m for m in sent if m["body"]["kind"] == "deadline"] == []
    # Its agent claims it (a run still STARTING 50 min on would be agent-lost).
    Ledger(job.clients.dynamodb, job.config.names.ledger_table).transition(job.name, started["run_id"], RUNNING)

    at(job, NOW + timedelta(minutes=50)).handle({"action": "plan", "job": job.name})

    [deadline] = [m for m in sent if m["body"]["kind"] == "deadline"]
    assert deadline["body"]["run_id"] == started["run_id"]
    assert deadline["body"]["due"] == "2026-11-24T15:05:30.000Z"  # 3600 + 30 grace + 300 slack


def test_a_failing_message_is_reported_alone_so_sqs_redelivers_only_it(job: Job) -> None:
    bad = {
        "messageId": "m-bad",
        "eventSource": "aws:sqs",
        "body": json.dumps(
            {
                "job": "nightly",
                "run_id": "20261124T140000.000Z-at-1a2b3c4d",
                "kind": "start",
                "due": "2026-11-24T14:00:00Z",
            }
        ),
    }
    result = at(job, NOW).handle({"Records": [bad]})
    assert result == {"batchItemFailures": [{"itemIdentifier": "m-bad"}], "results": []}


def test_a_message_that_comes_early_waits_out_the_rest_before_acting(job: Job, sent) -> None:
    run = timers.plan_run(job.clients, job.config, NOW + timedelta(seconds=30), clock=lambda: NOW)
    clock = {"now": NOW + timedelta(seconds=29.4)}  # DelaySeconds 30 from a send at 14:00:00.6, say
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(round(seconds, 3))
        clock["now"] += timedelta(seconds=seconds)

    launcher = Launcher(job.clients, clock=lambda: clock["now"], sleep=sleep)
    launcher.handle(sqs_event(sent[0]))

    assert slept == [0.6]
    assert ledger(job).require(job.name, run.run_id).triggered_at == "2026-11-24T14:00:30.000Z"


def test_a_deadline_stop_that_failed_is_done_when_sqs_delivers_again(aws, sent, injector) -> None:
    job = make_job(aws, max_runtime_seconds=60, stop_grace_seconds=5, deadline_slack_seconds=10)
    started = at(job, NOW).handle({"action": "run", "job": job.name})
    ledger(job).transition(job.name, started["run_id"], RUNNING)
    [deadline] = [m for m in sent if m["body"]["kind"] == "deadline"]
    injector(job.clients.ec2, "StopInstances", ["RequestLimitExceeded"])

    first = at(job, NOW + timedelta(seconds=75)).handle(sqs_event(deadline))
    assert first["batchItemFailures"] == [{"itemIdentifier": "m-1"}]  # SQS will deliver it again
    assert ledger(job).require(job.name, started["run_id"]).status == TIMED_OUT
    assert job.instances("running", "pending")

    again = at(job, NOW + timedelta(seconds=110)).handle(sqs_event(deadline))

    assert again["results"][0]["outcome"] == "stopped"
    assert job.instances("stopping", "stopped")[0]["InstanceId"] == started["instance_id"]
