"""The run metrics in Terraform: the memory alarm and the dashboard name only what the agent publishes.

The agent publishes `ec2batch.metrics.METRICS` (EMF lines in its log stream); a widget or an alarm on any other
name would be a chart that stays empty or an alarm that never fires, so every reference is checked against it.
"""

from __future__ import annotations

import json
from typing import Any

from ec2batch.cost import PriceTable
from ec2batch.metrics import JOB_DIMENSION, METRIC_NAMES, METRICS, OUTCOME_DIMENSION
from ec2batch.names import JobNames
from tests.terraform import conftest
from tests.terraform import plan_rules as rules

JOB = "daily-report"
SHARDED_JOB = "daily-shards"  # tests/terraform/conftest.SHARDED_JOB's module
MACHINE = "r7i.2xlarge"  # the example's first instance type (terraform/examples/daily-job/main.tf)


def _of_job(applied: dict[str, Any], rtype: str, job: str = JOB) -> list[dict[str, Any]]:
    base = JobNames(job).base
    key = "dashboard_name" if rtype == "aws_cloudwatch_dashboard" else "alarm_name"
    return [
        r["values"]
        for r in rules.managed(applied, rtype)
        if r["values"][key].startswith(base + "-") or r["values"][key] == base
    ]


def test_the_memory_alarm_watches_the_published_peak_and_names_a_type_that_fits(applied: dict[str, Any]) -> None:
    [alarm] = [a for a in _of_job(applied, "aws_cloudwatch_metric_alarm") if a["alarm_name"].endswith("-memory-peak")]
    assert alarm["namespace"] == JobNames(JOB).metrics_namespace and alarm["metric_name"] in METRIC_NAMES
    assert alarm["metric_name"] == "PeakMemoryPercent" and alarm["dimensions"] == {JOB_DIMENSION: JOB}
    assert (alarm["threshold"], alarm["comparison_operator"], alarm["statistic"]) == (
        85,
        "GreaterThanThreshold",
        "Maximum",
    )
    [topic] = [
        t["values"]["arn"]
        for t in rules.managed(applied, "aws_sns_topic")
        if t["values"]["name"] == JobNames(JOB).notification_topic
    ]
    assert alarm["alarm_actions"] == [topic]
    # The suggestion is the one the CLI's hint makes for a machine that is too small: the cheapest type with more
    # memory and no fewer vCPUs, at the region's price.
    catalogue = PriceTable.load().catalogue(conftest.REGION)
    current = catalogue[MACHINE]
    bigger = min(
        (s for s in catalogue.values() if s.memory_gib > current.memory_gib and s.vcpus >= current.vcpus),
        key=lambda s: s.hourly,
    )
    change = bigger.hourly - current.hourly
    assert f"{MACHINE} ({current.memory_gib:g} GiB, {current.vcpus} vCPUs)" in alarm["alarm_description"]
    assert f"Would fit: {bigger.name} has {bigger.memory_gib:g} GiB for +${change:.2f}/h." in alarm["alarm_description"]


def test_the_dashboard_parses_and_charts_only_published_metrics_of_the_job(applied: dict[str, Any]) -> None:
    for job in (JOB, SHARDED_JOB):
        [board] = _of_job(applied, "aws_cloudwatch_dashboard", job)
        assert board["dashboard_name"] == JobNames(job).base
        widgets = json.loads(board["dashboard_body"])["widgets"]
        charted = set()
        for widget in widgets:
            for metric in widget["properties"]["metrics"]:
                namespace, name, *dims = metric
                assert namespace == JobNames(job).metrics_namespace, metric
                assert name in METRIC_NAMES, f"{name} is not published by the agent (ec2batch.metrics.METRICS)"
                published = next(m for m in METRICS if m.name == name)
                pairs = dict(zip(dims[::2], dims[1::2], strict=True))
                assert set(pairs) == set(published.dimensions) and pairs[JOB_DIMENSION] == job, metric
                charted.add(name)
        assert charted == METRIC_NAMES  # durations, lag, memory, CPU, cost, outcomes: every figure has its chart
        outcomes = {m[5] for w in widgets for m in w["properties"]["metrics"] if m[1] == "Runs"}
        assert {"SUCCEEDED", "FAILED", "TIMED_OUT"} <= outcomes and all(
            len(m) == 6 for w in widgets for m in w["properties"]["metrics"] if m[1] == "Runs"
        )
        memory = next(w for w in widgets if w["properties"]["metrics"][0][1] == "PeakMemoryPercent")
        assert {a["value"] for a in memory["properties"]["annotations"]["horizontal"]} == {85, 100}
    assert OUTCOME_DIMENSION == "outcome"


def test_the_dashboard_exists_in_cloudwatch_after_apply(applied: dict[str, Any], aws) -> None:
    found = aws("cloudwatch").get_dashboard(DashboardName=JobNames(JOB).base)
    assert json.loads(found["DashboardBody"])["widgets"]
