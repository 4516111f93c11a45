"""CloudWatch: aws_cloudwatch_metric_alarm, aws_cloudwatch_dashboard."""

from __future__ import annotations

import json

from tests.terraform.provider.resources.base import (
    Aws,
    Resource,
    Value,
    fill,
    first,
    refresh,
    register_resource,
    split_tags,
    tag_list,
    tag_map,
    tags_to_send,
)

# Terraform attribute -> PutMetricAlarm parameter, with how the value is sent.
SCALARS: dict[str, tuple[str, type]] = {
    "actions_enabled": ("ActionsEnabled", bool),
    "alarm_description": ("AlarmDescription", str),
    "comparison_operator": ("ComparisonOperator", str),
    "datapoints_to_alarm": ("DatapointsToAlarm", int),
    "evaluate_low_sample_count_percentiles": ("EvaluateLowSampleCountPercentile", str),
    "evaluation_periods": ("EvaluationPeriods", int),
    "extended_statistic": ("ExtendedStatistic", str),
    "metric_name": ("MetricName", str),
    "namespace": ("Namespace", str),
    "period": ("Period", int),
    "statistic": ("Statistic", str),
    "threshold": ("Threshold", float),
    "threshold_metric_id": ("ThresholdMetricId", str),
    "treat_missing_data": ("TreatMissingData", str),
    "unit": ("Unit", str),
}
LISTS = {
    "alarm_actions": "AlarmActions",
    "ok_actions": "OKActions",
    "insufficient_data_actions": "InsufficientDataActions",
}


def alarm_request(planned: dict[str, Value]) -> dict[str, Value]:
    request: dict[str, Value] = {"AlarmName": planned["alarm_name"]}
    for key, (param, kind) in SCALARS.items():
        if planned.get(key) is not None and planned.get(key) != "":
            request[param] = kind(planned[key])
    for key, param in LISTS.items():
        request[param] = list(planned.get(key) or [])
    if planned.get("dimensions"):
        request["Dimensions"] = [{"Name": k, "Value": v} for k, v in sorted(planned["dimensions"].items())]
    if planned.get("metric_query"):
        request["Metrics"] = [metric_query(q) for q in planned["metric_query"]]
    return request


def metric_query(query: dict[str, Value]) -> dict[str, Value]:
    out: dict[str, Value] = {"Id": query["id"]}
    for key, param in (("expression", "Expression"), ("label", "Label"), ("account_id", "AccountId")):
        if query.get(key):
            out[param] = query[key]
    if query.get("return_data") is not None:
        out["ReturnData"] = bool(query["return_data"])
    if query.get("period"):
        out["Period"] = int(query["period"])
    if metric := first(query.get("metric")):
        stat: dict[str, Value] = {
            "Metric": {
                "MetricName": metric["metric_name"],
                "Dimensions": [{"Name": k, "Value": v} for k, v in sorted((metric.get("dimensions") or {}).items())],
            },
            "Period": int(metric["period"]),
            "Stat": metric["stat"],
        }
        if metric.get("namespace"):
            stat["Metric"]["Namespace"] = metric["namespace"]
        if metric.get("unit"):
            stat["Unit"] = metric["unit"]
        out["MetricStat"] = stat
    return out


