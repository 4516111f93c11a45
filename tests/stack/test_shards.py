"""Issue 14 on the local stack: a sharded job's array job runs its children as real containers (moto's Batch
on the stack's engine), each learning its index through the job definition's shim, its output in the job's
log group under the stream DescribeJobs names (docs/shards.md, docs/local-stack.md#aws-batch).

Runs go through the launcher (SubmitJob per run) and are followed by the local stand-in for the sharded job's
EventBridge rule (ec2batch.local.batch_events), as on AWS.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from ec2batch.names import TAG_JOB
from ec2batch.runlogs import read_stream

from .conftest import LocalJob

pytestmark = pytest.mark.stack

SHARDS = 4


@pytest.fixture
def sharded_job(deploy: Callable[..., LocalJob]) -> LocalJob:
    return deploy(
        "t-shards",
        shards=SHARDS,
        command=["python3", "/app/report.py"],  # Batch's command replaces the image's CMD
        env={"REPORT_ROWS": "4000"},
        max_runtime_seconds=300,
    )


def test_a_run_of_four_shards_succeeds_with_a_record_and_a_log_stream_per_shard(sharded_job: LocalJob) -> None:
    """Issue 14's stack test: the launcher submits the run's array job, Batch's state changes (the local
    stand-in for the EventBridge rule) bring the run up to date, and it ends with one record per shard."""
    run_id = sharded_job.trigger()["run_id"]

    run = sharded_job.wait_run(run_id, timeout=240)

    assert run.status == "SUCCEEDED", run.reason
    assert [(s.index, s.status) for s in run.shards] == [(i, "SUCCEEDED") for i in range(SHARDS)]
    streams = {s.log_stream for s in run.shards}
    assert len(streams) == SHARDS and None not in streams
    for shard in run.shards:
        lines = [m.message for m in read_stream(sharded_job.clients.logs, sharded_job.config.names.log_group,
                                                shard.log_stream)[0]]  # fmt: skip
        assert f"shard {shard.index} of {SHARDS}" in lines
        assert f"partial report written: shard {shard.index} of {SHARDS}, 1000 rows" in " ".join(lines)
    assert run.cost_usd is not None  # an estimate, per shard
    ours = sharded_job.clients.ec2.describe_instances(
        Filters=[{"Name": f"tag:{TAG_JOB}", "Values": [sharded_job.name]}]
    )
    assert ours["Reservations"] == []  # no machine of ours ran: Batch's did


def test_one_failing_shard_fails_the_run_naming_it_and_notifies_once(sharded_job: LocalJob) -> None:
    inbox = sharded_job.inbox()
    run_id = sharded_job.trigger(env={"JOB_FAIL_SHARD": "2"})["run_id"]

    run = sharded_job.wait_run(run_id, timeout=240)

    assert run.status == "FAILED"
    assert run.reason == "1 of 4 shards failed: 2 (exit 3)"
    assert {s.index: s.status for s in run.shards} == {0: "SUCCEEDED", 1: "SUCCEEDED", 2: "FAILED", 3: "SUCCEEDED"}
    failed = next(s for s in run.shards if s.index == 2)
    lines = [m.message for m in read_stream(sharded_job.clients.logs, sharded_job.config.names.log_group,
                                            failed.log_stream)[0]]  # fmt: skip
    assert "failing on purpose: JOB_FAIL_SHARD=2" in lines
    sqs = sharded_job.clients.sqs
    messages = sqs.receive_message(QueueUrl=inbox, MaxNumberOfMessages=10, WaitTimeSeconds=5)["Messages"]
    [notice] = [json.loads(json.loads(m["Body"])["Message"]) for m in messages]  # once, for all four shards
    assert (notice["run_id"], notice["status"]) == (run_id, "FAILED") and "2 (exit 3)" in notice["reason"]
