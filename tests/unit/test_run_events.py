"""Run state change events, published from the ledger's DynamoDB stream: what moto's real stream of a run's life
gives (every status, in order, in the documented shape), what it does not give (other writes, other items), a
failed publication (the batch is delivered again), and a writer that dies right after its write (its event still
goes). Events go through moto's EventBridge to an SQS queue, as a consumer's rule would receive them."""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from ec2batch.aws import Clients
from ec2batch.launcher import Launcher
from ec2batch.ledger import (
    CANCELLED,
    FAILED,
    INTERRUPTED,
    PENDING,
    PLANNED,
    RUNNING,
    SKIPPED,
    STARTING,
    STATUSES,
    SUCCEEDED,
    TIMED_OUT,
    Attempt,
    Ledger,
    Run,
    table_definition,
)
from ec2batch.run_events import DETAIL_SCHEMA, DETAIL_TYPE, NOT_PUBLISHED, SOURCE, event_id
from tests.conftest import Killed, Outbox, inject_error, load_event

DOCS = Path(__file__).resolve().parents[2] / "docs" / "events.md"
TABLE = "ec2batch-extract-runs"
JOB = "extract"


class Consumer:
    """A rule on a bus matching every ec2batch event, delivering to a queue (a consumer's view)."""

    def __init__(self, clients: Clients, bus: str = "default") -> None:
        self.sqs = clients.sqs
        self.url = self.sqs.create_queue(QueueName=f"consumer-{bus}")["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        clients.events.put_rule(Name="all-ec2batch", EventPattern=json.dumps({"source": [SOURCE]}), EventBusName=bus)
        clients.events.put_targets(Rule="all-ec2batch", EventBusName=bus, Targets=[{"Id": "q", "Arn": arn}])

    def events(self) -> list[dict[str, Any]]:
        got = []
        while messages := self.sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10).get("Messages", []):
            got += [json.loads(m["Body"]) for m in messages]
            self.sqs.delete_message_batch(
                QueueUrl=self.url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
            )
        return got

    def details(self) -> list[dict[str, Any]]:
        """Each event's detail, checked against the documented schema."""
        got = []
        for event in self.events():
            assert event["source"] == SOURCE and event["detail-type"] == DETAIL_TYPE
            jsonschema.validate(event["detail"], DETAIL_SCHEMA, format_checker=jsonschema.FormatChecker())
            got.append(event["detail"])
        return got


@pytest.fixture
def consumer(aws: Clients) -> Consumer:
    return Consumer(aws)


@pytest.fixture
def ledger(aws: Clients, outbox: Outbox) -> Ledger:
    aws.dynamodb.create_table(**table_definition(TABLE))
    return Ledger(aws.dynamodb, TABLE)


def new_run(run_id: str, status: str = PENDING, trigger: str = "schedule") -> Run:
    return Run(JOB, run_id, status, trigger, "2026-11-24T02:00:00.000Z", scheduled_at="2026-11-24T02:00:00.000Z")


def transitions(details: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(d["run_id"][:20], d["attempt"], d["previous_status"], d["status"]) for d in details]


