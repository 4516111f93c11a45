"""The launcher's input events, parsed into typed values. Anything else is refused, never half-handled.

Shapes (tests/events/*.json has one of each):
- schedule fire, the Input of the EventBridge Scheduler target (Terraform writes it; the Scheduler fills in
  its context attributes): {"action": "schedule", "job": "daily-report",
  "scheduled_time": "<aws.scheduler.scheduled-time>", "execution_id": "<aws.scheduler.execution-id>"}
- manual run (`ec2batch run-now`): {"action": "run", "job": ..., "command": [...], "env": {...}, "token": ...}
- plan (the 15-minute planner schedule): {"action": "plan", "job": ...}
- SQS timer messages (exact-time starts and deadlines): {"Records": [{"eventSource": "aws:sqs", "body": ...}]}
- the ledger table's stream (the run events' outbox, `ec2batch.run_events`), a DynamoDB Streams batch:
  {"Records": [{"eventSource": "aws:dynamodb", "eventName": "MODIFY", "dynamodb": {"Keys": ..., "OldImage": ...,
  "NewImage": ..., "SequenceNumber": ...}, "eventSourceARN": ...}]}
- a run of an upstream job ended (the downstream job's EventBridge rule, `ec2batch.dependencies`): {"action":
  "after", "job": <the downstream job>, "event": <the "ec2batch Run State Change" event as EventBridge sent it>};
  directly from the rule on AWS, in an SQS record's body on the local stack
- AWS Batch's state change of a sharded run's job (the EventBridge rule on the job's queue sends the event as
  is): {"source": "aws.batch", "detail-type": "Batch Job State Change", "detail": {"jobName": ..., "jobId": ...,
  "jobQueue": "arn:...:job-queue/ec2batch-<job>", "status": ...}}
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..config import ENV_NAME
from ..errors import EventError
from ..ledger import RUN_ID_PATTERN, TERMINAL, iso
from ..names import InvalidJobName, validate_job_name
from ..run_events import DETAIL_TYPE, DETAIL_VERSION, SOURCE, LedgerChange
from ..timeutil import parse_iso

TIMER_KINDS = ("start", "deadline", "retry")
# A run's overrides are stored on its ledger item (DynamoDB: 400 KB per item, with everything else the run
# records), and reach the container as its environment and argv: each is capped well below both limits.
OVERRIDE_MAX_BYTES = 64 * 1024
TOKEN_REUSED = "token reused with different overrides: the first run stands"


@dataclass(frozen=True)
class ScheduleFire:
    job: str
    scheduled_time: datetime
    execution_id: str | None = None


@dataclass(frozen=True)
class ManualRun:
    job: str
    command: tuple[str, ...] | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    token: str | None = None
    with_downstream: bool = False

    def differs_from(self, run: Any) -> bool:
        """Did the run this request's token found get other overrides than this request asks for?"""
        return (run.command or None) != (self.command or None) or dict(run.env or {}) != dict(self.env)


@dataclass(frozen=True)
class PlanRequest:
    job: str


@dataclass(frozen=True)
class BatchChange:
    """A sharded run's array job (or one of its children) changed state: look at the run again."""

    job: str
    run_id: str
    batch_job_id: str
    status: str


@dataclass(frozen=True)
class TimerFire:
    """A delayed SQS message came due: start a planned run, or enforce a running run's deadline."""

    job: str
    run_id: str
    kind: str
    due: datetime
    message_id: str | None = None


@dataclass(frozen=True)
class UpstreamEnded:
    """A run of an upstream job ended: the downstream job `job` may now run (launcher/after.py decides)."""

    job: str  # the downstream job, whose launcher this is
    upstream_job: str
    run_id: str
    status: str
    ended_at: str
    event_id: str
    lineage: tuple[str, ...] = ()
    chained: bool = True
    message_id: str | None = None  # delivered in an SQS record (the local stack)


@dataclass(frozen=True)
class LedgerChanges:
    """A batch of the ledger table's stream records, oldest first: publish the run events they hold."""

    changes: tuple[LedgerChange, ...]

    @property
    def jobs(self) -> set[str]:
        return {c.job for c in self.changes}


Event = ScheduleFire | ManualRun | PlanRequest | BatchChange | UpstreamEnded | LedgerChanges
STREAM_EVENT_NAMES = ("INSERT", "MODIFY", "REMOVE")


