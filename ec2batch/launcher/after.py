"""A downstream job's launcher, told that a run of one of its upstream jobs ended (`after` in its config).

How it decides, precisely (docs/events.md "Jobs that run after other jobs"):
1. The ending is recorded as that upstream's **arrival**, an item `~after#<upstream job>` in the downstream's own
   ledger: the upstream run, its status, whether that status is the one `after` asks for, its lineage. A newer
   upstream run replaces an older one (run ids sort by time); an older or repeated one changes nothing.
2. The downstream runs when every upstream's arrival matches and none has been consumed: that is, each upstream
   job's latest chained run since the downstream's last `after` run ended with the wanted status.
3. The run's id derives from the upstream runs it follows (`new_run_id("after", <latest end>, <their ids>)`), so
   a duplicate event, or two upstream events racing, find the same run and start nothing twice. Once recorded,
   the arrivals it used are marked consumed by it.
An upstream run that ends otherwise (FAILED, TIMED_OUT, CANCELLED where SUCCEEDED is wanted) replaces the arrival
with a non-matching one: the chain stops there until that upstream has a matching run (a rerun with
`run-now --with-downstream`, or its next schedule). The failure is notified once, by the upstream job's own
notification; the downstream records nothing and sends nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from ..config import JobConfig
from ..jsonlog import fields
from ..ledger import PENDING, Ledger, Run, iso, new_run_id, parse_time
from .events import UpstreamEnded

log = logging.getLogger(__name__)

ARRIVAL_PREFIX = "~after#"


@dataclass(frozen=True)
class Arrival:
    """An upstream job's latest chained run ending, as the downstream's ledger holds it."""

    upstream_job: str
    run_id: str
    status: str
    ended_at: str
    matched: bool
    lineage: tuple[str, ...] = ()
    consumed_by: str | None = None

    @property
    def ref(self) -> str:
        return f"{self.upstream_job}/{self.run_id}"


@dataclass(frozen=True)
class Decision:
    """What the arrivals say: `run` to record, or why the downstream waits (`waiting`)."""

    run: Run | None
    used: tuple[Arrival, ...] = ()
    waiting: str | None = None


def refusal(config: JobConfig, ended: UpstreamEnded) -> str | None:
    """Why this ending starts nothing here at all, or None: it is for another job's rule, or it closes a cycle."""
    if ended.upstream_job not in {a.job for a in config.after}:
        return f"{ended.upstream_job} is not in {config.job}'s after list (the rule is older than the config?)"
    if not ended.chained:
        return f"run {ended.run_id} of {ended.upstream_job} does not chain (run-now without --with-downstream)"
    if config.job == ended.upstream_job or config.job in ended.lineage:
        path = " -> ".join((*ended.lineage, ended.upstream_job, config.job))
        return f"cycle: {path}; fix the jobs' after lists (ec2batch graph names the cycle)"
    return None


def record_arrival(ledger: Ledger, config: JobConfig, ended: UpstreamEnded) -> bool:
    """Record the ending as its upstream's arrival, unless a newer (or the same) one is there; True if recorded."""
    wanted = {a.job: a.status for a in config.after}[ended.upstream_job]
    item = {
        "job": {"S": config.job},
        "run_id": {"S": ARRIVAL_PREFIX + ended.upstream_job},
        "upstream_run": {"S": ended.run_id},
        "status": {"S": ended.status},
        "ended_at": {"S": ended.ended_at},
        "matched": {"BOOL": ended.status == wanted},
        "lineage": {"L": [{"S": j} for j in ended.lineage]},
    }
    try:
        # A whole new item: an earlier arrival's `consumed_by` goes with it.
        ledger.db.put_item(
            TableName=ledger.table,
            Item=item,
            ConditionExpression="attribute_not_exists(upstream_run) OR upstream_run < :r",
            ExpressionAttributeValues={":r": {"S": ended.run_id}},
        )
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
            raise
        return False
    return True


def arrivals(ledger: Ledger, job: str) -> dict[str, Arrival]:
    """Every upstream's arrival, by upstream job (one Query: they share the job's partition)."""
    response = ledger.db.query(
        TableName=ledger.table,
        KeyConditionExpression="#j = :j AND begins_with(run_id, :p)",
        ExpressionAttributeNames={"#j": "job"},
        ExpressionAttributeValues={":j": {"S": job}, ":p": {"S": ARRIVAL_PREFIX}},
        ConsistentRead=True,
    )
    found = {}
    for item in response["Items"]:
        arrival = _arrival(item)
        found[arrival.upstream_job] = arrival
    return found


def _arrival(item: Mapping[str, Any]) -> Arrival:
    return Arrival(
        upstream_job=item["run_id"]["S"][len(ARRIVAL_PREFIX) :],
        run_id=item["upstream_run"]["S"],
        status=item["status"]["S"],
        ended_at=item["ended_at"]["S"],
        matched=item["matched"]["BOOL"],
        lineage=tuple(x["S"] for x in item.get("lineage", {}).get("L", [])),
        consumed_by=item.get("consumed_by", {}).get("S"),
    )


def decide(config: JobConfig, found: Mapping[str, Arrival], now: datetime, lease_until: str) -> Decision:
    """Rule 2 above: every upstream's arrival matches and is unconsumed -> the run those arrivals make."""
    used = []
    for spec in config.after:
        arrival = found.get(spec.job)
        if arrival is None or arrival.consumed_by:
            return Decision(None, waiting=f"waiting for a run of {spec.job} ({spec.status})")
        if not arrival.matched:
            return Decision(
                None,
                waiting=f"{spec.job}'s last run {arrival.run_id} ended {arrival.status}, not {spec.status}: "
                "the chain stops until it has one that does",
            )
        used.append(arrival)
    upstream = tuple(sorted(a.ref for a in used))
    latest = max(parse_time(a.ended_at) for a in used)
    lineage = sorted({j for a in used for j in (*a.lineage, a.upstream_job)})
    run = Run(
        job=config.job,
        run_id=new_run_id("after", latest, token="\n".join(upstream)),
        status=PENDING,
        trigger="after",
        triggered_at=iso(now),
        upstream=upstream,
        lineage=tuple(lineage),
        start_lease_until=lease_until,
    )
    return Decision(run, used=tuple(used))


def consume(ledger: Ledger, job: str, used: tuple[Arrival, ...], run_id: str) -> None:
    """Mark the arrivals a run used as its own; one replaced meanwhile by a newer run stays for the next."""
    for arrival in used:
        try:
            ledger.db.update_item(
                TableName=ledger.table,
                Key={"job": {"S": job}, "run_id": {"S": ARRIVAL_PREFIX + arrival.upstream_job}},
                UpdateExpression="SET consumed_by = :run",
                ConditionExpression="upstream_run = :r",
                ExpressionAttributeValues={":run": {"S": run_id}, ":r": {"S": arrival.run_id}},
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            log.info(
                "a newer upstream run arrived meanwhile: kept for the next run",
                extra=fields(job=job, upstream=arrival.ref, run_id=run_id),
            )
