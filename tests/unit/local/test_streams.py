"""The local stack's stand-in for the ledger stream's event source mapping (`ec2batch.local.streams`), on
in-process moto's real DynamoDB stream: where it starts, the shape it hands the launcher, what survives moto's
quirks, and how a failed batch comes back."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from ec2batch.aws import Clients
from ec2batch.launcher.events import LedgerChanges, parse_event
from ec2batch.ledger import RUNNING, STARTING, Ledger, Run, table_definition
from ec2batch.local import streams
from ec2batch.local.streams import StreamPoller

TABLE = "ec2batch-extract-runs"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Launcher:
    """Records each invocation; answers as told (a failure names a record, or raises)."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.answer: Any = None

    def __call__(self, event: dict[str, Any]) -> Any:
        self.events.append(json.loads(json.dumps(event)))  # what Lambda hands a function is JSON
        if isinstance(self.answer, Exception):
            raise self.answer
        if callable(self.answer):
            return self.answer(event)
        return {"batchItemFailures": []}

    def run_ids(self) -> list[list[str]]:
        return [[r["dynamodb"]["Keys"]["run_id"]["S"] for r in e["Records"]] for e in self.events]


def run(run_id: str) -> Run:
    return Run("extract", run_id, "PENDING", "schedule", "2026-11-24T02:00:00.000Z")


def ids(*seconds: int) -> list[str]:
    return [f"20261124T0200{s:02d}.000Z-schedule" for s in seconds]


@pytest.fixture
def ledger(aws: Clients) -> Ledger:
    aws.dynamodb.create_table(**table_definition(TABLE))
    return Ledger(aws.dynamodb, TABLE)


@pytest.fixture
def launcher() -> Launcher:
    return Launcher()


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_it_starts_at_the_streams_end_and_hands_on_later_records_as_lambda_does(
    aws: Clients, ledger: Ledger, launcher: Launcher, clock: Clock
) -> None:
    ledger.create_run(run(ids(0)[0]), exclusive=False)  # before the poller: not handed on (LATEST)
    poller = StreamPoller(aws, launcher, clock=clock)
    assert poller.step() == 0 and launcher.events == []

    ledger.create_run(run(ids(1)[0]), exclusive=False)
    ledger.transition("extract", ids(1)[0], STARTING)
    assert poller.step() == 2
    [event] = launcher.events
    arn = aws.dynamodb.describe_table(TableName=TABLE)["Table"]["LatestStreamArn"]
    assert [(r["eventSource"], r["eventName"], r["eventSourceARN"]) for r in event["Records"]] == [
        ("aws:dynamodb", "INSERT", arn),
        ("aws:dynamodb", "MODIFY", arn),
    ]
    assert isinstance(event["Records"][0]["dynamodb"]["ApproximateCreationDateTime"], float)
    parsed = parse_event(event)
    assert isinstance(parsed, LedgerChanges)
    assert [(c.key, c.old_image is None) for c in parsed.changes] == [(ids(1)[0], True), (ids(1)[0], False)]
    assert poller.step() == 0 and len(launcher.events) == 1  # each record once


def test_a_cancelled_transaction_does_not_blind_it(
    aws: Clients, ledger: Ledger, launcher: Launcher, clock: Clock
) -> None:
    # moto puts back a copy of the table when a transaction is cancelled: an old shard iterator reads nothing after.
    poller = StreamPoller(aws, launcher, clock=clock)
    poller.step()
    ledger.create_run(run(ids(0)[0]), exclusive=False)
    assert poller.step() == 1
    assert ledger.create_run(run(ids(0)[0]), exclusive=False).kind == "duplicate"  # a cancelled transaction
    ledger.transition("extract", ids(0)[0], STARTING)
    ledger.transition("extract", ids(0)[0], RUNNING)
    assert poller.step() == 2
    assert launcher.run_ids() == [ids(0), ids(0) * 2]


def test_a_table_made_after_it_started_is_read_from_its_first_record(
    aws: Clients, launcher: Launcher, clock: Clock
) -> None:
    poller = StreamPoller(aws, launcher, clock=clock)
    poller.step()
    aws.dynamodb.create_table(**table_definition(TABLE))
    Ledger(aws.dynamodb, TABLE).create_run(run(ids(0)[0]), exclusive=False)
    aws.dynamodb.create_table(**table_definition("someone-elses-table"))  # not a ledger: not followed
    aws.dynamodb.put_item(TableName="someone-elses-table", Item={"job": {"S": "x"}, "run_id": {"S": "y"}})
    clock.now += streams.LIST_EVERY_SECONDS
    assert poller.step() == 1
    assert launcher.run_ids() == [ids(0)]


