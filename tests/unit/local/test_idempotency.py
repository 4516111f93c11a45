"""The tests' and the local stack's AWS honour idempotency tokens as AWS does (moto alone acts twice)."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from ec2batch.aws import Clients
from tests.conftest import REGION


def _image(aws: Clients) -> str:
    return aws.ec2.register_image(Name="ec2batch-test", RootDeviceName="/dev/xvda")["ImageId"]


def test_a_repeated_client_token_finds_the_first_instance(aws: Clients) -> None:
    image = _image(aws)
    first = aws.ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, ClientToken="run-1-attempt-1")
    again = aws.ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, ClientToken="run-1-attempt-1")
    assert again["Instances"][0]["InstanceId"] == first["Instances"][0]["InstanceId"]
    running = aws.ec2.describe_instances()["Reservations"]
    assert sum(len(r["Instances"]) for r in running) == 1


def test_a_token_reused_with_other_parameters_is_refused(aws: Clients) -> None:
    image = _image(aws)
    aws.ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, ClientToken="tok")
    with pytest.raises(ClientError) as caught:
        aws.ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, InstanceType="m7i.large", ClientToken="tok")
    assert caught.value.response["Error"]["Code"] == "IdempotentParameterMismatch"


def test_a_retried_transaction_succeeds_instead_of_failing_its_own_condition(aws: Clients) -> None:
    db = aws.dynamodb
    db.create_table(
        TableName="t",
        KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    write = {
        "TransactItems": [
            {"Put": {"TableName": "t", "Item": {"k": {"S": "a"}}, "ConditionExpression": "attribute_not_exists(k)"}}
        ],
        "ClientRequestToken": "same",
    }
    db.transact_write_items(**write)
    db.transact_write_items(**write)  # AWS: the same token within 10 minutes is the same transaction
    with pytest.raises(ClientError) as caught:
        db.transact_write_items(**{**write, "ClientRequestToken": "other"})
    assert caught.value.response["Error"]["Code"] == "TransactionCanceledException"


def test_the_local_stacks_moto_server_honours_tokens_too() -> None:
    from werkzeug.test import Client

    from ec2batch.local.motoserver import build_app

    client = Client(build_app())
    auth = f"AWS4-HMAC-SHA256 Credential=AKID/20261125/{REGION}/ec2/aws4_request, SignedHeaders=host, Signature=x"
    headers = {"Authorization": auth, "Content-Type": "application/x-www-form-urlencoded"}
    image = client.post(
        "/", data="Action=RegisterImage&Name=t&RootDeviceName=%2Fdev%2Fxvda&Version=2016-11-15", headers=headers
    ).get_data(as_text=True)
    image_id = image.split("<imageId>")[1].split("<")[0]
    body = f"Action=RunInstances&ImageId={image_id}&MinCount=1&MaxCount=1&ClientToken=t1&Version=2016-11-15"
    first = client.post("/", data=body, headers=headers).get_data(as_text=True)
    again = client.post("/", data=body, headers=headers).get_data(as_text=True)
    assert first.split("<instanceId>")[1].split("<")[0] == again.split("<instanceId>")[1].split("<")[0]
    other = client.post("/", data=body.replace("MinCount=1", "MinCount=1&InstanceType=m7i.large"), headers=headers)
    assert other.status_code == 400 and "IdempotentParameterMismatch" in other.get_data(as_text=True)
