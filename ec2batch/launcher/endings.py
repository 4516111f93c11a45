"""How the launcher's side ends a run it finds under way, from what the run's machine shows.

The deadline timer and the reconciler look at the same evidence and must reach the same verdict:
- the instance carries the run's outcome (`ec2batch:outcome`, left by an agent that could not reach the ledger):
  that outcome is recorded, never overwritten by a timeout;
- the instance is down or gone and no outcome was recorded: the run FAILED, `instance-lost`;
- otherwise, at the deadline, the run TIMED_OUT and its machine is stopped from outside.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from ..aws import Clients
from ..config import JobConfig
from ..cost import run_cost
from ..jsonlog import fields
from ..ledger import FAILED, Ledger, Run, parse_time
from ..names import TAG_OUTCOME, TAG_RUN_ID
from ..notify import notify
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


def record_outcome(
    clients: Clients, config: JobConfig, ledger: Ledger, run: Run, outcome: OutcomeTag, note: str
) -> Run:
    ended = ledger.transition(
        run.job,
        run.run_id,
        outcome.status,
        ended_at=outcome.ended_at,
        exit_code=outcome.exit_code,
        reason=outcome.reason,
        repaired=(*run.repaired, note),
        **run_cost(run, parse_time(outcome.ended_at), clients.region),
    )
    log.warning(note, extra=fields(job=run.job, run_id=run.run_id, status=outcome.status))
    notify(clients.sns, config, ended, ledger)
    return ended


def fail_lost(
    clients: Clients, config: JobConfig, ledger: Ledger, run: Run, state: str, now: datetime, note: str
) -> Run:
    reason = (
        f"instance-lost: instance {run.instance_id} is {state} and the run recorded no outcome "
        "(its agent failed before it could, or the machine was stopped or died)"
    )
    failed = ledger.transition(
        run.job,
        run.run_id,
        FAILED,
        reason=reason,
        repaired=(*run.repaired, note),
        **run_cost(run, now, clients.region),
    )
    log.warning(note, extra=fields(job=run.job, run_id=run.run_id, state=state))
    notify(clients.sns, config, failed, ledger)
    return failed
