"""ec2batch.batch: the job's Batch resources as the API calls that create them, and moto accepting them."""

from __future__ import annotations

import dataclasses
import subprocess
from typing import Any

import pytest

from ec2batch import batch
from ec2batch.aws import Clients
from ec2batch.batch import BatchRenderError, exit_code_patterns
from ec2batch.config import JobConfig, parse_config
from ec2batch.errors import ConfigError
from ec2batch.local.provision import provision_job

EXECUTION_ROLE = "arn:aws:iam::123456789012:role/ec2batch-report-batch-execution"
JOB_ROLE = "arn:aws:iam::123456789012:role/ec2batch-report-job"
PROFILE = "arn:aws:iam::123456789012:instance-profile/ec2batch-report-batch-instance"


def sharded(**overrides: Any) -> JobConfig:
    doc = {
        "job": "report",
        "image": "123456789012.dkr.ecr.eu-central-1.amazonaws.com/ec2batch/report:latest",
        "command": ["python3", "/app/report.py"],
        "shards": 4,
        "env": {"ZONE": "eu", "ALPHA": "1"},
        "max_runtime_seconds": 1800,
        **overrides,
    }
    return parse_config(doc)


def definition(config: JobConfig, **kwargs: Any) -> dict[str, Any]:
    return batch.job_definition(config, execution_role_arn=EXECUTION_ROLE, **kwargs)


# ---------------------------------------------------------------- the shim


def shim_index(environment: dict[str, str]) -> str:
    """What the job sees as EC2BATCH_SHARD_INDEX when the shim runs under this environment."""
    command = [*batch.SHARD_SHIM, "/bin/sh", "-c", 'printf %s "$EC2BATCH_SHARD_INDEX"']
    return subprocess.run(command, env=environment, capture_output=True, text=True, check=True).stdout


def test_the_shim_takes_the_index_from_aws_and_from_a_child_job_id_on_moto() -> None:
    # AWS: the array index variable (the job id is the parent's there too, with the index).
    assert shim_index({"AWS_BATCH_JOB_ARRAY_INDEX": "7", "AWS_BATCH_JOB_ID": "abc-123:7"}) == "7"
    # moto: only the child's job id, `<parent id>:<index>`.
    assert shim_index({"AWS_BATCH_JOB_ID": "5d1f0c8e-aaaa-bbbb-cccc-0123456789ab:12"}) == "12"


def test_the_shim_execs_the_jobs_command_with_its_arguments_intact() -> None:
    command = [*batch.SHARD_SHIM, "printf", "%s|", "two words", "$HOME"]
    out = subprocess.run(command, env={"AWS_BATCH_JOB_ID": "p:0"}, capture_output=True, text=True, check=True)
    assert out.stdout == "two words|$HOME|"


# ---------------------------------------------------------------- job definition


def test_the_job_definition_runs_the_command_behind_the_shim_with_the_shards_size_env_and_logs() -> None:
    rendered = definition(sharded(batch={"vcpus": 2, "memory_mb": 4096}), job_role_arn=JOB_ROLE)

    container = rendered["containerProperties"]
    assert rendered["jobDefinitionName"] == "ec2batch-report"
    assert rendered["type"] == "container"
    assert rendered["platformCapabilities"] == ["EC2"]
    assert container["command"] == [*batch.SHARD_SHIM, "python3", "/app/report.py"]
    assert container["resourceRequirements"] == [{"type": "VCPU", "value": "2"}, {"type": "MEMORY", "value": "4096"}]
    assert container["environment"] == [{"name": "ALPHA", "value": "1"}, {"name": "ZONE", "value": "eu"}]
    assert container["jobRoleArn"] == JOB_ROLE
    assert container["executionRoleArn"] == EXECUTION_ROLE
    assert container["logConfiguration"] == {
        "logDriver": "awslogs",
        "options": {"awslogs-group": "/ec2batch/report", "awslogs-stream-prefix": "shards"},
    }
    assert "networkConfiguration" not in container
    assert rendered["timeout"] == {"attemptDurationSeconds": 1800}
    assert rendered["propagateTags"] is True
    assert rendered["tags"] == {"ec2batch:job": "report"}
    assert "retryStrategy" not in rendered  # one attempt: nothing to retry


