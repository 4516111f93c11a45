"""How an attempt of a run ends, and whether the run gets another: the one place every writer goes through.

An attempt ends in one of four places: the agent (the job's outcome, a Spot interruption), the launcher (no
machine could be had), the deadline timer, or the reconciler (the machine was lost, the agent never came up,
an outcome left on the instance's tag). Each calls `end_attempt`, which asks the job's retry policy:
- another attempt: the run goes back to PENDING for attempt n+1 (`Ledger.retry`), its start lease held
  until the backoff is over, and a delayed `retry` timer is sent to start it then; the reconciler starts it
  if the timer is lost (a PENDING run whose lease has lapsed). No notification: the run has not ended.
- no more: the run ends with the attempt's status (INTERRUPTED ends the run FAILED), the reason says why
  it was not retried, and it is notified once.
Both writes are conditional on the attempt, so a writer that is late for an attempt (two of the above
racing, a redelivered timer) changes nothing, and a write AWS applied whose answer was lost is recognised.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from . import timers
from .aws import Clients
from .config import JobConfig
from .errors import TransitionRejected
from .jsonlog import fields
from .ledger import FAILED, INTERRUPTED, SUCCEEDED, TIMED_OUT, Attempt, Ledger, Run, iso, parse_time
from .notify import notify
from .usage import Usage

log = logging.getLogger(__name__)

EXIT_CODE, TIMEOUT = "exit-code", "timeout"  # causes that are not infrastructure (config.RETRY_CAUSES)
INTERRUPTION = "interruption"  # one that is: EC2 took the Spot instance back


@dataclass(frozen=True)
class Verdict:
    """The policy's answer for an ended attempt: retry at `retry_at`, or not (`why` says which and why)."""

    retry_at: datetime | None
    why: str


def decide(
    config: JobConfig, run: Run, *, status: str, cause: str | None, exit_code: int | None, now: datetime
) -> Verdict:
    policy = config.retry
    number = run.attempt
    if status == SUCCEEDED:
        return Verdict(None, "succeeded")
    if cause is None or cause == TIMEOUT or status == TIMED_OUT:
        return Verdict(
            None, "not retried: " + ("a timeout is never retried" if status == TIMED_OUT else "not a retry cause")
        )
    if cause == EXIT_CODE:
        if not policy.retries_exit_code(exit_code):
            return Verdict(None, f"not retried: exit code {exit_code} is not in retry.exit_codes")
    elif cause not in policy.on:
        return Verdict(None, f"not retried: {cause} is not in retry.on")
    if number >= policy.attempts:
        return Verdict(None, f"no attempts left ({number} of {policy.attempts})")
    retry_at = now + timedelta(seconds=policy.delay_before(number + 1))
    start_by = starting_deadline(config, run)
    if retry_at > start_by:
        return Verdict(
            None,
            f"not retried: attempt {number + 1} would start at {iso(retry_at)}, after the run's starting deadline "
            f"{iso(start_by)} (starting_deadline_seconds {config.starting_deadline_seconds})",
        )
    return Verdict(retry_at, f"attempt {number + 1} of {policy.attempts} at {iso(retry_at)}")


def cause_of(status: str, exit_code: int | None) -> str | None:
    """The cause of an attempt the job itself ended: its exit code, or its max runtime."""
    if status == TIMED_OUT:
        return TIMEOUT
    if status == FAILED and exit_code not in (None, 0):
        return EXIT_CODE
    return None


def starting_deadline(config: JobConfig, run: Run) -> datetime:
    """No attempt starts after this: its scheduled (or trigger) time + starting_deadline_seconds."""
    anchor = parse_time(run.scheduled_at or run.triggered_at)
    return anchor + timedelta(seconds=config.starting_deadline_seconds)


