"""A run's figures as CloudWatch metrics, in the embedded metric format (EMF) (docs/metrics.md).

The agent writes one EMF line into its own log stream when an attempt ends; CloudWatch Logs extracts
the metrics from it, so publishing them costs no API call and no permission beyond the log stream the
agent writes already (decision 40). The local stack has no such extraction in moto: its emulator process
reads the same lines and puts the same metrics into moto's CloudWatch (`metric_data_from_emf`).

`METRICS` is the one list of what is published: the dashboard and the alarm in Terraform may name only
these (tests/terraform checks it).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .ledger import Run, parse_time
from .names import JobNames
from .usage import Usage

# The dimension every metric has, and the one the outcome count has besides.
JOB_DIMENSION = "job"
OUTCOME_DIMENSION = "outcome"


@dataclass(frozen=True)
class Metric:
    name: str
    unit: str  # CloudWatch's StandardUnit
    description: str
    dimensions: tuple[str, ...] = (JOB_DIMENSION,)


RUN_DURATION = Metric("RunDuration", "Seconds", "container start to end of the attempt")
START_LAG = Metric("StartLag", "Seconds", "trigger (or scheduled time) to container start")
PEAK_MEMORY = Metric("PeakMemoryPercent", "Percent", "the job's peak memory, % of its limit or the machine's")
PEAK_CPU = Metric("PeakCpuPercent", "Percent", "the job's busiest sample, % of the vCPUs it may use")
COST = Metric("Cost", "None", "the attempt's machine cost in USD")
RUNS = Metric(
    "Runs",
    "Count",
    "1 per ended attempt, by outcome (SUCCEEDED, FAILED, TIMED_OUT, ...)",
    (JOB_DIMENSION, OUTCOME_DIMENSION),
)

METRICS: tuple[Metric, ...] = (RUN_DURATION, START_LAG, PEAK_MEMORY, PEAK_CPU, COST, RUNS)
METRIC_NAMES = frozenset(m.name for m in METRICS)


def figures(run: Run, status: str, usage: Usage | None, cost_usd: float | None) -> dict[str, float]:
    """The values of one ended attempt; a figure that is not known (no container start, no usage) is left out."""
    values: dict[str, float] = {RUNS.name: 1.0}
    started = run.container_started_at
    if started and run.ended_at:
        values[RUN_DURATION.name] = round((parse_time(run.ended_at) - parse_time(started)).total_seconds(), 3)
    if started:
        anchor = run.scheduled_at or run.triggered_at
        if anchor:
            values[START_LAG.name] = round(max(0.0, (parse_time(started) - parse_time(anchor)).total_seconds()), 3)
    if usage is not None:
        values[PEAK_MEMORY.name] = usage.peak_memory_percent
        values[PEAK_CPU.name] = round(usage.peak_cpu_percent, 1)
    if cost_usd is not None:
        values[COST.name] = round(cost_usd, 6)
    return values


def emf_document(job: str, run_id: str, status: str, values: Mapping[str, float], at: datetime) -> dict[str, Any]:
    """One EMF object: a directive per dimension set, the values and dimensions as top-level members."""
    by_dimensions: dict[tuple[str, ...], list[dict[str, str]]] = {}
    for metric in METRICS:
        if metric.name in values:
            by_dimensions.setdefault(metric.dimensions, []).append({"Name": metric.name, "Unit": metric.unit})
    namespace = JobNames(job).metrics_namespace
    return {
        "_aws": {
            "Timestamp": int(at.timestamp() * 1000),
            "CloudWatchMetrics": [
                {"Namespace": namespace, "Dimensions": [list(dims)], "Metrics": metrics}
                for dims, metrics in by_dimensions.items()
            ],
        },
        JOB_DIMENSION: job,
        OUTCOME_DIMENSION: status,
        "run_id": run_id,  # not a dimension: searchable in Logs Insights, no metric per run
        **dict(values),
    }


def metric_data_from_emf(line: str) -> list[tuple[str, dict[str, Any]]]:
    """What CloudWatch Logs would extract from one log line: (namespace, MetricDatum) pairs; [] if not EMF."""
    try:
        doc = json.loads(line)
    except ValueError:
        return []
    meta = doc.get("_aws") if isinstance(doc, dict) else None
    if not isinstance(meta, dict):
        return []
    at = datetime.fromtimestamp(int(meta.get("Timestamp", 0)) / 1000, UTC)
    data: list[tuple[str, dict[str, Any]]] = []
    for directive in meta.get("CloudWatchMetrics") or []:
        for dims in directive.get("Dimensions") or [[]]:
            if any(name not in doc for name in dims):
                continue  # AWS drops a dimension set whose member is missing
            dimensions = [{"Name": name, "Value": str(doc[name])} for name in dims]
            for metric in directive.get("Metrics") or []:
                value = doc.get(metric["Name"])
                if isinstance(value, int | float) and not isinstance(value, bool):
                    datum = {
                        "MetricName": metric["Name"],
                        "Dimensions": dimensions,
                        "Value": float(value),
                        "Unit": metric.get("Unit", "None"),
                        "Timestamp": at,
                    }
                    data.append((directive["Namespace"], datum))
    return data
