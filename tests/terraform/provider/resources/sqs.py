"""SQS: aws_sqs_queue."""

from __future__ import annotations

from tests.terraform.provider.resources.base import (
    Aws,
    Resource,
    Value,
    fill,
    is_not_found,
    json_kept,
    refresh,
    register_resource,
    resource_name,
    split_tags,
    tags_to_send,
)

# Terraform attribute -> SQS queue attribute, for every attribute the provider sends as a string.
ATTRIBUTES = {
    "content_based_deduplication": "ContentBasedDeduplication",
    "deduplication_scope": "DeduplicationScope",
    "delay_seconds": "DelaySeconds",
    "fifo_queue": "FifoQueue",
    "fifo_throughput_limit": "FifoThroughputLimit",
    "kms_data_key_reuse_period_seconds": "KmsDataKeyReusePeriodSeconds",
    "kms_master_key_id": "KmsMasterKeyId",
    "max_message_size": "MaximumMessageSize",
    "message_retention_seconds": "MessageRetentionPeriod",
    "policy": "Policy",
    "receive_wait_time_seconds": "ReceiveMessageWaitTimeSeconds",
    "redrive_allow_policy": "RedriveAllowPolicy",
    "redrive_policy": "RedrivePolicy",
    "sqs_managed_sse_enabled": "SqsManagedSseEnabled",
    "visibility_timeout_seconds": "VisibilityTimeout",
}
JSON_ATTRIBUTES = ("policy", "redrive_policy", "redrive_allow_policy")
CREATE_ONLY = ("fifo_queue",)
# Optional+computed in the schema: AWS's value is taken when the configuration leaves them unset. The others are
# optional only: a value the plan knows as null must stay null.
COMPUTED = (
    "deduplication_scope",
    "fifo_throughput_limit",
    "kms_data_key_reuse_period_seconds",
    "policy",
    "redrive_allow_policy",
    "redrive_policy",
    "sqs_managed_sse_enabled",
)  # SQS refuses to change it; the provider forces a new queue


def to_sqs(value: Value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def from_sqs(key: str, value: str, prior: Value) -> Value:
    """SQS answers strings; the state keeps Terraform's types."""
    if isinstance(prior, bool) or key in ("fifo_queue", "content_based_deduplication", "sqs_managed_sse_enabled"):
        return value == "true"
    if key in JSON_ATTRIBUTES or key in ("kms_master_key_id", "deduplication_scope", "fifo_throughput_limit"):
        return value
    return int(value)


def queue_attributes(planned: dict[str, Value], keys: tuple[str, ...] | None = None) -> dict[str, str]:
    return {
        ATTRIBUTES[k]: to_sqs(planned[k])
        for k in keys or tuple(ATTRIBUTES)
        if planned.get(k) is not None and planned.get(k) != ""
    }


class Queue(Resource):
    type_name = "aws_sqs_queue"
    replace_on = frozenset({"name", "name_prefix", "fifo_queue"})

    def create(self, aws: Aws, planned: dict[str, Value]) -> dict[str, Value]:
        sqs = aws.client("sqs")
        name = resource_name(planned)
        if planned.get("fifo_queue") and not name.endswith(".fifo"):
            name += ".fifo"
        tags = tags_to_send(planned)
        url = sqs.create_queue(
            QueueName=name, Attributes=queue_attributes(planned), **({"tags": tags} if tags else {})
        )["QueueUrl"]
        got = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        computed = {k: from_sqs(k, got[ATTRIBUTES[k]], planned.get(k)) for k in COMPUTED if ATTRIBUTES[k] in got}
        return fill(
            planned, id=url, url=url, arn=got["QueueArn"], name=name, name_prefix="", region=aws.region, **computed
        )

    def read(self, aws: Aws, state: dict[str, Value]) -> dict[str, Value] | None:
        sqs = aws.client("sqs")
        try:
            got = sqs.get_queue_attributes(QueueUrl=state["id"], AttributeNames=["All"])["Attributes"]
        except Exception as err:
            if is_not_found(err, "AWS.SimpleQueueService.NonExistentQueue"):
                return None
            raise
        tags = sqs.list_queue_tags(QueueUrl=state["id"]).get("Tags", {})
        observed: dict[str, Value] = {k: from_sqs(k, got[v], state.get(k)) for k, v in ATTRIBUTES.items() if v in got}
        for key in JSON_ATTRIBUTES:
            if key in observed:
                observed[key] = json_kept(state.get(key), observed[key])
        observed.update(arn=got["QueueArn"], **split_tags(aws, state, tags))
        return refresh(state, observed, computed=("arn", "tags_all", *COMPUTED))

    def update(self, aws: Aws, prior: dict[str, Value], planned: dict[str, Value]) -> dict[str, Value]:
        sqs = aws.client("sqs")
        changed = tuple(k for k in ATTRIBUTES if k not in CREATE_ONLY and planned.get(k) != prior.get(k))
        attributes = queue_attributes(planned, changed) if changed else {}
        # An attribute removed from the configuration goes back to AWS's default; "" clears policies.
        for key in changed:
            if planned.get(key) is None and key in JSON_ATTRIBUTES:
                attributes[ATTRIBUTES[key]] = ""
        if attributes:
            sqs.set_queue_attributes(QueueUrl=prior["id"], Attributes=attributes)
        old, new = prior.get("tags_all") or {}, tags_to_send(planned)
        if gone := [k for k in old if k not in new]:
            sqs.untag_queue(QueueUrl=prior["id"], TagKeys=gone)
        if new and new != old:
            sqs.tag_queue(QueueUrl=prior["id"], Tags=new)
        return fill(planned, **{k: prior.get(k) for k in ("id", "url", "arn", "name", "name_prefix", "region")})

    def delete(self, aws: Aws, state: dict[str, Value]) -> None:
        try:
            aws.client("sqs").delete_queue(QueueUrl=state["id"])
        except Exception as err:
            if not is_not_found(err, "AWS.SimpleQueueService.NonExistentQueue"):
                raise


register_resource(Queue())
