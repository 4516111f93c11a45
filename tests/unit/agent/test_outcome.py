"""Finding 9: the outcome is never lost. The final ledger write is retried with backoff; if the ledger
stays out of reach the outcome is left on the instance (`ec2batch:outcome`) for the reconciler; an AWS
error before the claim still fails the tagged run, naming the step."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from ec2batch.launcher import Launcher
from ec2batch.ledger import FAILED, RUNNING, SUCCEEDED, TERMINAL
from ec2batch.names import TAG_OUTCOME
from ec2batch.outcome_tag import OutcomeTag
from tests.conftest import Job, inject_error
from tests.unit.agent.conftest import launch, ledger, machine_for


def fail_final_writes(job: Job, times: int, *, applied: bool = False) -> list[str]:
    """The next `times` UpdateItem calls that end a run fail (ServiceUnavailable); with `applied`, the write
    reaches the table first and only its answer is lost (a timeout after DynamoDB applied it)."""
    seen: list[str] = []
    client = job.clients.dynamodb

    def ends_a_run(params: dict[str, Any]) -> bool:
        values = params.get("ExpressionAttributeValues", {})
        return any(v.get("S") in TERMINAL for k, v in values.items() if k.startswith(":v"))

    last: list[bool] = [False]

    def look(params: dict[str, Any], **_: Any) -> None:
        last[0] = ends_a_run(params)

    def fail(event_name: str, **_: Any) -> None:
        if len(seen) < times and last[0]:
            seen.append(event_name)
            raise ClientError({"Error": {"Code": "ServiceUnavailable", "Message": "injected"}}, "UpdateItem")

    client.meta.events.register("before-parameter-build.dynamodb.UpdateItem", look)
    hook = "after-call.dynamodb.UpdateItem" if applied else "before-call.dynamodb.UpdateItem"
    client.meta.events.register(hook, fail)
    return seen


def outcome_tag(job: Job, instance_id: str) -> OutcomeTag | None:
    response = job.clients.ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [instance_id]}])
    return OutcomeTag.decode({t["Key"]: t["Value"] for t in response["Tags"]}.get(TAG_OUTCOME))


def test_a_final_write_that_fails_a_few_times_is_retried_with_backoff_until_recorded(job: Job, tmp_path) -> None:
    run = launch(job)
    machine = machine_for(job, run, tmp_path)
    failures = fail_final_writes(job, 3)

    machine.boot()

    assert len(failures) == 3
    assert machine.clock.slept == [1, 2, 4]
    assert ledger(job).require(job.name, run.run_id).status == SUCCEEDED
    assert outcome_tag(job, run.instance_id) is None
    assert machine.is_off


def test_a_ledger_out_of_reach_for_a_minute_leaves_the_outcome_on_the_instance(job: Job, tmp_path) -> None:
    run = launch(job)
    machine = machine_for(job, run, tmp_path, runtime=90)
    fail_final_writes(job, 1000)

    machine.boot()

    assert 50 <= sum(machine.clock.slept) <= 60  # bounded: about a minute of retries, then give up
    left = outcome_tag(job, run.instance_id)
    assert left is not None
    assert (left.run_id, left.status, left.exit_code) == (run.run_id, SUCCEEDED, 0)
    assert ledger(job).require(job.name, run.run_id).status == RUNNING  # the reconciler records it from the tag
    assert machine.is_off


def test_a_final_write_applied_but_unanswered_counts_as_recorded_and_notifies_once(job: Job, tmp_path) -> None:
    run = launch(job)
    machine = machine_for(job, run, tmp_path, exit_code=3)
    fail_final_writes(job, 1, applied=True)

    machine.boot()

    done = ledger(job).require(job.name, run.run_id)
    assert (done.status, done.exit_code, done.reason) == (FAILED, 3, "exit code 3")
    assert [(n["run_id"], n["status"]) for n in job.notifications()] == [(run.run_id, FAILED)]
    assert outcome_tag(job, run.instance_id) is None


@pytest.mark.parametrize("code", ["AccessDeniedException", "ThrottlingException"])
def test_an_aws_error_on_the_config_fails_the_tagged_run_naming_the_step_and_powers_off(
    job: Job, tmp_path, code: str
) -> None:
    run = launch(job)
    machine = machine_for(job, run, tmp_path)
    inject_error(job.clients.ssm, "GetParameter", [code])  # what is left once botocore's own retries gave up

    assert machine.boot() == 1

    failed = ledger(job).require(job.name, run.run_id)
    assert failed.status == FAILED
    assert failed.reason == f"reading the job config (SSM GetParameter): {code}: injected {code}"
    assert machine.docker.started == [] and machine.is_off


def test_a_claim_that_fails_is_recorded_and_notified(job: Job, tmp_path) -> None:
    run = launch(job)
    machine = machine_for(job, run, tmp_path)
    inject_error(job.clients.dynamodb, "UpdateItem", ["ProvisionedThroughputExceededException"])

    machine.boot()

    failed = ledger(job).require(job.name, run.run_id)
    assert failed.status == FAILED
    assert failed.reason.startswith("claiming the run (DynamoDB): ProvisionedThroughputExceededException")
    assert [(n["run_id"], n["status"]) for n in job.notifications()] == [(run.run_id, FAILED)]


def test_describe_tags_failing_falls_back_to_instance_metadata_and_the_run_still_gets_its_end(
    job: Job, tmp_path
) -> None:
    run = launch(job)
    machine = machine_for(job, run, tmp_path)
    inject_error(job.clients.ec2, "DescribeTags", ["UnauthorizedOperation"])
    inject_error(job.clients.ssm, "GetParameter", ["AccessDeniedException"])

    machine.boot()

    failed = ledger(job).require(job.name, run.run_id)
    assert failed.status == FAILED and failed.reason.startswith("reading the job config (SSM GetParameter): ")
    assert machine.is_off


def test_describe_tags_failing_alone_does_not_stop_the_run(job: Job, tmp_path) -> None:
    run = launch(job)
    machine = machine_for(job, run, tmp_path)
    inject_error(job.clients.ec2, "DescribeTags", ["UnauthorizedOperation"])

    machine.boot()

    assert ledger(job).require(job.name, run.run_id).status == SUCCEEDED


def test_a_claim_that_cannot_reach_the_ledger_leaves_a_failure_on_the_instance(job: Job, tmp_path) -> None:
    run = launch(job)
    machine = machine_for(job, run, tmp_path)
    for operation in ("GetItem", "UpdateItem"):
        inject_error(job.clients.dynamodb, operation, ["AccessDeniedException"] * 1000)

    assert machine.boot() == 1

    left = outcome_tag(job, run.instance_id)
    assert left is not None and (left.run_id, left.status) == (run.run_id, FAILED)
    assert left.reason.startswith("claiming the run (DynamoDB): AccessDeniedException")
    assert machine.docker.started == [] and machine.is_off


def test_describe_tags_failing_without_tags_in_metadata_is_retried(job: Job, tmp_path) -> None:
    run = launch(job)
    machine = machine_for(job, run, tmp_path)
    machine.metadata_tags = False  # instance_metadata_tags disabled: IMDS has none
    inject_error(job.clients.ec2, "DescribeTags", ["UnauthorizedOperation", "RequestLimitExceeded"])

    machine.boot()

    assert machine.clock.slept[:2] == [1, 2]
    assert ledger(job).require(job.name, run.run_id).status == SUCCEEDED


def test_describe_tags_failing_for_good_without_metadata_powers_off_within_bounds(job: Job, tmp_path) -> None:
    run = launch(job)
    machine = machine_for(job, run, tmp_path)
    machine.metadata_tags = False
    inject_error(job.clients.ec2, "DescribeTags", ["UnauthorizedOperation"] * 100)

    assert machine.boot() == 1

    assert sum(machine.clock.slept) <= 15
    assert machine.docker.started == [] and machine.is_off


def test_the_agents_notification_is_recorded_so_the_next_planner_tick_does_not_send_it_again(
    job: Job, tmp_path
) -> None:
    run = launch(job)
    machine = machine_for(job, run, tmp_path, exit_code=3)
    machine.boot()
    job.clients.ec2.stop_instances(InstanceIds=[run.instance_id])  # the power-off

    tick = Launcher(job.clients, clock=lambda: machine.clock.now() + timedelta(minutes=15), sleep=lambda s: None)
    tick.handle({"action": "plan", "job": job.name})

    assert ledger(job).require(job.name, run.run_id).notified_at is not None
    assert [(n["run_id"], n["status"]) for n in job.notifications()] == [(run.run_id, FAILED)]


@pytest.mark.parametrize("field", ["instance_types", "subnet_ids"])
def test_a_nested_value_in_the_deployed_config_fails_the_run_naming_the_field_not_left_starting(
    job: Job, tmp_path, field: str
) -> None:
    """Finding 15, the agent's part: the config was changed to a bad one after the launch; the agent's boot
    must end the run with the field named, not crash and leave it STARTING until the deadline."""
    run = launch(job)
    doc = job.config.to_document()
    doc[field] = [doc[field][0], [doc[field][0]]]
    job.clients.ssm.put_parameter(
        Name=job.config.names.config_parameter, Value=json.dumps(doc), Type="SecureString", Overwrite=True
    )
    machine = machine_for(job, run, tmp_path)

    assert machine.boot() == 1

    failed = ledger(job).require(job.name, run.run_id)
    assert failed.status == FAILED and failed.ended_at
    assert failed.reason.startswith("bad config: ")
    assert f"config.{field}[1]: must be a non-empty string" in failed.reason
    assert machine.docker.started == [] and machine.is_off
