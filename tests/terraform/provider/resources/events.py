"""EventBridge: aws_cloudwatch_event_rule, aws_cloudwatch_event_target."""

from __future__ import annotations

import uuid

from tests.terraform.provider.resources.base import (
    Aws,
    Resource,
    Value,
    drop_none,
    fill,
    first,
    is_not_found,
    json_kept,
    refresh,
    register_resource,
    resource_name,
    split_tags,
    tag_list,
    tag_map,
    tags_to_send,
    unless_gone,
)

DEFAULT_BUS = "default"


def rule_id(bus: str | None, name: str) -> str:
    # The provider's id is the rule's name on the default bus, "<bus>/<name>" on another.
    return name if not bus or bus == DEFAULT_BUS else f"{bus}/{name}"


def split_rule_id(rule: str) -> tuple[str | None, str]:
    bus, _, name = rule.rpartition("/")
    return (bus or None), name


def rule_state(planned: dict[str, Value]) -> str:
    if planned.get("state"):
        return str(planned["state"])
    return "DISABLED" if planned.get("is_enabled") is False else "ENABLED"


class Rule(Resource):
    type_name = "aws_cloudwatch_event_rule"
    replace_on = frozenset({"name", "name_prefix", "event_bus_name"})

    def _put(self, aws: Aws, planned: dict[str, Value], name: str, with_tags: bool) -> str:
        tags = tag_list(tags_to_send(planned))
        return str(
            aws.client("events").put_rule(
                **drop_none(
                    Name=name,
                    ScheduleExpression=planned.get("schedule_expression"),
                    EventPattern=planned.get("event_pattern"),
                    Description=planned.get("description"),
                    RoleArn=planned.get("role_arn"),
                    State=rule_state(planned),
                    EventBusName=planned.get("event_bus_name"),
                    Tags=(tags or None) if with_tags else None,
                )
            )["RuleArn"]
        )

    def create(self, aws: Aws, planned: dict[str, Value]) -> dict[str, Value]:
        name = resource_name(planned)
        rule_arn = self._put(aws, planned, name, with_tags=True)
        return fill(
            planned,
            id=rule_id(planned.get("event_bus_name"), name),
            name=name,
            name_prefix="",
            arn=rule_arn,
            region=aws.region,
        )

    def read(self, aws: Aws, state: dict[str, Value]) -> dict[str, Value] | None:
        events = aws.client("events")
        bus, name = split_rule_id(state["id"])
        try:
            rule = events.describe_rule(**drop_none(Name=name, EventBusName=bus))
        except Exception as err:
            if is_not_found(err, "ResourceNotFoundException"):
                return None
            raise
        tags = tag_map(events.list_tags_for_resource(ResourceARN=rule["Arn"]).get("Tags"))
        observed: dict[str, Value] = {
            "arn": rule["Arn"],
            "name": rule["Name"],
            "description": rule.get("Description"),
            "schedule_expression": rule.get("ScheduleExpression"),
            "event_pattern": json_kept(state.get("event_pattern"), rule.get("EventPattern")),
            "role_arn": rule.get("RoleArn"),
            "state": rule.get("State"),
            "is_enabled": rule.get("State") == "ENABLED",
            **split_tags(aws, state, tags),
        }
        return refresh(state, observed, computed=("arn", "tags_all"))

    def update(self, aws: Aws, prior: dict[str, Value], planned: dict[str, Value]) -> dict[str, Value]:
        events = aws.client("events")
        self._put(aws, planned, prior["name"], with_tags=False)
        old, new = prior.get("tags_all") or {}, tags_to_send(planned)
        if gone := [k for k in old if k not in new]:
            events.untag_resource(ResourceARN=prior["arn"], TagKeys=gone)
        if new and new != old:
            events.tag_resource(ResourceARN=prior["arn"], Tags=tag_list(new))
        return fill(planned, **{k: prior.get(k) for k in ("id", "name", "name_prefix", "arn", "region")})

    def delete(self, aws: Aws, state: dict[str, Value]) -> None:
        bus, name = split_rule_id(state["id"])
        with unless_gone("ResourceNotFoundException"):
            aws.client("events").delete_rule(**drop_none(Name=name, EventBusName=bus, Force=state.get("force_destroy")))


