"""SQS -> launcher, as Lambda's event source mapping does it: the local stack's timer delivery.

Short polls every 0.1 s rather than long polls: moto_server here serves one request at a time, and a
long poll would hold up every other call. Each message is its own invocation (Terraform's mapping has
batch_size = 1), run on a small pool like Lambda's concurrency, so one slow start never delays the
timers behind it. A failed message is left in the queue and comes back after the visibility timeout.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..aws import Clients
from ..jsonlog import fields
from ..local.paths import REGION

log = logging.getLogger(__name__)

QUEUE_SUFFIX = "-timers"
CONCURRENCY = 5  # the launcher's reserved concurrency in Terraform
VISIBILITY_TIMEOUT = 360  # as the Terraform queue: longer than the launcher's timeout


class SqsPoller:
    def __init__(self, clients: Clients, invoke: Callable[[dict[str, Any]], Any], interval: float = 0.1) -> None:
        self.clients = clients
        self.invoke = invoke
        self.interval = interval
        self.queues: list[str] = []
        self.listed_at = 0.0
        self.pool = ThreadPoolExecutor(max_workers=CONCURRENCY, thread_name_prefix="launcher")

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
        messages = self.clients.sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"], VisibilityTimeout=VISIBILITY_TIMEOUT
        ).get("Messages", [])
        for message in messages:
            self.pool.submit(self.deliver, url, message)
        return len(messages)

    def deliver(self, url: str, message: dict[str, Any]) -> None:
        arn = f"arn:aws:sqs:{REGION}:000000000000:{url.rsplit('/', 1)[-1]}"
        record = {
            "messageId": message["MessageId"], "receiptHandle": message["ReceiptHandle"], "body": message["Body"],
            "attributes": message.get("Attributes", {}), "messageAttributes": {}, "eventSource": "aws:sqs",
            "eventSourceARN": arn, "awsRegion": REGION,
        }  # fmt: skip
        try:
            response = self.invoke({"Records": [record]})
        except Exception:
            log.exception("launcher failed on an SQS message", extra=fields(queue=url))
            return  # not deleted: it comes back after the visibility timeout
        if response.get("batchItemFailures"):
            return
        self.clients.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
