"""Create a job's AWS resources the way the Terraform module does, through the AWS APIs.

The local stack runs this against moto_server; the unit tests against in-process moto. Names and tags
come from `ec2batch.names`, like Terraform's locals (tests/unit/test_names.py compares the two).
IAM policies are left to Terraform: moto would accept them without enforcing a word. The roles a sharded
job's Batch resources name are created (bare), because moto refuses a compute environment whose service
role or instance profile does not exist.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from botocore.exceptions import ClientError

from .. import batch, dependencies
from ..aws import Clients
from ..config import JobConfig, store_config
from ..ledger import STREAM_SPECIFICATION, table_definition
from ..names import TAG_JOB, JobNames

DEFAULT_INSTANCE_TYPE = "t3.micro"


@dataclass(frozen=True)
class Provisioned:
    job: str
    launch_template_id: str
    security_group_id: str
    topic_arn: str
    timer_queue_url: str
    repository_uri: str
    job_queue_arn: str | None = None  # a sharded job's Batch queue (None with shards 1)
    job_definition_arn: str | None = None


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
    queue_arn = definition_arn = None
    if config.shards > 1:
        queue_arn, definition_arn = provision_batch(clients, config, security_group_id, subnet_id)
    if config.after:
        put_after_rule(clients, config, queue_url)
    store_config(clients.ssm, config)
    return Provisioned(
        config.job, template_id, security_group_id, topic_arn, queue_url, repository_uri, queue_arn, definition_arn
    )


def put_after_rule(clients: Clients, config: JobConfig, queue_url: str) -> str:
    """The downstream job's rule as Terraform makes it (events.tf): same name, pattern and target input.

    Its target is the job's timer queue, which the local stack's SQS poller hands to the launcher; on AWS the
    target is the launcher function itself (the queue is under a KMS key EventBridge cannot use).
    """
    names = config.names
    rule_arn = clients.events.put_rule(
        Name=names.after_rule,
        EventPattern=dependencies.rule_pattern_json(config),
        EventBusName=config.event_bus,
        State="ENABLED",
        Tags=_tag_list(names.tags()),
    )["RuleArn"]
    queue_arn = clients.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    clients.events.put_targets(
        Rule=names.after_rule,
        EventBusName=config.event_bus,
        Targets=[
            {
                "Id": "launcher",
                "Arn": queue_arn,
                "InputTransformer": {"InputTemplate": dependencies.target_input(config.job)},
            }
        ],
    )
    return str(rule_arn)


def _tag_list(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def _ensure_table(dynamodb: Any, names: JobNames, tags: dict[str, str]) -> None:
    try:
        dynamodb.create_table(**table_definition(names.ledger_table), Tags=_tag_list(tags))
    except dynamodb.exceptions.ResourceInUseException:
        # A table made before run events came from its stream gets the stream (a second `local up` changes nothing).
        described = dynamodb.describe_table(TableName=names.ledger_table)["Table"]
        if described.get("StreamSpecification", {}).get("StreamEnabled"):
            return
        dynamodb.update_table(TableName=names.ledger_table, StreamSpecification=dict(STREAM_SPECIFICATION))


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


# ---------------------------------------------------------------- AWS Batch (shards > 1)

ASSUME = {
    "ec2": "ec2.amazonaws.com",
    "ecs-tasks": "ecs-tasks.amazonaws.com",
}
# Batch's service-linked role, which AWS creates on first use; moto wants a compute environment to name one.
BATCH_SERVICE_ROLE = ("AWSServiceRoleForBatch", "/aws-service-role/batch.amazonaws.com/", "batch.amazonaws.com")


def provision_batch(
    clients: Clients, config: JobConfig, security_group_id: str, subnet_id: str | None
) -> tuple[str, str]:
    """The compute environment(s), the job queue and the job definition, from `ec2batch.batch`; returns the
    queue's and the definition's ARNs. Compute environments and the queue are kept when they exist (their
    settings change through Terraform); the definition gets a new revision, as Terraform registers one."""
    iam, api = clients.client("iam"), clients.client("batch")
    names = config.names
    service_role = _ensure_role(iam, *BATCH_SERVICE_ROLE)
    execution_role = _ensure_role(iam, names.batch_execution_role, "/", ASSUME["ecs-tasks"])
    instance_profile = _ensure_instance_profile(iam, names.batch_instance_role)
    subnets = [subnet_id] if subnet_id else list(config.subnet_ids) or _default_subnets(clients.ec2)
    environments = batch.compute_environments(
        config,
        subnets=subnets,
        security_group_ids=[security_group_id],
        instance_profile_arn=instance_profile,
        service_role_arn=service_role,
    )
    arns = [_ensure_compute_environment(api, environment) for environment in environments]
    queue_arn = _ensure_job_queue(api, batch.job_queue(config, arns))
    definition = batch.job_definition(
        config, execution_role_arn=execution_role, job_role_arn=config.job_role_arn, region=clients.region
    )
    return queue_arn, api.register_job_definition(**definition)["jobDefinitionArn"]


def _ensure_role(iam: Any, name: str, path: str, service: str) -> str:
    trust = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}],
    }
    try:
        return iam.create_role(RoleName=name, Path=path, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    except iam.exceptions.EntityAlreadyExistsException:
        return iam.get_role(RoleName=name)["Role"]["Arn"]


def _ensure_instance_profile(iam: Any, name: str) -> str:
    """The ECS container instances' role and its instance profile, both with the same name (as Terraform's)."""
    _ensure_role(iam, name, "/", ASSUME["ec2"])
    try:
        profile = iam.create_instance_profile(InstanceProfileName=name)["InstanceProfile"]
        iam.add_role_to_instance_profile(InstanceProfileName=name, RoleName=name)
    except iam.exceptions.EntityAlreadyExistsException:
        profile = iam.get_instance_profile(InstanceProfileName=name)["InstanceProfile"]
    return profile["Arn"]


def _default_subnets(ec2: Any) -> list[str]:
    found = ec2.describe_subnets(Filters=[{"Name": "default-for-az", "Values": ["true"]}])["Subnets"]
    return sorted(s["SubnetId"] for s in found)


def _ensure_compute_environment(api: Any, environment: dict[str, Any]) -> str:
    name = environment["computeEnvironmentName"]
    found = api.describe_compute_environments(computeEnvironments=[name])["computeEnvironments"]
    if found:
        return found[0]["computeEnvironmentArn"]
    return api.create_compute_environment(**environment)["computeEnvironmentArn"]


def _ensure_job_queue(api: Any, queue: dict[str, Any]) -> str:
    found = api.describe_job_queues(jobQueues=[queue["jobQueueName"]])["jobQueues"]
    if found:
        return found[0]["jobQueueArn"]
    return api.create_job_queue(**queue)["jobQueueArn"]


# ---------------------------------------------------------------- removal (what `terraform destroy` does)


def remove_job(clients: Clients, job: str) -> list[str]:
    """Delete the job's resources that `provision_job` and the local schedules made, and terminate its instances
    (their containers are the stack's to remove: `Stack.remove_job`). Idempotent: what is gone stays gone.
    Returns the instance ids terminated."""
    names = JobNames(job)
    instances = _job_instances(clients.ec2, job)
    if instances:
        clients.ec2.terminate_instances(InstanceIds=instances)
    scheduler, group = clients.scheduler, names.schedule_group
    # Only a group that exists: moto answers the deletion of a missing one with a server error, not a 404.
    if _quietly(lambda: scheduler.get_schedule_group(Name=group)) is not None:
        pages = scheduler.get_paginator("list_schedules").paginate(GroupName=group)
        for schedule in (s for page in pages for s in page["Schedules"]):
            _quietly(lambda s=schedule: scheduler.delete_schedule(Name=s["Name"], GroupName=group))
        _quietly(lambda: scheduler.delete_schedule_group(Name=group))
    _remove_batch(clients, names)
    for page in clients.ssm.get_paginator("get_parameters_by_path").paginate(Path=f"/ec2batch/{job}", Recursive=True):
        for parameter in page["Parameters"]:  # the config, and any secret a test stored beside it
            _quietly(lambda p=parameter: clients.ssm.delete_parameter(Name=p["Name"]))
    _quietly(lambda: clients.dynamodb.delete_table(TableName=names.ledger_table))
    _quietly(lambda: clients.logs.delete_log_group(logGroupName=names.log_group))
    _quietly(lambda: clients.ecr.delete_repository(repositoryName=names.ecr_repository, force=True))
    topic = f"arn:aws:sns:{clients.region}:{_account(clients)}:{names.notification_topic}"
    _quietly(lambda: clients.sns.delete_topic(TopicArn=topic))
    for queue in (names.timer_queue, names.dead_letter_queue, f"inbox-{job}"):
        url = _quietly(lambda q=queue: clients.sqs.get_queue_url(QueueName=q)["QueueUrl"])
        if url:
            _quietly(lambda u=url: clients.sqs.delete_queue(QueueUrl=u))
    _quietly(lambda: clients.ec2.delete_launch_template(LaunchTemplateName=names.launch_template))
    for group in clients.ec2.describe_security_groups(
        Filters=[{"Name": "group-name", "Values": [names.security_group]}]
    )["SecurityGroups"]:
        _quietly(lambda g=group: clients.ec2.delete_security_group(GroupId=g["GroupId"]))
    return instances


def _job_instances(ec2: Any, job: str) -> list[str]:
    response = ec2.describe_instances(
        Filters=[
            {"Name": f"tag:{TAG_JOB}", "Values": [job]},
            {"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]},
        ]
    )
    return [i["InstanceId"] for r in response["Reservations"] for i in r["Instances"]]


def _remove_batch(clients: Clients, names: JobNames) -> None:
    api = clients.batch
    found = _quietly(lambda: api.describe_job_definitions(jobDefinitionName=names.batch_job_definition))
    for definition in (found or {}).get("jobDefinitions", []):
        _quietly(lambda d=definition: api.deregister_job_definition(jobDefinition=d["jobDefinitionArn"]))
    _quietly(lambda: api.update_job_queue(jobQueue=names.batch_job_queue, state="DISABLED"))
    _quietly(lambda: api.delete_job_queue(jobQueue=names.batch_job_queue))
    for environment in (names.batch_compute_environment, names.batch_spot_compute_environment):
        _quietly(lambda e=environment: api.update_compute_environment(computeEnvironment=e, state="DISABLED"))
        _quietly(lambda e=environment: api.delete_compute_environment(computeEnvironment=e))


def _account(clients: Clients) -> str:
    return clients.sts.get_caller_identity()["Account"]


T = TypeVar("T")


def _quietly(call: Callable[[], T]) -> T | None:
    """One deletion: a resource that is not there (or never was, for this kind of job) is not an error."""
    try:
        return call()
    except ClientError:
        return None
