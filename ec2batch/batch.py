"""The one rendering of a sharded job's AWS Batch resources: compute environments, job queue, job definition.

Each function returns the keyword arguments of the Batch API call that creates the resource. The local
stack calls them against moto_server (`ec2batch.local.provision`); Terraform writes the same resources in
HCL, and a parity test compares the two. A run with `shards` N > 1 is one array job of N children on the
queue (docs/shards.md).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .config import JobConfig, RetryPolicy, SecretRef
from .errors import Ec2BatchError

# Each child learns its index as EC2BATCH_SHARD_INDEX. AWS sets AWS_BATCH_JOB_ARRAY_INDEX in a child;
# moto does not, but on both a child's job id is `<parent id>:<index>`, so the id's tail is the fallback.
# `exec` keeps the job's command as the container's main process (it gets SIGTERM directly).
SHARD_SHIM = (
    "/bin/sh",
    "-c",
    'export EC2BATCH_SHARD_INDEX="${AWS_BATCH_JOB_ARRAY_INDEX:-${AWS_BATCH_JOB_ID##*:}}"; exec "$@"',
    "ec2batch-shard",  # $0 of the shell: what `ps` shows while the shim runs
)
# The launcher passes the count in containerOverrides (AWS also sets AWS_BATCH_JOB_ARRAY_SIZE; moto does not).
SHARD_INDEX_VARIABLE = "EC2BATCH_SHARD_INDEX"
SHARD_COUNT_VARIABLE = "EC2BATCH_SHARD_COUNT"

MAX_EVALUATE_ON_EXIT = 5  # AWS Batch API reference, EvaluateOnExit: "an array of up to 5 conditions"
MAX_EXIT_CODE = 255  # a container's exit status is one byte
# The status reason Batch gives a job whose instance EC2 took away (a Spot reclaim, an instance failure);
# AWS Batch user guide, "Automated job retries", retries on it with exactly this pattern.
HOST_LOST_REASON = "Host EC2*"


class BatchRenderError(Ec2BatchError):
    """A job config that AWS Batch cannot express; the message says which field and why."""


# ---------------------------------------------------------------- job definition


def job_definition(
    config: JobConfig, *, execution_role_arn: str, job_role_arn: str | None = None, region: str | None = None
) -> dict[str, Any]:
    """RegisterJobDefinition kwargs for the job's children.

    `region` is needed only to name a Secrets Manager secret given by name (Batch wants its full ARN);
    the account and partition come from `execution_role_arn`.
    """
    names = config.names
    fargate = config.batch.compute == "fargate"
    container: dict[str, Any] = {
        "image": config.image,
        "command": shard_command(config),
        "resourceRequirements": [
            {"type": "VCPU", "value": f"{config.batch.vcpus:g}"},
            {"type": "MEMORY", "value": str(config.batch.memory_mb)},
        ],
        "environment": [{"name": k, "value": v} for k, v in sorted(config.env.items())],
        "secrets": [
            {"name": name, "valueFrom": secret_value_from(ref, execution_role_arn=execution_role_arn, region=region)}
            for name, ref in sorted(config.secrets.items())
        ],
        "executionRoleArn": execution_role_arn,
        "logConfiguration": {
            "logDriver": "awslogs",
            "options": {
                "awslogs-group": names.log_group,
                "awslogs-stream-prefix": names.batch_log_stream_prefix(),
            },
        },
    }
    if job_role_arn is not None:
        container["jobRoleArn"] = job_role_arn
    if fargate:
        # Private subnets reach ECR and the logs through NAT or endpoints, as the job instances do.
        container["networkConfiguration"] = {"assignPublicIp": "DISABLED"}
        container["fargatePlatformConfiguration"] = {"platformVersion": "LATEST"}
    definition: dict[str, Any] = {
        "jobDefinitionName": names.batch_job_definition,
        "type": "container",
        "platformCapabilities": ["FARGATE" if fargate else "EC2"],
        "containerProperties": container,
        "timeout": {"attemptDurationSeconds": config.max_runtime_seconds},
        "propagateTags": True,
        "tags": names.tags(),
    }
    if config.retry.attempts > 1:
        definition["retryStrategy"] = retry_strategy(config.retry)
    return definition


def shard_command(config: JobConfig) -> list[str]:
    """The shim, then the job's command as its arguments.

    Batch's `command` replaces the image's CMD only; an ENTRYPOINT stays in front of it. So a sharded job
    names its command, and its image has no ENTRYPOINT (or one that execs its arguments).
    """
    if not config.command:
        raise BatchRenderError(
            f"config.command: job {config.job!r} has shards {config.shards} and no command; AWS Batch runs the "
            'job definition\'s command in place of the image\'s CMD, so name it (e.g. ["python3", "/app/job.py"])'
        )
    return [*SHARD_SHIM, *config.command]


def secret_value_from(ref: SecretRef, *, execution_role_arn: str, region: str | None) -> str:
    """Batch's `valueFrom`: an SSM parameter's ARN (its name when no region is given: Batch accepts a
    same-region name), a Secrets Manager secret's ARN, and for one key of a JSON secret `<arn>:<key>::`
    (no version stage, no version id: the current version)."""
    partition, account = _partition_and_account(execution_role_arn)
    if ref.source == "ssm":
        if ref.name.startswith("arn:") or region is None:
            return ref.name
        return f"arn:{partition}:ssm:{region}:{account}:parameter/{ref.name.lstrip('/')}"
    arn = ref.name
    if not arn.startswith("arn:"):
        if region is None:
            raise BatchRenderError(
                f"secret {ref.name!r}: AWS Batch needs a Secrets Manager secret's full ARN; give its ARN in the "
                "config, or the region to build it"
            )
        arn = f"arn:{partition}:secretsmanager:{region}:{account}:secret:{ref.name}"
    return f"{arn}:{ref.key}::" if ref.key is not None else arn


def _partition_and_account(role_arn: str) -> tuple[str, str]:
    parts = role_arn.split(":")
    if len(parts) < 6 or parts[0] != "arn" or parts[2] != "iam":
        raise BatchRenderError(f"execution role {role_arn!r} is not an IAM role ARN")
    return parts[1], parts[4]


# ---------------------------------------------------------------- retries


def retry_strategy(retry: RetryPolicy) -> dict[str, Any]:
    """attempts, and evaluateOnExit: RETRY what the config retries, EXIT on everything else.

    Batch retries a job that matches no condition, hence the final EXIT for every exit code. A lost
    instance (Spot reclaim, instance failure) has a status reason, not an exit code, so it comes first.
    """
    conditions: list[dict[str, str]] = []
    if {"interruption", "instance-lost"} & set(retry.on):
        conditions.append({"onStatusReason": HOST_LOST_REASON, "action": "RETRY"})
    conditions += [{"onExitCode": pattern, "action": "RETRY"} for pattern in exit_code_patterns(retry.exit_codes)]
    conditions.append({"onExitCode": "*", "action": "EXIT"})
    if len(conditions) > MAX_EVALUATE_ON_EXIT:
        patterns = ", ".join(c.get("onExitCode", c.get("onStatusReason", "")) for c in conditions[:-1])
        raise BatchRenderError(
            f"config.retry.exit_codes: AWS Batch takes at most {MAX_EVALUATE_ON_EXIT} retry conditions and these "
            f"need {len(conditions)} ({patterns}, then EXIT for the rest): a glob matches one code or a decimal "
            "prefix ('12*' is 12 and 120-129); choose ranges that align with prefixes, e.g. \"100-199\" is '1*' "
            "only with 1 and 10-19 also retried"
        )
    return {"attempts": retry.attempts, "evaluateOnExit": conditions}


def exit_code_patterns(ranges: Iterable[tuple[int, int]]) -> list[str]:
    """The fewest Batch onExitCode globs matching exactly the codes in `ranges` (inclusive, within 0-255).

    A glob is digits with an optional '*' at the end, matched against the code's decimal form: "12*" is 12
    and 120-129 (and 1200+, which no exit code reaches). Walking the codes' decimal prefixes, a prefix all of
    whose codes are retried becomes one glob; otherwise its own code (if retried) is exact and its longer
    prefixes are tried in turn. No glob ever matches a code outside the ranges.
    """
    codes = {code for low, high in ranges for code in range(max(0, low), min(MAX_EXIT_CODE, high) + 1)}
    patterns: list[str] = []
    for first in "0123456789":
        patterns += _cover(first, codes)
    return patterns


def _cover(prefix: str, codes: set[int]) -> list[str]:
    matched = _codes_with_prefix(prefix)
    if not matched:
        return []
    if matched <= codes:
        return [prefix + "*" if len(matched) > 1 else prefix]
    patterns = [prefix] if int(prefix) in codes else []
    if prefix != "0":  # "0" has no longer codes: 01 is not how 1 is written
        for digit in "0123456789":
            patterns += _cover(prefix + digit, codes)
    return patterns


def _codes_with_prefix(prefix: str) -> set[int]:
    return {code for code in range(MAX_EXIT_CODE + 1) if str(code).startswith(prefix)}


# ---------------------------------------------------------------- compute environments and queue


def compute_environments(
    config: JobConfig,
    *,
    subnets: list[str],
    security_group_ids: list[str],
    instance_profile_arn: str | None,
    service_role_arn: str | None = None,
) -> list[dict[str, Any]]:
    """CreateComputeEnvironment kwargs, in the order the queue uses them: Spot first for spot-then-on-demand.

    EC2 environments scale from zero (minvCpus 0) to batch.max_vcpus. `service_role_arn` None leaves Batch
    its service-linked role, as AWS recommends; moto needs one named.
    """
    markets = {"on-demand": (False,), "spot": (True,), "spot-then-on-demand": (True, False)}[config.market]
    return [
        _compute_environment(config, spot, subnets, security_group_ids, instance_profile_arn, service_role_arn)
        for spot in markets
    ]


def _compute_environment(
    config: JobConfig,
    spot: bool,
    subnets: list[str],
    security_group_ids: list[str],
    instance_profile_arn: str | None,
    service_role_arn: str | None,
) -> dict[str, Any]:
    names = config.names
    resources: dict[str, Any] = {
        "maxvCpus": config.batch.max_vcpus,
        "subnets": list(subnets),
        "securityGroupIds": list(security_group_ids),
    }
    if config.batch.compute == "fargate":
        resources["type"] = "FARGATE_SPOT" if spot else "FARGATE"
    else:
        if instance_profile_arn is None:
            raise BatchRenderError("an EC2 compute environment needs the instance profile of its ECS instances")
        resources |= {
            "type": "SPOT" if spot else "EC2",
            # Spot: the pools least likely to be interrupted, at a low price; on demand: the cheapest that fit.
            "allocationStrategy": "SPOT_PRICE_CAPACITY_OPTIMIZED" if spot else "BEST_FIT_PROGRESSIVE",
            "minvCpus": 0,
            "instanceTypes": list(config.instance_types) or ["optimal"],
            "instanceRole": instance_profile_arn,
            "tags": names.tags(),  # on the instances Batch launches, so the cost report finds them
        }
    environment: dict[str, Any] = {
        "computeEnvironmentName": names.batch_spot_compute_environment if spot else names.batch_compute_environment,
        "type": "MANAGED",
        "state": "ENABLED",
        "computeResources": resources,
        "tags": names.tags(),
    }
    if service_role_arn is not None:
        environment["serviceRole"] = service_role_arn
    return environment


def job_queue(config: JobConfig, compute_environment_arns: list[str]) -> dict[str, Any]:
    """CreateJobQueue kwargs: the compute environments in the given order (Spot first where there are two)."""
    return {
        "jobQueueName": config.names.batch_job_queue,
        "state": "ENABLED",
        "priority": 1,
        "computeEnvironmentOrder": [
            {"order": order, "computeEnvironment": arn} for order, arn in enumerate(compute_environment_arns, start=1)
        ],
        "tags": config.names.tags(),
    }
