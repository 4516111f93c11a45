"""`ec2batch local interrupt` and the EC2 emulator's Spot interruption, on in-process moto and a stand-in engine
for the instance containers (the stack suite runs it on real ones)."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import docker.errors
import pytest
from click.testing import CliRunner

from ec2batch.agent.imds import Imds
from ec2batch.agent.interruption import INSTANCE_ACTION_PATH, LIFECYCLE_PATH, REBALANCE_PATH
from ec2batch.aws import Clients
from ec2batch.cli import main
from ec2batch.local import interrupt as interrupt_module
from ec2batch.local.ec2 import Ec2Emulator, InterruptRequest, register_instance_image
from ec2batch.local.paths import StackPaths
from ec2batch.local.stack import Stack
from ec2batch.names import LABEL_INSTANCE, TAG_JOB

NOW = datetime(2026, 12, 4, 9, 58, 0, 250000, tzinfo=UTC)


class Box:
    """A container on the stand-in engine: an instance's systemd container, or a job's."""

    def __init__(self, engine: Engine, name: str, labels: dict[str, str]) -> None:
        self.engine, self.name, self.labels = engine, name, labels
        self.status = "created"
        self.attrs = {"State": {"StartedAt": "2026-12-04T09:50:00.000000000Z"}}

    def start(self) -> None:
        self.status = "running"

    def reload(self) -> None:
        return

    def stop(self, timeout: int = 10) -> None:
        self.status = "exited"

    def kill(self) -> None:
        self.status = "exited"

    def remove(self, force: bool = False) -> None:
        self.engine.boxes.pop(self.name, None)


class Engine:
    def __init__(self) -> None:
        self.boxes: dict[str, Box] = {}
        self.containers = self

    def get(self, name: str) -> Box:
        if name not in self.boxes:
            raise docker.errors.NotFound(name)
        return self.boxes[name]

    def create(self, image: str, *, name: str, labels: dict[str, str], **options: Any) -> Box:
        self.boxes[name] = Box(self, name, labels)
        return self.boxes[name]

    def list(self, filters: dict[str, str]) -> list[Box]:
        key, _, value = filters["label"].partition("=")
        return [b for b in self.boxes.values() if b.status == "running" and b.labels.get(key) == value]


@pytest.fixture
def paths(tmp_path: Path) -> StackPaths:
    made = StackPaths(tmp_path)
    made.ensure()
    return made


@pytest.fixture
def clock() -> dict[str, datetime]:
    return {"now": NOW}


@pytest.fixture
def emulator(aws: Clients, paths: StackPaths, clock: dict[str, datetime]) -> Iterator[Ec2Emulator]:
    made = Ec2Emulator(aws, Engine(), paths, clock=lambda: clock["now"])
    yield made
    for served in made.imds.values():
        served.close()


def spot_instance(aws: Clients, job: str = "t-spot", *, spot: bool = True) -> str:
    image_id = register_instance_image(aws.ec2, "ec2batch-local/instance:test")
    market = {"MarketType": "spot", "SpotOptions": {"SpotInstanceType": "one-time"}}
    return aws.ec2.run_instances(
        ImageId=image_id,
        MinCount=1,
        MaxCount=1,
        **({"InstanceMarketOptions": market} if spot else {}),
        TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": TAG_JOB, "Value": job}]}],
    )["Instances"][0]["InstanceId"]


def state(aws: Clients, instance_id: str) -> str:
    return aws.ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]["State"]["Name"]


def test_a_request_file_makes_the_emulator_serve_the_notice_then_terminate_the_instance(
    aws: Clients, paths: StackPaths, emulator: Ec2Emulator, clock: dict[str, datetime]
) -> None:
    instance_id = spot_instance(aws)
    emulator.step()  # boots its container and its metadata
    engine: Engine = emulator.docker
    job_box = engine.create("job:1", name="ec2batch-t-spot-r1", labels={LABEL_INSTANCE: instance_id})
    job_box.start()
    metadata = Imds(emulator.imds[instance_id].url)
    assert metadata.peek(LIFECYCLE_PATH) == "spot"
    assert metadata.peek(INSTANCE_ACTION_PATH) is None

    request = InterruptRequest(instance_id, warning_seconds=30).write(paths)
    emulator.step()

    assert not request.exists()  # picked up
    notice = json.loads(metadata.peek(INSTANCE_ACTION_PATH) or "")
    assert notice == {"action": "terminate", "time": "2026-12-04T09:58:31Z"}  # now + 30 s, whole seconds up
    assert json.loads(metadata.peek(REBALANCE_PATH) or "") == {"noticeTime": "2026-12-04T09:58:00Z"}
    clock["now"] = NOW + timedelta(seconds=29)
    emulator.step()
    assert state(aws, instance_id) == "running" and job_box.status == "running"

    clock["now"] = datetime(2026, 12, 4, 9, 58, 31, tzinfo=UTC)
    emulator.step()  # reclaimed: terminated, its job halted with it, then its container halted and forgotten

    assert state(aws, instance_id) == "terminated"
    assert job_box.status == "exited"
    assert f"ec2batch-instance-{instance_id}" not in engine.boxes
    assert instance_id not in emulator.imds


def test_a_rebalance_recommendation_alone_reclaims_nothing(
    aws: Clients, paths: StackPaths, emulator: Ec2Emulator, clock: dict[str, datetime]
) -> None:
    instance_id = spot_instance(aws)
    emulator.step()
    InterruptRequest(instance_id, warning_seconds=120, rebalance_only=True).write(paths)
    emulator.step()
    metadata = Imds(emulator.imds[instance_id].url)

    assert json.loads(metadata.peek(REBALANCE_PATH) or "") == {"noticeTime": "2026-12-04T09:58:00Z"}
    assert metadata.peek(INSTANCE_ACTION_PATH) is None
    clock["now"] = NOW + timedelta(hours=1)
    emulator.step()
    assert state(aws, instance_id) == "running"


# ---------------------------------------------------------------- the command


@pytest.fixture
def local_cli(aws: Clients, paths: StackPaths, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("EC2BATCH_LOCAL_DIR", str(paths.root))
    monkeypatch.setattr(Stack, "clients", lambda self: aws)  # the stack's moto is this test's moto

    def invoke(*args: str):
        return CliRunner().invoke(main, ["local", "interrupt", *args])

    return invoke


def emulators_up(paths: StackPaths) -> None:
    (paths.run / "emulators.pid").write_text(str(os.getpid()))  # a live pid: "running"


def test_the_command_interrupts_a_jobs_instance_and_says_when_it_goes(
    aws: Clients, paths: StackPaths, emulator: Ec2Emulator, local_cli
) -> None:
    emulators_up(paths)
    instance_id = spot_instance(aws, job="t-spot")
    emulator.step()
    stop = threading.Event()
    loop = threading.Thread(target=emulator.run_forever, args=(stop, 0.05), daemon=True)
    loop.start()
    try:
        result = local_cli("t-spot", "--warning", "20")
    finally:
        stop.set()
        loop.join()

    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"{instance_id} (t-spot): Spot interruption notice served now; EC2 terminates it")
    assert result.output.rstrip().endswith("(in 20s)")
    assert json.loads(Imds(emulator.imds[instance_id].url).peek(INSTANCE_ACTION_PATH) or "")["action"] == "terminate"


def test_the_command_says_the_stack_is_not_up(local_cli) -> None:
    result = local_cli("i-0123456789abcdef0")
    assert result.exit_code == 1
    assert result.output == (
        "Error: the local stack is not up (its emulators are not running): start it with `ec2batch local up`\n"
    )


def test_the_command_names_an_unknown_instance_or_job(aws: Clients, paths: StackPaths, local_cli) -> None:
    emulators_up(paths)
    unknown = local_cli("i-0123456789abcdef0")
    no_job = local_cli("no-such-job")

    assert unknown.exit_code == 1
    assert unknown.output == (
        "Error: no instance i-0123456789abcdef0 in the local stack (`ec2batch local status` lists them)\n"
    )
    assert no_job.exit_code == 1
    assert no_job.output == (
        "Error: job no-such-job has no running instance to interrupt (and no-such-job is no instance id)\n"
    )
    assert list(paths.run.glob("interrupt-*")) == []


def test_the_command_refuses_an_on_demand_instance(aws: Clients, paths: StackPaths, local_cli) -> None:
    emulators_up(paths)
    instance_id = spot_instance(aws, "t-on-demand", spot=False)

    for target in (instance_id, "t-on-demand"):
        result = local_cli(target)
        assert result.exit_code == 1
        assert result.output.startswith(f"Error: instance {instance_id} is on-demand: EC2 sends interruption notices")
    assert list(paths.run.glob("interrupt-*")) == []


def test_the_command_reports_emulators_that_do_not_pick_up_the_request(
    aws: Clients, paths: StackPaths, local_cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    emulators_up(paths)
    instance_id = spot_instance(aws)
    monkeypatch.setattr(interrupt_module, "PICKUP_SECONDS", 0.3)

    result = local_cli(instance_id)

    assert result.exit_code == 1
    assert result.output.startswith("Error: the emulators did not pick up the request within 0.3s; see ")
    assert list(paths.run.glob("interrupt-*")) == []  # no stale request for a later emulator to act on
