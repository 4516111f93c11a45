"""`run-at` records the run and queues its timer, or records nothing and says so (faults at the wire)."""

from __future__ import annotations

import json
from typing import Any

from click.testing import CliRunner

from ec2batch.cli import main
from ec2batch.ledger import PLANNED, Ledger
from tests.conftest import Faults, Job


def runs(job: Job) -> list[Any]:
    return Ledger(job.clients.dynamodb, job.config.names.ledger_table).list_runs(job.name)


def queued(job: Job) -> list[dict[str, Any]]:
    url = job.clients.sqs.get_queue_url(QueueName=job.config.names.timer_queue)["QueueUrl"]
    attributes = job.clients.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    return [attributes["ApproximateNumberOfMessages"], attributes["ApproximateNumberOfMessagesDelayed"]]


def run_at(*args: str) -> Any:
    return CliRunner().invoke(main, ["run-at", *args])


def test_a_timer_that_cannot_be_queued_leaves_no_run_and_the_retry_runs_once(job: Job, faults: Faults) -> None:
    faults.at("sqs", "SendMessage", "error")

    failed = run_at(job.name, "--in", "90s")

    assert failed.exit_code == 1
    assert failed.output.count("\n") == 1
    assert failed.output.startswith("Error: nothing was planned: the run's timer could not be queued (ClientError")
    assert failed.output.rstrip().endswith("try again")
    assert runs(job) == [] and queued(job) == ["0", "0"]

    retried = run_at(job.name, "--in", "90s", "--json")

    assert retried.exit_code == 0, retried.output
    [run] = runs(job)
    assert run.status == PLANNED and run.start_timer_sent_at
    assert json.loads(retried.output)["run_id"] == run.run_id
    assert queued(job) == ["0", "1"]  # one delayed timer: the retry's


def test_when_the_run_cannot_be_taken_back_either_the_error_names_it_and_how_it_goes_on(
    job: Job, faults: Faults
) -> None:
    faults.at("sqs", "SendMessage", "error").at("dynamodb", "DeleteItem", "error")

    failed = run_at(job.name, "--in", "90s")

    [run] = runs(job)
    assert failed.exit_code == 1 and failed.output.count("\n") == 1
    assert f"run {run.run_id} was recorded but its timer could not be queued" in failed.output
    assert f"ec2batch cancel {job.name} {run.run_id}" in failed.output
    assert run.status == PLANNED and not run.start_timer_sent_at  # so the planner's next tick sends it


def test_a_failed_record_leaves_nothing_either(job: Job, faults: Faults) -> None:
    faults.at("dynamodb", "TransactWriteItems", "error")

    failed = run_at(job.name, "--in", "90s")

    assert failed.exit_code == 1 and failed.output.startswith("Error: nothing was planned")
    assert runs(job) == [] and queued(job) == ["0", "0"]


def test_a_run_due_later_is_recorded_without_a_timer_for_the_planner(job: Job, faults: Faults) -> None:
    result = run_at(job.name, "--in", "2h")

    [run] = runs(job)
    assert result.exit_code == 0 and "the planner will send its timer" in result.output
    assert run.status == PLANNED and not run.start_timer_sent_at
    assert ("sqs", "SendMessage") not in faults.seen
