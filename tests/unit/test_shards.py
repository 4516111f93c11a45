"""Runs with shards: one AWS Batch array job per run, on in-process moto's Batch (without Docker: its children
succeed at once; a failing child is set up through moto's backend, as Batch would report it)."""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.batch.models import batch_backends

from ec2batch.aws import Clients
from ec2batch.cli.run_commands import table
from ec2batch.errors import EventError
from ec2batch.launcher import Launcher
from ec2batch.launcher.events import BatchChange, parse_event
from ec2batch.ledger import CANCELLED, FAILED, RUNNING, STARTING, SUCCEEDED, TIMED_OUT, Ledger, Run
from ec2batch.shards import batch_job_name, deadline_for, summary, waves
from ec2batch.stopping import cancel_run
from tests.conftest import AWS_ENVIRONMENT, AWS_UNSET, REGION, Job, make_job

NOW = datetime(2026, 11, 24, 2, 0, 5, tzinfo=UTC)


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, boto_session: boto3.Session) -> Iterator[Clients]:
    """moto with its Docker-less Batch (children are marked SUCCEEDED when submitted)."""
    for var in AWS_UNSET:
        monkeypatch.delenv(var, raising=False)
    for var, value in AWS_ENVIRONMENT.items():
        monkeypatch.setenv(var, value)
    with mock_aws(config={"batch": {"use_docker": False}}):
        yield Clients(boto_session)


@pytest.fixture
def job(aws: Clients) -> Job:
    """A job of 4 shards; its Batch compute environment, queue and definition made as the local stack makes them."""
    return make_job(aws, job="report-shards", shards=4, strategy="ephemeral")


@pytest.fixture
def submits(aws: Clients) -> Counter[str]:
    seen: Counter[str] = Counter()
    aws.batch.meta.events.register("before-call.batch.SubmitJob", lambda **_: seen.update(["SubmitJob"]))
    return seen


def at(job: Job, moment: datetime = NOW) -> Launcher:
    return Launcher(job.clients, clock=lambda: moment, sleep=lambda s: None)


def ledger(job: Job) -> Ledger:
    return Ledger(job.clients.dynamodb, job.config.names.ledger_table, clock=lambda: NOW)


def started(job: Job) -> Run:
    result = at(job).handle({"action": "run", "job": job.name, "token": "t-1"})
    assert result["outcome"] == "started", result
    return ledger(job).require(job.name, result["run_id"])


def fail_child(job: Job, run: Run, index: int, exit_code: int) -> None:
    """Batch reports child `index` FAILED with this exit code (moto's Docker-less Batch succeeds them all)."""
    child = batch_backends["123456789012"][REGION]._jobs[f"{run.batch_job_id}:{index}"]
    child.exit_code = exit_code
    child.status = "FAILED"  # it was marked SUCCEEDED at submit; Batch would have said FAILED


def change(job: Job, run: Run) -> dict[str, Any]:
    """The event the EventBridge rule on the job's queue delivers for one of the run's children."""
    return {
        "source": "aws.batch",
        "detail-type": "Batch Job State Change",
        "detail": {
            "jobName": batch_job_name(run.run_id),
            "jobId": f"{run.batch_job_id}:1",
            "jobQueue": f"arn:aws:batch:{REGION}:123456789012:job-queue/{job.config.names.batch_job_queue}",
            "status": "SUCCEEDED",
        },
    }


def test_a_sharded_run_is_one_array_job_and_a_repeated_trigger_submits_nothing_more(job: Job, submits) -> None:
    run = started(job)

    assert run.status == STARTING and run.shard_count == 4 and run.instance_id is None
    [parent] = job.clients.batch.describe_jobs(jobs=[run.batch_job_id])["jobs"]
    assert parent["jobName"] == batch_job_name(run.run_id) and parent["arrayProperties"]["size"] == 4
    assert job.instances() == []  # no machine of ours: Batch's compute environment runs the shards

    again = at(job).handle({"action": "run", "job": job.name, "token": "t-1"})
    assert again["outcome"] == "duplicate"
    # The launcher died after SubmitJob, before recording it: the repeat finds the array job by its name.
    ledger(job).update_fields(job.name, run.run_id, batch_job_id=None)
    pending = ledger(job).transition(job.name, run.run_id, "TIMED_OUT", attempt=1)  # end it to free the slot
    assert pending.status == TIMED_OUT
    assert submits["SubmitJob"] == 1


