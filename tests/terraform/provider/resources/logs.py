"""CloudWatch Logs: aws_cloudwatch_log_group, aws_cloudwatch_log_metric_filter."""

from __future__ import annotations

from tests.terraform.provider.resources.base import (
    Aws,
    Resource,
    Value,
    arn,
    drop_none,
    fill,
    first,
    is_not_found,
    refresh,
    register_resource,
    resource_name,
    split_tags,
    tags_to_send,
    unless_gone,
)


def find_log_group(aws: Aws, name: str) -> dict[str, Value] | None:
    pages = aws.client("logs").get_paginator("describe_log_groups").paginate(logGroupNamePrefix=name)
    for page in pages:
        for group in page["logGroups"]:
            if group["logGroupName"] == name:
                return dict(group)
    return None


class LogGroup(Resource):
    type_name = "aws_cloudwatch_log_group"
    replace_on = frozenset({"name", "name_prefix", "log_group_class"})

    def create(self, aws: Aws, planned: dict[str, Value]) -> dict[str, Value]:
        logs = aws.client("logs")
        name = resource_name(planned)
        logs.create_log_group(
            **drop_none(
                logGroupName=name,
                kmsKeyId=planned.get("kms_key_id"),
                logGroupClass=planned.get("log_group_class"),
                tags=tags_to_send(planned) or None,
            )
        )
        if planned.get("retention_in_days"):
            logs.put_retention_policy(logGroupName=name, retentionInDays=int(planned["retention_in_days"]))
        # The provider (5.x on) states the ARN without AWS's trailing ":*".
        return fill(
            planned,
            id=name,
            arn=arn(aws, "logs", f"log-group:{name}"),
            log_group_class="STANDARD",
            deletion_protection_enabled=False,
            region=aws.region,
        )

    def read(self, aws: Aws, state: dict[str, Value]) -> dict[str, Value] | None:
        group = find_log_group(aws, state["id"])
        if group is None:
            return None
        tags = aws.client("logs").list_tags_log_group(logGroupName=state["id"]).get("tags", {})
        observed = {
            "name": group["logGroupName"],
            "arn": group["arn"].removesuffix(":*"),
            "retention_in_days": group.get("retentionInDays", 0),
            "kms_key_id": group.get("kmsKeyId"),
            **split_tags(aws, state, tags),
        }
        return refresh(state, observed, computed=("arn", "tags_all"))

    def update(self, aws: Aws, prior: dict[str, Value], planned: dict[str, Value]) -> dict[str, Value]:
        logs = aws.client("logs")
        name = prior["id"]
        if planned.get("retention_in_days") != prior.get("retention_in_days"):
            if planned.get("retention_in_days"):
                logs.put_retention_policy(logGroupName=name, retentionInDays=int(planned["retention_in_days"]))
            else:
                logs.delete_retention_policy(logGroupName=name)
        if planned.get("kms_key_id") != prior.get("kms_key_id"):
            if planned.get("kms_key_id"):
                logs.associate_kms_key(logGroupName=name, kmsKeyId=planned["kms_key_id"])
            else:
                logs.disassociate_kms_key(logGroupName=name)
        update_log_tags(aws, prior, planned)
        return fill(planned, **{k: prior.get(k) for k in ("id", "arn", "log_group_class", "region")})

    def delete(self, aws: Aws, state: dict[str, Value]) -> None:
        if state.get("skip_destroy"):
            return
        with unless_gone("ResourceNotFoundException"):
            aws.client("logs").delete_log_group(logGroupName=state["id"])


def update_log_tags(aws: Aws, prior: dict[str, Value], planned: dict[str, Value]) -> None:
    old, new = prior.get("tags_all") or {}, tags_to_send(planned)
    if old == new:
        return
    logs = aws.client("logs")
    if gone := [k for k in old if k not in new]:
        logs.untag_log_group(logGroupName=prior["id"], tags=gone)
    if new:
        logs.tag_log_group(logGroupName=prior["id"], tags=new)


class MetricFilter(Resource):
    type_name = "aws_cloudwatch_log_metric_filter"
    replace_on = frozenset({"name", "log_group_name"})

    def _put(self, aws: Aws, planned: dict[str, Value]) -> None:
        transformation = first(planned["metric_transformation"]) or {}
        aws.client("logs").put_metric_filter(
            logGroupName=planned["log_group_name"],
            filterName=planned["name"],
            filterPattern=planned["pattern"],
            metricTransformations=[
                drop_none(
                    metricName=transformation["name"],
                    metricNamespace=transformation["namespace"],
                    metricValue=transformation["value"],
                    defaultValue=_float_or_none(transformation.get("default_value")),
                    dimensions=transformation.get("dimensions") or None,
                    unit=transformation.get("unit"),
                )
            ],
        )

    def create(self, aws: Aws, planned: dict[str, Value]) -> dict[str, Value]:
        self._put(aws, planned)
        return fill(planned, id=planned["name"], apply_on_transformed_logs=False, region=aws.region)

    def read(self, aws: Aws, state: dict[str, Value]) -> dict[str, Value] | None:
        try:
            found = aws.client("logs").describe_metric_filters(
                logGroupName=state["log_group_name"], filterNamePrefix=state["name"]
            )["metricFilters"]
        except Exception as err:
            if is_not_found(err, "ResourceNotFoundException"):
                return None  # the log group is gone, and its filters with it
            raise
        match = [f for f in found if f["filterName"] == state["name"]]
        if not match:
            return None
        got = match[-1]
        prior_t = first(state.get("metric_transformation")) or {}
        transformations = []
        for t in got["metricTransformations"]:
            block = dict(prior_t)
            block.update(name=t["metricName"], namespace=t["metricNamespace"], value=t["metricValue"])
            transformations.append(block)
        observed = {"pattern": got.get("filterPattern", ""), "metric_transformation": transformations}
        return refresh(state, observed)

    def update(self, aws: Aws, prior: dict[str, Value], planned: dict[str, Value]) -> dict[str, Value]:
        # AWS's PutMetricFilter replaces a filter of the same name; moto 5.2 appends a second one instead.
        # Deleting first gives the same end state on both.
        self.delete(aws, prior)
        self._put(aws, planned)
        return fill(planned, id=prior["id"], apply_on_transformed_logs=prior.get("apply_on_transformed_logs"))

    def delete(self, aws: Aws, state: dict[str, Value]) -> None:
        # Until none is left: moto 5.2 may hold duplicates (see update) and deletes only some per call.
        for _ in range(10):
            if self.read(aws, state) is None:
                return
            with unless_gone("ResourceNotFoundException"):
                aws.client("logs").delete_metric_filter(logGroupName=state["log_group_name"], filterName=state["name"])


def _float_or_none(value: Value) -> float | None:
    return None if value in (None, "") else float(value)


register_resource(LogGroup())
register_resource(MetricFilter())
