"""`make bench`, part 4: what one reconciler tick costs for a job with 1,000 runs in its ledger and 10 live.

In-process moto (no local stack needed): the figure is the number of AWS calls a tick makes and the time it
takes here; on AWS each call costs a few milliseconds more, so the call count is the figure that carries over.
"""

from __future__ import annotations

import os
import statistics
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

HISTORY = 1000
LIVE = 10
TICKS = 5


def reconciler_cost() -> tuple[dict[str, int], list[float], dict[str, Any]]:
    """Calls per tick (by operation), the ticks' durations, and the last report."""
    os.environ.update(
        {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "eu-central-1"}
    )
    os.environ.setdefault("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
    os.environ.pop("AWS_ENDPOINT_URL", None)
    from moto import mock_aws

    with mock_aws():
        return _measure()


def _measure() -> tuple[dict[str, int], list[float], dict[str, Any]]:
    import boto3

    from ..aws import Clients
    from ..config import parse_config
    from ..launcher import Launcher
    from ..ledger import RUNNING, SUCCEEDED, Run, iso, run_to_item
    from ..names import TAG_JOB, TAG_LIFECYCLE, TAG_RUN_ID
    from .provision import provision_job

    now = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
    clients = Clients(boto3.Session(region_name="eu-central-1"))
    config = parse_config(
        {"job": "bench-reconcile", "image": "example.com/report:latest", "instance_types": ["m7i.large"]}
    )
    image = clients.ec2.register_image(Name="ec2batch-bench", RootDeviceName="/dev/xvda")["ImageId"]
    provision_job(clients, config, image_id=image)
    table = config.names.ledger_table
    for i in range(HISTORY - LIVE):  # a finished run every 8 hours, going back about 11 months
        moment = now - timedelta(hours=8 * (i + 1))
        run = Run(
            config.job,
            f"{moment.strftime('%Y%m%dT%H%M%S')}.000Z-schedule",
            SUCCEEDED,
            "schedule",
            iso(moment),
            ended_at=iso(moment + timedelta(minutes=30)),
            notified_at=iso(moment),
        )
        clients.dynamodb.put_item(TableName=table, Item=run_to_item(run))
    for i in range(LIVE):
        moment = now - timedelta(minutes=5 + i)
        run_id = f"{moment.strftime('%Y%m%dT%H%M%S')}.000Z-manual-{i:08x}"
        instance = clients.ec2.run_instances(
            ImageId=image,
            MinCount=1,
            MaxCount=1,
            TagSpecifications=[
                {
                    "ResourceType": "instance",
                    "Tags": [
                        {"Key": TAG_JOB, "Value": config.job},
                        {"Key": TAG_RUN_ID, "Value": run_id},
                        {"Key": TAG_LIFECYCLE, "Value": "ephemeral"},
                    ],
                }
            ],
        )["Instances"][0]["InstanceId"]
        run = Run(
            config.job,
            run_id,
            RUNNING,
            "manual",
            iso(moment),
            instance_id=instance,
            start_requested_at=iso(moment),
            deadline_at=iso(moment + timedelta(hours=2)),
            deadline_timer_for=iso(moment + timedelta(hours=2)),
            updated_at=iso(now),
        )
        clients.dynamodb.put_item(TableName=table, Item=run_to_item(run))
    calls: Counter[str] = Counter()

    def count(model: Any, **_: Any) -> None:
        calls[f"{model.service_model.service_name}.{model.name}"] += 1

    for service in ("ec2", "dynamodb", "ssm", "sns", "sqs"):
        getattr(clients, service).meta.events.register("before-call", count)
    launcher = Launcher(clients, clock=lambda: now)
    durations, report = [], {}
    for _ in range(TICKS):
        began = time.perf_counter()
        report = launcher.handle({"action": "plan", "job": config.job})
        durations.append(time.perf_counter() - began)
    return {k: v // TICKS for k, v in sorted(calls.items())}, durations, report  # type: ignore[return-value]


def main() -> None:
    per_tick, durations, report = reconciler_cost()
    print(
        f"\n4. reconciler: one planner tick for a job with {HISTORY} runs in its ledger, {LIVE} live (in-process moto)"
    )
    print(f"   AWS calls per tick: {sum(per_tick.values())}  " + ", ".join(f"{k} {v}" for k, v in per_tick.items()))
    print(
        f"   runs read {report['runs_seen']}, instances seen {report['instances_seen']}, "
        f"repairs {len(report['repairs'])}"
    )
    print(f"   time per tick: median {statistics.median(durations) * 1000:.0f} ms, max {max(durations) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
