"""SNS: aws_sns_topic, aws_sns_topic_subscription."""

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
    tag_list,
    tag_map,
    tags_to_send,
    unless_gone,
)

_FEEDBACK = {"application": "Application", "firehose": "Firehose", "http": "HTTP", "lambda": "Lambda", "sqs": "SQS"}

# Terraform attribute -> SNS topic attribute.
TOPIC_ATTRIBUTES = {
    "archive_policy": "ArchivePolicy",
    "content_based_deduplication": "ContentBasedDeduplication",
    "delivery_policy": "DeliveryPolicy",
    "display_name": "DisplayName",
    "fifo_throughput_scope": "FifoThroughputScope",
    "fifo_topic": "FifoTopic",
    "kms_master_key_id": "KmsMasterKeyId",
    "policy": "Policy",
    "signature_version": "SignatureVersion",
    "tracing_config": "TracingConfig",
    **{f"{k}_success_feedback_role_arn": f"{v}SuccessFeedbackRoleArn" for k, v in _FEEDBACK.items()},
    **{f"{k}_success_feedback_sample_rate": f"{v}SuccessFeedbackSampleRate" for k, v in _FEEDBACK.items()},
    **{f"{k}_failure_feedback_role_arn": f"{v}FailureFeedbackRoleArn" for k, v in _FEEDBACK.items()},
}
TOPIC_JSON = ("archive_policy", "delivery_policy", "policy")
TOPIC_COMPUTED = ("fifo_throughput_scope", "policy", "signature_version", "tracing_config")
TOPIC_CREATE_ONLY = ("fifo_topic",)