def end_attempt(
    clients: Clients,
    config: JobConfig,
    ledger: Ledger,
    run: Run,
    *,
    status: str,
    cause: str | None,
    reason: str | None,
    ended_at: datetime,
    exit_code: int | None = None,
    cost: dict[str, Any] | None = None,
    usage: Usage | None = None,
    note: str | None = None,
    now: datetime | None = None,
    send_timer: bool = True,
    publish: bool = True,
) -> Run:
    """End `run`'s current attempt as `status` (a run status, or INTERRUPTED); retry or end the run.

    `cost` is this attempt's billed seconds and cost (`cost.run_cost`); the run's totals add them up.
    Returns the run as recorded. Raises TransitionRejected if the attempt was ended by someone else.
    """
    verdict = decide(config, run, status=status, cause=cause, exit_code=exit_code, now=now or ended_at)
    cost = cost or {}
    run_totals = totals(run, cost)
    if usage is not None:  # the run keeps the usage of its last attempt that measured one (ec2batch.usage)
        run_totals["usage"] = usage
    repaired = {"repaired": (*run.repaired, note)} if note else {}
    if verdict.retry_at is not None:
        ended = _ended_attempt(run, status, cause, reason, ended_at, exit_code, cost)
        try:
            retried = ledger.retry(
                run,
                ended,
                retry_at=verdict.retry_at,
                reason=f"attempt {run.attempt} {status} ({reason or cause}); {verdict.why}",
                totals={**run_totals, **repaired},
            )
        except TransitionRejected:
            retried = _ours(ledger, run, ended_at)
        log.warning(
            "attempt ended: retrying",
            extra=fields(
                job=run.job,
                run_id=run.run_id,
                attempt=run.attempt,
                status=status,
                cause=cause,
                retry_at=iso(verdict.retry_at),
            ),
        )
        if send_timer:
            send_retry_timer(clients, retried, now or ended_at)
        return retried
    final_status = FAILED if status == INTERRUPTED else status
    if status != SUCCEEDED and config.retry.attempts > 1:  # say why a run that could retry did not
        reason = f"{reason}; {verdict.why}" if reason else verdict.why
    changes: dict[str, Any] = {"reason": reason, "cause": cause, "ended_at": iso(ended_at), **run_totals, **repaired}
    if exit_code is not None:
        changes["exit_code"] = exit_code
    try:
        final = ledger.transition(run.job, run.run_id, final_status, attempt=run.attempt, **changes)
    except TransitionRejected:
        final = _ours(ledger, run, ended_at)
    log.info(
        "run ended",
        extra=fields(job=run.job, run_id=run.run_id, status=final.status, attempt=run.attempt, reason=final.reason),
    )
    if publish:
        notify(clients.sns, config, final, ledger)
    return final


def _ended_attempt(
    run: Run,
    status: str,
    cause: str | None,
    reason: str | None,
    ended_at: datetime,
    exit_code: int | None,
    cost: dict[str, Any],
) -> Attempt:
    current = run.current_attempt()
    return Attempt(
        **{
            **current.__dict__,
            "status": status,
            "cause": cause,
            "reason": reason,
            "ended_at": iso(ended_at),
            "exit_code": exit_code,
            "billed_seconds": cost.get("billed_seconds"),
            "cost_usd": cost.get("cost_usd"),
        }
    )


def totals(run: Run, cost: dict[str, Any]) -> dict[str, Any]:
    """The run's billed seconds and cost: its ended attempts' and this one's."""
    totals: dict[str, Any] = {}
    seconds = [a.billed_seconds for a in run.attempts if a.billed_seconds is not None]
    costs = [a.cost_usd for a in run.attempts if a.cost_usd is not None]
    if "billed_seconds" in cost:
        seconds.append(cost["billed_seconds"])
    if "cost_usd" in cost:
        costs.append(cost["cost_usd"])
    if seconds:
        totals["billed_seconds"] = sum(seconds)
    if costs:
        totals["cost_usd"] = round(sum(costs), 6)
    return totals


def _ours(ledger: Ledger, run: Run, ended_at: datetime) -> Run:
    """The conditional write was refused: ours if an earlier try of it was applied and its answer lost."""
    current = ledger.require(run.job, run.run_id)
    stamp = iso(ended_at)
    if current.terminal and current.attempt == run.attempt and current.ended_at == stamp:
        return current
    if any(a.number == run.attempt and a.ended_at == stamp for a in current.attempts):
        return current
    raise TransitionRejected(
        f"run {run.run_id}'s attempt {run.attempt} was ended by someone else: it is {current.status}, "
        f"attempt {current.attempt}",
        current,
    )


def send_retry_timer(clients: Clients, run: Run, now: datetime) -> None:
    """The delayed message that starts the next attempt; if it cannot be sent the reconciler starts it."""
    if not run.retry_at:
        return
    try:
        timers.send(clients, timers.Timer(run.job, run.run_id, timers.RETRY, parse_time(run.retry_at)), now)
    except Exception as exc:
        log.warning(
            "retry timer not sent: the reconciler starts the next attempt instead",
            extra=fields(job=run.job, run_id=run.run_id, error=str(exc)),
        )
