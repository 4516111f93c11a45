"""A run of N shards: one AWS Batch array job, submitted once, followed until every child has ended.

ec2batch keeps what it does for every run (the trigger's semantics, the ledger, deadlines, cost, the CLI)
and hands the fan-out to AWS Batch, which runs arrays of 2 to 10,000 children with scale-to-zero capacity,
Spot and per-attempt retries (docs/shards.md). Here:
- `submit`: SubmitJob has no client token, so a retried trigger must not submit twice some other way: the
  run's start lease makes one launcher at a time the submitter, and it first looks for the array job by its
  name (the run id, which is unique per run) in the job's queue; only if there is none does it submit.
- `refresh`: DescribeJobs of the parent and its children (ids `<parent>:<index>`, 100 per call), from the
  reconciler's tick and from Batch's state change events; the run is RUNNING once a child runs, and ends
  when every child has: SUCCEEDED if all did, FAILED naming the failed shards otherwise.
- `terminate`: cancel and the external deadline end the array job (its children with it).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from . import attempts
from .aws import Clients
from .batch import SHARD_SHIM
from .config import JobConfig
from .cost import PriceError, PriceTable
from .errors import TransitionRejected, describe_error
from .jsonlog import fields
from .ledger import FAILED, RUNNING, STARTING, SUCCEEDED, Ledger, Run, Shard, iso
from .names import TAG_JOB, TAG_RUN_ID
from .notify import notify

log = logging.getLogger(__name__)

DESCRIBE_CHUNK = 100  # DescribeJobs takes at most 100 ids
MAX_SHARD_RECORDS = 1000  # per-shard records kept on the run (a DynamoDB item holds 400 KB); beyond: counts
ENDED = ("SUCCEEDED", "FAILED")
STARTED = ("STARTING", "RUNNING", *ENDED)
# Batch runs its compute environment's capacity in waves: with more shards than fit at once, the run's
# external deadline allows one max runtime per wave.
START_FAILURE = "start-failure"


def batch_job_name(run_id: str) -> str:
    """The array job's name: the run id, in Batch's alphabet (letters, digits, hyphens, underscores)."""
    return run_id.replace(".", "_")


def run_id_of(batch_job_name_: str) -> str:
    return batch_job_name_.replace("_", ".")  # run ids have no underscores: the mapping is one to one


def waves(config: JobConfig) -> int:
    """How many rounds of shards the compute environment's vCPUs take (1 when all fit at once)."""
    at_once = max(1, int(config.batch.max_vcpus // max(config.batch.vcpus, 0.25)))
    return -(-config.shards // at_once)


def deadline_for(config: JobConfig, submitted: datetime) -> datetime:
    runtime = config.max_runtime_seconds * waves(config) + config.stop_grace_seconds
    return submitted + timedelta(seconds=runtime + config.deadline_slack_seconds)


# ---------------------------------------------------------------- submit
def submit(clients: Clients, config: JobConfig, ledger: Ledger, run: Run, now: datetime) -> Run:
    """Submit the run's array job (once) and record it STARTING; a refusal ends the attempt (start-failure)."""
    name = batch_job_name(run.run_id)
    try:
        job_id = find_array_job(clients, config, name) or _submit(clients, config, run, name)
    except ClientError as exc:
        return attempts.end_attempt(
            clients,
            config,
            ledger,
            run,
            status=FAILED,
            cause=START_FAILURE,
            reason=f"could not submit the array job to {config.names.batch_job_queue}: {describe_error(exc)}",
            ended_at=now,
        )
    try:
        return ledger.transition(
            run.job,
            run.run_id,
            STARTING,
            attempt=run.attempt,
            batch_job_id=job_id,
            shard_count=config.shards,
            start_requested_at=iso(now),
            deadline_at=iso(deadline_for(config, now)),
            retry_at=None,
        )
    except TransitionRejected as exc:
        current = exc.current if isinstance(exc.current, Run) else ledger.require(run.job, run.run_id)
        if current.terminal:  # cancelled while we submitted: the array job must not run
            terminate(clients, job_id, f"run {run.run_id} {current.status} while it was submitted")
        raise


def find_array_job(clients: Clients, config: JobConfig, name: str) -> str | None:
    """The array job already submitted for this run (a retried trigger, a launcher that died after SubmitJob)."""
    pages = clients.batch.get_paginator("list_jobs").paginate(
        jobQueue=config.names.batch_job_queue, filters=[{"name": "JOB_NAME", "values": [name]}]
    )
    for page in pages:
        for summary in page.get("jobSummaryList", []):
            if summary.get("jobName") == name and ":" not in summary["jobId"]:  # the parent, not a child
                return str(summary["jobId"])
    return None


def _submit(clients: Clients, config: JobConfig, run: Run, name: str) -> str:
    environment = {
        **run.env,
        "EC2BATCH_JOB": run.job,
        "EC2BATCH_RUN_ID": run.run_id,
        "EC2BATCH_TRIGGER": run.trigger,
        "EC2BATCH_SHARD_COUNT": str(config.shards),
    }
    if run.scheduled_at:
        environment["EC2BATCH_SCHEDULED_TIME"] = run.scheduled_at
    overrides: dict[str, Any] = {"environment": [{"name": k, "value": v} for k, v in sorted(environment.items())]}
    if run.command:  # wrapped like the job definition's command, so each child still learns its index
        overrides["command"] = [*SHARD_SHIM, *run.command]
    response = clients.batch.submit_job(
        jobName=name,
        jobQueue=config.names.batch_job_queue,
        jobDefinition=config.names.batch_job_definition,
        arrayProperties={"size": config.shards},
        containerOverrides=overrides,
        tags={TAG_JOB: run.job, TAG_RUN_ID: run.run_id},
        propagateTags=True,
    )
    log.info(
        "array job submitted",
        extra=fields(job=run.job, run_id=run.run_id, batch_job_id=response["jobId"], shards=config.shards),
    )
    return str(response["jobId"])


def terminate(clients: Clients, job_id: str, reason: str) -> None:
    """End the array job: Batch terminates its children with it. Idempotent (an ended job stays ended)."""
    try:
        clients.batch.terminate_job(jobId=job_id, reason=reason[:256])
    except ClientError as exc:
        log.warning("could not terminate the array job", extra=fields(batch_job_id=job_id, error=describe_error(exc)))
        raise
    log.info("array job terminated", extra=fields(batch_job_id=job_id, reason=reason))


# ---------------------------------------------------------------- follow
def refresh(clients: Clients, config: JobConfig, ledger: Ledger, run: Run, now: datetime) -> Run:
    """Bring a STARTING/RUNNING sharded run up to date with Batch; ends it when every shard has ended."""
    assert run.batch_job_id
    shards = describe_shards(clients, run.batch_job_id, run.shard_count or config.shards)
    total = run.shard_count or config.shards
    if len(shards) < min(total, MAX_SHARD_RECORDS):
        return run  # children not all known yet (just submitted): the next event or tick looks again
    ended = [s for s in shards if s.status in ENDED]
    if len(ended) == len(shards):
        return _finish(clients, config, ledger, run, shards, now)
    changes: dict[str, Any] = {"shards": shards}
    started = sorted(s.started_at for s in shards if s.started_at)
    if run.status == STARTING and started:
        return ledger.transition(
            run.job, run.run_id, RUNNING, attempt=run.attempt, instance_running_at=started[0], **changes
        )
    if shards != run.shards:
        return ledger.update_fields(run.job, run.run_id, attempt=run.attempt, **changes)
    return run


def describe_shards(clients: Clients, parent: str, count: int) -> tuple[Shard, ...]:
    ids = [f"{parent}:{i}" for i in range(min(count, MAX_SHARD_RECORDS))]
    found: list[Shard] = []
    for start in range(0, len(ids), DESCRIBE_CHUNK):
        response = clients.batch.describe_jobs(jobs=ids[start : start + DESCRIBE_CHUNK])
        found.extend(_shard(job) for job in response.get("jobs", []))
    if any(s.status == "FAILED" and s.exit_code is None for s in found):
        found = _with_failed_exit_codes(clients, parent, found)
    return tuple(sorted(found, key=lambda s: s.index))


def _with_failed_exit_codes(clients: Clients, parent: str, found: list[Shard]) -> list[Shard]:
    """ListJobs' summaries carry a failed child's exit code where DescribeJobs may not (moto's never does)."""
    codes: dict[str, int] = {}
    pages = clients.batch.get_paginator("list_jobs").paginate(arrayJobId=parent, jobStatus="FAILED")
    for page in pages:
        for summary in page.get("jobSummaryList", []):
            code = (summary.get("container") or {}).get("exitCode")
            if code is not None:
                codes[str(summary["jobId"]).rsplit(":", 1)[-1]] = int(code)
    return [
        replace(s, exit_code=codes.get(str(s.index))) if s.status == "FAILED" and s.exit_code is None else s
        for s in found
    ]


def _shard(job: dict[str, Any]) -> Shard:
    container = job.get("container") or {}
    tries = job.get("attempts") or []
    last = tries[-1].get("container", {}) if tries else {}
    exit_code = container.get("exitCode", last.get("exitCode"))
    return Shard(
        index=int((job.get("arrayProperties") or {}).get("index", str(job["jobId"]).rsplit(":", 1)[-1])),
        status=str(job["status"]),
        exit_code=int(exit_code) if exit_code is not None else None,
        attempts=len(tries) or None,
        started_at=_stamp(job.get("startedAt")),
        stopped_at=_stamp(job.get("stoppedAt")),
        log_stream=container.get("logStreamName") or last.get("logStreamName"),
        reason=job.get("statusReason") or container.get("reason"),
    )


def _stamp(millis: Any) -> str | None:
    return iso(datetime.fromtimestamp(int(millis) / 1000, UTC)) if millis else None


def _finish(
    clients: Clients, config: JobConfig, ledger: Ledger, run: Run, shards: tuple[Shard, ...], now: datetime
) -> Run:
    failed = [s for s in shards if s.status == FAILED]
    status = FAILED if failed else SUCCEEDED
    reason = failure_reason(failed, len(shards)) if failed else None
    stops = [s.stopped_at for s in shards if s.stopped_at]
    estimate = estimate_cost(config, shards, clients.region)
    changes: dict[str, Any] = {"shards": shards, "ended_at": max(stops) if stops else iso(now)}
    if estimate is not None:
        changes["cost_usd"] = estimate
    if failed:
        changes["exit_code"] = failed[0].exit_code
    ended = ledger.transition(run.job, run.run_id, status, attempt=run.attempt, reason=reason, **changes)
    log.info(
        "sharded run ended",
        extra=fields(job=run.job, run_id=run.run_id, status=status, failed=[s.index for s in failed]),
    )
    notify(clients.sns, config, ended, ledger)
    return ended


def failure_reason(failed: Iterable[Shard], total: int) -> str:
    failed = list(failed)
    shown = ", ".join(f"{s.index} (exit {s.exit_code if s.exit_code is not None else '?'})" for s in failed[:20])
    more = f" and {len(failed) - 20} more" if len(failed) > 20 else ""
    return f"{len(failed)} of {total} shards failed: {shown}{more}"


def summary(run: Run) -> str:
    """`12/16 succeeded` (and how many failed or run), for `runs`."""
    total = run.shard_count or len(run.shards)
    done = sum(1 for s in run.shards if s.status == SUCCEEDED)
    failed = sum(1 for s in run.shards if s.status == FAILED)
    running = sum(1 for s in run.shards if s.status == "RUNNING")
    text = f"{done}/{total} succeeded"
    if failed:
        text += f", {failed} failed"
    if running:
        text += f", {running} running"
    return text


# ---------------------------------------------------------------- cost
# Fargate's Linux/x86 prices, us-east-1 (per vCPU-hour, per GB-hour), 2026-11: a default like the price table's.
FARGATE_VCPU_HOUR = 0.04048
FARGATE_GB_HOUR = 0.004445


def estimate_cost(
    config: JobConfig, shards: Iterable[Shard], region: str, prices: PriceTable | None = None
) -> float | None:
    """An estimate: Batch does not report what a child cost. Per shard: its running time at its share of an
    instance (vCPUs of the first configured type) or at Fargate's rates. None if no price is known."""
    seconds = sum(s.duration_seconds() or 0.0 for s in shards)
    hourly = _shard_hourly(config, region, prices or PriceTable.load())
    return round(seconds / 3600 * hourly, 6) if hourly is not None else None


def _shard_hourly(config: JobConfig, region: str, prices: PriceTable) -> float | None:
    if config.batch.compute == "fargate":
        return config.batch.vcpus * FARGATE_VCPU_HOUR + config.batch.memory_mb / 1024 * FARGATE_GB_HOUR
    if not config.instance_types:
        return None
    instance_type = config.instance_types[0]
    market = "spot" if config.market != "on-demand" else "on-demand"
    try:
        hourly = prices.hourly(region, instance_type, market)
    except PriceError:
        return None
    return hourly * config.batch.vcpus / vcpus_of(instance_type)


def vcpus_of(instance_type: str) -> int:
    """vCPUs from the size in the type's name (large 2, xlarge 4, 2xlarge 8, ...): enough for an estimate."""
    size = instance_type.split(".", 1)[-1]
    named = {"nano": 2, "micro": 2, "small": 2, "medium": 2, "large": 2, "xlarge": 4, "metal": 96}
    if size in named:
        return named[size]
    if size.endswith("xlarge") and size[: -len("xlarge")].isdigit():
        return 4 * int(size[: -len("xlarge")])
    return 2