def test_without_a_job_role_the_definition_names_none() -> None:
    assert "jobRoleArn" not in definition(sharded())["containerProperties"]


def test_a_fargate_definition_has_fractional_vcpus_no_public_ip_and_the_latest_platform() -> None:
    rendered = definition(sharded(batch={"compute": "fargate", "vcpus": 0.25, "memory_mb": 512}))

    container = rendered["containerProperties"]
    assert rendered["platformCapabilities"] == ["FARGATE"]
    assert container["resourceRequirements"][0] == {"type": "VCPU", "value": "0.25"}
    assert container["networkConfiguration"] == {"assignPublicIp": "DISABLED"}
    assert container["fargatePlatformConfiguration"] == {"platformVersion": "LATEST"}


def test_a_sharded_job_without_a_command_is_refused_naming_the_field() -> None:
    # The config refuses it first; the renderer still would (a JobConfig built by hand).
    with pytest.raises(ConfigError, match=r"config.command: is required with shards above 1"):
        parse_config({"job": "report", "image": "x:1", "shards": 2})
    config = dataclasses.replace(
        parse_config({"job": "report", "image": "x:1", "command": ["a"], "shards": 2}), command=None
    )
    with pytest.raises(BatchRenderError, match=r"config.command: .* shards 2 and no command"):
        definition(config)


def test_secrets_become_arns_and_a_json_key_batchs_key_form() -> None:
    config = sharded(
        secrets={
            "DB_PASSWORD": {"ssm": "/report/db-password"},
            "API_TOKEN": {"secretsmanager": "report/api", "key": "token"},
            "WHOLE": {"secretsmanager": "arn:aws:secretsmanager:eu-central-1:123456789012:secret:whole-AbCdEf"},
        }
    )

    secrets = definition(config, region="eu-central-1")["containerProperties"]["secrets"]

    arn = "arn:aws:secretsmanager:eu-central-1:123456789012:secret"
    assert secrets == [
        {"name": "API_TOKEN", "valueFrom": f"{arn}:report/api:token::"},
        {"name": "DB_PASSWORD", "valueFrom": "arn:aws:ssm:eu-central-1:123456789012:parameter/report/db-password"},
        {"name": "WHOLE", "valueFrom": f"{arn}:whole-AbCdEf"},
    ]


def test_a_secret_given_by_name_without_a_region_is_refused_rather_than_guessed() -> None:
    config = sharded(secrets={"API_TOKEN": {"secretsmanager": "report/api"}})
    with pytest.raises(BatchRenderError, match="full ARN"):
        definition(config)
    # An SSM parameter of the job's region can be named: Batch accepts its name.
    ssm = sharded(secrets={"DB": {"ssm": "/report/db"}})
    assert definition(ssm)["containerProperties"]["secrets"] == [{"name": "DB", "valueFrom": "/report/db"}]


# ---------------------------------------------------------------- retries


@pytest.mark.parametrize(
    ("ranges", "patterns"),
    [
        ([(3, 3)], ["3"]),  # 3 alone: "3*" would also retry 30-39
        ([(30, 39)], ["30", "31", "32", "33", "34", "35", "36", "37", "38", "39"]),  # "3x*" takes 3x0-3x9 too
        ([(3, 3), (30, 39)], ["3*"]),  # 3, 30-39 and 300+ (no exit code): one glob
        ([(2, 2), (20, 29), (200, 255)], ["2*"]),
        ([(250, 255)], ["250", "251", "252", "253", "254", "255"]),  # "25*" would retry 25 as well
        ([(25, 25), (250, 255)], ["25*"]),
        ([(1, 255)], [str(d) + "*" for d in range(1, 10)]),
        ([(120, 129), (12, 12), (7, 7)], ["12*", "7"]),
        ([(256, 300)], []),  # above any exit code
    ],
)
def test_exit_code_ranges_become_the_fewest_globs_that_match_exactly_them(
    ranges: list[tuple[int, int]], patterns: list[str]
) -> None:
    assert exit_code_patterns(ranges) == patterns
    assert _matched(patterns) == {c for low, high in ranges for c in range(low, min(high, 255) + 1)}


