"""Run state change events on EventBridge: every status change of a run, published from the ledger's stream.

The ledger table has a DynamoDB stream (NEW_AND_OLD_IMAGES, `ledger.STREAM_SPECIFICATION`): every write is a
record of the item before and after it, kept by DynamoDB for 24 hours. The job's launcher function consumes
that stream (Terraform's event source mapping; the local stack's emulator process, `ec2batch.local.streams`) and
publishes one event per status change of a run item (`changed_run`): a transactional outbox whose outbox is the
table's own log, so a writer that dies right after its write loses no event, and no writer calls EventBridge.

The shape (`detail`, version "1") is documented in docs/events.md and checked against `DETAIL_SCHEMA` by the
tests. An event's identity is derived from (job, run id, attempt, status): the mapping's retry of a batch
publishes the same events again, and consumers de-duplicate on `detail.event_id`. A failed publication is
logged (`run event not published`, which the module's metric filter counts) and fails the batch from that
record on, so the mapping retries it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from .jsonlog import fields
from .ledger import RUN_ID_PATTERN, Run, run_from_item

log = logging.getLogger(__name__)

SOURCE = "ec2batch"
DETAIL_TYPE = "ec2batch Run State Change"
DETAIL_VERSION = "1"
DEFAULT_BUS = "default"
NOT_PUBLISHED = "run event not published"
PUT_EVENTS_MAX_ENTRIES = 10  # EventBridge's limit per PutEvents call
# The runs whose jobs' downstream jobs follow them without being asked (`run-now` asks: --with-downstream).
CHAINED_TRIGGERS = ("schedule", "at", "after")

_STRING_OR_NULL = {"type": ["string", "null"]}
# JSON Schema (draft 2020-12) of `detail`, version 1: docs/events.md prints it; tests validate every status.
DETAIL_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "ec2batch Run State Change detail, version 1",
    "type": "object",
    "additionalProperties": False,
    "required": [
        "version", "event_id", "job", "run_id", "status", "previous_status", "trigger", "triggered_at",
        "scheduled_at", "event_time", "attempt", "exit_code", "reason", "instance_id", "cost_usd",
        "upstream", "lineage", "downstream",
    ],
    "properties": {
        "version": {"const": DETAIL_VERSION},
        "event_id": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
        "job": {"type": "string"},
        "run_id": {"type": "string"},
        "status": {"enum": ["PLANNED", "PENDING", "STARTING", "RUNNING", "SUCCEEDED", "FAILED", "TIMED_OUT",
                            "SKIPPED", "CANCELLED"]},
        "previous_status": {"enum": [None, "PLANNED", "PENDING", "STARTING", "RUNNING"]},
        "trigger": {"enum": ["schedule", "manual", "at", "boot", "after"]},
        "triggered_at": {"type": "string", "format": "date-time"},
        "scheduled_at": {"type": ["string", "null"], "format": "date-time"},
        "event_time": {"type": "string", "format": "date-time"},
        "attempt": {"type": "integer", "minimum": 1},
        "exit_code": {"type": ["integer", "null"]},
        "reason": _STRING_OR_NULL,
        "instance_id": _STRING_OR_NULL,
        "cost_usd": {"type": ["number", "null"], "minimum": 0},
        "upstream": {"type": "array", "items": {"type": "string", "pattern": "^[^/]+/[^/]+$"}},
        "lineage": {"type": "array", "items": {"type": "string"}},
        "downstream": {"type": "boolean"},
    },
}  # fmt: skip


def event_id(job: str, run_id: str, attempt: int, status: str) -> str:
    """The same (job, run, attempt, status) is the same event, however often it is published."""
    return hashlib.sha256(f"{job}\n{run_id}\n{attempt}\n{status}".encode()).hexdigest()[:32]


def chained(run: Run) -> bool:
    """Do the jobs that run after this run's job follow this run?"""
    return run.trigger in CHAINED_TRIGGERS or run.with_downstream


def detail(run: Run) -> dict[str, Any]:
    """The event's `detail`, from the run as the status-changing write left it."""
    return {
        "version": DETAIL_VERSION,
        "event_id": event_id(run.job, run.run_id, run.attempt, run.status),
        "job": run.job,
        "run_id": run.run_id,
        "status": run.status,
        "previous_status": run.previous_status,
        "trigger": run.trigger,
        "triggered_at": run.triggered_at,
        "scheduled_at": run.scheduled_at,
        "event_time": run.updated_at or run.triggered_at,
        "attempt": run.attempt,
        "exit_code": run.exit_code,
        "reason": run.reason,
        "instance_id": run.instance_id,
        "cost_usd": run.cost_usd,
        "upstream": list(run.upstream),
        "lineage": list(run.lineage),
        "downstream": chained(run),
    }


