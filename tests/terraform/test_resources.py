"""Each resource handler of the provider double, against a real moto_server through boto3.

For every handler: create puts the object into moto with the arguments given, read sees a change made outside
Terraform, update applies a changed argument, delete removes it, and read afterwards answers None (so Terraform
would plan to create it again).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto.server import ThreadedMotoServer

from tests.terraform.provider.resources import DATA_SOURCES, RESOURCES

REGION = "eu-central-1"
# moto keeps its state in module-level backends, shared by every moto_server in this process (the Terraform suite
# runs one too). Working in an account of its own keeps these tests and that suite out of each other's way:
# moto files requests made with an assumed role's credentials under the role's account.
ACCOUNT = "210987654321"


class MotoAws:
    """The `Aws` the core hands to handlers, bound to this test's moto_server and account."""

    def __init__(self, endpoint: str, credentials: dict[str, str]) -> None:
        self.endpoint = endpoint
        self.region = REGION
        self.account_id = ACCOUNT
        self._credentials = credentials
        self._clients: dict[str, Any] = {}
        self.default_tags: dict[str, str] = {}  # the provider's default_tags (the core's ProviderAws has them too)

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = boto3.client(
                service, endpoint_url=self.endpoint, region_name=self.region, **self._credentials
            )
        return self._clients[service]