def test_a_runs_whole_life_read_from_the_stream_is_the_documented_events_in_order(
    aws: Clients, ledger: Ledger, outbox: Outbox, consumer: Consumer
) -> None:
    ran, retried, cancelled = (f"20261124T02000{i}.000Z-schedule" for i in range(3))
    ledger.create_run(new_run(ran), exclusive=False)
    ledger.transition(JOB, ran, STARTING, instance_id="i-0123456789abcdef0")
    ledger.transition(JOB, ran, RUNNING)
    ledger.transition(JOB, ran, SUCCEEDED, exit_code=0, cost_usd=0.0021)

    ledger.create_run(new_run(retried), exclusive=False)
    ledger.transition(JOB, retried, STARTING, instance_id="i-0123456789abcdef1")
    first = ledger.transition(JOB, retried, RUNNING)
    ended = Attempt(1, INTERRUPTED, cause="spot-interruption", instance_id="i-0123456789abcdef1")
    retry_at = datetime(2026, 11, 24, 2, 5, tzinfo=UTC)
    ledger.retry(first, ended, retry_at=retry_at, reason="attempt 1 INTERRUPTED", totals={})
    ledger.transition(JOB, retried, STARTING, attempt=2, instance_id="i-0123456789abcdef2")
    ledger.transition(JOB, retried, RUNNING, attempt=2)
    ledger.transition(JOB, retried, FAILED, attempt=2, exit_code=1)

    ledger.create_run(new_run(cancelled), exclusive=False)
    ledger.transition(JOB, cancelled, CANCELLED, reason="cancelled by hand")
    assert consumer.events() == []  # nothing is published by a writer

    outbox.drain()
    details = consumer.details()
    assert transitions(details) == [
        ("20261124T020000.000Z", 1, None, PENDING),
        ("20261124T020000.000Z", 1, PENDING, STARTING),
        ("20261124T020000.000Z", 1, STARTING, RUNNING),
        ("20261124T020000.000Z", 1, RUNNING, SUCCEEDED),
        ("20261124T020001.000Z", 1, None, PENDING),
        ("20261124T020001.000Z", 1, PENDING, STARTING),
        ("20261124T020001.000Z", 1, STARTING, RUNNING),
        ("20261124T020001.000Z", 2, RUNNING, PENDING),  # the retry: the same status in another attempt is news
        ("20261124T020001.000Z", 2, PENDING, STARTING),
        ("20261124T020001.000Z", 2, STARTING, RUNNING),
        ("20261124T020001.000Z", 2, RUNNING, FAILED),
        ("20261124T020002.000Z", 1, None, PENDING),
        ("20261124T020002.000Z", 1, PENDING, CANCELLED),
    ]
    assert [d["event_id"] for d in details] == [event_id(JOB, d["run_id"], d["attempt"], d["status"]) for d in details]
    succeeded = details[3]
    assert (succeeded["exit_code"], succeeded["cost_usd"], succeeded["instance_id"]) == (
        0,
        0.0021,
        "i-0123456789abcdef0",
    )
    assert succeeded["event_time"] == ledger.require(JOB, ran).updated_at and succeeded["downstream"] is True
    assert details[7]["instance_id"] is None and details[7]["reason"] == "attempt 1 INTERRUPTED"
    assert details[12]["reason"] == "cancelled by hand"
    assert outbox.drain() == 0 and consumer.events() == []  # each record once


def test_every_status_is_published_in_the_documented_shape(ledger: Ledger, outbox: Outbox, consumer: Consumer) -> None:
    ends = {SUCCEEDED: "0", FAILED: "1", TIMED_OUT: "2", CANCELLED: "3"}
    for status, second in ends.items():
        run_id = f"20261124T02000{second}.000Z-schedule"
        ledger.create_run(new_run(run_id, PLANNED), exclusive=False)
        ledger.transition(JOB, run_id, PENDING)
        ledger.transition(JOB, run_id, STARTING, instance_id="i-0123456789abcdef0")
        ledger.transition(JOB, run_id, RUNNING)
        ledger.transition(JOB, run_id, status, exit_code=0 if status == SUCCEEDED else 1, cost_usd=0.0021)
    ledger.create_run(new_run("20261124T020004.000Z-schedule", SKIPPED), exclusive=False)
    outbox.drain()

    details = consumer.details()
    assert {d["status"] for d in details} == set(STATUSES)
    assert len(details) == 4 * 5 + 1 == outbox.launcher.run_events.published
    assert outbox.launcher.run_events.failures == 0
    first = next(d for d in details if d["status"] == PLANNED)
    assert first["previous_status"] is None


def test_other_writes_and_other_items_publish_nothing(
    aws: Clients, ledger: Ledger, outbox: Outbox, consumer: Consumer, calls: Any
) -> None:
    run_id = "20261124T020000.000Z-manual-0123abcd"
    ledger.create_run(new_run(run_id, trigger="manual"), exclusive=True, token="tok-1")  # the run, a token, the slot
    outbox.drain()
    assert [d["status"] for d in consumer.details()] == [PENDING]

    ledger.take_start_lease(JOB, run_id, force=True)
    ledger.update_fields(JOB, run_id, image_digest="sha256:" + "0" * 64, log_stream="x/job")
    ledger.claim_notification(JOB, run_id)
    ledger.claim_slot(JOB, run_id, slot="~instance#i-0123456789abcdef0")
    ledger.release_slot(JOB, run_id)
    aws.dynamodb.put_item(  # an `after` arrival (ec2batch.launcher.after): a bookkeeping item
        TableName=TABLE, Item={"job": {"S": JOB}, "run_id": {"S": "~after#upstream"}, "status": {"S": SUCCEEDED}}
    )
    planned = "20261124T030000.000Z-at-0123abcd"
    ledger.record_terminal_at_creation(new_run(planned, PLANNED))
    ledger.withdraw_planned(JOB, planned)  # a REMOVE record
    calls.clear()
    assert outbox.drain() >= 8  # a record for each write above

    assert [(d["run_id"], d["status"]) for d in consumer.details()] == [(planned, PLANNED)]  # its INSERT only
    assert dict(calls) == {"events.PutEvents": 1}


