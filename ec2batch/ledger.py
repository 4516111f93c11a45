"""The run ledger: one DynamoDB item per run, keyed (job, run_id), run ids sortable by time.

Everything that changes a run is a conditional write, so two writers (a duplicate schedule
delivery, the launcher and the agent, two racing triggers) can never move a run backwards or
start it twice. Besides runs, a job's partition holds two kinds of bookkeeping items whose sort
keys start with `~` (after every digit, so they never show up in a time-ordered listing):
- `~active`: the concurrency slot under the `forbid` policy; it names the run that holds it;
- `~token#<sha256>`: a manual run's idempotency token, naming the run it created;
- `~instance#<instance id>`: which run has the job's reusable instance (taken before it is started, so two
  runs under `allow` never both place themselves on it; on the reuse path, in the run's creating transaction).
Every conditional update carries a writer token and reads back on a condition failure (`_update`), so a
write AWS applied whose response was lost is still our success, never "someone else's".
No writer announces its writes: the table's stream (`STREAM_SPECIFICATION`) does, and the launcher publishes
each status change from it as a run event (`ec2batch.run_events`).
"""

from __future__ import annotations

import hashlib
import re
import secrets as _random
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from .attribute_values import deserialize, serialize
from .errors import TransitionRejected
from .usage import Usage, usage_from_item

# Statuses, by rank: a run only ever moves to a higher rank. All terminal statuses share the top rank,
# so a finished run can never be finished again differently.
PLANNED, PENDING, STARTING, RUNNING = "PLANNED", "PENDING", "STARTING", "RUNNING"
SUCCEEDED, FAILED, TIMED_OUT, SKIPPED, CANCELLED = "SUCCEEDED", "FAILED", "TIMED_OUT", "SKIPPED", "CANCELLED"
TERMINAL = (SUCCEEDED, FAILED, TIMED_OUT, SKIPPED, CANCELLED)
RANK = {PLANNED: 0, PENDING: 1, STARTING: 2, RUNNING: 3, **{s: 4 for s in TERMINAL}}
STATUSES = tuple(RANK)