@pytest.fixture(scope="module")
def aws() -> Iterator[MotoAws]:
    # Without moto's ~2,000 built-in AMIs EC2 starts in milliseconds; the tests register the AMIs they use.
    set_here = "MOTO_EC2_LOAD_DEFAULT_AMIS" not in os.environ
    os.environ.setdefault("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    try:
        sts = boto3.client(
            "sts", endpoint_url=endpoint, region_name=REGION, aws_access_key_id="test", aws_secret_access_key="test"
        )
        creds = sts.assume_role(RoleArn=f"arn:aws:iam::{ACCOUNT}:role/tfres-tests", RoleSessionName="tfres")[
            "Credentials"
        ]
        yield MotoAws(
            endpoint,
            {
                "aws_access_key_id": creds["AccessKeyId"],
                "aws_secret_access_key": creds["SecretAccessKey"],
                "aws_session_token": creds["SessionToken"],
            },
        )
    finally:
        server.stop()
        if set_here:
            os.environ.pop("MOTO_EC2_LOAD_DEFAULT_AMIS", None)


def res(type_name: str) -> Any:
    handler = RESOURCES[type_name]
    where = type(handler).__module__
    # A fake registered in this process (the core's tests have one for aws_ssm_parameter) would be tested instead.
    assert where.startswith("tests.terraform.provider.resources."), f"RESOURCES[{type_name!r}] is a {where} handler"
    return handler


# The real provider's schema (tfcore's tests/terraform/provider/aws_schema.json, generated from cdktn-provider-aws).
SCHEMA_FILE = Path(__file__).parent / "provider" / "aws_schema.json"
SCHEMA: dict[str, Any] = json.loads(SCHEMA_FILE.read_text()) if SCHEMA_FILE.exists() else {}


def _type_problems(cty: Any, value: Any, path: str) -> list[str]:
    if value is None or cty == "dynamic":
        return []
    if isinstance(cty, str):
        ok = {
            "string": isinstance(value, str),
            "number": isinstance(value, (int, float)) and not isinstance(value, bool),
            "bool": isinstance(value, bool),
        }[cty]
        return [] if ok else [f"{path}: {value!r} is not a {cty}"]
    kind, inner = cty
    if kind in ("list", "set"):
        if not isinstance(value, list):
            return [f"{path}: {value!r} is not a {kind}"]
        return [p for i, v in enumerate(value) for p in _type_problems(inner, v, f"{path}[{i}]")]
    if kind == "map":
        if not isinstance(value, dict):
            return [f"{path}: {value!r} is not a map"]
        return [p for k, v in value.items() for p in _type_problems(inner, v, f"{path}.{k}")]
    if kind == "object":
        if not isinstance(value, dict):
            return [f"{path}: {value!r} is not an object"]
        return [p for k, t in inner.items() for p in _type_problems(t, value.get(k), f"{path}.{k}")]
    return []


def schema_problems(
    block: dict[str, Any], value: dict[str, Any], planned: dict[str, Any] | None, path: str
) -> list[str]:
    """What Terraform would refuse in a handler's answer: an attribute the schema does not have, a value of the wrong
    type, or a value (or block) the configuration left unset in an attribute that is not computed."""
    attrs, blocks = block.get("attributes", {}), block.get("block_types", {})
    problems = [f"{path}.{k}: not in the provider's schema" for k in value if k not in attrs and k not in blocks]
    for key, attr in attrs.items():
        got = value.get(key)
        problems += _type_problems(attr["type"], got, f"{path}.{key}")
        if planned is not None and got is not None and not attr.get("computed") and planned.get(key) is None:
            problems.append(f"{path}.{key}: {got!r} where the configuration has null (not a computed attribute)")
    for key, nested in blocks.items():
        got = value.get(key)
        items = [got] if isinstance(got, dict) else list(got or [])
        wanted = (planned or {}).get(key)
        wanted_items = [wanted] if isinstance(wanted, dict) else list(wanted or [])
        if planned is not None and items and not wanted_items:
            problems.append(f"{path}.{key}: a block the configuration does not have")
            continue
        for i, item in enumerate(items):
            prior = wanted_items[i] if i < len(wanted_items) else None
            problems += schema_problems(
                nested["block"], item, prior if planned is not None else None, f"{path}.{key}[{i}]"
            )
    return problems


def check_schema(kind: str, type_name: str, value: dict[str, Any], planned: dict[str, Any] | None = None) -> None:
    if not SCHEMA:
        return  # the schema arrives with the core's branch; test_every_handler_has_a_schema says so
    problems = schema_problems(SCHEMA[kind][type_name]["block"], value, planned, type_name)
    assert not problems, "\n".join(problems)


# (type, id) -> the arguments the test "configured": what Terraform takes from the configuration when it plans.
CONFIGURED: dict[tuple[str, str], set[str]] = {}


def consistent(planned: Any, state: Any) -> bool:
    """Terraform's rule for a new state: every value the plan knew is kept; unknowns (None here) may be filled."""
    if planned is None:
        return True
    if isinstance(planned, dict):
        return isinstance(state, dict) and all(consistent(v, state.get(k)) for k, v in planned.items())
    if isinstance(planned, list):
        return isinstance(state, list) and len(planned) == len(state) and all(map(consistent, planned, state))
    return bool(planned == state)


def lifecycle(aws: MotoAws, type_name: str, planned: dict[str, Any]) -> dict[str, Any]:
    """create, then read back: the state Terraform would hold after apply and refresh."""
    handler = res(type_name)
    state = handler.create(aws, planned)
    for key, value in planned.items():
        assert consistent(value, state[key]), f"{type_name}.{key}: planned {value!r}, new state {state[key]!r}"
    assert state["id"], f"{type_name}: no id"
    CONFIGURED[(type_name, state["id"])] = {k for k, v in planned.items() if v is not None}
    check_schema("resource_schemas", type_name, state, planned)
    again = handler.read(aws, state)
    assert again == state, f"{type_name}: read right after create differs"
    return state


def update(aws: MotoAws, type_name: str, prior: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """Refresh, then apply the configuration (the prior state's arguments) with `changes`, as `terraform apply` does:
    a change made outside Terraform is reverted along the way."""
    handler = res(type_name)
    refreshed = handler.read(aws, prior)
    assert refreshed is not None
    # The plan: configured arguments from the configuration, the rest (computed) from the refreshed state.
    configured = CONFIGURED[(type_name, prior["id"])] | set(changes)
    planned = {**refreshed, **{k: prior[k] for k in configured if k in prior}, **changes}
    for key in getattr(handler, "update_unknown", ()):  # the core plans them unknown
        planned[key] = None
    state = handler.update(aws, refreshed, planned)
    check_schema("resource_schemas", type_name, state, planned)
    for key, value in prior.items():
        assert consistent(planned[key], state[key]), f"{type_name}.{key}: planned {value!r}, new state {state[key]!r}"
    for key, value in changes.items():
        assert consistent(value, state[key]), f"{type_name}.{key}: planned {value!r}, new state {state[key]!r}"
    assert handler.read(aws, state) == state, f"{type_name}: read right after update differs"
    return state


def destroy(aws: MotoAws, type_name: str, state: dict[str, Any]) -> None:
    handler = res(type_name)
    handler.delete(aws, state)
    assert handler.read(aws, state) is None, f"{type_name}: still there after delete"
    handler.delete(aws, state)  # a destroy retried after the object went: done, not an error


TAGS = {"ec2batch:job": "nightly", "team": "data"}


def tagged(**values: Any) -> dict[str, Any]:
    return {**values, "tags": dict(TAGS), "tags_all": dict(TAGS)}


def test_log_group_and_metric_filter(aws: MotoAws) -> None:
    logs = aws.client("logs")
    group = lifecycle(
        aws, "aws_cloudwatch_log_group", tagged(name="/ec2batch/nightly", retention_in_days=30, kms_key_id=None)
    )
    assert group["arn"] == f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/ec2batch/nightly"
    got = logs.describe_log_groups(logGroupNamePrefix="/ec2batch/nightly")["logGroups"][0]
    assert got["retentionInDays"] == 30
    assert logs.list_tags_log_group(logGroupName="/ec2batch/nightly")["tags"] == TAGS

    logs.put_retention_policy(logGroupName="/ec2batch/nightly", retentionInDays=7)
    assert res("aws_cloudwatch_log_group").read(aws, group)["retention_in_days"] == 7
    group = update(aws, "aws_cloudwatch_log_group", group, retention_in_days=90)
    assert logs.describe_log_groups(logGroupNamePrefix="/ec2batch/nightly")["logGroups"][0]["retentionInDays"] == 90

    transformation = {"name": "FailedRuns", "namespace": "ec2batch/nightly", "value": "1"}
    mf = lifecycle(
        aws,
        "aws_cloudwatch_log_metric_filter",
        {
            "name": "nightly-FailedRuns",
            "log_group_name": "/ec2batch/nightly",
            "pattern": '{ $.msg = "run ended" }',
            "metric_transformation": [{**transformation, "default_value": None, "dimensions": None, "unit": None}],
        },
    )
    got = logs.describe_metric_filters(logGroupName="/ec2batch/nightly")["metricFilters"][0]
    assert got["filterPattern"] == '{ $.msg = "run ended" }'
    assert got["metricTransformations"][0]["metricName"] == "FailedRuns"
    logs.put_metric_filter(
        logGroupName="/ec2batch/nightly",
        filterName="nightly-FailedRuns",
        filterPattern="changed",
        metricTransformations=[{"metricName": "FailedRuns", "metricNamespace": "ec2batch/nightly", "metricValue": "1"}],
    )
    assert res("aws_cloudwatch_log_metric_filter").read(aws, mf)["pattern"] == "changed"
    mf = update(aws, "aws_cloudwatch_log_metric_filter", mf, pattern='{ $.msg = "run failed" }')
    assert logs.describe_metric_filters(logGroupName="/ec2batch/nightly")["metricFilters"][0]["filterPattern"] == (
        '{ $.msg = "run failed" }'
    )
    destroy(aws, "aws_cloudwatch_log_metric_filter", mf)
    destroy(aws, "aws_cloudwatch_log_group", group)


def test_sqs_queue(aws: MotoAws) -> None:
    sqs = aws.client("sqs")
    dlq = lifecycle(aws, "aws_sqs_queue", tagged(name="nightly-dlq", message_retention_seconds=1209600))
    redrive = json.dumps({"deadLetterTargetArn": dlq["arn"], "maxReceiveCount": 3}, separators=(",", ":"))
    queue = lifecycle(
        aws,
        "aws_sqs_queue",
        tagged(
            name="nightly-timers",
            visibility_timeout_seconds=360,
            kms_master_key_id="alias/aws/sqs",
            kms_data_key_reuse_period_seconds=3600,
            redrive_policy=redrive,
            delay_seconds=None,
        ),
    )
    assert queue["url"] == queue["id"] and queue["arn"].endswith(":nightly-timers")
    assert queue["delay_seconds"] is None  # planned null stays null
    got = sqs.get_queue_attributes(QueueUrl=queue["id"], AttributeNames=["All"])["Attributes"]
    assert got["VisibilityTimeout"] == "360" and got["KmsMasterKeyId"] == "alias/aws/sqs"
    assert '"maxReceiveCount":3' in got["RedrivePolicy"].replace(" ", "")
    assert sqs.list_queue_tags(QueueUrl=queue["id"])["Tags"] == TAGS

    sqs.set_queue_attributes(QueueUrl=queue["id"], Attributes={"VisibilityTimeout": "30"})
    assert res("aws_sqs_queue").read(aws, queue)["visibility_timeout_seconds"] == 30
    queue = update(aws, "aws_sqs_queue", queue, visibility_timeout_seconds=1080)
    got = sqs.get_queue_attributes(QueueUrl=queue["id"], AttributeNames=["VisibilityTimeout"])["Attributes"]
    assert got["VisibilityTimeout"] == "1080"
    destroy(aws, "aws_sqs_queue", queue)
    destroy(aws, "aws_sqs_queue", dlq)


def test_kms_key_and_alias(aws: MotoAws) -> None:
    kms = aws.client("kms")
    key = lifecycle(
        aws,
        "aws_kms_key",
        tagged(description="ec2batch nightly notifications", enable_key_rotation=True, deletion_window_in_days=7),
    )
    assert key["arn"].endswith(f":key/{key['id']}") and key["key_id"] == key["id"]
    assert '"Statement"' in key["policy"]  # AWS's default key policy, read back
    meta = kms.describe_key(KeyId=key["id"])["KeyMetadata"]
    assert meta["Description"] == "ec2batch nightly notifications"
    assert kms.get_key_rotation_status(KeyId=key["id"])["KeyRotationEnabled"] is True

    policy = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "CloudWatchPublishes",
                    "Effect": "Allow",
                    "Principal": {"Service": "cloudwatch.amazonaws.com"},
                    "Action": ["kms:Decrypt", "kms:GenerateDataKey*"],
                    "Resource": "*",
                }
            ],
        }
    )
    key = update(aws, "aws_kms_key", key, policy=policy)
    assert json.loads(kms.get_key_policy(KeyId=key["id"], PolicyName="default")["Policy"]) == json.loads(policy)
    kms.update_key_description(KeyId=key["id"], Description="changed by hand")
    assert res("aws_kms_key").read(aws, key)["description"] == "changed by hand"

    alias = lifecycle(aws, "aws_kms_alias", {"name": "alias/ec2batch-nightly", "target_key_id": key["id"]})
    assert alias["target_key_arn"] == key["arn"]
    assert alias["arn"] == f"arn:aws:kms:{REGION}:{ACCOUNT}:alias/ec2batch-nightly"
    other = kms.create_key(Description="other")["KeyMetadata"]
    kms.update_alias(AliasName="alias/ec2batch-nightly", TargetKeyId=other["KeyId"])
    assert res("aws_kms_alias").read(aws, alias)["target_key_arn"] == other["Arn"]
    alias = update(aws, "aws_kms_alias", alias)  # back to the configured key
    aliases = kms.list_aliases(KeyId=key["id"])["Aliases"]
    assert [a["AliasName"] for a in aliases] == ["alias/ec2batch-nightly"]
    destroy(aws, "aws_kms_alias", alias)
    destroy(aws, "aws_kms_key", key)
    assert kms.describe_key(KeyId=key["id"])["KeyMetadata"]["KeyState"] == "PendingDeletion"


