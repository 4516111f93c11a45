"""Finding 16, the agent's part: billed time comes from one clock, and a secret in an exception's message
never reaches a log line (the formatter redacts tracebacks and never puts one over the `error` field)."""

from __future__ import annotations

import io
import json
import logging
from datetime import timedelta

import pytest

from ec2batch import jsonlog
from ec2batch.agent.secrets import Redactor
from ec2batch.ledger import FAILED, SUCCEEDED
from tests.conftest import make_job
from tests.unit.agent.conftest import BOOTED, launch, ledger, machine_for

SECRET = "s3cr3t-Value-4711-xyzzy"


@pytest.mark.parametrize("skew_hours", [-2, 0, 3])
def test_a_one_hour_run_is_billed_an_hour_whatever_the_agents_clock_says(job, tmp_path, skew_hours) -> None:
    run = launch(job)  # the launcher's clock stamps the start request
    machine = machine_for(job, run, tmp_path, start=BOOTED + timedelta(hours=skew_hours), runtime=3600)

    machine.boot()

    done = ledger(job).require(job.name, run.run_id)
    assert done.status == SUCCEEDED
    assert 3600 <= done.billed_seconds <= 3600 + 60  # the job's hour plus the agent's own seconds
    assert done.cost_usd == pytest.approx(done.billed_seconds / 3600 * 0.1159, abs=1e-6)


def test_the_log_formatter_keeps_the_callers_error_and_redacts_the_traceback() -> None:
    stream = io.StringIO()
    jsonlog.configure(stream=stream, redact=Redactor({"DB_PASSWORD": SECRET}))
    log = logging.getLogger("ec2batch.agent")
    try:
        raise RuntimeError(f"could not connect with password {SECRET}")
    except RuntimeError:
        log.exception("agent failed", extra=jsonlog.fields(error="RuntimeError: could not connect"))
    jsonlog.configure()

    line = json.loads(stream.getvalue())
    assert line["error"] == "RuntimeError: could not connect"
    assert "Traceback (most recent call last)" in line["traceback"]
    assert "could not connect with password ***" in line["traceback"]
    assert SECRET not in stream.getvalue()


def test_a_secret_in_an_exception_reaches_neither_the_run_nor_any_log_line(aws, tmp_path) -> None:
    parameter = "/ec2batch/daily-report/db-password"
    aws.ssm.put_parameter(Name=parameter, Value=SECRET, Type="SecureString")
    job = make_job(aws, secrets={"DB_PASSWORD": {"ssm": parameter}})
    run = launch(job)
    machine = machine_for(job, run, tmp_path)
    # An engine error that echoes the container's environment back, secret and all.
    machine.docker.fail_run = RuntimeError(f"create failed for env DB_PASSWORD={SECRET}")
    stream = io.StringIO()
    agent = machine.agent()
    jsonlog.configure(stream=stream, redact=agent.redact)

    agent.run()
    jsonlog.configure()

    failed = ledger(job).require(job.name, run.run_id)
    assert failed.status == FAILED and failed.reason == "RuntimeError: create failed for env DB_PASSWORD=***"
    lines = [json.loads(text) for text in stream.getvalue().splitlines()]
    [failure] = [line for line in lines if line["msg"] == "run failed"]
    assert "Traceback" in failure["traceback"] and "DB_PASSWORD=***" in failure["traceback"]
    sent = job.clients.logs.get_log_events(
        logGroupName=job.config.names.log_group, logStreamName=job.config.names.agent_log_stream(run.run_id)
    )["events"]
    assert any('"run failed"' in event["message"] for event in sent)
    assert SECRET not in stream.getvalue()
    assert SECRET not in json.dumps(sent)
    assert SECRET not in json.dumps([n for n in job.notifications()])
