"""Issue 14 on the local stack: a sharded job's array job runs its children as real containers (moto's Batch
on the stack's engine), each learning its index through the job definition's shim, its output in the job's
log group under the stream DescribeJobs names (docs/shards.md, docs/local-stack.md#aws-batch).

The launcher's side (SubmitJob per run, shard records, the reconciler) comes with its own tests; these submit
the array job the way it will, with boto3.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from ec2batch.batch import SHARD_COUNT_VARIABLE
from ec2batch.ledger import new_run_id, utcnow
from ec2batch.runlogs import read_stream

from .conftest import LocalJob

pytestmark = pytest.mark.stack

SHARDS = 4
ENDED = ("SUCCEEDED", "FAILED")


def submit(job: LocalJob, size: int, **env: str) -> str:
    """SubmitJob as the launcher does: one array job per run, named after the run; returns the parent's id."""
    names = job.config.names
    run_id = new_run_id("manual", utcnow())
    environment = [{"name": SHARD_COUNT_VARIABLE, "value": str(size)}]
    environment += [{"name": k, "value": v} for k, v in sorted(env.items())]
    response = batch_api(job).submit_job(
        jobName=run_id.replace(".", "_"),  # Batch job names: letters, digits, '-' and '_'
        jobQueue=names.batch_job_queue,
        jobDefinition=names.batch_job_definition,
        arrayProperties={"size": size},
        containerOverrides={"environment": environment},
    )
    return response["jobId"]


def batch_api(job: LocalJob) -> Any:
    return job.clients.session.client("batch")


def wait_children(job: LocalJob, parent_id: str, size: int, timeout: float = 180) -> dict[int, dict[str, Any]]:
    """The children of `parent_id` by index, once every one has ended."""
    api = batch_api(job)
    deadline = time.monotonic() + timeout
    children: dict[int, dict[str, Any]] = {}
    while time.monotonic() < deadline:
        ids = [s["jobId"] for s in api.list_jobs(arrayJobId=parent_id)["jobSummaryList"]]
        described = api.describe_jobs(jobs=ids)["jobs"] if ids else []
        children = {int(c["jobId"].rsplit(":", 1)[1]): c for c in described}
        if len(children) == size and all(c["status"] in ENDED for c in children.values()):
            return children
        time.sleep(0.5)
    raise AssertionError(f"children of {parent_id} not all ended in {timeout}s: " + _statuses(children))


def _statuses(children: dict[int, dict[str, Any]]) -> str:
    return ", ".join(f"{i}: {c['status']}" for i, c in sorted(children.items()))


def output(job: LocalJob, child: dict[str, Any]) -> list[str]:
    """A child's lines, where `ec2batch logs` reads them: the job's group, the stream DescribeJobs names."""
    stream = child["container"]["logStreamName"]
    return [line.message for line in read_stream(job.clients.logs, job.config.names.log_group, stream)[0]]


@pytest.fixture
def sharded_job(deploy: Callable[..., LocalJob]) -> LocalJob:
    return deploy(
        "t-shards",
        shards=SHARDS,
        command=["python3", "/app/report.py"],  # Batch's command replaces the image's CMD
        env={"REPORT_ROWS": "4000"},
        max_runtime_seconds=300,
    )


def test_each_shard_runs_as_a_batch_child_and_says_which_part_it_did(sharded_job: LocalJob) -> None:
    parent_id = submit(sharded_job, SHARDS)

    children = wait_children(sharded_job, parent_id, SHARDS)

    assert sorted(children) == list(range(SHARDS))
    for index, child in children.items():
        assert child["status"] == "SUCCEEDED", (index, child.get("statusReason"))
        lines = output(sharded_job, child)
        assert f"shard {index} of {SHARDS}" in lines
        assert f"partial report written: shard {index} of {SHARDS}, 1000 rows" in " ".join(lines)
    stream = children[0]["container"]["logStreamName"]
    assert stream == f"shards/default/{parent_id}-0"
    [parent] = batch_api(sharded_job).describe_jobs(jobs=[parent_id])["jobs"]
    assert parent["status"] == "SUCCEEDED"
    assert parent["arrayProperties"]["statusSummary"]["SUCCEEDED"] == SHARDS


def test_a_failing_shard_fails_alone_with_its_exit_code(sharded_job: LocalJob) -> None:
    parent_id = submit(sharded_job, SHARDS, JOB_FAIL_SHARD="2")

    children = wait_children(sharded_job, parent_id, SHARDS)

    statuses = {i: c["status"] for i, c in children.items()}
    assert statuses == {0: "SUCCEEDED", 1: "SUCCEEDED", 2: "FAILED", 3: "SUCCEEDED"}
    assert children[2]["container"]["exitCode"] == 3
    assert "failing on purpose: JOB_FAIL_SHARD=2" in output(sharded_job, children[2])
    [parent] = batch_api(sharded_job).describe_jobs(jobs=[parent_id])["jobs"]
    summary = parent["arrayProperties"]["statusSummary"]
    assert (summary["SUCCEEDED"], summary["FAILED"]) == (3, 1)