def test_sns_topic_and_subscription(aws: MotoAws) -> None:
    sns = aws.client("sns")
    topic = lifecycle(aws, "aws_sns_topic", tagged(name="nightly", kms_master_key_id="alias/ec2batch-nightly"))
    assert topic["id"] == topic["arn"] == f"arn:aws:sns:{REGION}:{ACCOUNT}:nightly"
    got = sns.get_topic_attributes(TopicArn=topic["arn"])["Attributes"]
    assert got["KmsMasterKeyId"] == "alias/ec2batch-nightly"
    sns.set_topic_attributes(TopicArn=topic["arn"], AttributeName="KmsMasterKeyId", AttributeValue="alias/aws/sns")
    assert res("aws_sns_topic").read(aws, topic)["kms_master_key_id"] == "alias/aws/sns"
    topic = update(aws, "aws_sns_topic", topic, kms_master_key_id="alias/other")
    assert sns.get_topic_attributes(TopicArn=topic["arn"])["Attributes"]["KmsMasterKeyId"] == "alias/other"

    sub = lifecycle(
        aws,
        "aws_sns_topic_subscription",
        {"topic_arn": topic["arn"], "protocol": "email", "endpoint": "ops@example.com"},
    )
    subs = sns.list_subscriptions_by_topic(TopicArn=topic["arn"])["Subscriptions"]
    assert [(s["Protocol"], s["Endpoint"]) for s in subs] == [("email", "ops@example.com")]
    destroy(aws, "aws_sns_topic_subscription", sub)
    destroy(aws, "aws_sns_topic", topic)


def test_ssm_parameter(aws: MotoAws) -> None:
    ssm = aws.client("ssm")
    config = json.dumps({"job": "nightly", "image": "nightly:1"})
    param = lifecycle(
        aws,
        "aws_ssm_parameter",
        tagged(
            name="/ec2batch/nightly/config",
            type="SecureString",
            value=config,
            description="job config",
            tier="Standard",
            key_id=None,
        ),
    )
    assert param["arn"] == f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/ec2batch/nightly/config"
    assert param["version"] == 1 and param["key_id"] == "alias/aws/ssm"
    got = ssm.get_parameter(Name="/ec2batch/nightly/config", WithDecryption=True)["Parameter"]
    assert got["Type"] == "SecureString" and got["Value"] == config

    ssm.put_parameter(Name="/ec2batch/nightly/config", Value="{}", Type="SecureString", Overwrite=True)
    assert res("aws_ssm_parameter").read(aws, param)["value"] == "{}"
    changed = json.dumps({"job": "nightly", "image": "nightly:2"})
    param = update(aws, "aws_ssm_parameter", param, value=changed)
    assert param["version"] == 3
    assert ssm.get_parameter(Name="/ec2batch/nightly/config", WithDecryption=True)["Parameter"]["Value"] == changed
    destroy(aws, "aws_ssm_parameter", param)


def test_ecr_repository_and_lifecycle_policy(aws: MotoAws) -> None:
    ecr = aws.client("ecr")
    repo = lifecycle(
        aws,
        "aws_ecr_repository",
        tagged(
            name="ec2batch/nightly",
            image_tag_mutability="IMMUTABLE",
            image_scanning_configuration=[{"scan_on_push": True}],
            encryption_configuration=[{"encryption_type": "AES256", "kms_key": None}],
        ),
    )
    assert repo["repository_url"].endswith("/ec2batch/nightly") and repo["registry_id"] == ACCOUNT
    got = ecr.describe_repositories(repositoryNames=["ec2batch/nightly"])["repositories"][0]
    assert got["imageTagMutability"] == "IMMUTABLE" and got["imageScanningConfiguration"] == {"scanOnPush": True}
    ecr.put_image_tag_mutability(repositoryName="ec2batch/nightly", imageTagMutability="MUTABLE")
    assert res("aws_ecr_repository").read(aws, repo)["image_tag_mutability"] == "MUTABLE"
    repo = update(aws, "aws_ecr_repository", repo, image_scanning_configuration=[{"scan_on_push": False}])
    got = ecr.describe_repositories(repositoryNames=["ec2batch/nightly"])["repositories"][0]
    assert got["imageScanningConfiguration"] == {"scanOnPush": False}

    rule = {
        "rulePriority": 1,
        "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 10},
        "action": {"type": "expire"},
    }
    policy = lifecycle(
        aws, "aws_ecr_lifecycle_policy", {"repository": "ec2batch/nightly", "policy": json.dumps({"rules": [rule]})}
    )
    assert json.loads(ecr.get_lifecycle_policy(repositoryName="ec2batch/nightly")["lifecyclePolicyText"]) == {
        "rules": [rule]
    }
    by_hand = {"rules": [{**rule, "description": "changed by hand in the console"}]}
    ecr.put_lifecycle_policy(repositoryName="ec2batch/nightly", lifecyclePolicyText=json.dumps(by_hand))
    assert json.loads(res("aws_ecr_lifecycle_policy").read(aws, policy)["policy"]) == by_hand
    rule5 = {**rule, "selection": {**rule["selection"], "countNumber": 5}}
    policy = update(aws, "aws_ecr_lifecycle_policy", policy, policy=json.dumps({"rules": [rule5]}))
    destroy(aws, "aws_ecr_lifecycle_policy", policy)
    destroy(aws, "aws_ecr_repository", repo)