def entry(run: Run, bus: str) -> dict[str, Any]:
    """One PutEvents entry. `Resources` is left empty: a run is no AWS resource with an ARN."""
    return {
        "Source": SOURCE,
        "DetailType": DETAIL_TYPE,
        "Detail": json.dumps(detail(run), separators=(",", ":")),
        "EventBusName": bus,
    }


@dataclass(frozen=True)
class LedgerChange:
    """One record of the ledger table's stream, as Lambda hands it (its images in DynamoDB's JSON)."""

    sequence_number: str
    event_name: str  # INSERT, MODIFY or REMOVE
    job: str
    key: str  # the item's sort key: a run id, or a bookkeeping key (`~active`, `~token#...`, `~after#...`)
    old_image: Mapping[str, Any] | None = None
    new_image: Mapping[str, Any] | None = None


def changed_run(change: LedgerChange) -> Run | None:
    """The run as a status-changing write left it (with the status it left), or None for any other record.

    A run's first write (INSERT) and every write that changes its status or its attempt (a retry's PENDING may
    follow a PENDING) is an event; a write of other fields, a removal (a withdrawn PLANNED run) and the
    bookkeeping items (slots, tokens, arrivals, instance claims: their keys are no run ids) are not.
    """
    if change.event_name not in ("INSERT", "MODIFY") or not change.new_image or not RUN_ID_PATTERN.match(change.key):
        return None
    run = run_from_item(change.new_image)  # the ledger's own reader (ledger.run_from_item)
    if change.event_name == "INSERT" or not change.old_image:
        return replace(run, previous_status=None)
    before = run_from_item(change.old_image)
    if (before.status, before.attempt) == (run.status, run.attempt):
        return None
    return replace(run, previous_status=before.status)


@dataclass(frozen=True)
class Published:
    """What one stream batch gave: events sent, and the first record to deliver again (None: all went)."""

    published: int
    retry_from: str | None = None


@dataclass
class RunEvents:
    """The stream consumer's publisher: one `events` client, the count of what it sent and could not send."""

    client: Any
    failures: int = 0
    published: int = 0

    def publish(self, changes: Sequence[LedgerChange], bus: str = DEFAULT_BUS) -> Published:
        """Publish the batch's status changes in order, at most 10 entries per PutEvents call.

        On the first call with a failed entry it stops: `retry_from` is the sequence number of the earliest
        record whose event did not go, so the mapping delivers that record and every later one again (the
        ones that went are sent twice: same `event_id`). A failure to publish is never raised.
        """
        pending = [(change, run) for change in changes if (run := changed_run(change)) is not None]
        sent = 0
        for start in range(0, len(pending), PUT_EVENTS_MAX_ENTRIES):
            chunk = pending[start : start + PUT_EVENTS_MAX_ENTRIES]
            failed = self._put(chunk, bus)
            if failed:
                sent += len(chunk) - len(failed)
                self.published += len(chunk) - len(failed)
                return Published(sent, retry_from=failed[0][0].sequence_number)
            sent += len(chunk)
            self.published += len(chunk)
        return Published(sent)

    def _put(self, chunk: list[tuple[LedgerChange, Run]], bus: str) -> list[tuple[LedgerChange, Run]]:
        """One PutEvents call; returns the entries that failed, each logged."""
        errors: list[str | None]
        try:
            response = self.client.put_events(Entries=[entry(run, bus) for _, run in chunk])
            results = response.get("Entries", [])
            errors = [f"{r.get('ErrorCode')}: {r.get('ErrorMessage')}" if r.get("ErrorCode") else None for r in results]
            if (response.get("FailedEntryCount", 0) and not any(errors)) or len(errors) != len(chunk):
                errors = [f"FailedEntryCount {response.get('FailedEntryCount')}"] * len(chunk)
        except Exception as exc:
            errors = [f"{type(exc).__name__}: {exc}"] * len(chunk)
        failed = []
        for (change, run), error in zip(chunk, errors, strict=True):
            if error is None:
                continue
            failed.append((change, run))
            self.failures += 1
            log.error(
                NOT_PUBLISHED,
                extra=fields(
                    job=run.job,
                    run_id=run.run_id,
                    status=run.status,
                    bus=bus,
                    event_id=event_id(run.job, run.run_id, run.attempt, run.status),
                    sequence_number=change.sequence_number,
                    error=error,
                    failures=self.failures,
                ),
            )
        return failed
