"""Create a job's AWS resources the way the Terraform module does, through the AWS APIs.

The local stack runs this against moto_server; the unit tests against in-process moto. Names and tags
come from `ec2batch.names`, like Terraform's locals (tests/unit/test_names.py compares the two).
IAM roles and policies are left to Terraform: moto would accept them without enforcing a word.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..aws import Clients
from ..config import JobConfig, store_config
from ..ledger import table_definition
from ..names import JobNames

DEFAULT_INSTANCE_TYPE = "t3.micro"


@dataclass(frozen=True)
class Provisioned:
    job: str
    launch_template_id: str
    security_group_id: str
    topic_arn: str
    timer_queue_url: str
    repository_uri: str


def provision_job(clients: Clients, config: JobConfig, *, image_id: str, subnet_id: str | None = None) -> Provisioned:
    """Idempotent: resources that exist are kept (a second `local up` changes nothing)."""
    names = config.names
    tags = names.tags()
    _ensure_table(clients.dynamodb, names, tags)
    _ensure_log_group(clients.logs, names.log_group, tags)
    repository_uri = _ensure_repository(clients.ecr, names, tags)
    topic_arn = clients.sns.create_topic(Name=names.notification_topic, Tags=_tag_list(tags))["TopicArn"]
    queue_url = clients.sqs.create_queue(QueueName=names.timer_queue, tags=tags)["QueueUrl"]
    security_group_id = _ensure_security_group(clients.ec2, names, tags, subnet_id)
    template_id = _ensure_launch_template(clients.ec2, config, image_id, security_group_id, tags)
    store_config(clients.ssm, config)
    return Provisioned(config.job, template_id, security_group_id, topic_arn, queue_url, repository_uri)


def _tag_list(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def _ensure_table(dynamodb: Any, names: JobNames, tags: dict[str, str]) -> None:
    try:
        dynamodb.create_table(**table_definition(names.ledger_table), Tags=_tag_list(tags))
    except dynamodb.exceptions.ResourceInUseException:
        return


def _ensure_log_group(logs: Any, name: str, tags: dict[str, str]) -> None:
    try:
        logs.create_log_group(logGroupName=name, tags=tags)
    except logs.exceptions.ResourceAlreadyExistsException:
        return


def _ensure_repository(ecr: Any, names: JobNames, tags: dict[str, str]) -> str:
    try:
        repo = ecr.create_repository(
            repositoryName=names.ecr_repository,
            imageScanningConfiguration={"scanOnPush": True},
            tags=_tag_list(tags),
        )["repository"]
    except ecr.exceptions.RepositoryAlreadyExistsException:
        repo = ecr.describe_repositories(repositoryNames=[names.ecr_repository])["repositories"][0]
    return repo["repositoryUri"]


def _ensure_security_group(ec2: Any, names: JobNames, tags: dict[str, str], subnet_id: str | None) -> str:
    found = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": [names.security_group]}])
    if found["SecurityGroups"]:
        return found["SecurityGroups"][0]["GroupId"]
    vpc_id = None
    if subnet_id:
        vpc_id = ec2.describe_subnets(SubnetIds=[subnet_id])["Subnets"][0]["VpcId"]
    kwargs = {"VpcId": vpc_id} if vpc_id else {}
    group = ec2.create_security_group(
        GroupName=names.security_group,
        Description="ec2batch job instances: no ingress, egress for ECR, logs and the AWS APIs",
        TagSpecifications=[{"ResourceType": "security-group", "Tags": _tag_list(tags)}],
        **kwargs,
    )
    return group["GroupId"]


def launch_template_data(config: JobConfig, image_id: str, security_group_id: str) -> dict[str, Any]:
    """The launch template as Terraform writes it (IMDSv2 only, hop limit 1, encrypted gp3, no public IP; tags not in
    the instance metadata, as issue 10's finding 12 left them: the agent calls DescribeTags)."""
    tags = _tag_list(config.names.tags())
    return {
        "ImageId": image_id,
        "InstanceType": (config.instance_types or (DEFAULT_INSTANCE_TYPE,))[0],
        "InstanceInitiatedShutdownBehavior": "terminate" if config.strategy == "ephemeral" else "stop",
        "SecurityGroupIds": [security_group_id],
        "MetadataOptions": {
            "HttpTokens": "required",
            "HttpPutResponseHopLimit": 1,
            "HttpEndpoint": "enabled",
        },
        "BlockDeviceMappings": [
            {
                "DeviceName": "/dev/xvda",
                "Ebs": {"VolumeSize": 30, "VolumeType": "gp3", "Encrypted": True, "DeleteOnTermination": True},
            },
        ],
        "TagSpecifications": [{"ResourceType": "instance", "Tags": tags}, {"ResourceType": "volume", "Tags": tags}],
    }


def _ensure_launch_template(
    ec2: Any, config: JobConfig, image_id: str, security_group_id: str, tags: dict[str, str]
) -> str:
    name = config.names.launch_template
    data = launch_template_data(config, image_id, security_group_id)
    found = ec2.describe_launch_templates(Filters=[{"Name": "launch-template-name", "Values": [name]}])
    if found["LaunchTemplates"]:
        template_id = found["LaunchTemplates"][0]["LaunchTemplateId"]
        version = ec2.create_launch_template_version(LaunchTemplateId=template_id, LaunchTemplateData=data)
        number = str(version["LaunchTemplateVersion"]["VersionNumber"])
        ec2.modify_launch_template(LaunchTemplateId=template_id, DefaultVersion=number)
        return template_id
    created = ec2.create_launch_template(
        LaunchTemplateName=name,
        LaunchTemplateData=data,
        TagSpecifications=[{"ResourceType": "launch-template", "Tags": _tag_list(tags)}],
    )
    return created["LaunchTemplate"]["LaunchTemplateId"]
