"""The agent's cut-down EC2 and SSM models: the committed files are what botocore's own models give, every
call the agent's code makes is in them, and clients made from them work against moto as the full ones do."""

from __future__ import annotations

import inspect
import re
import tomllib
from functools import cached_property
from pathlib import Path

import boto3
import pytest
from botocore import xform_name

import ec2batch
from ec2batch import attempts, notify, timers
from ec2batch.agent.main import agent_clients
from ec2batch.agent.service_models import AGENT_OPERATIONS, AGENT_SERVICES, MODELS_DIR, generated
from ec2batch.aws import Clients
from ec2batch.config import load_config
from tests.conftest import Job

# The agent's modules, and what it calls elsewhere on these services (the launcher's code has its own clients).
AGENT_CODE = [path.read_text() for path in (Path(ec2batch.__file__).parent / "agent").glob("*.py")]
AGENT_CODE.append(inspect.getsource(load_config))


def test_the_committed_models_are_what_botocore_gives_regenerate_with_python_m_service_models() -> None:
    for relative, text in generated().items():
        committed = MODELS_DIR / relative
        assert committed.exists(), f"missing {committed}: run python -m ec2batch.agent.service_models"
        assert committed.read_text() == text, f"{committed} is stale: run python -m ec2batch.agent.service_models"


@pytest.mark.parametrize("service", sorted(AGENT_OPERATIONS))
def test_every_call_the_agent_makes_on_the_service_is_in_its_model(service: str) -> None:
    # `clients.ec2.describe_tags(`, `ssm.get_parameter(`: every method called on the service's client.
    pattern = re.compile(rf"\b{service}\.([a-z_]+)\(")
    called = {name for code in AGENT_CODE for name in pattern.findall(code)}
    kept = {xform_name(op) for op in AGENT_OPERATIONS[service]}
    assert called, f"no {service} call found: the pattern no longer matches the code"
    assert called <= kept, f"the agent calls {sorted(called - kept)} on {service}: add them to AGENT_OPERATIONS"


def test_the_agent_makes_clients_only_for_the_services_its_loader_knows() -> None:
    # `clients.sqs`, `scene.clients.ec2`: every service client reached from the agent's code and what it calls.
    sources = [*AGENT_CODE, *(inspect.getsource(module) for module in (attempts, notify, timers))]
    services = {name for name, value in vars(Clients).items() if isinstance(value, cached_property)}
    used = {name for code in sources for name in re.findall(r"\bclients\.([a-z0-9_]+)\b", code)} & services
    assert {"dynamodb", "ec2", "sqs", "sns"} <= used, "the pattern no longer matches the code"
    assert used <= set(AGENT_SERVICES), f"add {sorted(used - set(AGENT_SERVICES))} to AGENT_SERVICES"


def test_lean_clients_know_only_those_operations_and_work_against_moto(aws: Clients, job: Job) -> None:
    lean = agent_clients(aws.region)
    assert sorted(lean.ec2.meta.service_model.operation_names) == sorted(AGENT_OPERATIONS["ec2"])
    template = {"LaunchTemplateName": job.config.names.launch_template}
    [instance] = job.clients.ec2.run_instances(LaunchTemplate=template, MinCount=1, MaxCount=1)["Instances"]
    lean.ec2.create_tags(Resources=[instance["InstanceId"]], Tags=[{"Key": "ec2batch:run-id", "Value": "r-1"}])
    tags = lean.ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [instance["InstanceId"]]}])["Tags"]
    assert {"Key": "ec2batch:run-id", "Value": "r-1"} in [{"Key": t["Key"], "Value": t["Value"]} for t in tags]

    name = f"/ec2batch/{job.name}/config"
    assert lean.ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Name"] == name
    with pytest.raises(lean.ssm.exceptions.ParameterNotFound):
        lean.ssm.get_parameter(Name="/ec2batch/absent/config")
    assert lean.dynamodb.describe_table(TableName=job.config.names.ledger_table)["Table"]["TableStatus"]
    # Other services are botocore's own, and the launcher's sessions are untouched.
    assert "RunInstances" in boto3.Session(region_name=aws.region).client("ec2").meta.service_model.operation_names


def test_the_models_go_into_the_wheel_the_instance_image_installs() -> None:
    # Without them the loader would quietly fall back to botocore's full models on the machine.
    pyproject = tomllib.loads((Path(ec2batch.__file__).parents[1] / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["ec2batch.agent"]
    packaged = {path for pattern in patterns for path in MODELS_DIR.parent.glob(pattern)}
    assert packaged == set(MODELS_DIR.rglob("*.json")) != set()