def parse_event(event: Any) -> Event | list[TimerFire | UpstreamEnded]:
    if not isinstance(event, Mapping):
        raise EventError(f"launcher event must be a JSON object, got {type(event).__name__}")
    if "Records" in event:
        records = _list(event["Records"], "Records")
        if isinstance(records[0], Mapping) and records[0].get("eventSource") == "aws:dynamodb":
            return LedgerChanges(tuple(_ledger_change(record, i) for i, record in enumerate(records)))
        return [_timer(record, i) for i, record in enumerate(records)]
    if event.get("source") == "aws.batch":
        return _batch_change(event)
    action = event.get("action")
    if action == "schedule":
        _only(event, {"action", "job", "scheduled_time", "execution_id", "schedule_arn", "attempt"})
        return ScheduleFire(
            job=_job(event),
            scheduled_time=_time(event.get("scheduled_time"), "scheduled_time"),
            execution_id=event.get("execution_id"),
        )
    if action == "run":
        _only(event, {"action", "job", "command", "env", "token", "with_downstream"})
        with_downstream = event.get("with_downstream", False)
        if not isinstance(with_downstream, bool):
            raise EventError(f"with_downstream: must be true or false, got {with_downstream!r}")
        return ManualRun(
            job=_job(event),
            command=_command(event.get("command")),
            env=_env(event.get("env")),
            token=_token(event.get("token")),
            with_downstream=with_downstream,
        )
    if action == "after":
        return upstream_ended(event)
    if action == "plan":
        _only(event, {"action", "job"})
        return PlanRequest(job=_job(event))
    raise EventError(
        f"unknown launcher event (action={action!r}): expected action schedule, run, plan or after, or SQS Records"
    )


BATCH_QUEUE_PREFIX = "job-queue/ec2batch-"


def _batch_change(event: Mapping[str, Any]) -> BatchChange:
    if event.get("detail-type") != "Batch Job State Change":
        raise EventError(f"aws.batch event {event.get('detail-type')!r}: only Batch Job State Change is handled")
    detail = event.get("detail")
    if not isinstance(detail, Mapping):
        raise EventError("aws.batch event: detail must be an object")
    queue = str(detail.get("jobQueue", ""))
    if BATCH_QUEUE_PREFIX not in queue:
        raise EventError(f"detail.jobQueue: {queue!r} is not an ec2batch job's queue (…:job-queue/ec2batch-<job>)")
    job = _job({"job": queue.split(BATCH_QUEUE_PREFIX, 1)[1]})
    name = str(detail.get("jobName", ""))
    run_id = name.replace("_", ".")  # ec2batch.shards.batch_job_name, reversed
    if not RUN_ID_PATTERN.match(run_id):
        raise EventError(f"detail.jobName: {name!r} is not an ec2batch run's array job")
    job_id = str(detail.get("jobId", ""))
    return BatchChange(job=job, run_id=run_id, batch_job_id=job_id.split(":", 1)[0], status=str(detail.get("status")))


def timer_body(job: str, run_id: str, kind: str, due: datetime) -> str:
    """The SQS message body the planner sends; `_timer` parses it back."""
    return json.dumps({"job": job, "run_id": run_id, "kind": kind, "due": due.isoformat()})


def upstream_ended(event: Mapping[str, Any], message_id: str | None = None) -> UpstreamEnded:
    """The `after` action: the downstream job, and the upstream's run state change event inside it."""
    _only(event, {"action", "job", "event"})
    inner = event.get("event")
    if not isinstance(inner, Mapping) or inner.get("source") != SOURCE or inner.get("detail-type") != DETAIL_TYPE:
        raise EventError(f"after event: event must be EventBridge's {SOURCE!r} {DETAIL_TYPE!r} event")
    detail = inner.get("detail")
    if not isinstance(detail, Mapping):
        raise EventError("after event: event.detail must be an object")
    if detail.get("version") != DETAIL_VERSION:
        raise EventError(
            f"event.detail.version: {detail.get('version')!r}; this launcher reads version {DETAIL_VERSION}"
        )
    run_id = detail.get("run_id")
    if not isinstance(run_id, str) or not RUN_ID_PATTERN.match(run_id):
        raise EventError(f"event.detail.run_id: {run_id!r} is not a run id")
    status = detail.get("status")
    if status not in TERMINAL:
        raise EventError(f"event.detail.status: {status!r} is not a run's ending (the rule sends only endings)")
    lineage = detail.get("lineage", [])
    if not isinstance(lineage, list) or not all(isinstance(j, str) for j in lineage):
        raise EventError("event.detail.lineage: must be a list of job names")
    return UpstreamEnded(
        job=_job(event),
        upstream_job=_job({"job": detail.get("job")}),
        run_id=run_id,
        status=str(status),
        ended_at=iso(_time(detail.get("event_time"), "event.detail.event_time")),
        event_id=str(detail.get("event_id", "")),
        lineage=tuple(lineage),
        chained=detail.get("downstream") is True,
        message_id=message_id,
    )


