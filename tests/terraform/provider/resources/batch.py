"""AWS Batch: aws_batch_compute_environment, aws_batch_job_queue, aws_batch_job_definition (issue 14).

As the real provider: a compute environment's id is its name, a queue's and a job definition's their ARN; a
definition is replaced rather than updated (every change is a new revision, the old one deregistered); deleting
a compute environment or a queue disables it first (AWS refuses to delete an enabled one).
"""

from __future__ import annotations

import json

from botocore.exceptions import ClientError

from tests.terraform.provider.resources.base import (
    Aws,
    Resource,
    Value,
    drop_none,
    fill,
    first,
    json_kept,
    refresh,
    register_resource,
    resource_name,
    split_tags,
    tags_to_send,
    unless_gone,
)

# What AWS uses when a compute environment names no service role, creating it in the account if missing.
BATCH_SERVICE = "batch.amazonaws.com"
BATCH_SERVICE_LINKED_ROLE = "AWSServiceRoleForBatch"


def _int(value: Value) -> int | None:
    return None if value is None else int(value)


def service_linked_role(aws: Aws) -> str:
    """AWSServiceRoleForBatch's ARN, created as AWS creates it on the first compute environment without a service
    role. moto requires serviceRole (AWS does not), so the double sends this role where the provider sends none.
    (moto spells the name "AWSServiceRoleForbatch": the role is found by its service path.)"""
    iam = aws.client("iam")

    def existing() -> str | None:
        roles = iam.list_roles(PathPrefix=f"/aws-service-role/{BATCH_SERVICE}/")["Roles"]
        named = [r["Arn"] for r in roles if r["RoleName"].lower() == BATCH_SERVICE_LINKED_ROLE.lower()]
        return str(named[0]) if named else None

    found = existing()
    if found is None:
        try:
            return str(iam.create_service_linked_role(AWSServiceName=BATCH_SERVICE)["Role"]["Arn"])
        except ClientError as err:  # two compute environments at once: the other created it
            if err.response.get("Error", {}).get("Code") != "EntityAlreadyExists":
                raise
            found = existing()
    assert found is not None
    return found


def compute_resources_request(block: dict[str, Value]) -> dict[str, Value]:
    request = drop_none(
        type=block["type"],
        maxvCpus=_int(block["max_vcpus"]),
        minvCpus=_int(block.get("min_vcpus")),
        desiredvCpus=_int(block.get("desired_vcpus")),
        instanceTypes=sorted(block.get("instance_type") or []) or None,
        instanceRole=block.get("instance_role"),
        allocationStrategy=block.get("allocation_strategy"),
        bidPercentage=_int(block.get("bid_percentage")),
        spotIamFleetRole=block.get("spot_iam_fleet_role"),
        subnets=sorted(block.get("subnets") or []),
        securityGroupIds=sorted(block.get("security_group_ids") or []) or None,
        ec2KeyPair=block.get("ec2_key_pair"),
        imageId=block.get("image_id"),
        placementGroup=block.get("placement_group"),
        tags=block.get("tags") or None,
    )
    configurations = [
        drop_none(imageType=c.get("image_type"), imageIdOverride=c.get("image_id_override"))
        for c in block.get("ec2_configuration") or []
    ]
    if configurations:
        request["ec2Configuration"] = configurations
    if template := first(block.get("launch_template")):
        request["launchTemplate"] = drop_none(
            launchTemplateId=template.get("launch_template_id"),
            launchTemplateName=template.get("launch_template_name"),
            version=template.get("version"),
        )
    return request