class PartlyFailing:
    """An EventBridge client whose PutEvents refuses the entries of one run id (a fault moto cannot produce)."""

    def __init__(self, real: Any, run_id: str) -> None:
        self.real, self.run_id, self.calls = real, run_id, 0

    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        self.calls += 1
        ok = [e for e in Entries if self.run_id not in e["Detail"]]
        self.real.put_events(Entries=ok)
        results = [
            {"EventId": "x"} if e in ok else {"ErrorCode": "InternalFailure", "ErrorMessage": "injected"}
            for e in Entries
        ]
        return {"FailedEntryCount": len(Entries) - len(ok), "Entries": results}


def test_a_failed_entry_fails_the_batch_from_its_record_logged_and_counted_and_the_retry_publishes_it(
    aws: Clients, ledger: Ledger, outbox: Outbox, consumer: Consumer, caplog: pytest.LogCaptureFixture
) -> None:
    good, bad = "20261124T020000.000Z-schedule", "20261124T020001.000Z-schedule"
    ledger.create_run(new_run(good), exclusive=False)
    ledger.create_run(new_run(bad), exclusive=False)
    ledger.transition(JOB, good, STARTING)
    outbox.launcher.run_events.client = PartlyFailing(aws.events, bad)
    with caplog.at_level(logging.ERROR, logger="ec2batch.run_events"):
        assert outbox.drain() == 1  # the good run's first record went; the batch is to be delivered again from the bad

    [record] = [r for r in caplog.records if r.getMessage() == NOT_PUBLISHED]
    assert record.fields["event_id"] == event_id(JOB, bad, 1, PENDING)  # type: ignore[attr-defined]
    assert record.fields["run_id"] == bad and "InternalFailure" in record.fields["error"]  # type: ignore[attr-defined]
    assert outbox.launcher.run_events.failures == 1
    # The events of one call that went are not lost: here the good run's PENDING and STARTING.
    assert [(d["run_id"], d["status"]) for d in consumer.details()] == [(good, PENDING), (good, STARTING)]

    outbox.launcher.run_events.client = aws.events  # EventBridge is back: the mapping's retry
    outbox.drain()
    got = [(d["run_id"], d["status"]) for d in consumer.details()]
    assert got == [(bad, PENDING), (good, STARTING)]  # from the failed record on; a duplicate has the same event_id
    assert outbox.drain() == 0


def test_a_put_events_call_that_fails_reports_the_batchs_first_record_to_the_mapping(
    aws: Clients, ledger: Ledger, outbox: Outbox, consumer: Consumer
) -> None:
    run_id = "20261124T020000.000Z-schedule"
    ledger.create_run(new_run(run_id), exclusive=False)
    ledger.transition(JOB, run_id, STARTING)
    outbox.poller.discover()
    records = outbox.poller._records(next(iter(outbox.poller.shards.values())), None)
    inject_error(aws.events, "PutEvents", ["AccessDeniedException"])

    response = outbox.launcher.handle({"Records": [outbox_record(r) for r in records]})

    first = records[0]["dynamodb"]["SequenceNumber"]
    assert response == {"batchItemFailures": [{"itemIdentifier": first}], "published": 0}
    assert consumer.events() == []


def outbox_record(record: dict[str, Any]) -> dict[str, Any]:
    from ec2batch.local.streams import lambda_record

    return lambda_record(record, "arn:aws:dynamodb:eu-central-1:123456789012:table/ec2batch-extract-runs/stream/x")


