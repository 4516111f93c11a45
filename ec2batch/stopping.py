"""Ending a run from outside its machine: a cancel, and stopping the machine of a run that ended without it.

The launcher's deadline, the reconciler and `ec2batch cancel` all stop machines the same way: only the
machine still tagged for this run's attempt, terminated when it was made for one run, else stopped.
"""

from __future__ import annotations

import logging
from typing import Any

from botocore.exceptions import ClientError

from . import shards
from .aws import Clients
from .config import JobConfig
from .errors import Ec2BatchError, TransitionRejected
from .jsonlog import fields
from .ledger import CANCELLED, Ledger, Run
from .names import LIFECYCLE_EPHEMERAL, TAG_LIFECYCLE, TAG_RUN_ID, tagged_attempt

log = logging.getLogger(__name__)


class CancelError(Ec2BatchError):
    """A cancel that could not be done: the run already ended, or ended while being cancelled."""


def cancel_run(clients: Clients, config: JobConfig, run_id: str, reason: str = "cancelled by hand") -> Run:
    """Cancel a planned or running run; a machine it runs on is stopped (or terminated).

    Idempotent: cancelling a CANCELLED run stops its machine again if it still runs (the first stop may have
    failed: an instance still `pending` cannot be stopped), and the agent of a cancelled run powers off on its
    own; the reconciler stops what is left.
    """
    ledger = Ledger(clients.dynamodb, config.names.ledger_table)
    run = ledger.require(config.job, run_id)
    if run.terminal and run.status != CANCELLED:
        raise CancelError(f"run {run_id} already ended: {run.status}")
    if run.status != CANCELLED:
        try:
            run = ledger.transition(config.job, run_id, CANCELLED, reason=reason)
        except TransitionRejected as exc:
            current = exc.current if isinstance(exc.current, Run) else None
            if current is None or current.status != CANCELLED:
                raise CancelError(f"run {run_id} ended while being cancelled: {exc}") from exc
            run = current
    if run.instance_id:
        stop_run_machine(clients, config, run)
    if run.batch_job_id:
        shards.terminate(clients, run.batch_job_id, reason)
    return run


def stop_run_machine(clients: Clients, config: JobConfig, run: Run) -> str | None:
    """Stop the run's instance, unless it has moved on to another run; ephemeral ones are terminated.

    Returns what was done, or None when nothing needed doing (already down, gone, or serving another run).
    An instance still `pending` cannot be stopped (EC2 says IncorrectInstanceState): a reusable one is left to
    its agent (which powers off for an ended run) and to the reconciler's next look.
    """
    if not run.instance_id:
        return None
    try:
        found = clients.ec2.describe_instances(InstanceIds=[run.instance_id])["Reservations"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "InvalidInstanceID.NotFound":
            return None  # gone: nothing runs
        raise
    instance = found[0]["Instances"][0] if found else None
    if instance is None or instance["State"]["Name"] in ("stopped", "stopping", "terminated", "shutting-down"):
        return None
    tags = {t["Key"]: t["Value"] for t in instance.get("Tags", [])}
    if tags.get(TAG_RUN_ID) != run.run_id or tagged_attempt(tags) != run.attempt:
        log.warning(
            "instance serves another run (or attempt) now: left alone",
            extra=fields(instance_id=run.instance_id, run_id=run.run_id, tagged=tags.get(TAG_RUN_ID)),
        )
        return None
    return stop_instance(clients, instance, ephemeral=config.strategy == "ephemeral")


def stop_instance(clients: Clients, instance: dict[str, Any], *, ephemeral: bool = False) -> str | None:
    """Stop (or, for one made for one run, terminate) an instance; None if EC2 cannot stop it yet."""
    instance_id = instance["InstanceId"]
    tags = {t["Key"]: t["Value"] for t in instance.get("Tags", [])}
    try:
        if ephemeral or tags.get(TAG_LIFECYCLE) == LIFECYCLE_EPHEMERAL:
            clients.ec2.terminate_instances(InstanceIds=[instance_id])
            return "terminated"
        clients.ec2.stop_instances(InstanceIds=[instance_id], Force=True)
        return "stopped"
    except ClientError as exc:
        code = exc.response["Error"]["Code"]
        if code in ("IncorrectInstanceState", "InvalidInstanceID.NotFound"):
            log.warning("instance cannot be stopped now", extra=fields(instance_id=instance_id, error=code))
            return None
        raise