def _matched(patterns: list[str]) -> set[int]:
    """Batch's rule: digits, and a trailing '*' matches any rest of the decimal string."""
    return {
        code
        for code in range(256)
        for p in patterns
        if (str(code).startswith(p[:-1]) if p.endswith("*") else str(code) == p)
    }


def test_retry_strategy_retries_a_lost_host_and_the_configured_codes_then_exits_on_the_rest() -> None:
    rendered = definition(sharded(retry={"attempts": 3, "exit_codes": [3, 25, "250-255"]}))

    assert rendered["retryStrategy"] == {
        "attempts": 3,
        "evaluateOnExit": [
            {"onStatusReason": "Host EC2*", "action": "RETRY"},
            {"onExitCode": "25*", "action": "RETRY"},  # in the order of the codes' decimal forms
            {"onExitCode": "3", "action": "RETRY"},
            {"onExitCode": "*", "action": "EXIT"},
        ],
    }


def test_retry_strategy_without_host_causes_retries_exit_codes_only() -> None:
    rendered = definition(sharded(retry={"attempts": 2, "on": ["start-failure"], "exit_codes": [42]}))

    assert rendered["retryStrategy"]["evaluateOnExit"] == [
        {"onExitCode": "42", "action": "RETRY"},
        {"onExitCode": "*", "action": "EXIT"},
    ]


def test_exit_codes_that_need_more_than_batchs_five_conditions_are_refused_with_the_count() -> None:
    with pytest.raises(BatchRenderError, match=r"at most 5 retry conditions and these need 12"):
        definition(sharded(retry={"attempts": 2, "exit_codes": ["30-39"]}))


# ---------------------------------------------------------------- compute environments and queue


def environments(config: JobConfig) -> list[dict[str, Any]]:
    return batch.compute_environments(
        config, subnets=["subnet-0a1b2c3d"], security_group_ids=["sg-0a1b2c3d"], instance_profile_arn=PROFILE
    )


def test_an_on_demand_job_has_one_ec2_environment_scaling_from_zero() -> None:
    [environment] = environments(sharded(instance_types=["c7i.large"], batch={"max_vcpus": 64}))

    assert environment["computeEnvironmentName"] == "ec2batch-report"
    assert environment["type"] == "MANAGED"
    assert "serviceRole" not in environment  # Batch's service-linked role
    resources = environment["computeResources"]
    assert resources["type"] == "EC2"
    assert (resources["minvCpus"], resources["maxvCpus"]) == (0, 64)
    assert resources["instanceTypes"] == ["c7i.large"]
    assert resources["instanceRole"] == PROFILE
    assert resources["subnets"] == ["subnet-0a1b2c3d"]
    assert resources["securityGroupIds"] == ["sg-0a1b2c3d"]
    assert resources["tags"] == environment["tags"] == {"ec2batch:job": "report"}


def test_without_instance_types_batch_picks_optimal() -> None:
    assert environments(sharded())[0]["computeResources"]["instanceTypes"] == ["optimal"]


def test_spot_then_on_demand_gives_spot_first_and_the_queue_keeps_that_order() -> None:
    config = sharded(market="spot-then-on-demand", strategy="ephemeral")
    spot, on_demand = environments(config)

    assert (spot["computeEnvironmentName"], spot["computeResources"]["type"]) == ("ec2batch-report-spot", "SPOT")
    assert (on_demand["computeEnvironmentName"], on_demand["computeResources"]["type"]) == ("ec2batch-report", "EC2")
    queue = batch.job_queue(config, ["arn:spot", "arn:on-demand"])
    assert queue["jobQueueName"] == "ec2batch-report"
    assert queue["computeEnvironmentOrder"] == [
        {"order": 1, "computeEnvironment": "arn:spot"},
        {"order": 2, "computeEnvironment": "arn:on-demand"},
    ]


