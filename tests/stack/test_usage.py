"""What a run used, measured on the real engine: the agent's samples, the OOM peak, the metrics in CloudWatch.

The example job holds JOB_ALLOCATE_MB MiB for a few seconds; the agent samples its container every 0.5 s here
(`EC2BATCH_USAGE_SAMPLE_SECONDS`, 5 s on AWS). The metrics go as EMF lines into the agent's stream, and the
local stack's extractor (`ec2batch.local.emf_extractor`, what CloudWatch Logs does on AWS) puts them into moto.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ec2batch.ledger import FAILED, SUCCEEDED
from ec2batch.usage import MIB

pytestmark = pytest.mark.stack

ALLOCATE_MB = 400
LIMIT_MB = 160


def test_a_job_holding_a_known_amount_of_memory_records_that_peak_and_publishes_its_metrics(deploy) -> None:
    job = deploy("t-usage", env={"REPORT_ROWS": "1000", "JOB_ALLOCATE_MB": str(ALLOCATE_MB)})
    run = job.wait_run(job.trigger()["run_id"])

    assert run.status == SUCCEEDED, run.reason
    usage = run.usage
    assert usage is not None and usage.samples >= 3 and not usage.limited
    assert abs(usage.peak_memory_bytes - ALLOCATE_MB * MIB) <= 0.10 * ALLOCATE_MB * MIB, usage.describe()
    assert usage.memory_limit_bytes > ALLOCATE_MB * MIB and 0 < usage.peak_cpu_percent <= 100
    job.wait_instance(run.instance_id)

    peak = wait_metric(job, "PeakMemoryPercent", [{"Name": "job", "Value": job.name}])
    assert peak == [pytest.approx(usage.peak_memory_percent, abs=0.1)]
    outcome = [{"Name": "job", "Value": job.name}, {"Name": "outcome", "Value": SUCCEEDED}]
    assert wait_metric(job, "Runs", outcome, stat="Sum") == [1.0]
    duration = wait_metric(job, "RunDuration", [{"Name": "job", "Value": job.name}])
    assert duration and duration[0] == pytest.approx(run.duration_seconds(), abs=1.0)


def test_a_job_over_its_memory_limit_is_recorded_oom_with_the_peak_before_the_kill(deploy) -> None:
    job = deploy(
        "t-oom",
        # 400 MiB over 8 s: the 160 MiB limit is hit after about 3 s, so samples see the climb before the kill.
        env={"REPORT_ROWS": "1000", "JOB_ALLOCATE_MB": str(ALLOCATE_MB), "JOB_ALLOCATE_RAMP_SECONDS": "8"},
        limits={"memory_mb": LIMIT_MB},
    )
    run = job.wait_run(job.trigger()["run_id"])

    assert run.status == FAILED and run.exit_code == 137
    assert run.reason and run.reason.startswith("out of memory (OOM killed) after a peak of"), run.reason
    usage = run.usage
    assert usage is not None and usage.oom_killed and usage.limited
    assert usage.memory_limit_bytes == LIMIT_MB * MIB and usage.samples >= 3, usage.describe()
    # A cgroup's OOM kill comes when a charge fails at the limit: the peak before it is the limit.
    assert usage.peak_memory_bytes == LIMIT_MB * MIB and usage.peak_memory_percent == 100.0, usage.describe()
    job.wait_instance(run.instance_id)
    failed = [{"Name": "job", "Value": job.name}, {"Name": "outcome", "Value": FAILED}]
    assert wait_metric(job, "Runs", failed, stat="Sum") == [1.0]


def wait_metric(job: Any, name: str, dimensions: list[dict[str, str]], stat: str = "Maximum") -> list[float]:
    """GetMetricData for the job's namespace, polled while the extractor catches up (it reads every second)."""
    deadline = time.monotonic() + 30
    while True:
        now = datetime.now(UTC)
        answer = job.clients.cloudwatch.get_metric_data(
            MetricDataQueries=[
                {
                    "Id": "m",
                    "MetricStat": {
                        "Metric": {
                            "Namespace": job.config.names.metrics_namespace,
                            "MetricName": name,
                            "Dimensions": dimensions,
                        },
                        "Period": 3600,
                        "Stat": stat,
                    },
                }
            ],
            StartTime=now - timedelta(hours=1),
            EndTime=now + timedelta(minutes=5),
        )
        values = answer["MetricDataResults"][0]["Values"]
        if values or time.monotonic() > deadline:
            return values
        time.sleep(1)