class ComputeEnvironment(Resource):
    type_name = "aws_batch_compute_environment"
    replace_on = frozenset({"name", "name_prefix", "type", "compute_resources"})

    def create(self, aws: Aws, planned: dict[str, Value]) -> dict[str, Value]:
        batch = aws.client("batch")
        name = resource_name(planned)
        request = drop_none(
            computeEnvironmentName=name,
            type=planned["type"],
            state=planned.get("state"),
            serviceRole=planned.get("service_role") or service_linked_role(aws),
            tags=tags_to_send(planned) or None,
        )
        if resources := first(planned.get("compute_resources")):
            request["computeResources"] = compute_resources_request(resources)
        got = batch.create_compute_environment(**request)
        (described,) = batch.describe_compute_environments(computeEnvironments=[name])["computeEnvironments"]
        out = fill(
            planned,
            id=name,
            name=name,
            name_prefix="",
            arn=got["computeEnvironmentArn"],
            ecs_cluster_arn=described.get("ecsClusterArn", ""),
            service_role=described.get("serviceRole", ""),
            status=described.get("status", "VALID"),
            status_reason=described.get("statusReason", ""),
            region=aws.region,
        )
        if out.get("compute_resources"):
            desired = described.get("computeResources", {}).get("desiredvCpus", 0)
            out["compute_resources"] = [fill(dict(out["compute_resources"][0]), desired_vcpus=desired)]
        return out

    def read(self, aws: Aws, state: dict[str, Value]) -> dict[str, Value] | None:
        batch = aws.client("batch")
        found = batch.describe_compute_environments(computeEnvironments=[state["id"]])["computeEnvironments"]
        if not found or found[0].get("status") == "DELETED":
            return None
        got = found[0]
        observed: dict[str, Value] = {
            "arn": got["computeEnvironmentArn"],
            "name": got["computeEnvironmentName"],
            "ecs_cluster_arn": got.get("ecsClusterArn"),
            "service_role": got.get("serviceRole"),
            "state": got.get("state"),
            "status": got.get("status"),
            "status_reason": got.get("statusReason", ""),
            "type": got.get("type"),
            **split_tags(aws, state, {k: v for k, v in (got.get("tags") or {}).items() if not k.startswith("aws:")}),
        }
        return refresh(state, observed, computed=("arn", "ecs_cluster_arn", "service_role", "status", "tags_all"))

    def update(self, aws: Aws, prior: dict[str, Value], planned: dict[str, Value]) -> dict[str, Value]:
        batch = aws.client("batch")
        batch.update_compute_environment(
            **drop_none(
                computeEnvironment=prior["name"], state=planned.get("state"), serviceRole=planned.get("service_role")
            )
        )
        _retag(batch, prior, planned)
        keep = (
            "id",
            "name",
            "name_prefix",
            "arn",
            "ecs_cluster_arn",
            "service_role",
            "status",
            "status_reason",
            "region",
        )
        return fill(planned, **{k: prior.get(k) for k in keep})

    def delete(self, aws: Aws, state: dict[str, Value]) -> None:
        batch = aws.client("batch")
        with unless_gone("ClientException"):
            batch.update_compute_environment(computeEnvironment=state["name"], state="DISABLED")
            batch.delete_compute_environment(computeEnvironment=state["name"])


def _retag(batch: object, prior: dict[str, Value], planned: dict[str, Value]) -> None:
    old, new = prior.get("tags_all") or {}, tags_to_send(planned)
    if gone := [k for k in old if k not in new]:
        batch.untag_resource(resourceArn=prior["arn"], tagKeys=gone)  # type: ignore[attr-defined]
    if new and new != old:
        batch.tag_resource(resourceArn=prior["arn"], tags=new)  # type: ignore[attr-defined]


def _order(planned: dict[str, Value]) -> list[dict[str, Value]]:
    return [
        {"order": int(o["order"]), "computeEnvironment": o["compute_environment"]}
        for o in planned.get("compute_environment_order") or []
    ]


class JobQueue(Resource):
    type_name = "aws_batch_job_queue"
    replace_on = frozenset({"name"})

    def create(self, aws: Aws, planned: dict[str, Value]) -> dict[str, Value]:
        got = aws.client("batch").create_job_queue(
            **drop_none(
                jobQueueName=planned["name"],
                state=planned["state"],
                priority=int(planned["priority"]),
                schedulingPolicyArn=planned.get("scheduling_policy_arn"),
                computeEnvironmentOrder=_order(planned),
                tags=tags_to_send(planned) or None,
            )
        )
        return fill(planned, id=got["jobQueueArn"], arn=got["jobQueueArn"], region=aws.region)

    def read(self, aws: Aws, state: dict[str, Value]) -> dict[str, Value] | None:
        found = aws.client("batch").describe_job_queues(jobQueues=[state["id"]])["jobQueues"]
        if not found or found[0].get("status") == "DELETED":
            return None
        got = found[0]
        observed: dict[str, Value] = {
            "arn": got["jobQueueArn"],
            "name": got["jobQueueName"],
            "state": got.get("state"),
            "priority": got.get("priority"),
            "compute_environment_order": [
                {"order": o["order"], "compute_environment": o["computeEnvironment"]}
                for o in sorted(got.get("computeEnvironmentOrder", []), key=lambda o: o["order"])
            ],
            **split_tags(aws, state, dict(got.get("tags") or {})),
        }
        return refresh(state, observed, computed=("arn", "tags_all"))

    def update(self, aws: Aws, prior: dict[str, Value], planned: dict[str, Value]) -> dict[str, Value]:
        batch = aws.client("batch")
        batch.update_job_queue(
            jobQueue=prior["arn"],
            state=planned["state"],
            priority=int(planned["priority"]),
            computeEnvironmentOrder=_order(planned),
        )
        _retag(batch, prior, planned)
        return fill(planned, id=prior["id"], arn=prior["arn"], region=prior.get("region"))

    def delete(self, aws: Aws, state: dict[str, Value]) -> None:
        batch = aws.client("batch")
        with unless_gone("ClientException"):
            batch.update_job_queue(jobQueue=state["arn"], state="DISABLED")
            batch.delete_job_queue(jobQueue=state["arn"])