def to_sns(value: Value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def from_sns(key: str, value: str) -> Value:
    if key in ("fifo_topic", "content_based_deduplication"):
        return value == "true"
    if key.endswith("_sample_rate") or key == "signature_version":  # numbers in the schema
        return int(value)
    return value


class Topic(Resource):
    type_name = "aws_sns_topic"
    replace_on = frozenset({"name", "name_prefix", "fifo_topic"})

    def create(self, aws: Aws, planned: dict[str, Value]) -> dict[str, Value]:
        sns = aws.client("sns")
        name = resource_name(planned)
        if planned.get("fifo_topic") and not name.endswith(".fifo"):
            name += ".fifo"
        attributes = {v: to_sns(planned[k]) for k, v in TOPIC_ATTRIBUTES.items() if planned.get(k) not in (None, "")}
        tags = tag_list(tags_to_send(planned))
        topic_arn = sns.create_topic(Name=name, Attributes=attributes, **({"Tags": tags} if tags else {}))["TopicArn"]
        got = sns.get_topic_attributes(TopicArn=topic_arn)["Attributes"]
        computed = {k: from_sns(k, got[TOPIC_ATTRIBUTES[k]]) for k in TOPIC_COMPUTED if TOPIC_ATTRIBUTES[k] in got}
        return fill(
            planned,
            id=topic_arn,
            arn=topic_arn,
            name=name,
            name_prefix="",
            owner=got.get("Owner", aws.account_id),
            beginning_archive_time="",
            maximum_message_size=None,
            region=aws.region,
            **computed,
        )

    def read(self, aws: Aws, state: dict[str, Value]) -> dict[str, Value] | None:
        sns = aws.client("sns")
        try:
            got = sns.get_topic_attributes(TopicArn=state["id"])["Attributes"]
        except Exception as err:
            if is_not_found(err):
                return None
            raise
        tags = tag_map(sns.list_tags_for_resource(ResourceArn=state["id"]).get("Tags"))
        observed: dict[str, Value] = {k: from_sns(k, got[v]) for k, v in TOPIC_ATTRIBUTES.items() if v in got}
        for key in TOPIC_JSON:
            if key in observed:
                observed[key] = json_kept(state.get(key), observed[key])
        # A topic whose key attribute is gone reports no KmsMasterKeyId at all.
        if state.get("kms_master_key_id") and "KmsMasterKeyId" not in got:
            observed["kms_master_key_id"] = ""
        observed.update(arn=got["TopicArn"], owner=got.get("Owner"), **split_tags(aws, state, tags))
        return refresh(state, observed, computed=("arn", "owner", "tags_all", *TOPIC_COMPUTED))

    def update(self, aws: Aws, prior: dict[str, Value], planned: dict[str, Value]) -> dict[str, Value]:
        sns = aws.client("sns")
        for key, attribute in TOPIC_ATTRIBUTES.items():
            if (
                key in TOPIC_CREATE_ONLY
                or planned.get(key) == prior.get(key)
                or (key in TOPIC_COMPUTED and planned.get(key) is None)
            ):
                continue
            value = planned.get(key)
            sns.set_topic_attributes(
                TopicArn=prior["id"], AttributeName=attribute, AttributeValue="" if value is None else to_sns(value)
            )
        old, new = prior.get("tags_all") or {}, tags_to_send(planned)
        if gone := [k for k in old if k not in new]:
            sns.untag_resource(ResourceArn=prior["id"], TagKeys=gone)
        if new and new != old:
            sns.tag_resource(ResourceArn=prior["id"], Tags=tag_list(new))
        return fill(
            planned,
            **{
                k: prior.get(k)
                for k in prior
                if k
                in ("id", "arn", "name", "name_prefix", "owner", "region", "beginning_archive_time", *TOPIC_COMPUTED)
            },
        )

    def delete(self, aws: Aws, state: dict[str, Value]) -> None:
        with unless_gone():
            aws.client("sns").delete_topic(TopicArn=state["id"])


# Terraform attribute -> SNS subscription attribute.
SUBSCRIPTION_ATTRIBUTES = {
    "delivery_policy": "DeliveryPolicy",
    "filter_policy": "FilterPolicy",
    "filter_policy_scope": "FilterPolicyScope",
    "raw_message_delivery": "RawMessageDelivery",
    "redrive_policy": "RedrivePolicy",
    "replay_policy": "ReplayPolicy",
    "subscription_role_arn": "SubscriptionRoleArn",
}


class Subscription(Resource):
    type_name = "aws_sns_topic_subscription"
    replace_on = frozenset(
        {"topic_arn", "protocol", "endpoint", "endpoint_auto_confirms", "confirmation_timeout_in_minutes"}
    )

    def create(self, aws: Aws, planned: dict[str, Value]) -> dict[str, Value]:
        sns = aws.client("sns")
        attributes = {
            v: to_sns(planned[k]) for k, v in SUBSCRIPTION_ATTRIBUTES.items() if planned.get(k) not in (None, "", False)
        }
        sub_arn = sns.subscribe(
            TopicArn=planned["topic_arn"],
            Protocol=planned["protocol"],
            Endpoint=planned["endpoint"],
            Attributes=attributes,
            ReturnSubscriptionArn=True,
        )["SubscriptionArn"]
        got = sns.get_subscription_attributes(SubscriptionArn=sub_arn)["Attributes"]
        return fill(
            planned,
            id=sub_arn,
            arn=sub_arn,
            owner_id=got.get("Owner", aws.account_id),
            pending_confirmation=got.get("PendingConfirmation") == "true",
            confirmation_was_authenticated=got.get("ConfirmationWasAuthenticated") == "true",
            filter_policy_scope=got.get(
                "FilterPolicyScope", "MessageAttributes" if planned.get("filter_policy") else ""
            ),
            region=aws.region,
        )

    def read(self, aws: Aws, state: dict[str, Value]) -> dict[str, Value] | None:
        try:
            got = aws.client("sns").get_subscription_attributes(SubscriptionArn=state["id"])["Attributes"]
        except Exception as err:
            if is_not_found(err):
                return None
            raise
        observed: dict[str, Value] = {
            "topic_arn": got.get("TopicArn"),
            "protocol": got.get("Protocol"),
            "endpoint": got.get("Endpoint"),
            "owner_id": got.get("Owner"),
            "pending_confirmation": got.get("PendingConfirmation") == "true",
        }
        for key, attribute in SUBSCRIPTION_ATTRIBUTES.items():
            if attribute in got:
                value: Value = got[attribute]
                observed[key] = value == "true" if key == "raw_message_delivery" else value
        return refresh(state, observed, computed=("owner_id", "pending_confirmation"))

    def update(self, aws: Aws, prior: dict[str, Value], planned: dict[str, Value]) -> dict[str, Value]:
        sns = aws.client("sns")
        for key, attribute in SUBSCRIPTION_ATTRIBUTES.items():
            if planned.get(key) != prior.get(key) and not (key == "filter_policy_scope" and planned.get(key) is None):
                value = planned.get(key)
                sns.set_subscription_attributes(
                    SubscriptionArn=prior["id"],
                    AttributeName=attribute,
                    AttributeValue="" if value is None else to_sns(value),
                )
        keep = (
            "id",
            "arn",
            "owner_id",
            "pending_confirmation",
            "confirmation_was_authenticated",
            "filter_policy_scope",
            "region",
        )
        return fill(planned, **{k: prior.get(k) for k in keep})

    def delete(self, aws: Aws, state: dict[str, Value]) -> None:
        try:
            aws.client("sns").unsubscribe(SubscriptionArn=state["id"])
        except Exception as err:
            if not is_not_found(err):
                raise


register_resource(Topic())
register_resource(Subscription())
