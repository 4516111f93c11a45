"""An agent on in-process moto: the launcher has started a run on an instance, the agent boots on it."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ec2batch.agent.main import Agent, Settings
from ec2batch.launcher import Launcher
from ec2batch.launcher.machines import Machines
from ec2batch.ledger import Ledger, Run
from ec2batch.names import TAG_JOB, TAG_RUN_ID
from tests.conftest import Job, load_event
from tests.unit.agent.fakes import Clock, FakeDocker, FakeImds

SCHEDULED = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
LAUNCHED = SCHEDULED + timedelta(seconds=5)  # the launcher's clock when it starts the instance
BOOTED = SCHEDULED + timedelta(seconds=30)  # the agent's clock when it starts (the same time, unskewed)


@pytest.fixture(autouse=True)
def no_leftover_log_handlers() -> Iterator[None]:
    """The agent adds a CloudWatch handler to the `ec2batch` logger; it must not outlive the test's moto."""
    logger = logging.getLogger("ec2batch")
    before = list(logger.handlers)
    yield
    for handler in list(logger.handlers):
        if handler not in before:
            logger.removeHandler(handler)


@dataclass
class Machine:
    """One boot of the job's instance: its metadata, its engine, its clock, its /run/ec2batch."""

    job: Job
    instance_id: str
    docker: FakeDocker
    clock: Clock
    runtime_dir: Path | None
    powered_off: Path
    metadata_tags: bool = True  # the launch template's instance_metadata_tags
    # What instance metadata serves besides identity and tags (a Spot notice), and every path the agent asked.
    metadata: dict[str, str] = field(default_factory=dict)
    peeked: list[str] = field(default_factory=list)

    def agent(self, **settings: Any) -> Agent:
        defaults: dict[str, Any] = {
            "poweroff_command": ["touch", str(self.powered_off)],
            "keep_running_flag": self.powered_off.parent / "keep-running",
            "runtime_dir": self.runtime_dir,
        }
        return Agent(
            Settings(**{**defaults, **settings}),
            imds=FakeImds(
                self.instance_id,
                tags=self.tags() if self.metadata_tags else {},
                metadata=self.metadata,
                peeked=self.peeked,
            ),
            make_clients=lambda region: self.job.clients,
            make_docker=lambda: self.docker,
            clock=self.clock.now,
            sleep=self.clock.sleep,
        )

    def boot(self, **settings: Any) -> int:
        """The agent from start to power-off; returns its exit code."""
        self.powered_off.unlink(missing_ok=True)
        return self.agent(**settings).run()

    def tags(self) -> dict[str, str]:
        # DescribeInstances, not DescribeTags: tests make DescribeTags fail, and IMDS must still answer.
        response = self.job.clients.ec2.describe_instances(InstanceIds=[self.instance_id])
        return {t["Key"]: t["Value"] for t in response["Reservations"][0]["Instances"][0].get("Tags", [])}

    @property
    def is_off(self) -> bool:
        return self.powered_off.exists()

    def reboot(self) -> None:
        """The machine was stopped and started again: /run is empty, the engine keeps its containers."""
        if self.runtime_dir is not None:
            for path in self.runtime_dir.glob("*"):
                path.unlink()


def ledger(job: Job) -> Ledger:
    return Ledger(job.clients.dynamodb, job.config.names.ledger_table)


def launch(job: Job) -> Run:
    """The launcher's part: a scheduled run recorded STARTING on a tagged instance."""
    launcher = Launcher(
        job.clients,
        clock=lambda: LAUNCHED,
        machines=Machines(job.clients.ec2, stopping_wait_seconds=5, sleep=lambda s: None),
        sleep=lambda s: None,
    )
    result = launcher.handle(load_event("schedule"))
    assert result["outcome"] == "started", result
    return ledger(job).require(job.name, result["run_id"])


def machine_for(job: Job, run: Run, tmp_path: Path, *, start: datetime = BOOTED, **docker: Any) -> Machine:
    assert run.instance_id
    clock = Clock(start)
    return Machine(
        job=job,
        instance_id=run.instance_id,
        docker=FakeDocker(clock, **docker),
        clock=clock,
        runtime_dir=tmp_path / "run-ec2batch",
        powered_off=tmp_path / "powered-off",
    )


def tagged(machine: Machine) -> tuple[str | None, str | None]:
    tags = machine.tags()
    return tags.get(TAG_JOB), tags.get(TAG_RUN_ID)