def test_a_launcher_that_died_after_submitting_is_taken_over_without_a_second_submit(job: Job, submits) -> None:
    run = started(job)
    # As if the launcher had been killed between SubmitJob and its STARTING write.
    db = job.clients.dynamodb
    db.update_item(
        TableName=job.config.names.ledger_table,
        Key={"job": {"S": job.name}, "run_id": {"S": run.run_id}},
        UpdateExpression="SET #s = :p, start_lease_until = :old REMOVE batch_job_id",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":p": {"S": "PENDING"}, ":old": {"S": "2026-11-24T01:00:00.000Z"}},
    )

    at(job, NOW + timedelta(minutes=5)).handle({"action": "plan", "job": job.name})

    again = ledger(job).require(job.name, run.run_id)
    assert again.batch_job_id == run.batch_job_id and submits["SubmitJob"] == 1


def test_the_run_succeeds_when_every_shard_has_with_a_record_and_an_estimate_per_shard(job: Job) -> None:
    run = started(job)

    result = at(job).handle(change(job, run))

    ended = ledger(job).require(job.name, run.run_id)
    assert result["outcome"] == "recorded" and ended.status == SUCCEEDED
    assert [(s.index, s.status) for s in ended.shards] == [(i, SUCCEEDED) for i in range(4)]
    assert all(s.log_stream for s in ended.shards)  # where each shard's output is
    assert ended.cost_usd is not None  # an estimate: Batch reports no per-job cost
    assert summary(ended) == "4/4 succeeded"
    assert "4/4 succeeded" in table([ended])


def test_one_failed_shard_fails_the_run_naming_it_and_notifies_once(job: Job) -> None:
    run = started(job)
    fail_child(job, run, 2, exit_code=3)

    at(job, NOW + timedelta(minutes=5)).handle({"action": "plan", "job": job.name})  # the reconciler's look
    at(job).handle(change(job, run))  # then the event, late: nothing more

    ended = ledger(job).require(job.name, run.run_id)
    assert ended.status == FAILED
    assert ended.reason == "1 of 4 shards failed: 2 (exit 3)"
    assert [s.index for s in ended.shards if s.status == FAILED] == [2]
    assert summary(ended) == "3/4 succeeded, 1 failed"
    [message] = job.notifications()
    assert message["status"] == FAILED and "2 (exit 3)" in message["reason"]


def test_a_cancel_terminates_the_array_job(job: Job) -> None:
    run = started(job)
    terminated: list[str] = []
    job.clients.batch.meta.events.register(
        "provide-client-params.batch.TerminateJob", lambda params, **_: terminated.append(params["jobId"])
    )

    cancelled = cancel_run(job.clients, job.config, run.run_id)

    assert cancelled.status == CANCELLED and terminated == [run.batch_job_id]


def test_the_external_deadline_covers_the_whole_run_and_ends_the_array_job(job: Job) -> None:
    run = started(job)
    assert run.deadline_at == "2026-11-24T03:05:35.000Z"  # one wave: 3600 + 30 grace + 300 slack
    terminated: list[str] = []
    job.clients.batch.meta.events.register(
        "provide-client-params.batch.TerminateJob", lambda params, **_: terminated.append(params["jobId"])
    )
    # The shards never report (say the events and the ticks were lost): the deadline timer fires.
    ledger(job).update_fields(job.name, run.run_id, status=RUNNING)
    timer = {"job": job.name, "run_id": run.run_id, "kind": "deadline", "due": run.deadline_at}
    due = datetime(2026, 11, 24, 3, 5, 35, tzinfo=UTC)
    at(job, due).handle({"Records": [{"messageId": "m", "eventSource": "aws:sqs", "body": json.dumps(timer)}]})

    ended = ledger(job).require(job.name, run.run_id)
    assert ended.status == TIMED_OUT and terminated == [run.batch_job_id]


def test_more_shards_than_fit_at_once_run_in_waves_and_the_deadline_allows_each(aws: Clients) -> None:
    from ec2batch.config import parse_config

    config = parse_config(
        {"job": "big", "image": "x", "command": ["run"], "shards": 100, "batch": {"max_vcpus": 32, "vcpus": 2}}
    )
    assert waves(config) == 7  # 16 at once
    assert deadline_for(config, NOW) - NOW == timedelta(seconds=7 * 3600 + 30 + 300)


