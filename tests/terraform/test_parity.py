"""The local stack's Python provisioning against `terraform apply`: the same names, tags, config document,
schedule inputs and launch template, and the IAM names it refers to (issue 10, "What to build" 4).

`make demo` builds a job's AWS resources in Python (`ec2batch.local.provision`,
`ec2batch.local.scheduler_emulator`), with no `terraform`. Here that code provisions, on in-process moto, the job
Terraform applied to the moto_server, from the config document Terraform wrote; then each object is read back from
both, through the same AWS APIs, and compared. What only Terraform creates (IAM roles and policies, the launcher
Lambda, alarms, the KMS key, the queues' redrive) the local stack does not make: for those, the names the Python
side refers to must be Terraform's.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from moto import mock_aws

from ec2batch.aws import Clients
from ec2batch.config import parse_config
from ec2batch.local.provision import provision_job
from ec2batch.local.scheduler_emulator import put_job_schedule, put_planner_schedule
from ec2batch.names import JobNames
from tests.terraform import conftest
from tests.terraform import plan_rules as rules

JOB = "daily-report"
OWN_TAG = "ec2batch:"  # the tags ec2batch itself sets; Terraform adds the user's (var.tags) beside them


@dataclass
class Sides:
    terraform: Callable[[str], Any]  # boto3 clients of the moto_server Terraform applied to
    python: Clients  # ec2batch's clients of the in-process moto the local stack's provisioning wrote to
    names: dict[str, Any]
    applied: dict[str, Any]


@pytest.fixture(scope="module")
def sides(applied: dict[str, Any], aws: Callable[[str], Any]) -> Iterator[Sides]:
    names = applied["values"]["outputs"]["names"]["value"]
    document = aws("ssm").get_parameter(Name=names["config_parameter"], WithDecryption=True)["Parameter"]["Value"]
    config = parse_config(json.loads(document))
    (schedule,) = [
        s for s in rules.managed(applied, "aws_scheduler_schedule") if s["values"]["name"] == names["schedule"]
    ]
    with mock_aws():
        session = boto3.Session(aws_access_key_id="test", aws_secret_access_key="test", region_name=conftest.REGION)
        clients = Clients(session)
        image = clients.ec2.register_image(Name="parity", RootDeviceName="/dev/xvda")["ImageId"]
        provision_job(clients, config, image_id=image)
        put_planner_schedule(clients, JOB)
        values = schedule["values"]
        put_job_schedule(
            clients,
            JOB,
            values["schedule_expression"],
            values["schedule_expression_timezone"],
            starting_deadline_seconds=config.starting_deadline_seconds,
        )
        yield Sides(aws, clients, names, applied)


def own(tags: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in tags.items() if k.startswith(OWN_TAG)}


def pairs(tags: list[dict[str, str]]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in tags}


def test_the_names_terraform_derives_are_the_local_stacks(sides: Sides) -> None:
    assert sides.names == {k: v for k, v in JobNames(JOB).as_dict().items() if k in sides.names}
    assert set(JobNames(JOB).as_dict()) <= set(sides.names)


def test_the_same_objects_exist_under_the_same_names(sides: Sides) -> None:
    names, tf, py = sides.names, sides.terraform, sides.python
    for side in (tf, lambda s: getattr(py, "lambda_" if s == "lambda" else s)):
        assert names["ledger_table"] in side("dynamodb").list_tables()["TableNames"]
        groups = side("logs").describe_log_groups(logGroupNamePrefix=names["log_group"])["logGroups"]
        assert names["log_group"] in [g["logGroupName"] for g in groups]
        side("ecr").describe_repositories(repositoryNames=[names["ecr_repository"]])
        assert any(
            t["TopicArn"].endswith(f":{names['notification_topic']}") for t in side("sns").list_topics()["Topics"]
        )
        side("sqs").get_queue_url(QueueName=names["timer_queue"])
        by_name = [{"Name": "group-name", "Values": [names["security_group"]]}]
        assert side("ec2").describe_security_groups(Filters=by_name)["SecurityGroups"]
        side("ec2").describe_launch_templates(LaunchTemplateNames=[names["launch_template"]])
        side("ssm").get_parameter(Name=names["config_parameter"])
        for schedule in (names["schedule"], names["planner_schedule"]):
            side("scheduler").get_schedule(Name=schedule, GroupName=names["schedule_group"])


def test_the_ledger_table_has_the_same_key_schema_and_stream_on_both_sides(sides: Sides) -> None:
    # The run events are published from the stream: a local table without it would announce nothing.
    def table(side: Any) -> dict[str, Any]:
        got = side("dynamodb").describe_table(TableName=sides.names["ledger_table"])["Table"]
        return {k: got.get(k) for k in ("KeySchema", "StreamSpecification")}

    python = table(lambda s: getattr(sides.python, s))
    assert table(sides.terraform) == python
    assert python["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}


def _tags_of_both(sides: Sides) -> Iterator[tuple[str, dict[str, str], dict[str, str]]]:
    names = sides.names

    def table(side: Any) -> dict[str, str]:
        arn = side("dynamodb").describe_table(TableName=names["ledger_table"])["Table"]["TableArn"]
        return pairs(side("dynamodb").list_tags_of_resource(ResourceArn=arn)["Tags"])

    def log_group(side: Any) -> dict[str, str]:
        (group,) = side("logs").describe_log_groups(logGroupNamePrefix=names["log_group"])["logGroups"][:1]
        return side("logs").list_tags_for_resource(resourceArn=group["arn"].removesuffix(":*"))["tags"]

    def repository(side: Any) -> dict[str, str]:
        (repo,) = side("ecr").describe_repositories(repositoryNames=[names["ecr_repository"]])["repositories"]
        return pairs(side("ecr").list_tags_for_resource(resourceArn=repo["repositoryArn"])["tags"])

    def topic(side: Any) -> dict[str, str]:
        (arn,) = [
            t["TopicArn"]
            for t in side("sns").list_topics()["Topics"]
            if t["TopicArn"].endswith(f":{names['notification_topic']}")
        ]
        return pairs(side("sns").list_tags_for_resource(ResourceArn=arn)["Tags"])

    def queue(side: Any) -> dict[str, str]:
        url = side("sqs").get_queue_url(QueueName=names["timer_queue"])["QueueUrl"]
        return side("sqs").list_queue_tags(QueueUrl=url).get("Tags", {})

    def security_group(side: Any) -> dict[str, str]:
        by_name = [{"Name": "group-name", "Values": [names["security_group"]]}]
        return pairs(side("ec2").describe_security_groups(Filters=by_name)["SecurityGroups"][0].get("Tags", []))

    def launch_template(side: Any) -> dict[str, str]:
        found = side("ec2").describe_launch_templates(LaunchTemplateNames=[names["launch_template"]])
        return pairs(found["LaunchTemplates"][0].get("Tags", []))

    def parameter(side: Any) -> dict[str, str]:
        found = side("ssm").list_tags_for_resource(ResourceType="Parameter", ResourceId=names["config_parameter"])
        return pairs(found["TagList"])

    def python(service: str) -> Any:
        return getattr(sides.python, service)

    for what in (table, log_group, repository, topic, queue, security_group, launch_template, parameter):
        yield what.__name__, what(sides.terraform), what(python)


def test_every_object_carries_the_same_ec2batch_tags(sides: Sides) -> None:
    job_tags = JobNames(JOB).tags()
    for what, terraform, python in _tags_of_both(sides):
        assert own(python) == job_tags, what
        assert own(terraform) == own(python), what


def test_the_config_document_is_the_one_terraform_wrote(sides: Sides) -> None:
    name = sides.names["config_parameter"]
    terraform = sides.terraform("ssm").get_parameter(Name=name, WithDecryption=True)["Parameter"]
    python = sides.python.ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]
    assert json.loads(python["Value"]) == json.loads(terraform["Value"])
    assert python["Type"] == terraform["Type"] == "SecureString"


@pytest.mark.parametrize("which", ["schedule", "planner_schedule"])
def test_each_schedule_has_the_same_input_expression_and_target(sides: Sides, which: str) -> None:
    name, group = sides.names[which], sides.names["schedule_group"]
    terraform = sides.terraform("scheduler").get_schedule(Name=name, GroupName=group)
    python = sides.python.scheduler.get_schedule(Name=name, GroupName=group)
    # The text itself, not only its JSON: the Scheduler substitutes `<aws.scheduler.*>` only where it is literal.
    assert python["Target"]["Input"] == terraform["Target"]["Input"] or (
        json.loads(python["Target"]["Input"]) == json.loads(terraform["Target"]["Input"])
        and "\\u003c" not in terraform["Target"]["Input"]
    )
    for key in ("ScheduleExpression", "ScheduleExpressionTimezone", "State", "FlexibleTimeWindow"):
        assert python.get(key) == terraform.get(key), key
    assert python["Target"]["Arn"].split(":", 5)[5] == terraform["Target"]["Arn"].split(":", 5)[5]
    assert python["Target"]["RoleArn"] == terraform["Target"]["RoleArn"]  # a role only Terraform creates
    assert python["Target"]["RetryPolicy"] == terraform["Target"]["RetryPolicy"]


def _template_data(side: Any, name: str) -> dict[str, Any]:
    versions = side.describe_launch_template_versions(LaunchTemplateName=name, Versions=["$Default"])
    return versions["LaunchTemplateVersions"][0]["LaunchTemplateData"]


def test_the_launch_template_launches_the_same_machine(sides: Sides) -> None:
    name = sides.names["launch_template"]
    terraform = _template_data(sides.terraform("ec2"), name)
    python = _template_data(sides.python.ec2, name)
    assert python["MetadataOptions"] == terraform["MetadataOptions"]
    assert python["InstanceInitiatedShutdownBehavior"] == terraform["InstanceInitiatedShutdownBehavior"]
    assert python["InstanceType"] == terraform["InstanceType"]

    def root(data: dict[str, Any]) -> dict[str, Any]:
        ebs = data["BlockDeviceMappings"][0]["Ebs"]
        return {k: ebs.get(k) for k in ("VolumeType", "Encrypted", "DeleteOnTermination")}

    assert root(python) == root(terraform)

    def tag_specs(data: dict[str, Any]) -> dict[str, dict[str, str]]:
        return {s["ResourceType"]: own(pairs(s["Tags"])) for s in data.get("TagSpecifications", [])}

    assert tag_specs(python) == tag_specs(terraform)


def test_the_iam_names_the_local_stack_refers_to_are_the_ones_terraform_creates(sides: Sides) -> None:
    # The local stack makes no IAM (moto would accept any policy without enforcing it); it refers to Terraform's
    # roles by name: the schedules' role. Terraform's policies are judged by test_iam.py and the coverage test.
    roles = {r["values"]["name"]: r["values"]["arn"] for r in rules.managed(sides.applied, "aws_iam_role")}
    for which in ("instance_role", "launcher_role", "scheduler_role", "job_role"):
        assert sides.names[which] in roles, which
    python = sides.python.scheduler.get_schedule(Name=sides.names["schedule"], GroupName=sides.names["schedule_group"])
    assert python["Target"]["RoleArn"] == roles[sides.names["scheduler_role"]]
    profiles = {p["values"]["name"] for p in rules.managed(sides.applied, "aws_iam_instance_profile")}
    assert sides.names["instance_profile"] in profiles
