"""Run state change events on EventBridge: every status change of a run, published after its ledger write.

The shape (`detail`, version "1") is documented in docs/events.md and checked against `DETAIL_SCHEMA` by the
tests. A publication carries an identity derived from (job, run id, attempt, status): a writer that repeats a
write (botocore's retry answered from the read-back, a redelivered timer) publishes the same event again, and
consumers de-duplicate on `detail.event_id`. Publishing never fails the run: an error is logged
(`run event not published`, which the module's metric filter counts) and counted on the publisher.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any

from .jsonlog import fields
from .ledger import Run

log = logging.getLogger(__name__)

SOURCE = "ec2batch"
DETAIL_TYPE = "ec2batch Run State Change"
DETAIL_VERSION = "1"
DEFAULT_BUS = "default"
NOT_PUBLISHED = "run event not published"
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


@dataclass
class RunEvents:
    """The publisher a Ledger is given: one `events` client, one bus, a count of what could not be sent."""

    client: Any
    bus: str = DEFAULT_BUS
    failures: int = 0
    published: int = 0

    def publish(self, run: Run) -> bool:
        """Publish the run's state; never raises (a lost event must not keep a machine running or fail a run)."""
        the_entry = entry(run, self.bus)
        try:
            response = self.client.put_events(Entries=[the_entry])
            failed = response.get("FailedEntryCount", 0)
            if failed:
                first = response.get("Entries", [{}])[0]
                raise RuntimeError(f"{first.get('ErrorCode')}: {first.get('ErrorMessage')}")
        except Exception as exc:
            self.failures += 1
            log.error(
                NOT_PUBLISHED,
                extra=fields(
                    job=run.job,
                    run_id=run.run_id,
                    status=run.status,
                    bus=self.bus,
                    event_id=event_id(run.job, run.run_id, run.attempt, run.status),
                    error=f"{type(exc).__name__}: {exc}",
                    failures=self.failures,
                ),
            )
            return False
        self.published += 1
        return True
