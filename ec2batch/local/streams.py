"""The ledger tables' DynamoDB streams -> launcher, as Lambda's event source mapping does it: the local stack's
run events.

On AWS, Terraform's mapping (`aws_lambda_event_source_mapping.ledger_stream`) reads the ledger table's stream and
invokes the job's launcher with each batch of records, which publishes the run events in it
(`ec2batch.run_events`). Here this loop does the same against moto_server, for every ec2batch ledger stream, every
0.2 s (a downstream `after` job starts from these events; two requests per stream per look, on a moto_server
that serves one request at a time). Per shard one batch at a time, in order, as the mapping
does with a parallelization factor of 1; a batch that fails (an exception, or `batchItemFailures`) is delivered
again from the record it names, with a growing pause, and dropped with an ERROR after the mapping's retries.

Two things about moto shape it:
- a cancelled TransactWriteItems (a duplicate trigger, a run blocked by another) makes moto put back a copy of the
  whole table, its stream included, and an open shard iterator goes on reading the discarded copy: it never returns
  a record again. So each poll asks for a fresh iterator after the last record handed on, instead of following
  NextShardIterator (one more request per poll, which moto_server answers in about a millisecond);
- a fresh iterator needs a sequence number, which LATEST does not give. So a stream already there when the poller
  starts is read to its end once without handing anything on (what LATEST means: only what is written from now
  on), and a stream that appears later (a job provisioned while the stack runs) is read from its first record,
  since on AWS the mapping exists before the table's first write.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from ..aws import Clients
from ..jsonlog import fields
from ..names import PREFIX
from .paths import REGION
from .wakeup import Wakeup

log = logging.getLogger(__name__)

# As Terraform's mapping (lambda.tf): records per invocation, retries of a failing batch.
BATCH_SIZE = 100
MAXIMUM_RETRY_ATTEMPTS = 10
LIST_EVERY_SECONDS = 1.0  # how often new ledger tables are looked for
MAX_PAUSE_SECONDS = 30.0


@dataclass
class Shard:
    stream_arn: str
    shard_id: str
    last: str | None = None  # the sequence number of the last record handed on (or skipped at start)
    failures: int = 0  # of the batch at `last`, in a row
    not_before: float = 0.0  # monotonic time of its next try, after a failure


def is_ledger_table(name: str) -> bool:
    return name.startswith(f"{PREFIX}-") and name.endswith("-runs")  # ec2batch.names.JobNames.ledger_table


class StreamPoller:
    def __init__(
        self,
        clients: Clients,
        invoke: Callable[[dict[str, Any]], Any],
        interval: float = 0.2,
        clock: Callable[[], float] = time.monotonic,
        wakeup: Path | None = None,
        idle_interval: float = 2.0,
    ) -> None:
        self.streams = clients.dynamodbstreams
        self.invoke = invoke
        self.interval = interval
        # With moto_server's nudge after every DynamoDB write (`ec2batch.local.wakeup`), a look every
        # `idle_interval` only catches a lost nudge; without one, every `interval`.
        self.wakeup = wakeup
        self.idle_interval = idle_interval
        self.clock = clock
        self.shards: dict[tuple[str, str], Shard] = {}
        self.listed_at: float | None = None

    def run_forever(self, stop: threading.Event) -> None:
        if self.wakeup is None:
            while not stop.is_set():
                self._step_logged()
                stop.wait(self.interval)
            return
        with Wakeup(self.wakeup) as wakeup:
            while not stop.is_set():
                self._step_logged()
                wakeup.wait(self.idle_interval)

    def _step_logged(self) -> None:
        try:
            self.step()
        except Exception:
            log.exception("stream poller step failed")

    def step(self) -> int:
        """One look at every ledger stream; returns how many records were handed to the launcher."""
        if self.listed_at is None or self.clock() - self.listed_at >= LIST_EVERY_SECONDS:
            self.discover(at_start=self.listed_at is None)
            self.listed_at = self.clock()
        return sum(self.poll(shard) for shard in list(self.shards.values()))

    def discover(self, at_start: bool = False) -> None:
        found: dict[tuple[str, str], Shard] = {}
        for stream in self._ledger_streams():
            arn = stream["StreamArn"]
            described = self.streams.describe_stream(StreamArn=arn)["StreamDescription"]
            for shard in described.get("Shards", []):
                key = (arn, shard["ShardId"])
                if key in self.shards:
                    found[key] = self.shards[key]
                    continue
                found[key] = Shard(arn, shard["ShardId"])
                if at_start:
                    found[key].last = self._end_of(found[key])
                log.info("following a ledger stream", extra=fields(table=stream["TableName"], stream_arn=arn))
        self.shards = found  # a deleted table's stream is gone from the listing, and from here

    def _ledger_streams(self) -> list[dict[str, Any]]:
        streams, kwargs = [], {}
        while True:
            page = self.streams.list_streams(**kwargs)
            streams += [s for s in page.get("Streams", []) if is_ledger_table(s.get("TableName", ""))]
            if not page.get("LastEvaluatedStreamArn"):
                return streams
            kwargs = {"ExclusiveStartStreamArn": page["LastEvaluatedStreamArn"]}

    def _end_of(self, shard: Shard) -> str | None:
        """The sequence number of the shard's last record so far (None: it has none)."""
        last = None
        while records := self._records(shard, last):
            last = records[-1]["dynamodb"]["SequenceNumber"]
        return last

    def _records(self, shard: Shard, after: str | None) -> list[dict[str, Any]]:
        position: dict[str, str] = {"ShardIteratorType": "TRIM_HORIZON"}
        if after is not None:
            position = {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": after}
        iterator = self.streams.get_shard_iterator(StreamArn=shard.stream_arn, ShardId=shard.shard_id, **position)
        return self.streams.get_records(ShardIterator=iterator["ShardIterator"], Limit=BATCH_SIZE)["Records"]

    def poll(self, shard: Shard) -> int:
        if self.clock() < shard.not_before:
            return 0
        records = self._records(shard, shard.last)
        if not records:
            return 0
        retry_from = self.deliver(shard, records)
        if retry_from is None:
            shard.last, shard.failures = records[-1]["dynamodb"]["SequenceNumber"], 0
            return len(records)
        handed_on = [r for r in records if int(r["dynamodb"]["SequenceNumber"]) < int(retry_from)]
        if handed_on:  # the records before the failed one went: the next try starts at the failed one
            shard.last, shard.failures = handed_on[-1]["dynamodb"]["SequenceNumber"], 0
        shard.failures += 1
        if shard.failures > MAXIMUM_RETRY_ATTEMPTS:
            log.error(
                "stream batch dropped after its retries",
                extra=fields(
                    stream_arn=shard.stream_arn, first=retry_from, last=records[-1]["dynamodb"]["SequenceNumber"]
                ),
            )
            shard.last, shard.failures = records[-1]["dynamodb"]["SequenceNumber"], 0
            return len(records)
        shard.not_before = self.clock() + min(self.interval * 2**shard.failures, MAX_PAUSE_SECONDS)
        return len(handed_on)

    def deliver(self, shard: Shard, records: list[dict[str, Any]]) -> str | None:
        """Invoke the launcher with the batch; returns the sequence number to deliver again from (None: done)."""
        event = {"Records": [lambda_record(r, shard.stream_arn) for r in records]}
        first = records[0]["dynamodb"]["SequenceNumber"]
        try:
            response = self.invoke(event)
        except Exception:
            log.exception("launcher failed on a ledger stream batch", extra=fields(stream_arn=shard.stream_arn))
            return first
        failures = (response or {}).get("batchItemFailures") or []
        if not failures:
            return None
        return min((str(f.get("itemIdentifier") or first) for f in failures), key=int)


def lambda_record(record: dict[str, Any], stream_arn: str) -> dict[str, Any]:
    """A GetRecords record as Lambda hands it to a function: the stream's ARN, the time as epoch seconds."""
    data = dict(record["dynamodb"])
    moment = data.get("ApproximateCreationDateTime")
    if isinstance(moment, datetime):
        data["ApproximateCreationDateTime"] = moment.timestamp()
    return {
        "eventID": record.get("eventID"),
        "eventName": record["eventName"],
        "eventVersion": record.get("eventVersion", "1.1"),
        "eventSource": "aws:dynamodb",
        "awsRegion": record.get("awsRegion", REGION),
        "dynamodb": data,
        "eventSourceARN": stream_arn,
    }
