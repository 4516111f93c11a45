"""Run notifications on SNS, sent by whoever ends the run (launcher or agent)."""

from __future__ import annotations

import json
import logging
from typing import Any

from .config import JobConfig
from .jsonlog import fields
from .ledger import Run

log = logging.getLogger(__name__)


def notify(sns: Any, config: JobConfig, run: Run) -> bool:
    """Publish the run's outcome if the config asks for this status; never raises (a lost e-mail must not
    keep a machine running)."""
    topic = config.notifications.topic_arn
    if not topic or run.status not in config.notifications.on:
        return False
    message = {
        "job": run.job,
        "run_id": run.run_id,
        "status": run.status,
        "trigger": run.trigger,
        "exit_code": run.exit_code,
        "reason": run.reason,
        "instance_id": run.instance_id,
        "attempts": [a.__dict__ for a in run.attempts],
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
        return False
    return True
