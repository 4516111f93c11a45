"""Finding 8: which run a boot is for. A run that has ended is never run again, by a restarted agent or
a machine started for it too late; only a boot with no run waiting for it is a `boot` run."""

from __future__ import annotations

from datetime import timedelta

import pytest
from botocore.exceptions import ClientError

from ec2batch.launcher import Launcher
from ec2batch.ledger import CANCELLED, RUNNING, SKIPPED, SUCCEEDED
from tests.conftest import Job, make_job
from tests.unit.agent.conftest import launch, ledger, machine_for


def runs(job: Job) -> list:
    return ledger(job).list_runs(job.name, limit=50)


def test_the_agent_claims_its_run_runs_the_job_records_success_and_powers_off(job: Job, tmp_path) -> None:
    run = launch(job)
    machine = machine_for(job, run, tmp_path, runtime=42)

    assert machine.boot() == 0

    done = ledger(job).require(job.name, run.run_id)
    assert (done.status, done.exit_code, done.instance_id) == (SUCCEEDED, 0, run.instance_id)
    assert done.container_started_at and done.instance_running_at and done.log_stream == f"{run.run_id}/job"
    assert machine.docker.started == [f"ec2batch-{job.name}-{run.run_id}"]
    assert machine.is_off


def test_a_restarted_agent_after_the_outcome_powers_off_without_running_anything(aws, tmp_path) -> None:
    job = make_job(aws, boot_without_run="run")  # where a wrong "boot run" would run the job again
    run = launch(job)
    machine = machine_for(job, run, tmp_path)
    machine.boot()
    assert ledger(job).require(job.name, run.run_id).status == SUCCEEDED

    assert machine.boot() == 0  # systemd started the agent again in the same boot

    assert [r.run_id for r in runs(job)] == [run.run_id]  # no boot run recorded
    assert len(machine.docker.started) == 1  # the job did not run again
    assert machine.is_off


def test_a_machine_started_for_a_run_that_ended_before_the_claim_powers_off_without_acting(aws, tmp_path) -> None:
    job = make_job(aws, boot_without_run="run")
    run = launch(job)
    ledger(job).transition(job.name, run.run_id, CANCELLED, reason="cancelled by a person")
    machine = machine_for(job, run, tmp_path)

    assert machine.boot() == 0

    assert [(r.run_id, r.status) for r in runs(job)] == [(run.run_id, CANCELLED)]
    assert machine.docker.started == []
    assert machine.is_off


def test_a_restart_that_cannot_tell_this_boot_apart_never_runs_an_ended_run(aws, tmp_path) -> None:
    job = make_job(aws, boot_without_run="run")
    run = launch(job)
    machine = machine_for(job, run, tmp_path)
    machine.runtime_dir = None  # no RuntimeDirectory (an older unit): play safe
    machine.boot()

    machine.boot()

    assert [r.run_id for r in runs(job)] == [run.run_id]
    assert len(machine.docker.started) == 1


def test_a_machine_started_again_by_hand_after_its_run_is_a_boot_run(job: Job, tmp_path) -> None:
    run = launch(job)
    machine = machine_for(job, run, tmp_path)
    machine.boot()
    machine.reboot()  # powered off, then someone starts it by hand: the tag still names the old run

    machine.boot()

    boot = next(r for r in runs(job) if r.trigger == "boot")
    assert boot.status == SKIPPED
    assert boot.reason == (
        f"booted with no run waiting (tag points at {run.run_id}, SUCCEEDED); boot_without_run is poweroff"
    )
    assert len(machine.docker.started) == 1


def test_a_boot_run_is_run_once_even_if_the_agent_restarts_after_it(aws, tmp_path) -> None:
    job = make_job(aws, boot_without_run="run")
    run = launch(job)
    job.clients.ec2.delete_tags(Resources=[run.instance_id], Tags=[{"Key": "ec2batch:run-id"}])
    ledger(job).transition(job.name, run.run_id, CANCELLED)
    machine = machine_for(job, run, tmp_path)

    machine.boot()  # no run id tag: a boot run, run as configured
    machine.boot()  # the agent restarted in the same boot

    boots = [r for r in runs(job) if r.trigger == "boot"]
    assert [(r.status, r.reason) for r in boots] == [(SUCCEEDED, None)]
    assert len(machine.docker.started) == 1


