"""The local stack suite: real dockerd, registry, moto_server, Packer-built instance containers.

The session fixture brings the stack up exactly as `ec2batch local up` does (cached images make a
warm start take seconds); each test deploys its own job, so tests never share an instance.
"""

from __future__ import annotations

import importlib
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ec2batch.aws import Clients
from ec2batch.config import JobConfig
from ec2batch.jobs import list_jobs
from ec2batch.launcher import Launcher
from ec2batch.ledger import Ledger, Run
from ec2batch.local.ec2 import CONTAINER_PREFIX
from ec2batch.local.images import BASE_IMAGE
from ec2batch.local.paths import LOOPBACK, REGISTRY_PORT
from ec2batch.local.stack import Stack
from ec2batch.names import LABEL_INSTANCE, LABEL_JOB, TAG_JOB
from ec2batch.runlogs import read_stream

pytestmark = pytest.mark.stack


# Every job the suite deploys is named so: the suite removes them, and only them, from the user's stack.
TEST_JOB_PREFIX = "t-"


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    stack = Stack.default(progress=lambda message: print(f"[stack] {message}", flush=True))
    saved = dict(os.environ)
    os.environ.update(stack.env())
    os.environ.pop("EC2BATCH_JOB", None)
    # A clean slate for our own jobs (an interrupted session may have left some); the user's jobs, runs and
    # instances on the same stack stay as they are.
    result = stack.up(before_provisioning=lambda: remove_test_jobs(stack))
    stack.images = result  # type: ignore[attr-defined]
    yield stack
    removed = remove_test_jobs(stack)
    left = leftovers_of_the_suite(stack, removed)
    os.environ.clear()
    os.environ.update(saved)
    assert not left, f"the stack suite left these behind on the local stack: {left}"


def remove_test_jobs(stack: Stack) -> list[str]:
    """Remove every `t-*` job; returns the instances they had."""
    instances: list[str] = []
    for job in list_jobs(stack.clients().ssm):
        if job.startswith(TEST_JOB_PREFIX):
            instances += stack.remove_job(job)
    return instances


