"""Calling the launcher the way its triggers do.

In AWS that is `lambda:Invoke` on the job's launcher function. moto stores Lambda functions but cannot
run their code without pulling images from a hub, so the local stack sets EC2BATCH_LAUNCHER=inprocess
and the same handler runs in this process against the same (local) AWS APIs.

Invoke is synchronous and the launcher may legitimately take up to its Lambda timeout (180 s: waiting for
the reusable instance to stop, capacity fallbacks). The shared client config gives up reading after 65 s,
and botocore then retries: the retry is a second trigger. So Invoke gets its own client, which waits longer
than the launcher can run, and every manual run carries an idempotency token, so whatever retry still
happens (a lost connection, throttling) finds the first run instead of starting another.
"""

from __future__ import annotations

import json
import os
from typing import Any

from botocore.config import Config

from .aws import Clients
from .errors import Ec2BatchError
from .names import JobNames

INPROCESS = "inprocess"
LAUNCHER_TIMEOUT_SECONDS = 180  # terraform/modules/scheduled-job/lambda.tf: timeout
INVOKE_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 3},
    connect_timeout=5,
    read_timeout=LAUNCHER_TIMEOUT_SECONDS + 30,  # Lambda's own overhead (cold start, response) on top
)


class LauncherError(Ec2BatchError):
    """The launcher refused the event or failed; the message is its own."""


def invoke_client(clients: Clients) -> Any:
    """A Lambda client for Invoke only (one per process: the CLI invokes once)."""
    return clients.client("lambda", INVOKE_CONFIG)


def invoke_launcher(clients: Clients, job: str, event: dict[str, Any], client: Any = None) -> Any:
    if os.environ.get("EC2BATCH_LAUNCHER") == INPROCESS:
        from .launcher import Launcher

        return Launcher(clients).handle(event)
    response = (client or invoke_client(clients)).invoke(
        FunctionName=JobNames(job).launcher_function,
        InvocationType="RequestResponse",
        Payload=json.dumps(event).encode(),
    )
    payload = json.loads(response["Payload"].read() or b"null")
    if response.get("FunctionError"):
        message = payload.get("errorMessage") if isinstance(payload, dict) else payload
        raise LauncherError(f"the launcher did not take the run: {message}")
    return payload