def test_batch_events_are_parsed_and_a_stranger_is_refused() -> None:
    event = {
        "source": "aws.batch",
        "detail-type": "Batch Job State Change",
        "detail": {
            "jobName": "20261124T020000_000Z-schedule",
            "jobId": "a1b2:3",
            "jobQueue": f"arn:aws:batch:{REGION}:123456789012:job-queue/ec2batch-report-shards",
            "status": "RUNNING",
        },
    }
    assert parse_event(event) == BatchChange("report-shards", "20261124T020000.000Z-schedule", "a1b2", "RUNNING")
    stranger = {**event, "detail": {**event["detail"], "jobQueue": "arn:aws:batch:x:1:job-queue/other"}}
    with pytest.raises(EventError, match=re.escape("detail.jobQueue")):
        parse_event(stranger)
    with pytest.raises(EventError, match=re.escape("detail.jobName")):
        parse_event({**event, "detail": {**event["detail"], "jobName": "someone-elses-job"}})


def test_shards_need_a_command_and_batch_settings_only_with_shards() -> None:
    from ec2batch.config import parse_config
    from ec2batch.errors import ConfigError

    with pytest.raises(ConfigError, match=re.escape("config.command: is required with shards above 1")):
        parse_config({"job": "big", "image": "x", "shards": 4})
    with pytest.raises(ConfigError, match=re.escape("config.batch: only applies with shards above 1")):
        parse_config({"job": "big", "image": "x", "batch": {"max_vcpus": 8}})
    with pytest.raises(ConfigError, match=re.escape("config.shards: 10001 is out of range")):
        parse_config({"job": "big", "image": "x", "command": ["a"], "shards": 10001})


def test_runs_json_status_and_logs_drill_into_the_shards(job: Job, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from ec2batch.cli import main

    run = started(job)
    at(job).handle(change(job, run))
    ended = ledger(job).require(job.name, run.run_id)
    stream = ended.shards[1].log_stream
    job.clients.logs.create_log_group(logGroupName="/aws/batch/job")  # where Batch writes without a group
    job.clients.logs.create_log_stream(logGroupName="/aws/batch/job", logStreamName=stream)
    job.clients.logs.put_log_events(
        logGroupName="/aws/batch/job",
        logStreamName=stream,
        logEvents=[{"timestamp": int(time.time() * 1000), "message": "shard 1 of 4"}],
    )
    cli = CliRunner()

    listed = json.loads(cli.invoke(main, ["runs", job.name, "--json"], catch_exceptions=False).output)[0]
    status = json.loads(cli.invoke(main, ["status", job.name, "--json"], catch_exceptions=False).output)
    shard_log = cli.invoke(main, ["logs", job.name, run.run_id, "--shard", "1"])
    beyond = cli.invoke(main, ["logs", job.name, run.run_id, "--shard", "4"])

    assert [s["index"] for s in listed["shards"]] == [0, 1, 2, 3] and listed["shards_summary"] == "4/4 succeeded"
    assert status["shards"] == 4 and status["latest_shards"] == "4/4 succeeded"
    assert shard_log.output == "shard 1 of 4\n", (shard_log.output, shard_log.exit_code, shard_log.exception, stream)
    assert beyond.exit_code == 1 and "--shard 4: run " in beyond.output and "has shards 0 to 3" in beyond.output
    [row] = json.loads(cli.invoke(main, ["cost", job.name, "--json"], catch_exceptions=False).output)["runs"]
    assert row["estimate"] is True and row["cost_usd"] == ended.cost_usd
    assert "(estimate: Batch shards)" in cli.invoke(main, ["cost", job.name], catch_exceptions=False).output


def test_the_local_stand_in_for_the_state_change_rule_sends_each_change_once_and_ends_the_run(job: Job) -> None:
    from ec2batch.local.batch_events import BatchEvents

    run = started(job)
    launcher = at(job)
    answers: list[dict[str, Any]] = []
    events = BatchEvents(job.clients, lambda event: answers.append(launcher.handle(event)))

    first = events.step()
    again = events.step()

    # The parent and its four children, each once, with what the launcher reads; nothing new the second time.
    assert sorted(e["detail"]["jobId"] for e in first) == sorted(
        [run.batch_job_id, *(f"{run.batch_job_id}:{i}" for i in range(4))]
    )
    assert {e["detail"]["jobName"] for e in first} == {batch_job_name(run.run_id)}
    assert again == []
    assert ledger(job).require(job.name, run.run_id).status == SUCCEEDED
    assert [a["outcome"] for a in answers].count("recorded") == 1  # the first event ended it; the rest: nothing
