"""EventBridge Scheduler: aws_scheduler_schedule_group, aws_scheduler_schedule."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tests.terraform.provider.resources.base import (
    Aws,
    Resource,
    Value,
    drop_none,
    fill,
    first,
    is_not_found,
    refresh,
    register_resource,
    resource_name,
    split_tags,
    tag_list,
    tag_map,
    tags_to_send,
)

DEFAULT_GROUP = "default"


def rfc3339(value: Any) -> str:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(value)


class ScheduleGroup(Resource):
    type_name = "aws_scheduler_schedule_group"
    replace_on = frozenset({"name", "name_prefix"})

    def create(self, aws: Aws, planned: dict[str, Value]) -> dict[str, Value]:
        scheduler = aws.client("scheduler")
        name = resource_name(planned)
        scheduler.create_schedule_group(Name=name, Tags=tag_list(tags_to_send(planned)))
        group = scheduler.get_schedule_group(Name=name)
        return fill(
            planned,
            id=name,
            name=name,
            name_prefix="",
            arn=group["Arn"],
            creation_date=rfc3339(group.get("CreationDate", "")),
            last_modification_date=rfc3339(group.get("LastModificationDate", "")),
            state=group.get("State", "ACTIVE"),
            region=aws.region,
        )

    def read(self, aws: Aws, state: dict[str, Value]) -> dict[str, Value] | None:
        scheduler = aws.client("scheduler")
        try:
            group = scheduler.get_schedule_group(Name=state["id"])
        except Exception as err:
            if is_not_found(err, "ResourceNotFoundException"):
                return None
            raise
        tags = tag_map(scheduler.list_tags_for_resource(ResourceArn=group["Arn"]).get("Tags"))
        observed = {"arn": group["Arn"], "state": group.get("State", "ACTIVE"), **split_tags(aws, state, tags)}
        return refresh(state, observed, computed=("arn", "state", "tags_all"))

    def update(self, aws: Aws, prior: dict[str, Value], planned: dict[str, Value]) -> dict[str, Value]:
        scheduler = aws.client("scheduler")
        old, new = prior.get("tags_all") or {}, tags_to_send(planned)
        if gone := [k for k in old if k not in new]:
            scheduler.untag_resource(ResourceArn=prior["arn"], TagKeys=gone)
        if new and new != old:
            scheduler.tag_resource(ResourceArn=prior["arn"], Tags=tag_list(new))
        keep = ("id", "name", "name_prefix", "arn", "creation_date", "last_modification_date", "state", "region")
        return fill(planned, **{k: prior.get(k) for k in keep})

    def delete(self, aws: Aws, state: dict[str, Value]) -> None:
        # moto 5.2 answers a 500 (not ResourceNotFound) when deleting a group that is gone: look first.
        if self.read(aws, state) is None:
            return
        try:
            aws.client("scheduler").delete_schedule_group(Name=state["id"])
        except Exception as err:
            if not is_not_found(err, "ResourceNotFoundException"):
                raise


def target_request(target: dict[str, Value]) -> dict[str, Value]:
    request: dict[str, Value] = {"Arn": target["arn"], "RoleArn": target["role_arn"]}
    if target.get("input") is not None:
        # Sent as the literal string the configuration holds: the Scheduler substitutes <aws.scheduler.*>
        # placeholders in this text as written (so jsonencode's \u003c escapes reach it unsubstituted).
        request["Input"] = target["input"]
    if retry := first(target.get("retry_policy")):
        request["RetryPolicy"] = drop_none(
            MaximumEventAgeInSeconds=_int(retry.get("maximum_event_age_in_seconds")),
            MaximumRetryAttempts=_int(retry.get("maximum_retry_attempts")),
        )
    if dlq := first(target.get("dead_letter_config")):
        request["DeadLetterConfig"] = {"Arn": dlq["arn"]}
    if sqs := first(target.get("sqs_parameters")):
        request["SqsParameters"] = drop_none(MessageGroupId=sqs.get("message_group_id"))
    if eventbridge := first(target.get("eventbridge_parameters")):
        request["EventBridgeParameters"] = {"DetailType": eventbridge["detail_type"], "Source": eventbridge["source"]}
    if kinesis := first(target.get("kinesis_parameters")):
        request["KinesisParameters"] = {"PartitionKey": kinesis["partition_key"]}
    return request


def schedule_request(planned: dict[str, Value], name: str) -> dict[str, Value]:
    window = first(planned.get("flexible_time_window")) or {"mode": "OFF"}
    target = first(planned.get("target"))
    if target is None:
        raise ValueError("target: a schedule needs exactly one target block")
    request = drop_none(
        Name=name,
        GroupName=planned.get("group_name") or DEFAULT_GROUP,
        ScheduleExpression=planned["schedule_expression"],
        ScheduleExpressionTimezone=planned.get("schedule_expression_timezone"),
        Description=planned.get("description"),
        KmsKeyArn=planned.get("kms_key_arn"),
        State=planned.get("state"),
        StartDate=planned.get("start_date"),
        EndDate=planned.get("end_date"),
        ActionAfterCompletion=planned.get("action_after_completion"),
        FlexibleTimeWindow=drop_none(
            Mode=window["mode"], MaximumWindowInMinutes=_int(window.get("maximum_window_in_minutes"))
        ),
        Target=target_request(target),
    )
    return request


def target_state(got: dict[str, Value], prior: dict[str, Value]) -> dict[str, Value]:
    """The target block as AWS has it, on top of the state's block (keeps blocks AWS does not echo)."""
    block = dict(prior)
    block.update(arn=got["Arn"], role_arn=got["RoleArn"], input=got.get("Input"))
    if "RetryPolicy" in got:
        block["retry_policy"] = [
            {
                "maximum_event_age_in_seconds": got["RetryPolicy"].get("MaximumEventAgeInSeconds"),
                "maximum_retry_attempts": got["RetryPolicy"].get("MaximumRetryAttempts"),
            }
        ]
    if got.get("DeadLetterConfig", {}).get("Arn"):
        block["dead_letter_config"] = [{"arn": got["DeadLetterConfig"]["Arn"]}]
    elif prior.get("dead_letter_config"):
        block["dead_letter_config"] = []
    return block