def test_a_boot_with_no_run_id_tag_is_recorded_as_a_skipped_boot_run(job: Job, tmp_path) -> None:
    run = launch(job)
    job.clients.ec2.delete_tags(Resources=[run.instance_id], Tags=[{"Key": "ec2batch:run-id"}])
    machine = machine_for(job, run, tmp_path)

    machine.boot()

    boot = next(r for r in runs(job) if r.trigger == "boot")
    assert (boot.status, boot.reason) == (
        SKIPPED,
        "booted with no run waiting (no run id tag); boot_without_run is poweroff",
    )
    assert machine.docker.started == [] and machine.is_off


def test_an_agent_restarted_mid_run_re_attaches_instead_of_starting_another_container(job: Job, tmp_path) -> None:
    run = launch(job)
    machine = machine_for(job, run, tmp_path, runtime=600)
    machine.docker.wait_hook = crash_on_first_wait
    with pytest.raises(AgentKilled):
        machine.boot()  # the first agent dies while the job runs
    assert ledger(job).require(job.name, run.run_id).status == RUNNING
    machine.docker.wait_hook = None

    machine.boot()

    done = ledger(job).require(job.name, run.run_id)
    assert (done.status, done.exit_code) == (SUCCEEDED, 0)
    assert len(machine.docker.started) == 1


class AgentKilled(BaseException):
    """Not an Exception: like SIGKILL, nothing in the agent catches it."""


def crash_on_first_wait(engine, container) -> None:
    if engine.waits == 1:
        raise AgentKilled()


def test_an_own_claim_whose_answer_was_lost_is_taken_as_the_agents_never_as_someone_elses(job: Job, tmp_path) -> None:
    """botocore retries an UpdateItem DynamoDB applied but did not answer; the retry fails its condition."""
    run = launch(job)
    machine = machine_for(job, run, tmp_path)
    lost: list[str] = []

    def claims(params, **_) -> None:
        if {"S": RUNNING} in params["ExpressionAttributeValues"].values():
            lost.append("claim")

    def answer_lost(**_) -> None:
        if lost == ["claim"]:
            lost.append("answered")
            raise ClientError(
                {"Error": {"Code": "ConditionalCheckFailedException", "Message": "the retry's condition failed"}},
                "UpdateItem",
            )

    job.clients.dynamodb.meta.events.register("before-parameter-build.dynamodb.UpdateItem", claims)
    job.clients.dynamodb.meta.events.register("after-call.dynamodb.UpdateItem", answer_lost)

    machine.boot()

    assert lost[:2] == ["claim", "answered"]
    assert [(r.run_id, r.status) for r in runs(job)] == [(run.run_id, SUCCEEDED)]  # no SKIPPED boot run
    assert len(machine.docker.started) == 1


def test_a_boot_run_on_a_machine_started_by_hand_is_not_stopped_by_the_planner_tick(aws, tmp_path) -> None:
    """The tag names the ended run; the boot run must be what the tag names, or the reconciler stops it."""
    job = make_job(aws, boot_without_run="run")
    run = launch(job)
    machine = machine_for(job, run, tmp_path, runtime=1800)
    machine.boot()
    machine.reboot()
    states: list[str] = []

    def planner_tick_mid_run(engine, container) -> None:
        if not states:  # the boot run's job is running
            Launcher(
                job.clients, clock=lambda: machine.clock.now() + timedelta(minutes=5), sleep=lambda s: None
            ).handle({"action": "plan", "job": job.name})
            states.append(job.instances()[0]["State"]["Name"])

    machine.docker.wait_hook = planner_tick_mid_run
    machine.boot()

    assert states == ["running"]
    boot = next(r for r in runs(job) if r.trigger == "boot")
    assert boot.status == SUCCEEDED
    assert machine.tags()["ec2batch:run-id"] == boot.run_id


def test_a_runtime_directory_that_cannot_be_written_makes_the_agent_play_safe(aws, tmp_path) -> None:
    job = make_job(aws, boot_without_run="run")
    run = launch(job)
    machine = machine_for(job, run, tmp_path)
    machine.runtime_dir = tmp_path / "not-a-directory"
    machine.runtime_dir.write_text("")  # a file where the directory should be: no notes can be kept
    machine.boot()

    machine.boot()  # restarted after the outcome: without notes it must not take this for a hand start

    assert [r.run_id for r in runs(job)] == [run.run_id]
    assert len(machine.docker.started) == 1