def test_a_failed_batch_comes_back_from_the_record_it_names_then_is_dropped_after_the_retries(
    aws: Clients, ledger: Ledger, launcher: Launcher, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    poller = StreamPoller(aws, launcher, clock=clock)
    poller.step()
    for run_id in ids(0, 1, 2):
        ledger.create_run(run(run_id), exclusive=False)
    second = {}

    def fail_from_the_second(event: dict[str, Any]) -> dict[str, Any]:
        second["seq"] = event["Records"][1]["dynamodb"]["SequenceNumber"]
        return {"batchItemFailures": [{"itemIdentifier": second["seq"]}]}

    launcher.answer = fail_from_the_second
    assert poller.step() == 1  # the first record went
    assert poller.step() == 0  # not again before its pause
    clock.now += 1
    launcher.answer = None
    assert poller.step() == 2
    assert launcher.run_ids() == [ids(0, 1, 2), ids(1, 2)]

    ledger.create_run(run(ids(3)[0]), exclusive=False)
    launcher.answer = RuntimeError("the launcher crashed")
    with caplog.at_level(logging.ERROR, logger="ec2batch.local.streams"):
        for _ in range(streams.MAXIMUM_RETRY_ATTEMPTS + 1):
            clock.now += streams.MAX_PAUSE_SECONDS
            poller.step()
    assert "stream batch dropped after its retries" in caplog.text
    launcher.answer = None
    ledger.create_run(run(ids(4)[0]), exclusive=False)
    clock.now += streams.MAX_PAUSE_SECONDS
    poller.step()
    assert launcher.run_ids()[-1] == ids(4)  # the shard goes on after the dropped batch


def test_provisioning_gives_an_older_ledger_table_its_stream(aws: Clients) -> None:
    from tests.conftest import make_job

    older = {k: v for k, v in table_definition("ec2batch-daily-report-runs").items() if k != "StreamSpecification"}
    aws.dynamodb.create_table(**older)
    make_job(aws)
    spec = aws.dynamodb.describe_table(TableName="ec2batch-daily-report-runs")["Table"]["StreamSpecification"]
    assert spec == {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}


def _stream_of(aws: Clients, table: str) -> list[tuple[str, Any]]:
    arn = aws.dynamodb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
    shard = aws.dynamodbstreams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = aws.dynamodbstreams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")
    records = aws.dynamodbstreams.get_records(ShardIterator=iterator["ShardIterator"])["Records"]
    return [(r["eventName"], r["dynamodb"]["Keys"]) for r in records]


def _play(aws: Clients, table: str) -> list[tuple[str, Any]]:
    aws.dynamodb.create_table(**table_definition(table))
    ledger = Ledger(aws.dynamodb, table)
    ledger.create_run(run(ids(0)[0]), exclusive=True)
    assert ledger.create_run(run(ids(0)[0]), exclusive=True).kind == "duplicate"  # a cancelled transaction
    ledger.create_run(run(ids(1)[0]), exclusive=True)  # held off by the slot: another cancelled one, then SKIPPED
    ledger.transition("extract", ids(0)[0], STARTING)
    return _stream_of(aws, table)


def test_moto_servers_copy_before_a_transaction_shares_the_streams_records_and_changes_nothing_else(
    aws: Clients,
) -> None:
    import copy

    from moto.dynamodb.models.table import StreamShard

    from ec2batch.local.motoserver import stream_records_shared_on_copy

    unpatched = _play(aws, "ec2batch-before-runs")
    stream_records_shared_on_copy()
    try:
        patched = _play(aws, "ec2batch-after-runs")
        assert patched == unpatched and len(patched) >= 4  # cancelled transactions took their records back
        from moto.dynamodb.models import dynamodb_backends

        table = dynamodb_backends["123456789012"][aws.region].tables["ec2batch-after-runs"]
        backup = copy.deepcopy(table)
        assert backup.stream_shard.table is backup  # the copy's shard belongs to the copy
        assert backup.stream_shard.items == table.stream_shard.items  # the same records,
        assert backup.stream_shard.items[0] is table.stream_shard.items[0]  # not copied one by one
        assert backup.stream_shard.items is not table.stream_shard.items  # in a list of its own
    finally:
        del StreamShard.__deepcopy__  # type: ignore[attr-defined]
        del StreamShard.ec2batch_patched  # type: ignore[attr-defined]
