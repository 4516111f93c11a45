"""Finding jobs and their schedules: what `ec2batch jobs`, `status` and `next JOB` read."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .names import SSM_ROOT, TAG_JOB, JobNames


def list_jobs(ssm: Any) -> list[str]:
    """Jobs with a config parameter under /ec2batch/ (paginated: an account may hold many)."""
    jobs: list[str] = []
    for page in ssm.get_paginator("get_parameters_by_path").paginate(Path=SSM_ROOT, Recursive=True):
        for parameter in page["Parameters"]:
            parts = parameter["Name"].strip("/").split("/")
            if len(parts) == 3 and parts[2] == "config":
                jobs.append(parts[1])
    return sorted(jobs)


@dataclass(frozen=True)
class JobSchedule:
    expression: str
    timezone: str
    state: str


def get_schedule(scheduler: Any, job: str) -> JobSchedule | None:
    names = JobNames(job)
    try:
        found = scheduler.get_schedule(Name=names.schedule, GroupName=names.schedule_group)
    except scheduler.exceptions.ResourceNotFoundException:
        return None
    return JobSchedule(
        expression=found["ScheduleExpression"],
        timezone=found.get("ScheduleExpressionTimezone") or "UTC",
        state=found.get("State", "ENABLED"),
    )


def find_instances(ec2: Any, job: str) -> list[dict[str, Any]]:
    response = ec2.describe_instances(
        Filters=[
            {"Name": f"tag:{TAG_JOB}", "Values": [job]},
            {"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]},
        ]
    )
    return [i for r in response["Reservations"] for i in r["Instances"]]