class Schedule(Resource):
    type_name = "aws_scheduler_schedule"
    replace_on = frozenset({"name", "name_prefix", "group_name"})

    def create(self, aws: Aws, planned: dict[str, Value]) -> dict[str, Value]:
        name = resource_name(planned)
        group = planned.get("group_name") or DEFAULT_GROUP
        schedule_arn = aws.client("scheduler").create_schedule(**schedule_request(planned, name))["ScheduleArn"]
        return fill(
            planned,
            id=f"{group}/{name}",
            name=name,
            name_prefix="",
            group_name=group,
            arn=schedule_arn,
            action_after_completion="NONE",
            region=aws.region,
        )

    def read(self, aws: Aws, state: dict[str, Value]) -> dict[str, Value] | None:
        group, name = state["id"].split("/", 1)
        try:
            got = aws.client("scheduler").get_schedule(GroupName=group, Name=name)
        except Exception as err:
            if is_not_found(err, "ResourceNotFoundException"):
                return None
            raise
        window = got.get("FlexibleTimeWindow", {})
        prior_window = first(state.get("flexible_time_window")) or {}
        observed: dict[str, Value] = {
            "arn": got["Arn"],
            "name": got["Name"],
            "group_name": got.get("GroupName", group),
            "description": got.get("Description"),
            "schedule_expression": got["ScheduleExpression"],
            "schedule_expression_timezone": got.get("ScheduleExpressionTimezone"),
            "kms_key_arn": got.get("KmsKeyArn"),
            "state": got.get("State"),
            "flexible_time_window": [
                {
                    **prior_window,
                    "mode": window.get("Mode"),
                    "maximum_window_in_minutes": window.get("MaximumWindowInMinutes"),
                }
            ],
            "target": [target_state(got["Target"], first(state.get("target")) or {})],
        }
        return refresh(state, observed, computed=("arn", "group_name"))

    def update(self, aws: Aws, prior: dict[str, Value], planned: dict[str, Value]) -> dict[str, Value]:
        # UpdateSchedule replaces the whole definition, so the provider sends every argument again.
        request = schedule_request({**planned, "group_name": prior["group_name"]}, prior["name"])
        aws.client("scheduler").update_schedule(**request)
        keep = ("id", "name", "name_prefix", "group_name", "arn", "action_after_completion", "region")
        return fill(planned, **{k: prior.get(k) for k in keep})

    def delete(self, aws: Aws, state: dict[str, Value]) -> None:
        group, name = state["id"].split("/", 1)
        try:
            aws.client("scheduler").delete_schedule(GroupName=group, Name=name)
        except Exception as err:
            if not is_not_found(err, "ResourceNotFoundException"):
                raise


def _int(value: Value) -> int | None:
    return None if value is None else int(value)


register_resource(ScheduleGroup())
register_resource(Schedule())