class MetricAlarm(Resource):
    type_name = "aws_cloudwatch_metric_alarm"
    replace_on = frozenset({"alarm_name"})

    def create(self, aws: Aws, planned: dict[str, Value]) -> dict[str, Value]:
        cw = aws.client("cloudwatch")
        request = alarm_request(planned)
        if tags := tag_list(tags_to_send(planned)):
            request["Tags"] = tags
        cw.put_metric_alarm(**request)
        alarm = self._describe(aws, planned["alarm_name"]) or {}
        return fill(
            planned,
            id=planned["alarm_name"],
            arn=alarm.get("AlarmArn"),
            evaluate_low_sample_count_percentiles=alarm.get("EvaluateLowSampleCountPercentile", ""),
            region=aws.region,
        )

    def _describe(self, aws: Aws, name: str) -> dict[str, Value] | None:
        alarms = aws.client("cloudwatch").describe_alarms(AlarmNames=[name])["MetricAlarms"]
        return alarms[0] if alarms else None

    def read(self, aws: Aws, state: dict[str, Value]) -> dict[str, Value] | None:
        alarm = self._describe(aws, state["id"])
        if alarm is None:
            return None
        tags = tag_map(aws.client("cloudwatch").list_tags_for_resource(ResourceARN=alarm["AlarmArn"]).get("Tags"))
        observed: dict[str, Value] = {"arn": alarm["AlarmArn"], **split_tags(aws, state, tags)}
        for key, (param, kind) in SCALARS.items():
            if param in alarm:
                observed[key] = kind(alarm[param])
        for key, param in LISTS.items():
            observed[key] = list(alarm.get(param, []))
        observed["dimensions"] = {d["Name"]: d["Value"] for d in alarm.get("Dimensions", [])}
        # Numbers: keep the state's int when AWS's float means the same.
        if isinstance(state.get("threshold"), int) and float(state["threshold"]) == observed.get("threshold"):
            observed["threshold"] = state["threshold"]
        return refresh(state, observed, computed=("arn", "tags_all", "evaluate_low_sample_count_percentiles"))

    def update(self, aws: Aws, prior: dict[str, Value], planned: dict[str, Value]) -> dict[str, Value]:
        cw = aws.client("cloudwatch")
        cw.put_metric_alarm(**alarm_request(planned))
        old, new = prior.get("tags_all") or {}, tags_to_send(planned)
        if gone := [k for k in old if k not in new]:
            cw.untag_resource(ResourceARN=prior["arn"], TagKeys=gone)
        if new and new != old:
            cw.tag_resource(ResourceARN=prior["arn"], Tags=tag_list(new))
        keep = ("id", "arn", "evaluate_low_sample_count_percentiles", "region")
        return fill(planned, **{k: prior.get(k) for k in keep})

    def delete(self, aws: Aws, state: dict[str, Value]) -> None:
        aws.client("cloudwatch").delete_alarms(AlarmNames=[state["id"]])


register_resource(MetricAlarm())


class Dashboard(Resource):
    """PutDashboard / GetDashboard / DeleteDashboards. Dashboards take no tags."""

    type_name = "aws_cloudwatch_dashboard"
    replace_on = frozenset({"dashboard_name"})

    def create(self, aws: Aws, planned: dict[str, Value]) -> dict[str, Value]:
        cw = aws.client("cloudwatch")
        cw.put_dashboard(DashboardName=planned["dashboard_name"], DashboardBody=planned["dashboard_body"])
        found = cw.get_dashboard(DashboardName=planned["dashboard_name"])
        return fill(planned, id=planned["dashboard_name"], dashboard_arn=found["DashboardArn"], region=aws.region)

    def read(self, aws: Aws, state: dict[str, Value]) -> dict[str, Value] | None:
        cw = aws.client("cloudwatch")
        try:
            found = cw.get_dashboard(DashboardName=state["id"])
        except cw.exceptions.ResourceNotFound:
            return None
        body = found["DashboardBody"]
        # The provider compares bodies as JSON (its diff ignores key order and spacing): so does the double.
        if json.loads(body) == json.loads(state["dashboard_body"]):
            body = state["dashboard_body"]
        observed = {"dashboard_arn": found["DashboardArn"], "dashboard_body": body}
        return refresh(state, observed, computed=("dashboard_arn",))

    def update(self, aws: Aws, prior: dict[str, Value], planned: dict[str, Value]) -> dict[str, Value]:
        aws.client("cloudwatch").put_dashboard(
            DashboardName=planned["dashboard_name"], DashboardBody=planned["dashboard_body"]
        )
        return fill(planned, **{k: prior.get(k) for k in ("id", "dashboard_arn", "region")})

    def delete(self, aws: Aws, state: dict[str, Value]) -> None:
        cw = aws.client("cloudwatch")
        try:
            cw.delete_dashboards(DashboardNames=[state["id"]])
        except cw.exceptions.ResourceNotFound:
            return  # gone already: a retried destroy is done, as the provider treats it


register_resource(Dashboard())