def test_more_than_ten_changes_go_in_calls_of_at_most_ten_entries(
    ledger: Ledger, outbox: Outbox, consumer: Consumer, calls: Any
) -> None:
    for second in range(25):
        ledger.create_run(new_run(f"20261124T0200{second:02d}.000Z-schedule"), exclusive=False)
    calls.clear()
    outbox.drain()
    assert dict(calls) == {"events.PutEvents": 3}
    assert len(consumer.details()) == 25


def test_a_launcher_killed_right_after_its_write_still_gets_its_event_published(
    aws: Clients, outbox: Outbox, consumer: Consumer
) -> None:
    from tests.conftest import make_job

    job = make_job(aws)

    def die(**_: Any) -> None:
        raise Killed()

    aws.dynamodb.meta.events.register("after-call.dynamodb.TransactWriteItems", die)
    launcher = Launcher(job.clients, clock=lambda: datetime(2026, 11, 24, 2, 0, 5, tzinfo=UTC))
    with pytest.raises(Killed):
        launcher.handle(load_event("schedule"))  # the run is recorded PENDING; the process is gone
    aws.dynamodb.meta.events.unregister("after-call.dynamodb.TransactWriteItems", die)

    outbox.drain()
    [detail] = consumer.details()
    assert (detail["job"], detail["run_id"], detail["status"]) == (job.name, "20261124T020000.000Z-schedule", PENDING)


def test_a_manual_run_chains_only_when_asked() -> None:
    from ec2batch.run_events import detail

    manual = new_run("20261124T020000.000Z-manual-0123abcd", trigger="manual")
    assert detail(manual)["downstream"] is False
    assert detail(Run(**{**manual.__dict__, "with_downstream": True}))["downstream"] is True


def doc_examples() -> list[dict[str, Any]]:
    text = DOCS.read_text()
    return [json.loads(block) for block in re.findall(r"```json\n(\{\n  \"version\": \"0\".*?)\n```", text, re.S)]


def test_the_documented_example_events_follow_the_schema_one_for_every_status() -> None:
    examples = doc_examples()
    for event in examples:
        assert event["source"] == SOURCE and event["detail-type"] == DETAIL_TYPE
        jsonschema.validate(event["detail"], DETAIL_SCHEMA, format_checker=jsonschema.FormatChecker())
    assert sorted(e["detail"]["status"] for e in examples) == sorted(STATUSES)
    assert json.loads(re.search(r"```json\n(\{\n  \"\$schema\".*?)\n```", DOCS.read_text(), re.S)[1]) == DETAIL_SCHEMA


def test_the_lambdas_launcher_publishes_to_the_bus_its_environment_names_else_the_jobs_config(
    aws: Clients, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.conftest import make_job

    monkeypatch.setenv("EC2BATCH_EVENT_BUS", "batch-events")
    assert Launcher.from_environment(aws).event_bus == "batch-events"
    monkeypatch.delenv("EC2BATCH_EVENT_BUS")
    assert Launcher.from_environment(aws).event_bus is None  # then each job's config names its bus

    aws.events.create_event_bus(Name="batch-events")
    on_the_bus = Consumer(aws, "batch-events")
    job = make_job(aws, event_bus="batch-events")
    outbox = Outbox(aws, Launcher(aws))
    job.clients.dynamodb.put_item(
        TableName=job.config.names.ledger_table,
        Item={
            "job": {"S": job.name},
            "run_id": {"S": "20261124T020000.000Z-schedule"},
            "status": {"S": PENDING},
            "trigger": {"S": "schedule"},
            "triggered_at": {"S": "2026-11-24T02:00:00.000Z"},
        },
    )
    outbox.drain()
    assert [d["status"] for d in on_the_bus.details()] == [PENDING]


def test_a_launcher_pinned_to_its_job_refuses_another_jobs_stream(aws: Clients) -> None:
    from ec2batch.errors import EventError

    record = {
        "eventSource": "aws:dynamodb",
        "eventName": "INSERT",
        "dynamodb": {"Keys": {"job": {"S": "other"}, "run_id": {"S": "~active"}}, "SequenceNumber": "1"},
    }
    with pytest.raises(EventError, match="this launcher serves job 'extract', not 'other'"):
        Launcher(aws, only_job=JOB, event_bus="default").handle({"Records": [record]})
