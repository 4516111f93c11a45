"""Findings 11 and 12: the Docker engine going away mid-run fails the run within seconds, and a container
the previous agent created but never started is started, never taken for a success."""

from __future__ import annotations

from datetime import timedelta

import docker.errors
import requests.exceptions

from ec2batch.agent.container import wait_with_deadline
from ec2batch.ledger import FAILED, RUNNING, SUCCEEDED
from ec2batch.names import LABEL_JOB, LABEL_RUN_ID
from tests.conftest import Job
from tests.unit.agent.conftest import BOOTED, launch, ledger, machine_for
from tests.unit.agent.fakes import Clock, FakeContainer


def engine_dies_at_wait(number: int, *, back_after: float | None = None):
    def hook(engine, container) -> None:
        if engine.waits != number:
            return
        if back_after is None:
            engine.up = False
        else:
            engine.down_until = engine.clock.now() + timedelta(seconds=back_after)

    return hook


def test_an_engine_gone_mid_run_fails_the_run_within_seconds_not_at_max_runtime(job: Job, tmp_path) -> None:
    run = launch(job)
    machine = machine_for(job, run, tmp_path, runtime=3000)  # max runtime is 3600 s
    machine.docker.wait_hook = engine_dies_at_wait(3)

    machine.boot()

    failed = ledger(job).require(job.name, run.run_id)
    assert failed.status == FAILED
    assert failed.reason.startswith("engine: the Docker engine stopped answering while the job ran (5 reconnect")
    assert "No such file or directory" in failed.reason
    waited = (machine.clock.now() - machine.docker.all[0].started).total_seconds()
    assert waited < 30  # two 5 s polls, then 5 reconnect attempts 2 s apart: ~20 s, not an hour
    assert machine.clock.slept == [2, 2, 2, 2, 2]
    assert [n["status"] for n in job.notifications()] == [FAILED]
    assert machine.is_off


def test_an_engine_back_within_the_reconnect_attempts_lets_the_run_finish(job: Job, tmp_path) -> None:
    run = launch(job)
    machine = machine_for(job, run, tmp_path, runtime=60)
    machine.docker.wait_hook = engine_dies_at_wait(2, back_after=3)  # dockerd restarts in 3 s

    machine.boot()

    done = ledger(job).require(job.name, run.run_id)
    assert (done.status, done.exit_code) == (SUCCEEDED, 0)
    assert machine.clock.slept == [2, 2]  # two reconnect attempts failed, the third found it back


def previous_agent_created(machine, job: Job, run_id: str) -> FakeContainer:
    """The previous agent created the run's container and was killed before starting it."""
    ledger(job).transition(job.name, run_id, RUNNING, instance_id=machine.instance_id)
    return machine.docker.containers.create(
        job.config.image,
        name=f"ec2batch-{job.name}-{run_id}",
        labels={LABEL_JOB: job.name, LABEL_RUN_ID: run_id},
        environment={},
    )


def test_a_container_created_but_never_started_is_started_and_its_real_exit_code_recorded(job: Job, tmp_path) -> None:
    run = launch(job)
    machine = machine_for(job, run, tmp_path, runtime=120, exit_code=3)
    created = previous_agent_created(machine, job, run.run_id)

    machine.boot()

    done = ledger(job).require(job.name, run.run_id)
    assert (done.status, done.exit_code, done.reason) == (FAILED, 3, "exit code 3")
    assert machine.docker.started == [created.name]  # the one container, started once (then removed)
    assert done.container_started_at is not None and done.log_stream == f"{run.run_id}/job"


def test_a_created_container_that_cannot_be_started_fails_the_run_never_succeeds(job: Job, tmp_path) -> None:
    run = launch(job)
    machine = machine_for(job, run, tmp_path)
    created = previous_agent_created(machine, job, run.run_id)
    created.fail_start = docker.errors.APIError("500 Server Error", explanation="cannot start: no space left on device")

    machine.boot()

    done = ledger(job).require(job.name, run.run_id)
    assert done.status == FAILED and done.exit_code is None
    assert done.reason == (
        f"container: could not start {created.name} (created, never started): "
        "APIError: cannot start: no space left on device"
    )
    assert machine.is_off


class TimesOutAsConnectionErrors:
    """A container whose wait ends in the unix socket's 'Read timed out' ConnectionError `left` times."""

    name = "job"
    attrs: dict = {"State": {}}

    def __init__(self, clock: Clock, left: int) -> None:
        self.clock = clock
        self.left = left

    def wait(self, timeout: float) -> dict:
        if self.left:
            self.left -= 1
            self.clock.advance(timeout)
            raise requests.exceptions.ConnectionError(
                "UnixHTTPConnectionPool(host='localhost', port=None): Read timed out. (read timeout=5)"
            )
        return {"StatusCode": 0}

    def reload(self) -> None:
        pass


def test_a_long_job_whose_waits_time_out_as_connection_errors_is_waited_for_not_failed() -> None:
    clock = Clock(BOOTED)
    container = TimesOutAsConnectionErrors(clock, left=100)  # 500 s of 5 s polls

    outcome = wait_with_deadline(container, BOOTED + timedelta(hours=1), 30, clock.now, sleep=clock.sleep)

    assert (outcome.exit_code, outcome.timed_out) == (0, False)
    assert clock.slept == []