def _ledger_change(record: Any, index: int) -> LedgerChange:
    """One DynamoDB Streams record of the ledger table (a batch is all of one source: the mapping's)."""
    where = f"Records[{index}]"
    if not isinstance(record, Mapping) or record.get("eventSource") != "aws:dynamodb":
        raise EventError(f"{where}: a DynamoDB Streams batch holds only eventSource aws:dynamodb records")
    name = record.get("eventName")
    if name not in STREAM_EVENT_NAMES:
        raise EventError(f"{where}.eventName: {name!r} is not one of {', '.join(STREAM_EVENT_NAMES)}")
    data = record.get("dynamodb")
    if not isinstance(data, Mapping):
        raise EventError(f"{where}.dynamodb: must be an object")
    keys = data.get("Keys")
    key = keys.get("run_id", {}).get("S") if isinstance(keys, Mapping) else None
    job = keys.get("job", {}).get("S") if isinstance(keys, Mapping) else None
    if not isinstance(key, str) or not isinstance(job, str):
        raise EventError(f"{where}.dynamodb.Keys: must hold the ledger's keys (job, run_id), strings")
    sequence = data.get("SequenceNumber")
    if not isinstance(sequence, str) or not sequence:
        raise EventError(f"{where}.dynamodb.SequenceNumber: must be a string")
    images = {}
    for image in ("OldImage", "NewImage"):
        value = data.get(image)
        if value is not None and not isinstance(value, Mapping):
            raise EventError(f"{where}.dynamodb.{image}: must be an object")
        images[image] = value
    return LedgerChange(
        sequence_number=sequence,
        event_name=str(name),
        job=_job({"job": job}),
        key=key,
        old_image=images["OldImage"],
        new_image=images["NewImage"],
    )


def _timer(record: Any, index: int) -> TimerFire | UpstreamEnded:
    where = f"Records[{index}]"
    if not isinstance(record, Mapping) or record.get("eventSource") != "aws:sqs":
        raise EventError(f"{where}: only SQS records are accepted (eventSource aws:sqs) in a batch of SQS records")
    try:
        body = json.loads(record.get("body", ""))
    except json.JSONDecodeError as exc:
        raise EventError(f"{where}.body: not JSON ({exc.msg})") from exc
    if not isinstance(body, Mapping):
        raise EventError(f"{where}.body: must be a JSON object")
    if body.get("action") == "after":  # the local stack's downstream rule sends to the job's queue
        return upstream_ended(body, message_id=record.get("messageId"))
    kind = body.get("kind")
    if kind not in TIMER_KINDS:
        raise EventError(f"{where}.body.kind: {kind!r} is not one of {', '.join(TIMER_KINDS)}")
    run_id = body.get("run_id")
    if not isinstance(run_id, str) or not RUN_ID_PATTERN.match(run_id):
        # Refused before any read or write: `~active` and the other bookkeeping keys are not runs.
        raise EventError(f"{where}.body.run_id: {run_id!r} is not a run id")
    return TimerFire(
        job=_job(body),
        run_id=run_id,
        kind=kind,
        due=_time(body.get("due"), f"{where}.body.due"),
        message_id=record.get("messageId"),
    )


def _only(event: Mapping[str, Any], allowed: set[str]) -> None:
    extra = sorted(set(event) - allowed)
    if extra:
        raise EventError(
            f"unknown field(s) {', '.join(extra)} in {event.get('action')} event; allowed: {', '.join(sorted(allowed))}"
        )


def _job(event: Mapping[str, Any]) -> str:
    try:
        return validate_job_name(event.get("job"))  # type: ignore[arg-type]
    except InvalidJobName as exc:
        raise EventError(f"job: {exc}") from exc


def _time(value: Any, name: str) -> datetime:
    if not isinstance(value, str):
        raise EventError(f"{name}: must be an ISO 8601 time string, got {value!r}")
    try:
        return parse_iso(value)
    except Exception as exc:
        raise EventError(f"{name}: {exc}") from exc


def _list(value: Any, name: str) -> list[Any]:
    if not isinstance(value, list) or not value:
        raise EventError(f"{name}: must be a non-empty list")
    return value


def _command(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise EventError("command: must be a non-empty list of strings")
    size = sum(_bytes(v) for v in value)
    if size > OVERRIDE_MAX_BYTES:
        raise EventError(f"command: {size} bytes of arguments; at most {OVERRIDE_MAX_BYTES} (64 KiB)")
    return tuple(value)


def _env(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise EventError("env: must be an object of NAME: value strings")
    for key, val in value.items():
        if not ENV_NAME.match(str(key)) or not isinstance(val, str):
            raise EventError(f"env.{key}: names are letters, digits and '_'; values are strings")
    size = sum(_bytes(k) + _bytes(v) for k, v in value.items())
    if size > OVERRIDE_MAX_BYTES:
        raise EventError(f"env: {size} bytes of names and values; at most {OVERRIDE_MAX_BYTES} (64 KiB)")
    return dict(value)


def _bytes(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def _token(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not 1 <= len(value) <= 128:
        raise EventError("token: must be a string of 1 to 128 characters")
    return value


def schedule_target_input(job: str) -> str:
    """The Scheduler target's Input: the Scheduler fills in its context attributes at each fire.

    Terraform writes the same template (terraform/modules/scheduled-job/schedules.tf); a test compares them.
    """
    return json.dumps(
        {
            "action": "schedule",
            "job": job,
            "scheduled_time": "<aws.scheduler.scheduled-time>",
            "execution_id": "<aws.scheduler.execution-id>",
        }
    )
