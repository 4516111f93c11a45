"""moto_server's nudge wakes the EC2 emulator at once; without one it waits its half second as before."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from ec2batch.local.wakeup import Wakeup, changes_instances, nudge, writes_items


def test_only_calls_that_start_or_stop_an_instance_nudge() -> None:
    assert changes_instances(b"Action=StartInstances&Version=2016-11-15&InstanceId.1=i-0abc")
    assert changes_instances(b"Action=TerminateInstances&InstanceId.1=i-0abc")
    assert not changes_instances(b"Action=DescribeInstances&Version=2016-11-15")
    assert not changes_instances(b'{"TableName": "ec2batch-x-runs"}')  # DynamoDB's JSON protocol
    assert not changes_instances(b"")


def test_a_nudge_ends_the_wait_early_and_a_quiet_wait_lasts_its_timeout(tmp_path: Path) -> None:
    path = tmp_path / "ec2-wakeup.sock"
    with Wakeup(path) as wakeup:
        began = time.monotonic()
        wakeup.wait(0.2)
        assert time.monotonic() - began >= 0.19  # nobody nudged: the old polling interval

        threading.Timer(0.05, nudge, args=(path,)).start()
        began = time.monotonic()
        wakeup.wait(5.0)
        assert time.monotonic() - began < 2.0  # woken by the nudge, not the timeout

        nudge(path)
        nudge(path)
        wakeup.wait(5.0)  # two nudges, one look: both drained
        began = time.monotonic()
        wakeup.wait(0.2)
        assert time.monotonic() - began >= 0.19
    assert not path.exists()


def test_nudging_with_nobody_listening_is_harmless(tmp_path: Path) -> None:
    nudge(tmp_path / "nobody.sock")


def test_only_dynamodb_writes_nudge_the_ledger_streams_poller() -> None:
    for operation in ("PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem"):
        assert writes_items(f"DynamoDB_20120810.{operation}")
    assert not writes_items("DynamoDB_20120810.GetItem")
    assert not writes_items("DynamoDBStreams_20120810.GetRecords")  # the poller's own reads
    assert not writes_items("AmazonSSM.PutParameter")
    assert not writes_items(None)


def test_moto_servers_app_nudges_the_ledger_socket_after_a_write_and_not_after_a_read(tmp_path: Path) -> None:
    from werkzeug.test import Client

    from ec2batch.local.motoserver import build_app

    path = tmp_path / "ledger-wakeup.sock"
    client = Client(build_app(ledger_wakeup=path))
    auth = (
        "AWS4-HMAC-SHA256 Credential=AKID/20261125/eu-central-1/dynamodb/aws4_request, SignedHeaders=host, Signature=x"
    )

    def call(operation: str, body: dict) -> int:
        headers = {"Authorization": auth, "X-Amz-Target": f"DynamoDB_20120810.{operation}"}
        return client.post("/", json=body, headers=headers, content_type="application/x-amz-json-1.0").status_code

    table = {
        "TableName": "ec2batch-t-runs",
        "KeySchema": [{"AttributeName": "k", "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": "k", "AttributeType": "S"}],
        "BillingMode": "PAY_PER_REQUEST",
    }
    with Wakeup(path) as wakeup:
        assert call("CreateTable", table) == 200
        assert call("GetItem", {"TableName": "ec2batch-t-runs", "Key": {"k": {"S": "a"}}}) == 200
        assert wakeup.sock is not None
        began = time.monotonic()
        wakeup.wait(0.2)
        assert time.monotonic() - began >= 0.19  # neither the table's creation nor a read nudged

        assert call("PutItem", {"TableName": "ec2batch-t-runs", "Item": {"k": {"S": "a"}}}) == 200
        began = time.monotonic()
        wakeup.wait(5.0)
        assert time.monotonic() - began < 2.0  # the write did
