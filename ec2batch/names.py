"""The one place where every AWS name and tag of a job is derived.

Terraform (terraform/modules/scheduled-job/locals.tf) spells the same templates in HCL;
tests/unit/test_names.py proves both give identical names for the same job.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PREFIX = "ec2batch"
JOB_NAME_PATTERN = r"^[a-z][a-z0-9-]{1,30}$"
_JOB_NAME_RE = re.compile(JOB_NAME_PATTERN)

# Tags. `TAG_JOB` goes on everything the job owns; `TAG_RUN_ID` on the instance for its current run.
TAG_JOB = "ec2batch:job"
TAG_RUN_ID = "ec2batch:run-id"
# The attempt of that run the instance was started or launched for (absent: the first). An agent whose
# machine was for an attempt the run has moved past never claims the run.
TAG_ATTEMPT = "ec2batch:attempt"


def tagged_attempt(tags: dict[str, str]) -> int:
    """The attempt an instance was started or launched for: 1 if untagged (before attempts existed)."""
    value = tags.get(TAG_ATTEMPT, "1")
    return int(value) if value.isdigit() else 1


# Marks an instance the launcher made for one run only (ephemeral strategy, capacity fallback,
# or an extra parallel run); the launcher never starts such an instance again.
TAG_LIFECYCLE = "ec2batch:lifecycle"
LIFECYCLE_REUSE = "reuse"
LIFECYCLE_EPHEMERAL = "ephemeral"
# Left on the instance by an agent that could not write its run's outcome to the ledger (AWS
# unreachable at the end); the reconciler records it from there (`ec2batch.outcome_tag` encodes it).
TAG_OUTCOME = "ec2batch:outcome"

# Docker labels the agent puts on the job's container, so a restarted agent finds it again.
LABEL_JOB = "ec2batch.job"
LABEL_RUN_ID = "ec2batch.run-id"
LABEL_ATTEMPT = "ec2batch.attempt"  # absent on containers of a run's first attempt made before attempts existed
LABEL_INSTANCE = "ec2batch.instance-id"

# Parameter-store root under which every job's config lives (`ec2batch jobs` lists it).
SSM_ROOT = f"/{PREFIX}/"


class InvalidJobName(ValueError):
    """A job name that cannot be used to derive AWS names."""


def validate_job_name(job: str) -> str:
    if not isinstance(job, str) or not _JOB_NAME_RE.match(job):
        raise InvalidJobName(
            f"job name {job!r} is invalid: use 2-31 characters, lowercase letters, digits and '-', "
            "starting with a letter (pattern " + JOB_NAME_PATTERN + ")"
        )
    return job


@dataclass(frozen=True)
class JobNames:
    """Every AWS resource name of one job."""

    job: str

    def __post_init__(self) -> None:
        validate_job_name(self.job)

    @property
    def base(self) -> str:
        return f"{PREFIX}-{self.job}"

    @property
    def config_parameter(self) -> str:
        return f"/{PREFIX}/{self.job}/config"

    @property
    def log_group(self) -> str:
        return f"/{PREFIX}/{self.job}"

    @property
    def ecr_repository(self) -> str:
        return f"{PREFIX}/{self.job}"

    @property
    def ledger_table(self) -> str:
        return f"{self.base}-runs"

    @property
    def metrics_namespace(self) -> str:
        # The run metrics the agent publishes (ec2batch.metrics) and the alarms' log metric filters.
        return f"{PREFIX}/{self.job}"

    @property
    def launch_template(self) -> str:
        return self.base

    @property
    def launcher_function(self) -> str:
        return f"{self.base}-launcher"

    @property
    def launcher_log_group(self) -> str:
        return f"/aws/lambda/{self.launcher_function}"

    @property
    def notification_topic(self) -> str:
        return self.base

    @property
    def timer_queue(self) -> str:
        return f"{self.base}-timers"

    @property
    def dead_letter_queue(self) -> str:
        return f"{self.base}-dlq"

    @property
    def schedule(self) -> str:
        return self.base

    @property
    def planner_schedule(self) -> str:
        return f"{self.base}-planner"

    @property
    def schedule_group(self) -> str:
        # One group per job: destroying one job's schedules never touches another's.
        return self.base

    @property
    def instance_role(self) -> str:
        return f"{self.base}-instance"

    @property
    def instance_profile(self) -> str:
        return f"{self.base}-instance"

    @property
    def launcher_role(self) -> str:
        return f"{self.base}-launcher"

    @property
    def scheduler_role(self) -> str:
        return f"{self.base}-scheduler"

    @property
    def job_role(self) -> str:
        # The job's own role (assumed through the agent's credentials endpoint), never the machine's.
        return f"{self.base}-job"

    @property
    def security_group(self) -> str:
        return self.base

    @property
    def topic_key_alias(self) -> str:
        # The KMS key Terraform creates for the topic when no customer key is given.
        return f"alias/{self.base}-topic"

    # AWS Batch, for runs with shards (one array job per run; docs/shards.md).
    @property
    def batch_compute_environment(self) -> str:
        return self.base

    @property
    def batch_spot_compute_environment(self) -> str:
        return f"{self.base}-spot"

    @property
    def batch_job_queue(self) -> str:
        return self.base

    @property
    def batch_job_definition(self) -> str:
        return self.base

    @property
    def batch_instance_role(self) -> str:
        # The ECS container instances of an EC2 compute environment (not the job's, not the launcher's).
        return f"{self.base}-batch-instance"

    @property
    def batch_execution_role(self) -> str:
        # What the ECS agent uses to pull the image, write the logs and read the secrets of a shard.
        return f"{self.base}-batch-execution"

    @property
    def batch_launch_template(self) -> str:
        # The compute environment's instances: IMDSv2 with hop limit 1, so shard containers never reach the
        # instance role (a different template from the job's own machines).
        return f"{self.base}-batch"

    @property
    def batch_state_rule(self) -> str:
        # EventBridge: the queue's "Batch Job State Change" events to the launcher.
        return f"{self.base}-batch-state"

    @property
    def after_rule(self) -> str:
        # EventBridge: the run state change events of the jobs this one runs after (`after`), to its launcher.
        return f"{self.base}-after"

    def batch_log_stream_prefix(self) -> str:
        """awslogs-stream-prefix of the job definition: a shard's stream is <prefix>/default/<task id>."""
        return "shards"

    def run_log_stream(self, run_id: str) -> str:
        """The container's stream; the agent's own lines go to `agent_log_stream`."""
        return f"{run_id}/job"

    def agent_log_stream(self, run_id: str) -> str:
        return f"{run_id}/agent"

    def tags(self) -> dict[str, str]:
        """Tags every taggable resource of the job carries."""
        return {TAG_JOB: self.job}

    def as_dict(self) -> dict[str, str]:
        """All names at once: used by `ec2batch names` and the Terraform parity test."""
        names = {
            key: getattr(self, key)
            for key, value in type(self).__dict__.items()
            if isinstance(value, property) and key != "job"
        }
        return dict(sorted(names.items()))
