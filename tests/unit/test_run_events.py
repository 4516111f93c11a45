"""Run state change events: their shape against the documented schema for every status, their identity, and that
a failure to publish never fails a run. Events go through moto's EventBridge to an SQS queue, as a consumer's
rule would receive them."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from ec2batch.aws import Clients
from ec2batch.ledger import (
    CANCELLED,
    FAILED,
    PENDING,
    PLANNED,
    RUNNING,
    SKIPPED,
    STARTING,
    STATUSES,
    SUCCEEDED,
    TIMED_OUT,
    Ledger,
    Run,
    table_definition,
)
from ec2batch.run_events import DETAIL_SCHEMA, DETAIL_TYPE, NOT_PUBLISHED, SOURCE, RunEvents, event_id
from tests.conftest import inject_error

DOCS = Path(__file__).resolve().parents[2] / "docs" / "events.md"
TABLE = "ec2batch-extract-runs"


class Consumer:
    """A rule on the default bus matching every ec2batch event, delivering to a queue (a consumer's view)."""

    def __init__(self, clients: Clients) -> None:
        self.sqs = clients.sqs
        self.url = self.sqs.create_queue(QueueName="consumer")["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        clients.events.put_rule(Name="all-ec2batch", EventPattern=json.dumps({"source": [SOURCE]}))
        clients.events.put_targets(Rule="all-ec2batch", Targets=[{"Id": "q", "Arn": arn}])

    def events(self) -> list[dict[str, Any]]:
        got = []
        while messages := self.sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10).get("Messages", []):
            got += [json.loads(m["Body"]) for m in messages]
            self.sqs.delete_message_batch(
                QueueUrl=self.url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
            )
        return got


@pytest.fixture
def consumer(aws: Clients) -> Consumer:
    aws.dynamodb.create_table(**table_definition(TABLE))
    return Consumer(aws)


def new_run(run_id: str, status: str = PENDING, trigger: str = "schedule") -> Run:
    return Run("extract", run_id, status, trigger, "2026-11-24T02:00:00.000Z", scheduled_at="2026-11-24T02:00:00.000Z")


def test_every_status_is_published_in_the_documented_shape(aws: Clients, consumer: Consumer) -> None:
    publisher = RunEvents(aws.events)
    ledger = Ledger(aws.dynamodb, TABLE, events=publisher)
    ends = {SUCCEEDED: "0", FAILED: "1", TIMED_OUT: "2", CANCELLED: "3"}
    for status, second in ends.items():
        run_id = f"20261124T02000{second}.000Z-schedule"
        ledger.create_run(new_run(run_id, PLANNED), exclusive=False)
        ledger.transition("extract", run_id, PENDING)
        ledger.transition("extract", run_id, STARTING, instance_id="i-0123456789abcdef0")
        ledger.transition("extract", run_id, RUNNING)
        ledger.transition("extract", run_id, status, exit_code=0 if status == SUCCEEDED else 1, cost_usd=0.0021)
    ledger.create_run(new_run("20261124T020004.000Z-schedule", SKIPPED), exclusive=False)

    events = consumer.events()
    seen = set()
    for event in events:
        assert event["source"] == SOURCE and event["detail-type"] == DETAIL_TYPE
        jsonschema.validate(event["detail"], DETAIL_SCHEMA, format_checker=jsonschema.FormatChecker())
        seen.add(event["detail"]["status"])
    assert seen == set(STATUSES)
    assert publisher.published == len(events) == 4 * 5 + 1 and publisher.failures == 0
    [ended] = [e["detail"] for e in events if e["detail"]["status"] == SUCCEEDED]
    assert (ended["previous_status"], ended["exit_code"], ended["cost_usd"]) == (RUNNING, 0, 0.0021)
    assert ended["instance_id"] == "i-0123456789abcdef0" and ended["downstream"] is True
    first = next(e["detail"] for e in events if e["detail"]["status"] == PLANNED)
    assert first["previous_status"] is None


def test_a_retried_publication_has_the_same_identity_and_a_new_attempt_a_new_one(
    aws: Clients, consumer: Consumer
) -> None:
    ledger = Ledger(aws.dynamodb, TABLE, events=RunEvents(aws.events))
    run_id = "20261124T020000.000Z-schedule"
    ledger.create_run(new_run(run_id), exclusive=False)
    running = ledger.transition("extract", run_id, STARTING)
    ledger.events.publish(running)  # what a writer does that repeats its write (its read-back found it applied)
    ids = [e["detail"]["event_id"] for e in consumer.events()]
    assert ids[1] == ids[2] == event_id("extract", run_id, 1, STARTING)
    assert len(set(ids)) == 2
    assert event_id("extract", run_id, 2, STARTING) != ids[1]  # the same status on a retry is another event


def test_a_failed_publication_is_logged_and_counted_and_the_run_goes_on(
    aws: Clients, consumer: Consumer, caplog: pytest.LogCaptureFixture
) -> None:
    publisher = RunEvents(aws.events)
    ledger = Ledger(aws.dynamodb, TABLE, events=publisher)
    run_id = "20261124T020000.000Z-schedule"
    ledger.create_run(new_run(run_id), exclusive=False)
    inject_error(aws.events, "PutEvents", ["AccessDeniedException"])
    with caplog.at_level(logging.ERROR, logger="ec2batch.run_events"):
        run = ledger.transition("extract", run_id, STARTING)

    assert run.status == STARTING
    assert ledger.require("extract", run_id).status == STARTING
    assert publisher.failures == 1
    [record] = [r for r in caplog.records if r.getMessage() == NOT_PUBLISHED]
    assert record.fields["event_id"] == event_id("extract", run_id, 1, STARTING)  # type: ignore[attr-defined]
    assert "AccessDenied" in record.fields["error"]  # type: ignore[attr-defined]
    assert [e["detail"]["status"] for e in consumer.events()] == [PENDING]


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


def test_the_lambdas_launcher_publishes_to_the_bus_its_environment_names(
    aws: Clients, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ec2batch.launcher import Launcher

    monkeypatch.setenv("EC2BATCH_EVENT_BUS", "batch-events")
    assert Launcher.from_environment(aws).ledger("extract").events.bus == "batch-events"  # type: ignore[union-attr]
    monkeypatch.delenv("EC2BATCH_EVENT_BUS")
    assert Launcher.from_environment(aws).ledger("extract").events.bus == "default"  # type: ignore[union-attr]