def test_dynamodb_table(aws: MotoAws) -> None:
    ddb = aws.client("dynamodb")
    table = lifecycle(
        aws,
        "aws_dynamodb_table",
        tagged(
            name="ec2batch-nightly-runs",
            billing_mode="PAY_PER_REQUEST",
            hash_key="job",
            range_key="run_id",
            attribute=[{"name": "job", "type": "S"}, {"name": "run_id", "type": "S"}],
            ttl=[{"attribute_name": "expires_at", "enabled": True}],
            point_in_time_recovery=[{"enabled": True, "recovery_period_in_days": None}],
            server_side_encryption=[{"enabled": True, "kms_key_arn": None}],
            deletion_protection_enabled=True,
        ),
    )
    got = ddb.describe_table(TableName="ec2batch-nightly-runs")["Table"]
    assert {k["AttributeName"]: k["KeyType"] for k in got["KeySchema"]} == {"job": "HASH", "run_id": "RANGE"}
    assert got["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST" and got["DeletionProtectionEnabled"] is True
    assert got["SSEDescription"]["Status"] == "ENABLED"
    ttl = ddb.describe_time_to_live(TableName="ec2batch-nightly-runs")["TimeToLiveDescription"]
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires_at"}
    pitr = ddb.describe_continuous_backups(TableName="ec2batch-nightly-runs")["ContinuousBackupsDescription"]
    assert pitr["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "ENABLED"

    # As on AWS, a protected table cannot be destroyed: `terraform destroy` fails until protection is lifted.
    with pytest.raises(ClientError, match="DeletionProtectionEnabled"):
        res("aws_dynamodb_table").delete(aws, table)
    ddb.update_time_to_live(
        TableName="ec2batch-nightly-runs", TimeToLiveSpecification={"Enabled": False, "AttributeName": "expires_at"}
    )
    assert res("aws_dynamodb_table").read(aws, table)["ttl"][0]["enabled"] is False
    table = update(aws, "aws_dynamodb_table", table, deletion_protection_enabled=False)
    destroy(aws, "aws_dynamodb_table", table)


def assume_policy(service: str) -> str:
    statement = {"Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {"Service": service}}
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def test_iam_role_policy_and_instance_profile(aws: MotoAws) -> None:
    iam = aws.client("iam")
    role = lifecycle(
        aws,
        "aws_iam_role",
        tagged(name="nightly-instance", assume_role_policy=assume_policy("ec2.amazonaws.com"), description="agent"),
    )
    assert role["arn"] == f"arn:aws:iam::{ACCOUNT}:role/nightly-instance" and role["unique_id"]
    got = iam.get_role(RoleName="nightly-instance")["Role"]
    assert got["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"Service": "ec2.amazonaws.com"}

    statement = {"Sid": "Logs", "Effect": "Allow", "Action": "logs:PutLogEvents", "Resource": "*"}
    document = json.dumps({"Version": "2012-10-17", "Statement": [statement]})
    policy = lifecycle(aws, "aws_iam_role_policy", {"name": "ec2batch-agent", "role": role["id"], "policy": document})
    assert policy["id"] == "nightly-instance:ec2batch-agent"
    stored = iam.get_role_policy(RoleName="nightly-instance", PolicyName="ec2batch-agent")["PolicyDocument"]
    assert stored["Statement"][0]["Sid"] == "Logs"
    wider = document.replace("logs:PutLogEvents", "logs:*")
    iam.put_role_policy(RoleName="nightly-instance", PolicyName="ec2batch-agent", PolicyDocument=wider)
    assert json.loads(res("aws_iam_role_policy").read(aws, policy)["policy"]) == json.loads(wider)
    policy = update(aws, "aws_iam_role_policy", policy, policy=document.replace("Logs", "OnlyLogs"))
    stored = iam.get_role_policy(RoleName="nightly-instance", PolicyName="ec2batch-agent")["PolicyDocument"]
    assert stored["Statement"][0]["Sid"] == "OnlyLogs" and stored["Statement"][0]["Action"] == "logs:PutLogEvents"

    profile = lifecycle(aws, "aws_iam_instance_profile", tagged(name="nightly-instance", role=role["name"]))
    got = iam.get_instance_profile(InstanceProfileName="nightly-instance")["InstanceProfile"]
    assert [r["RoleName"] for r in got["Roles"]] == ["nightly-instance"]
    assert profile["arn"] == f"arn:aws:iam::{ACCOUNT}:instance-profile/nightly-instance"

    managed = iam.create_policy(PolicyName="job-reads-s3", PolicyDocument=document)["Policy"]["Arn"]
    attachment = lifecycle(aws, "aws_iam_role_policy_attachment", {"role": role["name"], "policy_arn": managed})
    attached = iam.list_attached_role_policies(RoleName="nightly-instance")["AttachedPolicies"]
    assert [p["PolicyArn"] for p in attached] == [managed]
    iam.detach_role_policy(RoleName="nightly-instance", PolicyArn=managed)
    assert res("aws_iam_role_policy_attachment").read(aws, attachment) is None  # Terraform would attach it again
    iam.attach_role_policy(RoleName="nightly-instance", PolicyArn=managed)
    destroy(aws, "aws_iam_role_policy_attachment", attachment)
    assert iam.list_attached_role_policies(RoleName="nightly-instance")["AttachedPolicies"] == []

    iam.remove_role_from_instance_profile(InstanceProfileName="nightly-instance", RoleName="nightly-instance")
    assert res("aws_iam_instance_profile").read(aws, profile)["role"] == ""
    profile = update(aws, "aws_iam_instance_profile", profile)
    assert iam.get_instance_profile(InstanceProfileName="nightly-instance")["InstanceProfile"]["Roles"]

    iam.update_role(RoleName="nightly-instance", Description="changed by hand")
    assert res("aws_iam_role").read(aws, role)["description"] == "changed by hand"
    role = update(aws, "aws_iam_role", role, description="the agent on the job's machine")
    assert iam.get_role(RoleName="nightly-instance")["Role"]["Description"] == "the agent on the job's machine"
    destroy(aws, "aws_iam_instance_profile", profile)
    destroy(aws, "aws_iam_role_policy", policy)
    destroy(aws, "aws_iam_role", role)


def test_metric_alarm(aws: MotoAws) -> None:
    cw = aws.client("cloudwatch")
    topic = aws.client("sns").create_topic(Name="alarms")["TopicArn"]
    alarm = lifecycle(
        aws,
        "aws_cloudwatch_metric_alarm",
        tagged(
            alarm_name="nightly-dead-letters",
            alarm_description="Events ended in the DLQ",
            namespace="AWS/SQS",
            metric_name="ApproximateNumberOfMessagesVisible",
            dimensions={"QueueName": "nightly-dlq"},
            statistic="Maximum",
            period=300,
            evaluation_periods=1,
            threshold=1,
            comparison_operator="GreaterThanOrEqualToThreshold",
            treat_missing_data="notBreaching",
            alarm_actions=[topic],
        ),
    )
    got = cw.describe_alarms(AlarmNames=["nightly-dead-letters"])["MetricAlarms"][0]
    assert got["AlarmActions"] == [topic] and got["Dimensions"] == [{"Name": "QueueName", "Value": "nightly-dlq"}]
    assert got["Threshold"] == 1.0 and got["TreatMissingData"] == "notBreaching"
    assert alarm["arn"] == got["AlarmArn"]
    cw.put_metric_alarm(
        **{
            **{
                k: got[k]
                for k in (
                    "AlarmName",
                    "Namespace",
                    "MetricName",
                    "Dimensions",
                    "Statistic",
                    "Period",
                    "EvaluationPeriods",
                    "ComparisonOperator",
                    "AlarmActions",
                )
            },
            "Threshold": 5.0,
        }
    )
    assert res("aws_cloudwatch_metric_alarm").read(aws, alarm)["threshold"] == 5.0
    alarm = update(aws, "aws_cloudwatch_metric_alarm", alarm, evaluation_periods=3)
    assert cw.describe_alarms(AlarmNames=["nightly-dead-letters"])["MetricAlarms"][0]["EvaluationPeriods"] == 3
    destroy(aws, "aws_cloudwatch_metric_alarm", alarm)


def test_dashboard(aws: MotoAws) -> None:
    cw = aws.client("cloudwatch")
    body = {
        "widgets": [
            {"type": "metric", "properties": {"metrics": [["ec2batch/nightly", "RunDuration", "job", "nightly"]]}}
        ]
    }
    board = lifecycle(
        aws, "aws_cloudwatch_dashboard", {"dashboard_name": "ec2batch-nightly", "dashboard_body": json.dumps(body)}
    )
    assert board["dashboard_arn"] == cw.get_dashboard(DashboardName="ec2batch-nightly")["DashboardArn"]
    changed = {"widgets": [*body["widgets"], {"type": "text", "properties": {"markdown": "by hand"}}]}
    cw.put_dashboard(DashboardName="ec2batch-nightly", DashboardBody=json.dumps(changed))
    assert json.loads(res("aws_cloudwatch_dashboard").read(aws, board)["dashboard_body"]) == changed
    board = update(aws, "aws_cloudwatch_dashboard", board, dashboard_body=json.dumps(body))
    assert json.loads(cw.get_dashboard(DashboardName="ec2batch-nightly")["DashboardBody"]) == body
    destroy(aws, "aws_cloudwatch_dashboard", board)


def test_event_rule_and_target(aws: MotoAws) -> None:
    events = aws.client("events")
    queue_arn = aws.client("sqs").get_queue_attributes(
        QueueUrl=aws.client("sqs").create_queue(QueueName="rule-target")["QueueUrl"], AttributeNames=["QueueArn"]
    )["Attributes"]["QueueArn"]
    rule = lifecycle(
        aws,
        "aws_cloudwatch_event_rule",
        tagged(
            name="nightly-state",
            event_pattern=json.dumps({"source": ["aws.ec2"]}),
            description="instance state",
            state="ENABLED",
        ),
    )
    assert rule["id"] == "nightly-state" and rule["arn"].endswith(":rule/nightly-state")
    assert events.describe_rule(Name="nightly-state")["State"] == "ENABLED"
    literal = '{"at":"<aws.events.event.ingestion-time>"}'
    target = lifecycle(
        aws,
        "aws_cloudwatch_event_target",
        {"rule": "nightly-state", "arn": queue_arn, "input": literal, "target_id": None},
    )
    assert target["target_id"] and target["id"] == f"nightly-state-{target['target_id']}"
    got = events.list_targets_by_rule(Rule="nightly-state")["Targets"]
    assert [(t["Arn"], t["Input"]) for t in got] == [(queue_arn, literal)]
    events.put_targets(Rule="nightly-state", Targets=[{"Id": target["target_id"], "Arn": queue_arn, "Input": "{}"}])
    assert res("aws_cloudwatch_event_target").read(aws, target)["input"] == "{}"
    events.disable_rule(Name="nightly-state")
    assert res("aws_cloudwatch_event_rule").read(aws, rule)["state"] == "DISABLED"
    target = update(aws, "aws_cloudwatch_event_target", target, input='{"at":"now"}')
    assert events.list_targets_by_rule(Rule="nightly-state")["Targets"][0]["Input"] == '{"at":"now"}'
    rule = update(aws, "aws_cloudwatch_event_rule", rule, state="DISABLED")
    assert events.describe_rule(Name="nightly-state")["State"] == "DISABLED"
    destroy(aws, "aws_cloudwatch_event_target", target)
    destroy(aws, "aws_cloudwatch_event_rule", rule)


def test_scheduler_group_and_schedule(aws: MotoAws) -> None:
    scheduler = aws.client("scheduler")
    group = lifecycle(aws, "aws_scheduler_schedule_group", tagged(name="ec2batch-nightly"))
    assert group["arn"].endswith(":schedule-group/ec2batch-nightly") and group["state"] == "ACTIVE"
    # What jsonencode renders: "<" and ">" escaped. The double must send these bytes, not a re-encoding.
    rendered = '{"action":"schedule","scheduled_time":"\\u003caws.scheduler.scheduled-time\\u003e"}'
    target = {
        "arn": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:nightly-launcher",
        "role_arn": f"arn:aws:iam::{ACCOUNT}:role/nightly-scheduler",
        "input": rendered,
        "retry_policy": [{"maximum_event_age_in_seconds": 300, "maximum_retry_attempts": 3}],
        "dead_letter_config": [{"arn": f"arn:aws:sqs:{REGION}:{ACCOUNT}:nightly-dlq"}],
    }
    schedule = lifecycle(
        aws,
        "aws_scheduler_schedule",
        {
            "name": "nightly",
            "group_name": "ec2batch-nightly",
            "description": "run the job",
            "schedule_expression": "cron(0 3 * * ? *)",
            "schedule_expression_timezone": "Europe/Berlin",
            "flexible_time_window": [{"mode": "OFF", "maximum_window_in_minutes": None}],
            "target": [target],
        },
    )
    assert schedule["id"] == "ec2batch-nightly/nightly"
    got = scheduler.get_schedule(GroupName="ec2batch-nightly", Name="nightly")
    assert got["Target"]["Input"] == rendered  # the literal text, escapes and all
    assert got["ScheduleExpressionTimezone"] == "Europe/Berlin"
    assert got["Target"]["RetryPolicy"] == {"MaximumEventAgeInSeconds": 300, "MaximumRetryAttempts": 3}
    assert got["Target"]["DeadLetterConfig"]["Arn"].endswith(":nightly-dlq")

    scheduler.update_schedule(
        Name="nightly",
        GroupName="ec2batch-nightly",
        ScheduleExpression="rate(1 day)",
        FlexibleTimeWindow={"Mode": "OFF"},
        Target={"Arn": target["arn"], "RoleArn": target["role_arn"], "Input": rendered},
    )
    assert res("aws_scheduler_schedule").read(aws, schedule)["schedule_expression"] == "rate(1 day)"
    plain = '{"action":"schedule","scheduled_time":"<aws.scheduler.scheduled-time>"}'
    schedule = update(aws, "aws_scheduler_schedule", schedule, target=[{**target, "input": plain}])
    assert scheduler.get_schedule(GroupName="ec2batch-nightly", Name="nightly")["Target"]["Input"] == plain
    destroy(aws, "aws_scheduler_schedule", schedule)
    destroy(aws, "aws_scheduler_schedule_group", group)


def launcher_zip(path: Path, body: str = "def handler(event, context):\n    return event\n") -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("ec2batch/launcher.py", body)
    return path


def test_lambda_function_invoke_config_and_event_source_mapping(aws: MotoAws, tmp_path: Path) -> None:
    lam, sqs = aws.client("lambda"), aws.client("sqs")
    role_arn = aws.client("iam").create_role(
        RoleName="nightly-launcher", AssumeRolePolicyDocument=assume_policy("lambda.amazonaws.com")
    )["Role"]["Arn"]
    dlq_url = sqs.create_queue(QueueName="launcher-dlq")["QueueUrl"]
    dlq = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    package = launcher_zip(tmp_path / "launcher.zip")
    planned = tagged(
        function_name="nightly-launcher",
        role=role_arn,
        filename=str(package),
        source_code_hash=base64.b64encode(hashlib.sha256(package.read_bytes()).digest()).decode(),
        handler="ec2batch.launcher.handler",
        runtime="python3.12",
        architectures=["arm64"],
        memory_size=256,
        timeout=180,
        reserved_concurrent_executions=None,
        environment=[{"variables": {"EC2BATCH_JOB": "nightly"}}],
        dead_letter_config=[{"target_arn": dlq}],
        tracing_config=[{"mode": "Active"}],
        logging_config=[
            {
                "log_format": "Text",
                "log_group": "/ec2batch/nightly/launcher",
                "application_log_level": None,
                "system_log_level": None,
            }
        ],
    )
    fn = lifecycle(aws, "aws_lambda_function", planned)
    assert fn["arn"] == f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:nightly-launcher"
    assert fn["invoke_arn"].endswith(f"functions/{fn['arn']}/invocations") and fn["version"] == "$LATEST"
    conf = lam.get_function(FunctionName="nightly-launcher")["Configuration"]
    assert conf["Environment"]["Variables"] == {"EC2BATCH_JOB": "nightly"}
    assert conf["Architectures"] == ["arm64"] and conf["Timeout"] == 180 and conf["TracingConfig"]["Mode"] == "Active"
    assert conf["CodeSha256"] == planned["source_code_hash"]  # the zip the configuration names was uploaded
    assert "Concurrency" not in lam.get_function(FunctionName="nightly-launcher")  # no reservation when unset

    lam.update_function_configuration(FunctionName="nightly-launcher", Timeout=30)
    assert res("aws_lambda_function").read(aws, fn)["timeout"] == 30
    new_package = launcher_zip(tmp_path / "launcher2.zip", "def handler(event, context):\n    return None\n")
    new_hash = base64.b64encode(hashlib.sha256(new_package.read_bytes()).digest()).decode()
    fn = update(
        aws,
        "aws_lambda_function",
        fn,
        filename=str(new_package),
        source_code_hash=new_hash,
        reserved_concurrent_executions=2,
        environment=[{"variables": {"EC2BATCH_JOB": "nightly", "EC2BATCH_STOPPING_WAIT_SECONDS": "120"}}],
    )
    got = lam.get_function(FunctionName="nightly-launcher")
    assert got["Configuration"]["CodeSha256"] == new_hash and got["Configuration"]["Timeout"] == 180
    assert got["Concurrency"] == {"ReservedConcurrentExecutions": 2}
    assert got["Configuration"]["Environment"]["Variables"]["EC2BATCH_STOPPING_WAIT_SECONDS"] == "120"

    invoke = lifecycle(
        aws,
        "aws_lambda_function_event_invoke_config",
        {
            "function_name": "nightly-launcher",
            "maximum_retry_attempts": 2,
            "maximum_event_age_in_seconds": 3600,
            "destination_config": [{"on_failure": [{"destination": dlq}], "on_success": []}],
        },
    )
    got = lam.get_function_event_invoke_config(FunctionName="nightly-launcher")
    assert got["MaximumRetryAttempts"] == 2 and got["DestinationConfig"]["OnFailure"]["Destination"] == dlq
    lam.delete_function_event_invoke_config(FunctionName="nightly-launcher")
    assert res("aws_lambda_function_event_invoke_config").read(aws, invoke) is None
    invoke = lifecycle(
        aws,
        "aws_lambda_function_event_invoke_config",
        {
            k: invoke[k]
            for k in ("function_name", "maximum_retry_attempts", "maximum_event_age_in_seconds", "destination_config")
        },
    )
    invoke = update(aws, "aws_lambda_function_event_invoke_config", invoke, maximum_retry_attempts=0)
    assert lam.get_function_event_invoke_config(FunctionName="nightly-launcher")["MaximumRetryAttempts"] == 0

    timers_url = sqs.create_queue(QueueName="timers")["QueueUrl"]
    timers = sqs.get_queue_attributes(QueueUrl=timers_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    mapping = lifecycle(
        aws,
        "aws_lambda_event_source_mapping",
        tagged(
            event_source_arn=timers,
            function_name=fn["arn"],
            batch_size=1,
            maximum_batching_window_in_seconds=0,
            function_response_types=["ReportBatchItemFailures"],
        ),
    )
    got = lam.get_event_source_mapping(UUID=mapping["id"])
    assert got["EventSourceArn"] == timers and got["BatchSize"] == 1 and got["FunctionArn"] == fn["arn"]
    lam.update_event_source_mapping(UUID=mapping["id"], BatchSize=3)
    assert res("aws_lambda_event_source_mapping").read(aws, mapping)["batch_size"] == 3
    mapping = update(aws, "aws_lambda_event_source_mapping", mapping, batch_size=5)
    assert lam.get_event_source_mapping(UUID=mapping["id"])["BatchSize"] == 5

    destroy(aws, "aws_lambda_event_source_mapping", mapping)
    destroy(aws, "aws_lambda_function_event_invoke_config", invoke)
    destroy(aws, "aws_lambda_function", fn)


def read_data(aws: MotoAws, type_name: str, config: dict[str, Any]) -> dict[str, Any]:
    got = DATA_SOURCES[type_name].read(aws, config)
    check_schema("data_source_schemas", type_name, got)
    return dict(got)


def test_every_handler_has_a_schema() -> None:
    if not SCHEMA:
        pytest.skip(f"NOT CHECKED: handlers against the provider's schema ({SCHEMA_FILE} is the core's, not here yet)")
    assert set(RESOURCES) <= set(SCHEMA["resource_schemas"])
    assert set(DATA_SOURCES) <= set(SCHEMA["data_source_schemas"])


def test_data_sources(aws: MotoAws) -> None:
    region = read_data(aws, "aws_region", {"name": None, "region": None, "endpoint": None})
    assert region["region"] == region["name"] == region["id"] == REGION
    assert region["endpoint"] == f"ec2.{REGION}.amazonaws.com" and region["description"] == "Europe (Frankfurt)"
    identity = read_data(aws, "aws_caller_identity", {})
    assert identity["account_id"] == ACCOUNT and identity["arn"].startswith("arn:aws:")
    partition = read_data(aws, "aws_partition", {})
    assert (partition["partition"], partition["dns_suffix"], partition["reverse_dns_prefix"]) == (
        "aws",
        "amazonaws.com",
        "com.amazonaws",
    )
    subnet_id = aws.client("ec2").describe_subnets()["Subnets"][0]["SubnetId"]
    subnet = read_data(aws, "aws_subnet", {"id": subnet_id, "filter": []})
    assert subnet["vpc_id"].startswith("vpc-") and subnet["availability_zone"].startswith(REGION)

    ami = DATA_SOURCES["aws_ami"]
    query = {
        "most_recent": True,
        "owners": ["self"],
        "filter": [{"name": "tag:ec2batch:image", "values": ["instance"]}],
    }
    with pytest.raises(ValueError, match="no results"):
        ami.read(aws, query)
    image_id = register_ami(aws, "ec2batch-instance-1")
    assert read_data(aws, "aws_ami", query)["id"] == image_id
    image = aws.client("ec2").describe_images(ImageIds=[image_id])["Images"][0]
    assert ami.read(aws, query)["root_device_name"] == image["RootDeviceName"]
    register_ami(aws, "ec2batch-instance-2")
    with pytest.raises(ValueError, match="more than one result"):
        ami.read(aws, {**query, "most_recent": False})


def register_ami(aws: MotoAws, name: str) -> str:
    ec2 = aws.client("ec2")
    image_id = ec2.register_image(
        Name=name,
        RootDeviceName="/dev/xvda",
        BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 8}}],
        Architecture="arm64",
    )["ImageId"]
    ec2.create_tags(Resources=[image_id], Tags=[{"Key": "ec2batch:image", "Value": "instance"}])
    return str(image_id)


def test_security_group_and_egress_rule(aws: MotoAws) -> None:
    ec2 = aws.client("ec2")
    vpc_id = ec2.describe_subnets()["Subnets"][0]["VpcId"]
    sg = lifecycle(
        aws,
        "aws_security_group",
        tagged(name="ec2batch-nightly", description="no ingress", vpc_id=vpc_id, egress=None, ingress=None),
    )
    assert sg["arn"].endswith(f":security-group/{sg['id']}")
    # AWS's default allow-all egress rule is gone, as with the real provider.
    assert (
        sg["egress"] == []
        and ec2.describe_security_groups(GroupIds=[sg["id"]])["SecurityGroups"][0]["IpPermissionsEgress"] == []
    )

    rule = lifecycle(
        aws,
        "aws_vpc_security_group_egress_rule",
        tagged(
            security_group_id=sg["id"],
            description="HTTPS",
            ip_protocol="tcp",
            from_port=443,
            to_port=443,
            cidr_ipv4="0.0.0.0/0",
        ),
    )
    assert rule["id"].startswith("sgr-") and rule["security_group_rule_id"] == rule["id"]
    got = ec2.describe_security_group_rules(SecurityGroupRuleIds=[rule["id"]])["SecurityGroupRules"][0]
    assert (got["IpProtocol"], got["FromPort"], got["ToPort"], got["CidrIpv4"]) == ("tcp", 443, 443, "0.0.0.0/0")
    assert tag_dict(got["Tags"]) == TAGS
    refreshed = res("aws_security_group").read(aws, sg)
    assert [(e["protocol"], e["from_port"], e["cidr_blocks"]) for e in refreshed["egress"]] == [
        ("tcp", 443, ["0.0.0.0/0"])
    ]

    # All traffic to another group (the module's egress variable allows such rules): no ports are sent for "-1".
    peer = ec2.create_security_group(GroupName="db", Description="db", VpcId=vpc_id)["GroupId"]
    to_peer = lifecycle(
        aws,
        "aws_vpc_security_group_egress_rule",
        {"security_group_id": sg["id"], "ip_protocol": "-1", "referenced_security_group_id": peer, "tags_all": {}},
    )
    got = ec2.describe_security_group_rules(SecurityGroupRuleIds=[to_peer["id"]])["SecurityGroupRules"][0]
    assert got["IpProtocol"] == "-1" and got["ReferencedGroupInfo"]["GroupId"] == peer
    destroy(aws, "aws_vpc_security_group_egress_rule", to_peer)

    rule = update(aws, "aws_vpc_security_group_egress_rule", rule, from_port=5432, to_port=5432)
    got = ec2.describe_security_group_rules(SecurityGroupRuleIds=[rule["id"]])["SecurityGroupRules"][0]
    assert (got["FromPort"], got["ToPort"]) == (5432, 5432)
    destroy(aws, "aws_vpc_security_group_egress_rule", rule)
    destroy(aws, "aws_security_group", sg)


def tag_dict(tags: list[dict[str, str]]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in tags}


def launch_template_planned(image_id: str, sg_id: str, profile_arn: str) -> dict[str, Any]:
    return tagged(
        name="ec2batch-nightly",
        description="the job's machine",
        image_id=image_id,
        instance_type="t4g.small",
        instance_initiated_shutdown_behavior="stop",
        ebs_optimized="true",
        update_default_version=True,
        iam_instance_profile=[{"arn": profile_arn, "name": None}],
        metadata_options=[
            {
                "http_endpoint": "enabled",
                "http_tokens": "required",
                "http_put_response_hop_limit": 1,
                "instance_metadata_tags": None,
                "http_protocol_ipv6": None,
            }
        ],
        vpc_security_group_ids=[sg_id],
        block_device_mappings=[
            {
                "device_name": "/dev/xvda",
                "no_device": None,
                "virtual_name": None,
                "ebs": [
                    {
                        "volume_size": 30,
                        "volume_type": "gp3",
                        "encrypted": "true",
                        "kms_key_id": None,
                        "delete_on_termination": "true",
                        "iops": None,
                        "throughput": None,
                        "snapshot_id": None,
                        "volume_initialization_rate": None,
                    }
                ],
            }
        ],
        monitoring=[{"enabled": True}],
        tag_specifications=[
            {"resource_type": "instance", "tags": {**TAGS, "Name": "ec2batch-nightly"}},
            {"resource_type": "volume", "tags": dict(TAGS)},
        ],
    )


def test_launch_template_instance_and_instance_state(aws: MotoAws) -> None:
    ec2, iam = aws.client("ec2"), aws.client("iam")
    subnet = ec2.describe_subnets()["Subnets"][0]
    sg_id = ec2.create_security_group(GroupName="lt-sg", Description="x", VpcId=subnet["VpcId"])["GroupId"]
    iam.create_role(RoleName="lt-role", AssumeRolePolicyDocument=assume_policy("ec2.amazonaws.com"))
    profile = iam.create_instance_profile(InstanceProfileName="lt-profile")["InstanceProfile"]
    iam.add_role_to_instance_profile(InstanceProfileName="lt-profile", RoleName="lt-role")
    image_id = register_ami(aws, "ec2batch-instance-lt")

    lt = lifecycle(aws, "aws_launch_template", launch_template_planned(image_id, sg_id, profile["Arn"]))
    assert lt["id"].startswith("lt-") and lt["latest_version"] == 1 and lt["default_version"] == 1
    data = ec2.describe_launch_template_versions(LaunchTemplateId=lt["id"], Versions=["$Latest"])[
        "LaunchTemplateVersions"
    ][0]["LaunchTemplateData"]
    assert data["SecurityGroupIds"] == [sg_id] and data["MetadataOptions"]["HttpTokens"] == "required"
    assert data["EbsOptimized"] is True and data["BlockDeviceMappings"][0]["Ebs"]["Encrypted"] is True
    assert {s["ResourceType"] for s in data["TagSpecifications"]} >= {"instance", "volume"}

    retagged = {**TAGS, "team": "ops"}
    lt = update(aws, "aws_launch_template", lt, instance_type="t4g.medium", tags=retagged, tags_all=retagged)
    assert (lt["latest_version"], lt["default_version"]) == (2, 2)
    assert (
        ec2.describe_launch_templates(LaunchTemplateIds=[lt["id"]])["LaunchTemplates"][0]["DefaultVersionNumber"] == 2
    )

    instance_tags = {**TAGS, "Name": "ec2batch-nightly"}  # the template's instance tags, as the module repeats them
    instance_planned = dict(
        tags=instance_tags,
        tags_all=instance_tags,
        launch_template=[{"id": lt["id"], "name": None, "version": str(lt["latest_version"])}],
        subnet_id=subnet["SubnetId"],
        iam_instance_profile="lt-profile",
        ebs_optimized=True,
        monitoring=True,
        metadata_options=[
            {
                "http_endpoint": "enabled",
                "http_tokens": "required",
                "http_put_response_hop_limit": 1,
                "instance_metadata_tags": None,
                "http_protocol_ipv6": None,
            }
        ],
        root_block_device=[{"volume_size": 30, "volume_type": "gp3", "encrypted": True, "delete_on_termination": True}],
    )
    # What AWS answers the module's old configuration: an explicit associate_public_ip_address with subnet_id
    # becomes a request-level network interface, which a template with security groups forbids.
    with pytest.raises(ValueError, match="InvalidParameterCombination"):
        res("aws_instance").create(aws, {**instance_planned, "associate_public_ip_address": False})

    instance = lifecycle(aws, "aws_instance", instance_planned)
    got = ec2.describe_instances(InstanceIds=[instance["id"]])["Reservations"][0]["Instances"][0]
    assert got["InstanceType"] == "t4g.medium" and got["SubnetId"] == subnet["SubnetId"]
    assert [g["GroupId"] for g in got["SecurityGroups"]] == [sg_id]
    assert got["MetadataOptions"]["HttpTokens"] == "required"
    assert {k: v for k, v in tag_dict(got["Tags"]).items() if not k.startswith("aws:")} == instance_tags
    assert instance["ami"] == image_id and instance["instance_state"] == "running"
    assert instance["root_block_device"][0]["volume_id"].startswith("vol-")

    state = lifecycle(aws, "aws_ec2_instance_state", {"instance_id": instance["id"], "state": "stopped", "force": None})
    assert ec2.describe_instances(InstanceIds=[instance["id"]])["Reservations"][0]["Instances"][0]["State"]["Name"] == (
        "stopped"
    )
    ec2.start_instances(InstanceIds=[instance["id"]])
    assert res("aws_ec2_instance_state").read(aws, state)["state"] in ("pending", "running")
    state = update(aws, "aws_ec2_instance_state", state, state="stopped")
    res("aws_ec2_instance_state").delete(aws, state)  # leaves the instance as it is
    assert res("aws_instance").read(aws, instance)["instance_state"] == "stopped"

    retagged = {**instance_tags, "team": "ops"}
    instance = update(aws, "aws_instance", instance, tags=retagged, tags_all=retagged)
    got = ec2.describe_instances(InstanceIds=[instance["id"]])["Reservations"][0]["Instances"][0]
    assert tag_dict(got["Tags"])["team"] == "ops"
    destroy(aws, "aws_instance", instance)
    destroy(aws, "aws_launch_template", lt)


def test_default_tags_stay_out_of_tags(aws: MotoAws) -> None:
    """With the provider's default_tags, AWS holds tags + defaults; read answers tags without the defaults (and
    tags_all with them), as the provider does, or every plan would want to remove the defaults."""
    aws.default_tags = {"owner": "platform", "team": "data"}
    try:
        configured = {"ec2batch:job": "nightly", "team": "data"}  # repeats one default: it stays in tags
        queue = lifecycle(
            aws,
            "aws_sqs_queue",
            {"name": "defaults", "tags": configured, "tags_all": {**aws.default_tags, **configured}},
        )
        tags = aws.client("sqs").list_queue_tags(QueueUrl=queue["id"])["Tags"]
        assert tags == {"owner": "platform", "team": "data", "ec2batch:job": "nightly"}
        refreshed = res("aws_sqs_queue").read(aws, queue)
        assert refreshed["tags"] == configured and refreshed["tags_all"] == tags
        destroy(aws, "aws_sqs_queue", queue)
    finally:
        aws.default_tags = {}
