"""Schedules, exact-time runs and external deadlines, through the local stack's emulators."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from ec2batch import timers
from ec2batch.ledger import RUNNING, SUCCEEDED, TIMED_OUT, parse_time, scheduled_run_id, utcnow
from ec2batch.local.ec2 import CONTAINER_PREFIX
from ec2batch.local.scheduler_emulator import put_job_schedule

pytestmark = pytest.mark.stack


def test_a_cron_schedule_a_minute_ahead_fires_once_at_its_time_and_the_run_succeeds(deploy) -> None:
    job = deploy("t-cron", env={"REPORT_ROWS": "1000"})
    now = utcnow()
    due = (now + timedelta(minutes=1 if now.second < 45 else 2)).replace(second=0, microsecond=0)
    put_job_schedule(job.clients, job.name, f"cron({due.minute} {due.hour} * * ? *)", "UTC")
    run_id = scheduled_run_id(due)

    deadline = time.monotonic() + (due - now).total_seconds() + 30
    while time.monotonic() < deadline and job.ledger.get(job.name, run_id) is None:
        time.sleep(0.5)
    run = job.wait_run(run_id)

    assert run.trigger == "schedule"
    assert run.scheduled_at == due.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    fired_late = (parse_time(run.triggered_at) - due).total_seconds()
    assert 0 <= fired_late < 30  # at its minute, never before (how close: `make bench`, not a test)
    assert (run.status, run.exit_code) == (SUCCEEDED, 0)
    assert job.job_lines(run_id)[-1].startswith("report written: 1000 rows")
    assert job.wait_instance(run.instance_id) == "stopped"
    time.sleep(3)
    assert [r.run_id for r in job.ledger.list_runs(job.name)] == [run_id]  # exactly one


def test_a_run_at_an_exact_second_fires_within_a_second_and_succeeds(deploy) -> None:
    job = deploy("t-run-at", env={"REPORT_ROWS": "10"})
    due = (utcnow() + timedelta(seconds=8)).replace(microsecond=0)

    planned = timers.plan_run(job.clients, job.config, due)
    run = job.wait_run(planned.run_id)

    assert 0 <= (parse_time(run.triggered_at) - due).total_seconds() < 10  # never early; precision is benched
    assert (run.status, run.trigger) == (SUCCEEDED, "at")
    assert job.wait_instance(run.instance_id) == "stopped"


def test_a_dead_agent_is_caught_by_the_deadline_which_stops_the_machine(deploy, stack) -> None:
    job = deploy(
        "t-deadline",
        max_runtime_seconds=10,
        stop_grace_seconds=2,
        deadline_slack_seconds=5,
        env={"REPORT_ROWS": "10", "JOB_SECONDS": "300"},
    )
    run_id = job.trigger()["run_id"]
    running = job.wait_run(run_id, until=lambda r: r.status == RUNNING and r.container_started_at is not None)
    instance = stack.docker().containers.get(CONTAINER_PREFIX + running.instance_id)
    # The agent dies for good (stopped, so systemd does not bring it back); the job's container runs on.
    assert instance.exec_run(["systemctl", "stop", "ec2batch-agent.service"]).exit_code == 0

    run = job.wait_run(run_id, timeout=60)

    assert run.status == TIMED_OUT
    assert run.reason.startswith("deadline: still RUNNING")
    ended_after = (parse_time(run.ended_at) - parse_time(run.start_requested_at)).total_seconds()
    assert 17 <= ended_after < 60  # never before max runtime 10 + grace 2 + slack 5 (from the start request)
    assert job.wait_instance(run.instance_id, timeout=30) == "stopped"
    assert run.billed_seconds is not None and run.billed_seconds >= 60