class JobDefinition(Resource):
    type_name = "aws_batch_job_definition"
    # Every change registers a new revision: the double replaces (the provider's plan shows an update, but the
    # revision, arn and id change either way).
    replace_on = frozenset(
        {
            "name",
            "type",
            "container_properties",
            "ecs_properties",
            "node_properties",
            "eks_properties",
            "parameters",
            "platform_capabilities",
            "propagate_tags",
            "retry_strategy",
            "timeout",
            "scheduling_priority",
        }
    )

    def create(self, aws: Aws, planned: dict[str, Value]) -> dict[str, Value]:
        request = drop_none(
            jobDefinitionName=planned["name"],
            type=planned["type"],
            parameters=planned.get("parameters") or None,
            containerProperties=_json(planned.get("container_properties")),
            platformCapabilities=sorted(planned.get("platform_capabilities") or []) or None,
            propagateTags=planned.get("propagate_tags"),
            schedulingPriority=_int(planned.get("scheduling_priority")),
            tags=tags_to_send(planned) or None,
        )
        if retry := first(planned.get("retry_strategy")):
            request["retryStrategy"] = drop_none(attempts=_int(retry.get("attempts")))
        if timeout := first(planned.get("timeout")):
            request["timeout"] = drop_none(attemptDurationSeconds=_int(timeout.get("attempt_duration_seconds")))
        got = aws.client("batch").register_job_definition(**request)
        arn = got["jobDefinitionArn"]
        return fill(
            planned,
            id=arn,
            arn=arn,
            arn_prefix=arn.rsplit(":", 1)[0],
            revision=got["revision"],
            region=aws.region,
        )

    def read(self, aws: Aws, state: dict[str, Value]) -> dict[str, Value] | None:
        found = aws.client("batch").describe_job_definitions(jobDefinitions=[state["id"]])["jobDefinitions"]
        if not found or found[0].get("status") == "INACTIVE":
            return None
        got = found[0]
        observed: dict[str, Value] = {
            "arn": got["jobDefinitionArn"],
            "name": got["jobDefinitionName"],
            "revision": got["revision"],
            "type": got.get("type"),
            "container_properties": json_kept(
                state.get("container_properties"), json.dumps(without_defaults(got.get("containerProperties") or {}))
            ),
            **split_tags(aws, state, dict(got.get("tags") or {})),
        }
        return refresh(state, observed, computed=("arn", "revision", "tags_all"))

    def update(self, aws: Aws, prior: dict[str, Value], planned: dict[str, Value]) -> dict[str, Value]:
        # Only tags reach here (everything else replaces).
        _retag(aws.client("batch"), prior, planned)
        keep = ("id", "arn", "arn_prefix", "revision", "region")
        return fill(planned, **{k: prior.get(k) for k in keep})

    def delete(self, aws: Aws, state: dict[str, Value]) -> None:
        with unless_gone("ClientException"):
            aws.client("batch").deregister_job_definition(jobDefinition=state["arn"])


def without_defaults(properties: dict[str, Value]) -> dict[str, Value]:
    """containerProperties as the provider compares them: without the empty lists and maps AWS fills in
    (mountPoints, ulimits, volumes, ...), which the provider's equivalence check ignores."""
    return {k: v for k, v in properties.items() if v not in (None, [], {})}


def _json(text: Value) -> dict[str, Value] | None:
    return None if not text else json.loads(text)


register_resource(ComputeEnvironment())
register_resource(JobQueue())
register_resource(JobDefinition())
