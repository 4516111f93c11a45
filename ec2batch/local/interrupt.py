"""`ec2batch local interrupt`: ask the running stack's EC2 emulator to interrupt an instance as EC2 does a Spot one.

The emulator lives in the stack's emulators process, so the request goes through a file in the stack's run
folder, which the emulator's half-second loop picks up and removes; the command waits for that, so it
reports a stack that is not listening instead of leaving a request nobody reads.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from ..names import TAG_JOB
from . import services
from .ec2 import InterruptRequest, utc_text
from .paths import StackPaths
from .services import StackError

PICKUP_SECONDS = 5.0  # ten turns of the emulator's loop


def interrupt(
    paths: StackPaths,
    ec2: Any,
    target: str,
    *,
    warning_seconds: float = 120.0,
    rebalance_only: bool = False,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    sleep: Callable[[float], None] = time.sleep,
) -> str:
    """Interrupt `target` (an instance id, or a job name: its running instance); returns what will happen."""
    if services.running_pid(paths, "emulators") is None:
        raise StackError("the local stack is not up (its emulators are not running): start it with `ec2batch local up`")
    instance_id, job = resolve_instance(ec2, target)
    request = InterruptRequest(instance_id, warning_seconds, rebalance_only)
    path = request.write(paths)
    deadline = time.monotonic() + PICKUP_SECONDS
    while path.exists():
        if time.monotonic() > deadline:
            path.unlink(missing_ok=True)
            raise StackError(
                f"the emulators did not pick up the request within {PICKUP_SECONDS:g}s; "
                f"see {paths.logs / 'emulators.log'}"
            )
        sleep(0.1)
    if rebalance_only:
        return f"{instance_id} ({job}): rebalance recommendation served now; no interruption follows"
    at = datetime.fromtimestamp(math.ceil(clock().timestamp() + warning_seconds), UTC)
    return (
        f"{instance_id} ({job}): Spot interruption notice served now; "
        f"EC2 terminates it at about {utc_text(at)} (in {warning_seconds:g}s)"
    )


def resolve_instance(ec2: Any, target: str) -> tuple[str, str]:
    """(instance id, job) of a running ec2batch instance: `target` is its id, or the job that runs on it."""
    if target.startswith("i-"):
        try:
            reservations = ec2.describe_instances(InstanceIds=[target])["Reservations"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code", "").startswith("InvalidInstanceID"):
                raise StackError(
                    f"no instance {target} in the local stack (`ec2batch local status` lists them)"
                ) from exc
            raise
        instance = reservations[0]["Instances"][0]
        state = instance["State"]["Name"]
        if state != "running":
            raise StackError(f"instance {target} is {state}: only a running instance can be interrupted")
        job = _tags(instance).get(TAG_JOB)
        if job is None:
            raise StackError(f"instance {target} is not an ec2batch instance (it has no {TAG_JOB} tag)")
        _require_spot(instance)
        return target, job
    reservations = ec2.describe_instances(
        Filters=[
            {"Name": f"tag:{TAG_JOB}", "Values": [target]},
            {"Name": "instance-state-name", "Values": ["running"]},
        ]
    )["Reservations"]
    running = [i for r in reservations for i in r["Instances"]]
    if not running:
        raise StackError(f"job {target} has no running instance to interrupt (and {target} is no instance id)")
    spot = [i for i in running if i.get("InstanceLifecycle") == "spot"]
    _require_spot((spot or running)[0])
    return spot[0]["InstanceId"], target


def _require_spot(instance: dict[str, Any]) -> None:
    """EC2 interrupts Spot instances only; serving a notice to an on-demand one would test a path AWS never takes."""
    if instance.get("InstanceLifecycle") != "spot":
        raise StackError(
            f"instance {instance['InstanceId']} is on-demand: EC2 sends interruption notices to Spot instances "
            "only (give the job market spot or spot-then-on-demand, and strategy ephemeral)"
        )


def _tags(instance: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in instance.get("Tags", [])}