def leftovers_of_the_suite(stack: Stack, instances: list[str]) -> list[str]:
    """What a user would still see of the suite: jobs (`ec2batch jobs`), instances, containers (the job's own,
    and those of the instances the suite's jobs had)."""
    clients, docker = stack.clients(), stack.docker()
    left = [f"job {job}" for job in list_jobs(clients.ssm) if job.startswith(TEST_JOB_PREFIX)]
    reservations = clients.ec2.describe_instances(
        Filters=[{"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]}]
    )["Reservations"]
    for instance in (i for r in reservations for i in r["Instances"]):
        job = {t["Key"]: t["Value"] for t in instance.get("Tags", [])}.get(TAG_JOB, "")
        if job.startswith(TEST_JOB_PREFIX):
            left.append(f"instance {instance['InstanceId']} of {job} ({instance['State']['Name']})")
    for container in docker.containers.list(all=True, filters={"label": LABEL_JOB}):
        if container.labels.get(LABEL_JOB, "").startswith(TEST_JOB_PREFIX):
            left.append(f"container {container.name}")
    for container in docker.containers.list(all=True, filters={"name": CONTAINER_PREFIX}):
        if container.labels.get(LABEL_INSTANCE) in instances:
            left.append(f"instance container {container.name}")
    return left


@dataclass
class LocalJob:
    stack: Stack
    clients: Clients
    config: JobConfig
    topic_arn: str

    @property
    def name(self) -> str:
        return self.config.job

    @property
    def ledger(self) -> Ledger:
        return Ledger(self.clients.dynamodb, self.config.names.ledger_table)

    def trigger(self, **event: Any) -> dict[str, Any]:
        return Launcher(self.clients).handle({"action": "run", "job": self.name, **event})

    def wait_run(self, run_id: str, timeout: float = 120, until: Callable[[Run], bool] = lambda r: r.terminal) -> Run:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = self.ledger.require(self.name, run_id)
            if until(run):
                return run
            time.sleep(0.3)
        raise AssertionError(f"run {run_id} did not get there in {timeout}s: {self.ledger.require(self.name, run_id)}")

    def wait_instance(
        self, instance_id: str, states: tuple[str, ...] = ("stopped", "terminated"), timeout: float = 60
    ) -> str:
        deadline = time.monotonic() + timeout
        state = ""
        while time.monotonic() < deadline:
            reservations = self.clients.ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
            state = reservations[0]["Instances"][0]["State"]["Name"]
            if state in states:
                return state
            time.sleep(0.3)
        raise AssertionError(f"instance {instance_id} is still {state} after {timeout}s")

    def job_lines(self, run_id: str) -> list[str]:
        names = self.config.names
        return [
            line.message for line in read_stream(self.clients.logs, names.log_group, names.run_log_stream(run_id))[0]
        ]

    def agent_lines(self, run_id: str) -> list[str]:
        """The agent's log records (JSON lines), without the run's metrics line (EMF: `_aws`, no `msg`), which
        shares the stream but is data for CloudWatch, not a log record."""
        names = self.config.names
        lines = read_stream(self.clients.logs, names.log_group, names.agent_log_stream(run_id))[0]
        return [line.message for line in lines if not line.message.startswith('{"_aws"')]

    def inbox(self) -> str:
        """A queue subscribed to the job's topic, like an on-call's e-mail."""
        sqs = self.clients.sqs
        url = sqs.create_queue(QueueName=f"inbox-{self.name}")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        self.clients.sns.subscribe(TopicArn=self.topic_arn, Protocol="sqs", Endpoint=arn)
        return url


@pytest.fixture
def deploy(stack: Stack) -> Callable[..., LocalJob]:
    """Deploy a job built on the example runner image, with these config overrides."""

    def make(job: str, **overrides: Any) -> LocalJob:
        assert job.startswith(TEST_JOB_PREFIX), f"name test jobs {TEST_JOB_PREFIX}*: the suite removes those at its end"
        clients = stack.clients()
        images = stack.images  # type: ignore[attr-defined]
        topic_arn = clients.sns.create_topic(Name=f"ec2batch-{job}")["TopicArn"]
        overrides.setdefault("notifications", {"topic_arn": topic_arn, "on": ["FAILED", "TIMED_OUT"]})
        config = stack.example_config(images["runner_image"], job=job, **overrides)
        stack.provision(config, images["instance_image"])
        return LocalJob(stack, clients, config, topic_arn)

    return make


# What boto3 needs at run time, copied into the AWS job's image from this virtualenv (all pure Python).
SDK_PACKAGES = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six")


@pytest.fixture(scope="session")
def aws_job_image(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> str:
    """tests/stack/aws_job: a job that calls AWS with boto3's default credential chain, pushed to the registry."""
    context = tmp_path_factory.mktemp("aws-job")
    source = Path(__file__).parent / "aws_job"
    for name in ("Dockerfile", "whoami.py"):
        shutil.copy(source / name, context / name)
    for package in SDK_PACKAGES:
        origin = Path(str(importlib.import_module(package).__file__))
        if origin.name == "__init__.py":
            shutil.copytree(origin.parent, context / "sdk" / package, ignore=shutil.ignore_patterns("*.pyc"))
        else:
            (context / "sdk").mkdir(exist_ok=True)
            shutil.copy(origin, context / "sdk")
    image = f"{LOOPBACK}:{REGISTRY_PORT}/ec2batch/aws-job"
    client = stack.docker()
    client.images.build(
        path=str(context), tag=f"{image}:latest", buildargs={"BASE_IMAGE": BASE_IMAGE}, network_mode="host", rm=True
    )
    for line in client.images.push(image, tag="latest", stream=True, decode=True):
        assert "error" not in line, line
    return f"{image}:latest"
