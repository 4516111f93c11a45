"""How the launcher's side ends a run it finds under way, from what the run's machine shows.

The deadline timer and the reconciler look at the same evidence and must reach the same verdict:
- the instance carries the run's outcome (`ec2batch:outcome`, left by an agent that could not reach the ledger):
  that outcome is recorded, never overwritten by a timeout;
- the instance is down or gone and no outcome was recorded: the attempt ended `interruption` (EC2 reclaimed
  its Spot capacity), `agent-lost` (the machine shut itself down: its agent failed) or `instance-lost`, and
  the retry policy decides between another attempt and FAILED;
- otherwise, at the deadline, the run TIMED_OUT and its machine is stopped from outside.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from .. import attempts
from ..aws import Clients
from ..config import JobConfig
from ..cost import run_cost
from ..jsonlog import fields
from ..ledger import FAILED, Ledger, Run, parse_time
from ..names import TAG_OUTCOME, TAG_RUN_ID
from ..outcome_tag import OutcomeTag

log = logging.getLogger(__name__)
LIVE_STATES = ("pending", "running")


def describe(clients: Clients, instance_id: str | None) -> dict[str, Any] | None:
    """The instance as EC2 sees it, or None if EC2 no longer knows it."""
    if not instance_id:
        return None
    try:
        found = clients.ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "InvalidInstanceID.NotFound":
            return None
        raise
    return found[0]["Instances"][0] if found else None


def tags(instance: dict[str, Any] | None) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in (instance or {}).get("Tags", [])}


def left_outcome(run: Run, instance: dict[str, Any] | None) -> OutcomeTag | None:
    outcome = OutcomeTag.decode(tags(instance).get(TAG_OUTCOME))
    return outcome if outcome is not None and outcome.run_id == run.run_id else None


def machine_lost(run: Run, instance: dict[str, Any] | None) -> str | None:
    """The state of a run's machine that is down or gone (None while it runs, or serves another run now)."""
    if not run.instance_id:
        return None
    if instance is None:
        return "terminated"
    if instance["State"]["Name"] in LIVE_STATES or tags(instance).get(TAG_RUN_ID) not in (None, run.run_id):
        return None
    return str(instance["State"]["Name"])


# EC2's state reasons (describe_instances StateReason.Code) that say who took the machine down.
SPOT_RECLAIMED = "Server.SpotInstanceTermination"
SHUT_ITSELF_DOWN = "Client.InstanceInitiatedShutdown"


def record_outcome(
    clients: Clients, config: JobConfig, ledger: Ledger, run: Run, outcome: OutcomeTag, note: str
) -> Run:
    ended_at = parse_time(outcome.ended_at)
    ended = attempts.end_attempt(
        clients,
        config,
        ledger,
        run,
        status=outcome.status,
        cause=outcome.cause or attempts.cause_of(outcome.status, outcome.exit_code),
        reason=outcome.reason,
        ended_at=ended_at,
        exit_code=outcome.exit_code,
        cost=run_cost(run, ended_at, clients.region, market=run.market),
        note=note,
        now=ledger.clock(),
    )
    log.warning(note, extra=fields(job=run.job, run_id=run.run_id, status=outcome.status))
    return ended


def lost_cause(instance: dict[str, Any] | None) -> str:
    """Why a machine went down with no outcome, from EC2's state reason."""
    code = ((instance or {}).get("StateReason") or {}).get("Code")
    if code == SPOT_RECLAIMED:
        return "interruption"
    if code == SHUT_ITSELF_DOWN:
        return "agent-lost"
    return "instance-lost"


def fail_lost(
    clients: Clients,
    config: JobConfig,
    ledger: Ledger,
    run: Run,
    state: str,
    now: datetime,
    note: str,
    instance: dict[str, Any] | None = None,
) -> Run:
    cause = lost_cause(instance)
    why = {
        "interruption": "EC2 reclaimed its Spot capacity and no interruption was recorded",
        "agent-lost": "the machine shut itself down with no outcome recorded: its agent failed",
        "instance-lost": "the run recorded no outcome (the machine was stopped or died, or its agent failed first)",
    }[cause]
    ended = attempts.end_attempt(
        clients,
        config,
        ledger,
        run,
        status=attempts.INTERRUPTED if cause == "interruption" else FAILED,
        cause=cause,
        reason=f"{cause}: instance {run.instance_id} is {state}; {why}",
        ended_at=now,
        cost=run_cost(run, now, clients.region, market=run.market),
        note=note,
    )
    log.warning(note, extra=fields(job=run.job, run_id=run.run_id, state=state, cause=cause))
    return ended
