"""SQS -> launcher, as Lambda's event source mapping does it: the local stack's timer delivery.

Short polls every 0.1 s rather than long polls: moto_server here serves one request at a time, and a
long poll would hold up every other call. Messages the launcher reports as failed (batchItemFailures)
are left in the queue, so SQS delivers them again after the visibility timeout, as in AWS.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from ..aws import Clients
from ..jsonlog import fields
from ..local.paths import REGION

log = logging.getLogger(__name__)

QUEUE_SUFFIX = "-timers"


class SqsPoller:
    def __init__(self, clients: Clients, invoke: Callable[[dict[str, Any]], Any], interval: float = 0.1) -> None:
        self.clients = clients
        self.invoke = invoke
        self.interval = interval
        self.queues: list[str] = []
        self.listed_at = 0.0

    def run_forever(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.step()
            except Exception:
                log.exception("sqs poller step failed")
            stop.wait(self.interval)

    def step(self) -> int:
        if time.monotonic() - self.listed_at > 5:
            urls = self.clients.sqs.list_queues(QueueNamePrefix="ec2batch-").get("QueueUrls", [])
            self.queues = [u for u in urls if u.endswith(QUEUE_SUFFIX)]
            self.listed_at = time.monotonic()
        handled = 0
        for url in self.queues:
            handled += self.poll(url)
        return handled

    def poll(self, url: str) -> int:
        sqs = self.clients.sqs
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"]).get("Messages", [])
        if not messages:
            return 0
        arn = f"arn:aws:sqs:{REGION}:000000000000:{url.rsplit('/', 1)[-1]}"
        event = {"Records": [{
            "messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
            "attributes": m.get("Attributes", {}), "messageAttributes": {}, "eventSource": "aws:sqs",
            "eventSourceARN": arn, "awsRegion": REGION,
        } for m in messages]}
        try:
            response = self.invoke(event)
            failed = {f["itemIdentifier"] for f in response.get("batchItemFailures", [])}
        except Exception:
            log.exception("launcher failed on an SQS batch", extra=fields(queue=url))
            return 0  # nothing deleted: every message comes back after the visibility timeout
        done = [m for m in messages if m["MessageId"] not in failed]
        if done:
            sqs.delete_message_batch(QueueUrl=url, Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)])
        return len(done)