def target_request(planned: dict[str, Value], target_id: str) -> dict[str, Value]:
    target: dict[str, Value] = {"Id": target_id, "Arn": planned["arn"]}
    for key, param in (("input", "Input"), ("input_path", "InputPath"), ("role_arn", "RoleArn")):
        if planned.get(key):
            # Input goes to AWS verbatim: EventBridge delivers exactly this text.
            target[param] = planned[key]
    if retry := first(planned.get("retry_policy")):
        target["RetryPolicy"] = drop_none(
            MaximumEventAgeInSeconds=_int(retry.get("maximum_event_age_in_seconds")),
            MaximumRetryAttempts=_int(retry.get("maximum_retry_attempts")),
        )
    if dlq := first(planned.get("dead_letter_config")):
        target["DeadLetterConfig"] = drop_none(Arn=dlq.get("arn"))
    if sqs := first(planned.get("sqs_target")):
        target["SqsParameters"] = drop_none(MessageGroupId=sqs.get("message_group_id"))
    if transformer := first(planned.get("input_transformer")):
        target["InputTransformer"] = drop_none(
            InputPathsMap=transformer.get("input_paths") or None, InputTemplate=transformer["input_template"]
        )
    return target


class Target(Resource):
    type_name = "aws_cloudwatch_event_target"
    replace_on = frozenset({"rule", "target_id", "event_bus_name"})

    def _put(self, aws: Aws, planned: dict[str, Value], target_id: str) -> None:
        got = aws.client("events").put_targets(
            **drop_none(
                Rule=planned["rule"],
                EventBusName=planned.get("event_bus_name"),
                Targets=[target_request(planned, target_id)],
            )
        )
        if got.get("FailedEntryCount"):
            entry = got["FailedEntries"][0]
            raise ValueError(f"target {target_id}: {entry.get('ErrorCode')}: {entry.get('ErrorMessage')}")

    def create(self, aws: Aws, planned: dict[str, Value]) -> dict[str, Value]:
        target_id = planned.get("target_id") or f"terraform-{uuid.uuid4().hex[:20]}"
        self._put(aws, planned, target_id)
        bus = planned.get("event_bus_name")
        prefix = f"{bus}-" if bus and bus != DEFAULT_BUS else ""
        return fill(planned, id=f"{prefix}{planned['rule']}-{target_id}", target_id=target_id, region=aws.region)

    def read(self, aws: Aws, state: dict[str, Value]) -> dict[str, Value] | None:
        try:
            targets = aws.client("events").list_targets_by_rule(
                **drop_none(Rule=state["rule"], EventBusName=state.get("event_bus_name"))
            )["Targets"]
        except Exception as err:
            if is_not_found(err, "ResourceNotFoundException"):
                return None
            raise
        match = [t for t in targets if t["Id"] == state["target_id"]]
        if not match:
            return None
        got = match[0]
        observed: dict[str, Value] = {
            "arn": got["Arn"],
            "input": got.get("Input"),
            "input_path": got.get("InputPath"),
            "role_arn": got.get("RoleArn"),
        }
        if state.get("retry_policy") and "RetryPolicy" in got:
            observed["retry_policy"] = [
                {
                    "maximum_event_age_in_seconds": got["RetryPolicy"].get("MaximumEventAgeInSeconds"),
                    "maximum_retry_attempts": got["RetryPolicy"].get("MaximumRetryAttempts"),
                }
            ]
        if state.get("dead_letter_config") and "DeadLetterConfig" in got:
            observed["dead_letter_config"] = [{"arn": got["DeadLetterConfig"].get("Arn")}]
        return refresh(state, observed)

    def update(self, aws: Aws, prior: dict[str, Value], planned: dict[str, Value]) -> dict[str, Value]:
        self._put(aws, planned, prior["target_id"])
        return fill(planned, id=prior["id"], target_id=prior["target_id"], region=prior.get("region"))

    def delete(self, aws: Aws, state: dict[str, Value]) -> None:
        with unless_gone("ResourceNotFoundException"):
            self._remove(aws, state)

    def _remove(self, aws: Aws, state: dict[str, Value]) -> None:
        aws.client("events").remove_targets(
            **drop_none(
                Rule=state["rule"],
                EventBusName=state.get("event_bus_name"),
                Ids=[state["target_id"]],
                Force=state.get("force_destroy"),
            )
        )


def _int(value: Value) -> int | None:
    return None if value is None else int(value)


register_resource(Rule())
register_resource(Target())