TRIGGERS = ("schedule", "manual", "at", "boot", "after")
SLOT_KEY = "~active"
TOKEN_PREFIX = "~token#"
INSTANCE_PREFIX = "~instance#"
TOKEN_TTL_SECONDS = 7 * 24 * 3600
# A launcher getting a machine for a PENDING run (or, on the reuse path, starting the instance of a run it
# recorded STARTING) holds it this long (its Lambda times out at 180 s); after that the run is an orphan (the
# launcher died) and the reconciler, or a duplicate trigger, takes it over.
START_LEASE_SECONDS = 200
# Whoever publishes a run's notification claims it first for this long; a publisher that dies lets the
# reconciler publish after it.
NOTIFY_CLAIM_SECONDS = 300


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%S.") + f"{moment.microsecond // 1000:03d}Z"


def scheduled_run_id(scheduled_at: datetime) -> str:
    """A schedule fire's run id is a function of its scheduled time: a redelivery maps to the same run."""
    return f"{_stamp(scheduled_at)}-schedule"


def new_run_id(trigger: str, at: datetime, token: str | None = None) -> str:
    """Time first so ids sort by time; a random (or token-derived) tail keeps ids unique."""
    tail = hashlib.sha256(token.encode()).hexdigest()[:8] if token else _random.token_hex(4)
    return f"{_stamp(at)}-{trigger}-{tail}"


# Every run id has one of the two shapes above (time stamp, then the trigger); anything else, such as the
# bookkeeping keys `~active` or `~token#...`, is not a run. Commands and timer messages check ids with it.
RUN_ID_PATTERN = re.compile(r"^[0-9]{8}T[0-9]{6}\.[0-9]{3}Z-(?:schedule|(?:manual|at|boot|after)-[0-9a-f]{8})\Z")


def token_key(token: str) -> str:
    return TOKEN_PREFIX + hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class PlacementTry:
    """One try at getting a machine for an attempt: start the job's instance, or launch one from the template."""

    action: str  # "start" | "launch"
    instance_type: str | None = None
    subnet_id: str | None = None
    instance_id: str | None = None
    error: str | None = None
    at: str = ""
    market: str | None = None  # None: on-demand
    attempt: int | None = None  # None: the first


INTERRUPTED = "INTERRUPTED"  # an attempt's ending (never a run's): EC2 reclaimed its Spot instance


@dataclass(frozen=True)
class Attempt:
    """One attempt of a run, on one machine: what it ran on, when, how it ended, what it cost.

    A run's ended attempts before the current one are stored in `Run.attempts`; the current (or last) one
    is the run's own fields (`Run.current_attempt`), so a run recorded before attempts existed reads as one.
    """

    number: int
    status: str  # the run statuses, or INTERRUPTED; a live attempt has its run's live status
    cause: str | None = None  # why it ended: a retry cause, "exit-code", "timeout", or None (success, other)
    market: str | None = None
    instance_id: str | None = None
    instance_type: str | None = None
    subnet_id: str | None = None
    requested_at: str | None = None
    running_at: str | None = None
    container_started_at: str | None = None
    ended_at: str | None = None
    exit_code: int | None = None
    reason: str | None = None
    billed_seconds: int | None = None
    cost_usd: float | None = None


@dataclass(frozen=True)
class Shard:
    """One child of a run's AWS Batch array job, as last seen (DescribeJobs)."""

    index: int
    status: str  # Batch's: SUBMITTED, PENDING, RUNNABLE, STARTING, RUNNING, SUCCEEDED, FAILED
    exit_code: int | None = None
    attempts: int | None = None
    started_at: str | None = None
    stopped_at: str | None = None
    log_stream: str | None = None
    reason: str | None = None

    def duration_seconds(self) -> float | None:
        if not self.started_at or not self.stopped_at:
            return None
        return (parse_time(self.stopped_at) - parse_time(self.started_at)).total_seconds()


@dataclass(frozen=True)
class Run:
    job: str
    run_id: str
    status: str
    trigger: str
    triggered_at: str
    scheduled_at: str | None = None
    start_requested_at: str | None = None
    instance_running_at: str | None = None
    container_started_at: str | None = None
    ended_at: str | None = None
    instance_id: str | None = None
    instance_type: str | None = None
    subnet_id: str | None = None
    market: str | None = None  # of the current attempt's machine; None: on-demand
    placements: tuple[PlacementTry, ...] = ()
    attempt: int = 1  # the current attempt's number
    attempts: tuple[Attempt, ...] = ()  # the attempts before the current one, oldest first
    cause: str | None = None  # why the current attempt ended (see Attempt.cause)
    retry_at: str | None = None  # a PENDING run waits until then for its next attempt
    batch_job_id: str | None = None  # a run with shards: its AWS Batch array job
    shard_count: int | None = None
    shards: tuple[Shard, ...] = ()  # per shard, as last seen (the first MAX_SHARD_RECORDS)
    exit_code: int | None = None
    reason: str | None = None
    image_digest: str | None = None
    log_stream: str | None = None
    command: tuple[str, ...] | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    billed_seconds: int | None = None
    cost_usd: float | None = None
    # What the job used of its machine, as the agent sampled it (the last attempt that measured; ec2batch.usage).
    usage: Usage | None = None
    deadline_at: str | None = None  # after this the launcher stops the machine from outside
    deadline_timer_for: str | None = None  # the deadline_at a timer message has been sent for
    start_timer_sent_at: str | None = None  # a PLANNED run's start timer is in the queue
    start_lease_until: str | None = None  # a launcher is getting a machine for this PENDING run until then
    notified_at: str | None = None  # the run's notification was published
    notify_claim_until: str | None = None  # someone is publishing it
    repaired: tuple[str, ...] = ()  # what the reconciler did to this run, one line each
    updated_at: str | None = None
    previous_status: str | None = None  # the status the last status-changing write moved it from
    upstream: tuple[str, ...] = ()  # an `after` run: the upstream runs it follows, "<job>/<run id>"
    lineage: tuple[str, ...] = ()  # an `after` run: every job upstream of it in its chain
    with_downstream: bool = False  # a manual run asked its job's downstream jobs to follow it

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    def current_attempt(self) -> Attempt:
        """The current (for an ended run, the last) attempt, from the run's own fields."""
        earlier_seconds = sum(a.billed_seconds or 0 for a in self.attempts)
        earlier_cost = sum(a.cost_usd or 0.0 for a in self.attempts)
        status = INTERRUPTED if self.cause == "interruption" and self.terminal else self.status
        return Attempt(
            number=self.attempt,
            status=status,
            cause=self.cause,
            market=self.market,
            instance_id=self.instance_id,
            instance_type=self.instance_type,
            subnet_id=self.subnet_id,
            requested_at=self.start_requested_at,
            running_at=self.instance_running_at,
            container_started_at=self.container_started_at,
            ended_at=self.ended_at,
            exit_code=self.exit_code,
            reason=self.reason,
            billed_seconds=self.billed_seconds - earlier_seconds if self.billed_seconds is not None else None,
            cost_usd=round(self.cost_usd - earlier_cost, 6) if self.cost_usd is not None else None,
        )

    def all_attempts(self) -> tuple[Attempt, ...]:
        """Every attempt: the ended ones, then the current one (unless it has not begun: waiting to retry)."""
        if self.status in (PLANNED, PENDING) and self.attempts and not self.instance_id:
            return self.attempts
        return (*self.attempts, self.current_attempt())

    def duration_seconds(self) -> float | None:
        start = self.container_started_at or self.instance_running_at
        if not start or not self.ended_at:
            return None
        return (parse_time(self.ended_at) - parse_time(start)).total_seconds()


def run_to_item(run: Run) -> dict[str, Any]:
    item: dict[str, Any] = {}
    for f in fields(run):
        value = getattr(run, f.name)
        if value is None or value == () or value == {} or value is False:
            continue
        item[f.name] = _encode(f.name, value)
    return {k: serialize(v) for k, v in item.items()}


def run_from_item(item: Mapping[str, Any]) -> Run:
    raw = {k: deserialize(v) for k, v in item.items()}
    known = {f.name for f in fields(Run)}
    data = {k: v for k, v in raw.items() if k in known}
    attempts = data.get("attempts", [])
    if attempts and "action" in attempts[0]:
        # Recorded before runs had attempts: `attempts` then held the placement tries.
        data["placements"], attempts = attempts, []
    data["placements"] = tuple(PlacementTry(**_ints(p, "attempt")) for p in data.get("placements", []))
    data["attempts"] = tuple(
        Attempt(**_floats(_ints(a, "number", "exit_code", "billed_seconds"), "cost_usd")) for a in attempts
    )
    data["shards"] = tuple(Shard(**_ints(x, "index", "exit_code", "attempts")) for x in data.get("shards", []))
    for name in ("repaired", "upstream", "lineage"):
        data[name] = tuple(data.get(name, []))
    if "command" in data:
        data["command"] = tuple(data["command"])
    for name in ("exit_code", "billed_seconds", "attempt", "shard_count"):
        if name in data:
            data[name] = int(data[name])
    if "cost_usd" in data:
        data["cost_usd"] = float(data["cost_usd"])
    data["usage"] = usage_from_item(data.get("usage"))  # absent on runs recorded before usage existed
    return Run(**data)


def _ints(raw: Mapping[str, Any], *names: str) -> dict[str, Any]:
    return {k: int(v) if k in names and v is not None else v for k, v in raw.items()}


def _floats(raw: Mapping[str, Any], *names: str) -> dict[str, Any]:
    return {k: float(v) if k in names and v is not None else v for k, v in raw.items()}


def _decimal(value: float) -> Any:
    from decimal import Decimal

    return Decimal(str(round(value, 6)))


@dataclass(frozen=True)
class InstanceClaim:
    """The job's reusable instance taken for a new run in the transaction that records it (`~instance#<id>`).

    The claim item usually still names the run that last had the instance, which is the run its tag names
    (`tagged_run`): the claim is taken over from it only if that run has ended, checked in the same transaction.
    """

    instance_id: str
    tagged_run: str | None = None


@dataclass(frozen=True)
class CreateOutcome:
    """What `create_run` did: `created`, `duplicate` (the same trigger seen before), `blocked`, or
    `claim-refused` (nothing written: the instance claim asked for is held, or its holder is not known to have
    ended; the caller records the run without it)."""

    kind: str
    run: Run
    active_run_id: str | None = None


class Ledger:
    """All reads and writes of the run ledger. `dynamodb` is a low-level boto3 client."""

    def __init__(self, dynamodb: Any, table: str, clock: Callable[[], datetime] = utcnow) -> None:
        self.db = dynamodb
        self.table = table
        self.clock = clock

    # ---------------------------------------------------------------- reads
    def get(self, job: str, run_id: str) -> Run | None:
        response = self.db.get_item(TableName=self.table, Key=_key(job, run_id), ConsistentRead=True)
        return run_from_item(response["Item"]) if "Item" in response else None

    def require(self, job: str, run_id: str) -> Run:
        run = self.get(job, run_id)
        if run is None:
            raise TransitionRejected(f"no run {run_id!r} for job {job!r} in ledger table {self.table}")
        return run

    def list_runs(self, job: str, limit: int = 20, statuses: Iterable[str] | None = None) -> list[Run]:
        """Newest first; follows DynamoDB pagination until `limit` runs are found."""
        wanted = set(statuses) if statuses else None
        runs: list[Run] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "#j = :j AND run_id < :meta",
            "ExpressionAttributeNames": {"#j": "job"},
            "ExpressionAttributeValues": {":j": {"S": job}, ":meta": {"S": "~"}},
            "ScanIndexForward": False,
        }
        while len(runs) < limit:
            page = self.db.query(**kwargs)
            for item in page["Items"]:
                run = run_from_item(item)
                if wanted is None or run.status in wanted:
                    runs.append(run)
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return runs[:limit]

    def runs_between(self, job: str, since: datetime, until: datetime) -> list[Run]:
        """Every run whose id (trigger, scheduled or due time) falls in [since, until], oldest first."""
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "#j = :j AND run_id BETWEEN :lo AND :hi",
            "ExpressionAttributeNames": {"#j": "job"},
            "ExpressionAttributeValues": {
                ":j": {"S": job},
                ":lo": {"S": _stamp(since)},
                ":hi": {"S": _stamp(until) + "~"},
            },
        }
        runs: list[Run] = []
        while True:
            page = self.db.query(**kwargs)
            runs.extend(run_from_item(item) for item in page["Items"])
            if "LastEvaluatedKey" not in page:
                return runs
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def active_run_id(self, job: str, slot: str = SLOT_KEY) -> str | None:
        response = self.db.get_item(TableName=self.table, Key=_key(job, slot), ConsistentRead=True)
        return response.get("Item", {}).get("active_run", {}).get("S")

    # ---------------------------------------------------------------- creation
    def create_run(
        self, run: Run, *, exclusive: bool, token: str | None = None, claim: InstanceClaim | None = None
    ) -> CreateOutcome:
        """Record a new run atomically with its idempotency token, (if `exclusive`) the job's slot and (`claim`)
        the job's reusable instance.

        - the same run id or token seen before -> `duplicate`, nothing written;
        - `exclusive` and another live run holds the slot -> the run is recorded SKIPPED -> `blocked`;
        - a slot left behind by a finished run is taken over (its holder died before releasing it);
        - `claim` refused (held by another run, or by one not known to have ended) -> `claim-refused`, nothing written.
        """
        stale: str | None = None
        for _ in range(5):
            items: list[dict[str, Any]] = [
                {"Put": {**self._put(run), "ConditionExpression": "attribute_not_exists(run_id)"}}
            ]
            at: dict[str, int] = {}
            if token:
                at["token"] = len(items)
                items.append({"Put": self._token_put(run, token)})
            if exclusive:
                at["slot"] = len(items)
                items.append({"Update": self._slot_take(run, stale)})
            if claim is not None:
                at["claim"] = len(items)
                items.extend(self._claim_items(run, claim))
            try:
                self.db.transact_write_items(TransactItems=items)
                return CreateOutcome("created", run)
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "TransactionCanceledException":
                    raise
                reasons = [r.get("Code", "None") for r in exc.response.get("CancellationReasons", [])]
            refused = {name for name, i in at.items() if len(reasons) > i and reasons[i] == "ConditionalCheckFailed"}
            if reasons and reasons[0] == "ConditionalCheckFailed":
                return CreateOutcome("duplicate", self.require(run.job, run.run_id))
            if "token" in refused:
                return CreateOutcome("duplicate", self._run_for_token(run.job, token))  # type: ignore[arg-type]
            if "slot" in refused:
                holder = self.active_run_id(run.job)
                holder_run = self.get(run.job, holder) if holder else None
                if holder is None or holder_run is None or holder_run.terminal:
                    stale = holder  # free, or held by a finished run: take it over conditionally
                    continue
                return self._record_blocked(run, holder, token)
            if claim is not None and any(c == "ConditionalCheckFailed" for c in reasons[at["claim"] :]):
                return CreateOutcome("claim-refused", run)
            if "TransactionConflict" in reasons:
                time.sleep(0.05)
                continue
            raise TransitionRejected(f"could not record run {run.run_id}: transaction cancelled ({reasons})")
        raise TransitionRejected(f"could not record run {run.run_id}: the concurrency slot kept changing")

    def _claim_items(self, run: Run, claim: InstanceClaim) -> list[dict[str, Any]]:
        """The instance's claim for `run`: free, or held by the run its tag names, which must have ended."""
        values = {":r": {"S": run.run_id}}
        condition = "attribute_not_exists(active_run)"
        items: list[dict[str, Any]] = []
        if claim.tagged_run and claim.tagged_run != run.run_id:
            condition += " OR active_run = :stale"
            values[":stale"] = {"S": claim.tagged_run}
        update = {
            "TableName": self.table,
            "Key": _key(run.job, INSTANCE_PREFIX + claim.instance_id),
            "UpdateExpression": "SET active_run = :r",
            "ConditionExpression": condition,
            "ExpressionAttributeValues": values,
        }
        items.append({"Update": update})
        if ":stale" in values:
            ended = {f":t{i}": {"S": s} for i, s in enumerate(TERMINAL)}
            check = {
                "TableName": self.table,
                "Key": _key(run.job, claim.tagged_run),  # type: ignore[arg-type]
                "ConditionExpression": "#s IN (" + ", ".join(ended) + ")",
                "ExpressionAttributeNames": {"#s": "status"},
                "ExpressionAttributeValues": ended,
            }
            items.append({"ConditionCheck": check})
        return items

    def _record_blocked(self, run: Run, holder: str, token: str | None) -> CreateOutcome:
        # A run that was to be recorded STARTING on its instance (the reuse path) never got it: none of that stays.
        skipped = replace(
            run,
            status=SKIPPED,
            reason=f"run {holder} active",
            ended_at=iso(self.clock()),
            placements=(),
            log_stream=None,
            start_lease_until=None,
            **{name: None for name in ATTEMPT_FIELDS},
        )
        return self.record_terminal_at_creation(skipped, token=token, kind="blocked", holder=holder)

    def record_terminal_at_creation(
        self, run: Run, *, token: str | None = None, kind: str = "created", holder: str | None = None
    ) -> CreateOutcome:
        """Record a run that ends as soon as it is seen (SKIPPED: missed, or blocked by `holder`).

        The token is stored with it, so a retry with the same token finds this run instead of trying again.
        """
        items = [{"Put": {**self._put(run), "ConditionExpression": "attribute_not_exists(run_id)"}}]
        if token:
            items.append({"Put": self._token_put(run, token)})
        try:
            self.db.transact_write_items(TransactItems=items)
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "TransactionCanceledException":
                raise
            reasons = [r.get("Code", "None") for r in exc.response.get("CancellationReasons", [])]
            if token and len(reasons) > 1 and reasons[1] == "ConditionalCheckFailed":
                return CreateOutcome("duplicate", self._run_for_token(run.job, token))
            return CreateOutcome("duplicate", self.require(run.job, run.run_id))
        return CreateOutcome(kind, run, active_run_id=holder)

    def claim_slot(self, job: str, run_id: str, slot: str = SLOT_KEY) -> str | None:
        """Take a slot (the job's, or an instance's) for an existing run; returns the live holder's run id if
        another run has it. Taking a slot one already holds succeeds, so a retry is harmless."""
        stale: str | None = None
        for _ in range(5):
            try:
                self.db.update_item(TableName=self.table, Key=_key(job, slot), **self._slot_expr(run_id, stale))
                return None
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                    raise
            holder = self.active_run_id(job, slot)
            if holder == run_id:
                return None
            holder_run = self.get(job, holder) if holder else None
            if holder is None or holder_run is None or holder_run.terminal:
                stale = holder
                continue
            return holder
        raise TransitionRejected(f"could not take the slot {slot} of job {job!r}: it kept changing")

    def release_slot(self, job: str, run_id: str) -> None:
        try:
            self.db.update_item(
                TableName=self.table,
                Key=_key(job, SLOT_KEY),
                UpdateExpression="REMOVE active_run",
                ConditionExpression="active_run = :r",
                ExpressionAttributeValues={":r": {"S": run_id}},
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise  # not holding it is fine: `allow` runs never take the slot

    # ---------------------------------------------------------------- transitions
    def transition(self, job: str, run_id: str, status: str, *, attempt: int | None = None, **changes: Any) -> Run:
        """Move a run forward to `status`, setting `changes`; refuses (TransitionRejected) to go back or sideways.

        With `attempt`, only while the run is on that attempt: a writer acting for an attempt that has been
        retried meanwhile (a late agent, a stale deadline timer) changes nothing. Reaching a terminal status
        also sets `ended_at` and frees the concurrency slot.
        """
        if status not in RANK:
            raise ValueError(f"unknown status {status!r}")
        now = iso(self.clock())
        stamp_field = {STARTING: "start_requested_at", RUNNING: "instance_running_at"}.get(status)
        if status in TERMINAL:
            stamp_field = "ended_at"
        if stamp_field and stamp_field not in changes:
            changes[stamp_field] = now
        lower = [s for s, r in RANK.items() if r < RANK[status]]
        if not lower:
            current = self.get(job, run_id)
            raise TransitionRejected(
                f"run {run_id} cannot move to {status}: it is {current.status if current else '?'}"
            )
        condition = "#status IN (" + ", ".join(f":from{i}" for i in range(len(lower))) + ")"
        values: dict[str, Any] = {f":from{i}": s for i, s in enumerate(lower)}
        if attempt is not None:
            condition += " AND " + _attempt_guard(attempt, values)
        run = self._update(
            job,
            run_id,
            {"previous_status": FROM_STATUS, "status": status, **changes},
            condition=condition,
            condition_values=values,
            rejected=f"run {run_id} cannot move to {status}" + (f" for attempt {attempt}" if attempt else ""),
        )
        if status in TERMINAL:
            self.release_slot(job, run_id)
        return run

    def update_fields(
        self, job: str, run_id: str, *, unless_terminal: bool = True, attempt: int | None = None, **changes: Any
    ) -> Run:
        """Set fields without changing status (instance details, digest, placements, cost)."""
        terminal: dict[str, Any] = {f":t{i}": s for i, s in enumerate(TERMINAL)}
        condition = "attribute_exists(run_id)"
        values: dict[str, Any] = {}
        if unless_terminal:
            condition += " AND NOT (#status IN (" + ", ".join(terminal) + "))"
            values.update(terminal)
        if attempt is not None:
            condition += " AND " + _attempt_guard(attempt, values)
        return self._update(
            job,
            run_id,
            changes,
            condition=condition,
            condition_values=values,
            rejected=f"run {run_id} is finished or missing" + (f", or past attempt {attempt}" if attempt else ""),
        )

    def retry(self, run: Run, ended: Attempt, *, retry_at: datetime, reason: str, totals: Mapping[str, Any]) -> Run:
        """End the run's current attempt and make it PENDING for the next, which may start at `retry_at`.

        The one move to a lower status there is, and only from the attempt it ends (`run.attempt`), so
        statuses still only rise within an attempt and attempts only rise. The per-attempt fields are
        cleared; the start lease runs until `retry_at`, so nobody starts the next attempt before then, and
        after it the retry timer or, failing that, the reconciler (which takes over a PENDING run whose lease
        has lapsed) starts it. `totals` are the run's billed seconds and cost so far (all attempts).
        """
        live = [PENDING, STARTING, RUNNING]
        values: dict[str, Any] = {f":l{i}": s for i, s in enumerate(live)}
        condition = "#status IN (" + ", ".join(values) + ") AND " + _attempt_guard(run.attempt, values)
        at = iso(retry_at)
        changes: dict[str, Any] = {
            "previous_status": FROM_STATUS,
            "status": PENDING,
            "attempt": run.attempt + 1,
            "attempts": (*run.attempts, ended),
            "retry_at": at,
            "start_lease_until": at,
            "reason": reason,
            **totals,
            **{name: None for name in ATTEMPT_FIELDS},
        }
        return self._update(
            run.job,
            run.run_id,
            changes,
            condition=condition,
            condition_values=values,
            rejected=f"run {run.run_id}'s attempt {run.attempt} cannot be retried",
        )

    def take_start_lease(self, job: str, run_id: str, *, force: bool = False) -> Run | None:
        """Become the one getting a machine for a PENDING run: None if it is not PENDING or another holds it.

        `force` takes it whatever the lease says (the trigger that has just created the run).
        """
        now = self.clock()
        until = iso(now + timedelta(seconds=START_LEASE_SECONDS))
        condition = "#status = :pending"
        values = {":pending": PENDING}
        if not force:
            condition += " AND (attribute_not_exists(start_lease_until) OR start_lease_until <= :now)"
            values[":now"] = iso(now)
        try:
            return self._update(
                job,
                run_id,
                {"start_lease_until": until},
                condition=condition,
                condition_values=values,
                rejected=f"run {run_id} is not an orphan",
            )
        except TransitionRejected:
            return None

    def retake_start(self, run: Run, **changes: Any) -> Run | None:
        """Become the one repeating the start of a run recorded STARTING before its machine was started (the
        reuse path), whose start EC2 shows was never made: None if the run moved on meanwhile (claimed by its
        agent, ended, retried, given another machine) or another repairer holds its start lease."""
        now = self.clock()
        values: dict[str, Any] = {":starting": STARTING, ":now": iso(now), ":instance": run.instance_id}
        condition = (
            "#status = :starting AND start_lease_until <= :now AND instance_id = :instance"
            " AND attribute_not_exists(instance_running_at) AND " + _attempt_guard(run.attempt, values)
        )
        until = iso(now + timedelta(seconds=START_LEASE_SECONDS))
        try:
            return self._update(
                run.job,
                run.run_id,
                {"start_lease_until": until, **changes},
                condition=condition,
                condition_values=values,
                rejected=f"run {run.run_id}'s start is not to be repeated",
            )
        except TransitionRejected:
            return None

    def claim_notification(self, job: str, run_id: str) -> bool:
        """True for the one publisher of a run's notification (until it is published or its claim lapses)."""
        now = self.clock()
        try:
            self._update(
                job,
                run_id,
                {"notify_claim_until": iso(now + timedelta(seconds=NOTIFY_CLAIM_SECONDS))},
                condition="attribute_not_exists(notified_at) AND "
                "(attribute_not_exists(notify_claim_until) OR notify_claim_until < :now)",
                condition_values={":now": iso(now)},
                rejected=f"run {run_id}'s notification is taken",
            )
        except TransitionRejected:
            return False
        return True

    def withdraw_planned(self, job: str, run_id: str) -> Run | None:
        """Delete a run that is still PLANNED (its timer could not be queued); returns the run if it went on.

        Conditional on PLANNED, so a run its timer has already started is never deleted; a retry of a delete
        AWS applied finds nothing, which is the same success.
        """
        try:
            self.db.delete_item(
                TableName=self.table,
                Key=_key(job, run_id),
                ConditionExpression="#s = :planned",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={":planned": {"S": PLANNED}},
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            return self.get(job, run_id)
        return None

    def note_repair(self, run: Run, what: str) -> Run:
        """Record on the run what the reconciler did to it (`ec2batch runs --json` shows it)."""
        return self.update_fields(run.job, run.run_id, unless_terminal=False, repaired=(*run.repaired, what))

    def _update(
        self,
        job: str,
        run_id: str,
        changes: Mapping[str, Any],
        *,
        condition: str,
        condition_values: Mapping[str, Any],
        rejected: str,
    ) -> Run:
        """One conditional UpdateItem, idempotent under retry.

        UpdateItem has no idempotency token: if AWS applied our write and the response was lost, botocore's
        retry fails our own condition. So each write carries a fresh writer token, and a condition failure is
        read back: the item carrying our token means the write was ours and it succeeded.
        """
        writer = _random.token_hex(8)
        changes = {**changes, "updated_at": iso(self.clock()), "writer": writer}
        names = {"#status": "status", "#attempt": "attempt"}
        values: dict[str, Any] = {k: serialize(v) for k, v in condition_values.items()}
        sets, removes = [], []
        for i, (name, value) in enumerate(changes.items()):
            names[f"#f{i}"] = name
            if value is None:
                removes.append(f"#f{i}")
                continue
            if value is FROM_STATUS:
                # Every operand of an update expression reads the item as it was before the update.
                sets.append(f"#f{i} = #status")
                continue
            values[f":v{i}"] = serialize(_encode(name, value))
            sets.append(f"#f{i} = :v{i}")
        expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
        for unused in [n for n in ("#status", "#attempt") if n not in condition + expression]:
            del names[unused]  # DynamoDB rejects names the expressions do not use
        try:
            response = self.db.update_item(
                TableName=self.table,
                Key=_key(job, run_id),
                UpdateExpression=expression,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            item = self.db.get_item(TableName=self.table, Key=_key(job, run_id), ConsistentRead=True).get("Item")
            if item is not None and item.get("writer", {}).get("S") == writer:
                return run_from_item(item)  # our own write, applied before its response was lost
            current = run_from_item(item) if item else None
            state = f"it is {current.status}" if current else "it does not exist"
            raise TransitionRejected(f"{rejected}: {state}", current) from exc
        return run_from_item(response["Attributes"])

    # ---------------------------------------------------------------- helpers
    def _put(self, run: Run) -> dict[str, Any]:
        return {"TableName": self.table, "Item": run_to_item(run)}

    def _token_put(self, run: Run, token: str) -> dict[str, Any]:
        expires = int(self.clock().timestamp()) + TOKEN_TTL_SECONDS
        return {
            "TableName": self.table,
            "Item": {
                "job": {"S": run.job},
                "run_id": {"S": token_key(token)},
                "target_run": {"S": run.run_id},
                "expires_at": {"N": str(expires)},
            },
            "ConditionExpression": "attribute_not_exists(run_id)",
        }

    def _slot_take(self, run: Run, stale: str | None) -> dict[str, Any]:
        return {"TableName": self.table, "Key": _key(run.job, SLOT_KEY), **self._slot_expr(run.run_id, stale)}

    @staticmethod
    def _slot_expr(run_id: str, stale: str | None) -> dict[str, Any]:
        values = {":r": {"S": run_id}}
        condition = "attribute_not_exists(active_run)"
        if stale:
            condition = "active_run = :stale"
            values[":stale"] = {"S": stale}
        return {
            "UpdateExpression": "SET active_run = :r",
            "ConditionExpression": condition,
            "ExpressionAttributeValues": values,
        }

    def _run_for_token(self, job: str, token: str) -> Run:
        response = self.db.get_item(TableName=self.table, Key=_key(job, token_key(token)), ConsistentRead=True)
        target = response["Item"]["target_run"]["S"]
        return self.require(job, target)


# In a write's changes: "the status the item has before this write" (Ledger._update copies it in the same write).
FROM_STATUS: Any = object()

# What belongs to one attempt: cleared when the run moves on to the next.
ATTEMPT_FIELDS = (
    "instance_id",
    "instance_type",
    "subnet_id",
    "market",
    "start_requested_at",
    "instance_running_at",
    "container_started_at",
    "exit_code",
    "cause",
    "deadline_at",
    "deadline_timer_for",
)


def _attempt_guard(attempt: int, values: dict[str, Any]) -> str:
    """The condition "the run is on attempt `attempt`"; a run recorded before attempts existed is on its first."""
    values[":attempt"] = attempt
    if attempt == 1:
        return "(attribute_not_exists(#attempt) OR #attempt = :attempt)"
    return "#attempt = :attempt"


def _key(job: str, run_id: str) -> dict[str, Any]:
    return {"job": {"S": job}, "run_id": {"S": run_id}}


def _encode(name: str, value: Any) -> Any:
    if name in ("attempts", "placements", "shards"):
        # Their own fields are plain values (Shard.attempts is a count, not a list): only floats need care.
        return [
            {k: _decimal(v) if isinstance(v, float) else v for k, v in a.__dict__.items() if v is not None}
            for a in value
        ]
    if name == "usage" and isinstance(value, Usage):
        return {k: _decimal(v) if isinstance(v, float) else v for k, v in value.as_item().items()}
    if name in ("command", "repaired", "upstream", "lineage") and value is not None:
        return list(value)
    if isinstance(value, float):
        return _decimal(value)
    return value


# The table's stream, from which the launcher publishes run events (ec2batch.run_events): every write's item
# before and after, so a status change and the status it left are both in the record. Terraform's
# aws_dynamodb_table sets the same (stream_enabled, stream_view_type; tests/terraform/test_parity.py compares).
STREAM_SPECIFICATION = {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}


def table_definition(table: str) -> dict[str, Any]:
    """CreateTable arguments; Terraform's aws_dynamodb_table in the module mirrors these."""
    return {
        "StreamSpecification": dict(STREAM_SPECIFICATION),
        "TableName": table,
        "KeySchema": [{"AttributeName": "job", "KeyType": "HASH"}, {"AttributeName": "run_id", "KeyType": "RANGE"}],
        "AttributeDefinitions": [
            {"AttributeName": "job", "AttributeType": "S"},
            {"AttributeName": "run_id", "AttributeType": "S"},
        ],
        "BillingMode": "PAY_PER_REQUEST",
    }