def test_fargate_environments_are_fargate_spot_then_fargate_without_instance_settings() -> None:
    config = sharded(
        market="spot-then-on-demand", strategy="ephemeral", batch={"compute": "fargate", "vcpus": 1, "memory_mb": 2048}
    )
    spot, on_demand = batch.compute_environments(
        config, subnets=["subnet-0a1b2c3d"], security_group_ids=["sg-0a1b2c3d"], instance_profile_arn=None
    )

    assert spot["computeResources"] == {
        "type": "FARGATE_SPOT",
        "maxvCpus": 256,
        "subnets": ["subnet-0a1b2c3d"],
        "securityGroupIds": ["sg-0a1b2c3d"],
    }
    assert on_demand["computeResources"]["type"] == "FARGATE"


# ---------------------------------------------------------------- provisioned in moto


def test_provisioning_a_sharded_job_creates_its_batch_resources_which_moto_accepts(aws: Clients) -> None:
    config = sharded(market="spot-then-on-demand", strategy="ephemeral", image="127.0.0.1:5000/ec2batch/report")

    provisioned = provision_job(aws, config, image_id="ami-12345678")
    again = provision_job(aws, config, image_id="ami-12345678")  # idempotent, as on `local up`

    api = aws.session.client("batch")
    [queue] = api.describe_job_queues(jobQueues=["ec2batch-report"])["jobQueues"]
    assert queue["jobQueueArn"] == provisioned.job_queue_arn == again.job_queue_arn
    order = [e["computeEnvironment"].rsplit("/", 1)[1] for e in queue["computeEnvironmentOrder"]]
    assert order == ["ec2batch-report-spot", "ec2batch-report"]
    definitions = api.describe_job_definitions(jobDefinitionName="ec2batch-report", status="ACTIVE")["jobDefinitions"]
    latest = max(definitions, key=lambda d: d["revision"])
    assert latest["jobDefinitionArn"] == again.job_definition_arn
    assert latest["containerProperties"]["command"][:4] == list(batch.SHARD_SHIM)


def test_a_job_with_one_shard_gets_no_batch_resources(aws: Clients) -> None:
    config = sharded(shards=1)
    provisioned = provision_job(aws, config, image_id="ami-12345678")
    assert provisioned.job_queue_arn is None
    assert aws.session.client("batch").describe_job_queues()["jobQueues"] == []


def test_the_local_moto_gives_each_child_its_own_environment_and_the_job_definitions_log_stream(
    aws: Clients, monkeypatch: pytest.MonkeyPatch
) -> None:
    from moto.batch import models

    from ec2batch.local.motoserver import batch_jobs_as_on_aws

    monkeypatch.setattr(models.Job, "__init__", models.Job.__init__)  # undone after the test
    monkeypatch.setattr(models.Job, "start", lambda self: None)  # no engine here: the children never run
    batch_jobs_as_on_aws()
    config = sharded()
    provision_job(aws, config, image_id="ami-12345678")
    api = aws.session.client("batch")
    parent = api.submit_job(
        jobName="run_1",
        jobQueue="ec2batch-report",
        jobDefinition="ec2batch-report",
        arrayProperties={"size": 3},
        containerOverrides={"environment": [{"name": "EC2BATCH_SHARD_COUNT", "value": "3"}]},
    )["jobId"]

    children = api.describe_jobs(jobs=[f"{parent}:{i}" for i in range(3)])["jobs"]
    for child in children:
        ids = {e["value"] for e in child["container"]["environment"] if e["name"] == "AWS_BATCH_JOB_ID"}
        assert ids == {child["jobId"]}  # unpatched, moto's children share one list and see each other's ids
    job = models.batch_backends["123456789012"]["eu-central-1"]._jobs[f"{parent}:2"]
    assert (job._log_group, job._stream_name) == ("/ec2batch/report", f"shards/default/{parent}-2")
