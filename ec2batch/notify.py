"""Run notifications on SNS, sent by whoever ends the run (launcher or agent), exactly once when it can be.

With the ledger at hand the publisher first claims the notification on the run (`Ledger.claim_notification`) and
records `notified_at` after publishing, so a redelivered timer or a second reconciler does not send it twice,
and the reconciler publishes any that a dead process claimed or never sent."""

from __future__ import annotations

import json
import logging
from typing import Any

from .config import JobConfig
from .jsonlog import fields
from .ledger import Ledger, Run, iso

log = logging.getLogger(__name__)


def wanted(config: JobConfig, run: Run) -> bool:
    return bool(config.notifications.topic_arn) and run.status in config.notifications.on


def notify(sns: Any, config: JobConfig, run: Run, ledger: Ledger | None = None) -> bool:
    """Publish the run's outcome if the config asks for this status; never raises (a lost e-mail must not
    keep a machine running). With `ledger`, only the claim's holder publishes, and it records that it did."""
    topic = config.notifications.topic_arn
    if not wanted(config, run):
        return False
    try:
        if ledger is not None and not ledger.claim_notification(run.job, run.run_id):
            return False
    except Exception:
        log.exception("notification not claimed", extra=fields(job=run.job, run_id=run.run_id))
        return False
    message = {
        "job": run.job,
        "run_id": run.run_id,
        "status": run.status,
        "trigger": run.trigger,
        "exit_code": run.exit_code,
        "reason": run.reason,
        "instance_id": run.instance_id,
        "attempts": [{k: v for k, v in a.__dict__.items() if v is not None} for a in run.all_attempts()],
        "log_stream": run.log_stream,
        "ended_at": run.ended_at,
    }
    try:
        sns.publish(
            TopicArn=topic,
            Subject=f"ec2batch {run.job}: run {run.status}"[:100],
            Message=json.dumps(message, default=str),
            MessageAttributes={
                "job": {"DataType": "String", "StringValue": run.job},
                "status": {"DataType": "String", "StringValue": run.status},
            },
        )
    except Exception:
        log.exception("notification failed", extra=fields(job=run.job, run_id=run.run_id, topic=topic))
        if ledger is not None:  # let the next one who sees the run try again at once
            try:
                ledger.update_fields(run.job, run.run_id, unless_terminal=False, notify_claim_until=None)
            except Exception:
                log.exception("notification claim not released", extra=fields(job=run.job, run_id=run.run_id))
        return False
    if ledger is not None:
        try:
            ledger.update_fields(run.job, run.run_id, unless_terminal=False, notified_at=iso(ledger.clock()))
        except Exception:  # published; at worst the reconciler publishes once more after the claim lapses
            log.exception("notification not recorded", extra=fields(job=run.job, run_id=run.run_id))
    return True
