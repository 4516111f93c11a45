"""Issue 11: the job's own role through the container credentials protocol, never the machine's.

The endpoint is read by botocore's own container provider (the code every boto3 job runs), and the
credentials it serves are checked against STS (moto): the identity is the job role, with the run id in
the session name.
"""

from __future__ import annotations

import io
import json
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.credentials import ContainerProvider

from ec2batch import jsonlog
from ec2batch.agent.credentials import (
    TOKEN_VARIABLE,
    URI_VARIABLE,
    CredentialsEndpoint,
    JobCredentials,
    session_name,
)
from ec2batch.ledger import FAILED, SUCCEEDED
from tests.conftest import REGION, make_job
from tests.unit.agent.conftest import launch, ledger, machine_for
from tests.unit.agent.fakes import Clock

JOB_ROLE = "arn:aws:iam::123456789012:role/ec2batch-daily-report-job"
RUN_ID = "20261124T020000.000Z-schedule"
LOCAL = {"credentials_listen": ("127.0.0.1", 0), "credentials_uri": None}


def get(uri: str, token: str | None) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(uri, headers={"Authorization": token} if token is not None else {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def identity_of(document: dict[str, str]) -> str:
    sts = boto3.client(
        "sts",
        region_name=REGION,
        aws_access_key_id=document["AccessKeyId"],
        aws_secret_access_key=document["SecretAccessKey"],
        aws_session_token=document["Token"],
    )
    return sts.get_caller_identity()["Arn"]


@pytest.fixture
def endpoint(aws) -> Any:
    source = JobCredentials(aws.sts, JOB_ROLE, RUN_ID, clock=lambda: datetime.now(UTC))
    served = CredentialsEndpoint(source, token="the-run-token").start()
    yield served
    served.close()


def test_a_request_without_the_runs_token_or_with_another_is_refused_401(endpoint) -> None:
    assert get(endpoint.loopback_uri, None)[0] == 401
    status, body = get(endpoint.loopback_uri, "someone-elses-token")
    assert status == 401 and TOKEN_VARIABLE in body["message"]
    assert get(endpoint.loopback_uri.replace("/v1/credentials", "/latest/meta-data"), "the-run-token")[0] == 404


def test_the_sdks_own_container_provider_reads_the_job_roles_session_named_after_the_run(endpoint) -> None:
    provider = ContainerProvider(environ={URI_VARIABLE: endpoint.loopback_uri, TOKEN_VARIABLE: "the-run-token"})
    credentials = provider.load()
    frozen = credentials.get_frozen_credentials()

    assert credentials.method == "container-role"
    arn = identity_of({"AccessKeyId": frozen.access_key, "SecretAccessKey": frozen.secret_key, "Token": frozen.token})
    assert arn == f"arn:aws:sts::123456789012:assumed-role/ec2batch-daily-report-job/ec2batch-{RUN_ID}"
    status, body = get(endpoint.loopback_uri, "the-run-token")
    assert status == 200 and set(body) == {"AccessKeyId", "SecretAccessKey", "Token", "Expiration", "RoleArn"}
    assert datetime.strptime(body["Expiration"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC) > datetime.now(UTC)


def test_credentials_are_assumed_again_once_they_are_half_an_hour_old_never_served_near_expiry(aws) -> None:
    clock = Clock(datetime.now(UTC))  # moto stamps Expiration from the real clock
    source = JobCredentials(aws.sts, JOB_ROLE, RUN_ID, clock=clock.now)
    first = source.current()
    clock.advance(29 * 60)
    assert source.current() == first  # SDKs cache for up to 45 minutes; no need to ask STS more often
    clock.advance(60)
    second = source.current()
    assert second.access_key_id != first.access_key_id
    # Each set is fetched with at least half of its hour left, so whatever a job caches stays valid.
    for served in (first, second):
        assert served.expiration - served.fetched_at >= timedelta(minutes=30)


def test_an_sts_outage_serves_the_credentials_still_valid_and_fails_loudly_once_they_are_not(aws) -> None:
    clock = Clock(datetime.now(UTC))  # moto stamps Expiration from the real clock

    class Flaky:
        down = False

        def assume_role(self, **kwargs: Any) -> Any:
            if self.down:
                raise ConnectionError("sts unreachable")
            return aws.sts.assume_role(**kwargs)

    sts = Flaky()
    source = JobCredentials(sts, JOB_ROLE, RUN_ID, clock=clock.now, refresh_after=60)
    first = source.current()
    sts.down = True
    clock.advance(120)
    assert source.current() == first
    served = CredentialsEndpoint(source, token="t").start()
    try:
        clock.advance(3600)  # first has expired by now
        status, body = get(served.loopback_uri, "t")
    finally:
        served.close()
    assert status == 503 and JOB_ROLE in body["message"]


def test_session_names_fit_sts_rules_for_every_run_id_shape() -> None:
    for run_id in (RUN_ID, "20261124T020000.000Z-manual-0a1b2c3d", "20261124T020000.000Z-boot-0a1b2c3d"):
        name = session_name(run_id)
        assert len(name) <= 64 and run_id in name


# ---------------------------------------------------------------- the agent serving its job


def job_fetches_credentials(seen: list[dict[str, Any]]) -> Any:
    """A wait hook standing in for the job's code: it asks the endpoint it was given, like an SDK would."""

    def hook(engine: Any, container: Any) -> None:
        if not seen:
            status, body = get(container.env[URI_VARIABLE], container.env[TOKEN_VARIABLE])
            seen.append({"status": status, "arn": identity_of(body), "env": dict(container.env), **body})

    return hook


def test_the_agent_gives_the_job_the_job_role_and_its_run_never_the_machines(aws, tmp_path) -> None:
    job = make_job(aws, job_role_arn=JOB_ROLE)
    run = launch(job)
    machine = machine_for(job, run, tmp_path)
    seen: list[dict[str, Any]] = []
    machine.docker.wait_hook = job_fetches_credentials(seen)

    machine.boot(**LOCAL)

    assert ledger(job).require(job.name, run.run_id).status == SUCCEEDED
    [fetched] = seen
    assert fetched["arn"].endswith(f":assumed-role/ec2batch-daily-report-job/ec2batch-{run.run_id}")
    env = fetched["env"]
    assert (env["EC2BATCH_JOB"], env["EC2BATCH_RUN_ID"], env["EC2BATCH_TRIGGER"]) == (job.name, run.run_id, "schedule")
    assert env["EC2BATCH_SCHEDULED_TIME"] == run.scheduled_at and env["AWS_REGION"] == REGION
    assert not {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"} & set(env)
    # The endpoint goes away with the run, and so does the container whose inspect shows the environment.
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(env[URI_VARIABLE], timeout=2)
    assert machine.docker.all == []


def test_the_job_runs_on_its_own_network_unless_the_config_or_the_machine_says_host(aws, tmp_path) -> None:
    job = make_job(aws)
    run = launch(job)
    machine = machine_for(job, run, tmp_path)
    seen: list[Any] = []
    machine.docker.wait_hook = lambda engine, container: seen.append(container)

    machine.boot(job_cgroup_parent="ec2batch-jobs.slice")

    container = seen[0]
    assert container.options["network_mode"] == "bridge"
    assert container.options["cgroup_parent"] == "ec2batch-jobs.slice"
    assert URI_VARIABLE not in container.env  # no job role configured: no endpoint, no AWS access at all


@pytest.mark.parametrize(
    ("configured", "machine_says", "expected"), [("host", None, "host"), ("bridge", "host", "host")]
)
def test_host_networking_when_the_config_asks_or_the_machine_has_no_bridge(
    aws, tmp_path, configured, machine_says, expected
) -> None:
    job = make_job(aws, network=configured)
    run = launch(job)
    machine = machine_for(job, run, tmp_path)
    seen: list[Any] = []
    machine.docker.wait_hook = lambda engine, container: seen.append(container)

    machine.boot(job_network=machine_says)

    assert seen[0].options["network_mode"] == expected


def test_a_job_role_the_machine_may_not_assume_fails_the_run_naming_the_role(aws, tmp_path) -> None:
    job = make_job(aws, job_role_arn=JOB_ROLE)
    run = launch(job)
    machine = machine_for(job, run, tmp_path)

    class Refusing:
        def assume_role(self, **kwargs: Any) -> Any:
            from botocore.exceptions import ClientError

            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "not authorized"}}, "AssumeRole")

    job.clients.__dict__["sts"] = Refusing()  # Clients caches its clients as attributes
    machine.boot(**LOCAL)

    failed = ledger(job).require(job.name, run.run_id)
    assert failed.status == FAILED
    assert failed.reason == f"credentials: could not assume the job role {JOB_ROLE}: AccessDenied: not authorized"
    assert machine.docker.started == [] and machine.is_off


def test_the_agent_never_logs_the_jobs_credentials_or_its_token(aws, tmp_path) -> None:
    job = make_job(aws, job_role_arn=JOB_ROLE)
    run = launch(job)
    machine = machine_for(job, run, tmp_path)
    seen: list[dict[str, Any]] = []

    def job_then_engine_error(engine: Any, container: Any) -> None:
        job_fetches_credentials(seen)(engine, container)
        # An engine error that echoes the whole environment and the credentials back.
        raise RuntimeError(f"engine trouble: {container.env} {seen[0]['SecretAccessKey']} {seen[0]['Token']}")

    machine.docker.wait_hook = job_then_engine_error
    agent = machine.agent(**LOCAL)
    stream = io.StringIO()
    jsonlog.configure(stream=stream, redact=agent.redact)
    agent.run()
    jsonlog.configure()

    failed = ledger(job).require(job.name, run.run_id)
    assert failed.status == FAILED and "***" in failed.reason
    sent = job.clients.logs.get_log_events(
        logGroupName=job.config.names.log_group, logStreamName=job.config.names.agent_log_stream(run.run_id)
    )["events"]
    everything = stream.getvalue() + json.dumps(sent) + json.dumps(failed.__dict__, default=str)
    assert "engine trouble" in everything  # the line was logged, with the values redacted
    for value in (seen[0]["SecretAccessKey"], seen[0]["Token"], seen[0]["env"][TOKEN_VARIABLE]):
        assert value not in everything
