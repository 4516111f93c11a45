"""AWS Batch's state change events -> launcher: the local stand-in for a sharded job's EventBridge rule.

On AWS, Batch publishes "Batch Job State Change" for every job and child whose status changes, and the rule
Terraform makes for the job's queue (`batch_state_rule`) hands each event to the job's launcher. moto has
no such events, so this loop looks at the ec2batch queues every second and sends the launcher the event AWS
would have sent (the fields the launcher reads: jobName, jobId, jobQueue, status) for each job whose status
it has not seen yet. The reconciler's tick stays the safety net, as on AWS.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from ..aws import Clients
from ..jsonlog import fields
from ..names import PREFIX

log = logging.getLogger(__name__)

ENDED = ("SUCCEEDED", "FAILED")


class BatchEvents:
    def __init__(self, clients: Clients, invoke: Callable[[dict[str, Any]], Any], interval: float = 1.0) -> None:
        self.clients = clients
        self.invoke = invoke
        self.interval = interval
        self.seen: dict[str, str] = {}  # job id -> the status last sent

    def run_forever(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.step()
            except Exception:
                log.exception("batch events step failed")
            stop.wait(self.interval)

    def step(self) -> list[dict[str, Any]]:
        """Send (and return) an event for every job whose status changed since the last step."""
        sent = []
        for queue in self._queues():
            for job in self._jobs(queue["jobQueueName"]):
                if self.seen.get(job["jobId"]) == job["status"]:
                    continue
                self.seen[job["jobId"]] = job["status"]
                event = _event(job, queue["jobQueueArn"])
                try:
                    self.invoke(event)
                except Exception as exc:  # EventBridge would retry; the reconciler's tick catches up anyway
                    log.warning("launcher failed on a Batch event", extra=fields(job_id=job["jobId"], error=str(exc)))
                sent.append(event)
        return sent

    def _queues(self) -> list[dict[str, Any]]:
        queues = self.clients.batch.describe_job_queues().get("jobQueues", [])
        return [q for q in queues if q["jobQueueName"].startswith(f"{PREFIX}-")]

    def _jobs(self, queue: str) -> list[dict[str, Any]]:
        # With a name filter ListJobs answers every status (without one: RUNNING only), children included.
        pages = self.clients.batch.get_paginator("list_jobs").paginate(
            jobQueue=queue, filters=[{"name": "JOB_NAME", "values": ["*"]}]
        )
        return [job for page in pages for job in page.get("jobSummaryList", [])]


def _event(job: dict[str, Any], queue_arn: str) -> dict[str, Any]:
    return {
        "source": "aws.batch",
        "detail-type": "Batch Job State Change",
        "detail": {
            "jobName": job["jobName"],
            "jobId": job["jobId"],
            "jobQueue": queue_arn,
            "status": job["status"],
        },
    }
