"""The agent's side of attempts: it ends its own attempt through the retry policy, and a machine that was for
an earlier attempt of its run never claims the run."""

from __future__ import annotations

import json
from typing import Any

from ec2batch import attempts
from ec2batch.ledger import FAILED, PENDING, RUNNING, Ledger
from ec2batch.names import TAG_ATTEMPT
from tests.conftest import make_job
from tests.unit.agent.conftest import BOOTED, launch, ledger, machine_for


def sent_timers(job: Any) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    job.clients.sqs.meta.events.register(
        "provide-client-params.sqs.SendMessage", lambda params, **_: seen.append(json.loads(params["MessageBody"]))
    )
    return seen


def test_an_exit_code_the_policy_retries_makes_the_run_pending_for_its_next_attempt(aws, tmp_path) -> None:
    job = make_job(aws, retry={"attempts": 2, "exit_codes": [75]}, starting_deadline_seconds=3600)
    timers = sent_timers(job)
    run = launch(job)
    machine = machine_for(job, run, tmp_path, exit_code=75)

    assert machine.boot() == 0

    now = ledger(job).require(job.name, run.run_id)
    assert (now.status, now.attempt) == (PENDING, 2)
    [first] = now.attempts
    assert (first.status, first.exit_code, first.instance_id, first.cause) == (FAILED, 75, run.instance_id, "exit-code")
    assert first.billed_seconds is not None and first.billed_seconds >= 60
    assert [t["kind"] for t in timers] == ["retry"] and timers[0]["due"] == now.retry_at
    assert job.notifications() == []  # not ended: nothing to tell yet
    assert machine.is_off


def test_a_machine_for_an_attempt_the_run_has_moved_past_powers_off_without_claiming(aws, tmp_path) -> None:
    job = make_job(aws, retry={"attempts": 2}, starting_deadline_seconds=3600)
    run = launch(job)
    machine = machine_for(job, run, tmp_path)
    # Before this machine's agent came up, the reconciler ended attempt 1 (say its machine seemed lost).
    clocked = Ledger(job.clients.dynamodb, job.config.names.ledger_table, clock=lambda: BOOTED)
    attempts.end_attempt(
        job.clients, job.config, clocked, run, status=FAILED, cause="instance-lost", reason="lost", ended_at=BOOTED
    )
    assert machine.tags()[TAG_ATTEMPT] == "1"

    machine.boot()

    now = ledger(job).require(job.name, run.run_id)
    assert (now.status, now.attempt, now.instance_id) == (PENDING, 2, None)  # untouched: not claimed by attempt 1
    assert machine.docker.started == []  # the job never ran here
    assert machine.is_off
    assert RUNNING not in [a.status for a in now.attempts]
