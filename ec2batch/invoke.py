"""Calling the launcher the way its triggers do.

In AWS that is `lambda:Invoke` on the job's launcher function. moto stores Lambda functions but cannot
run their code without pulling images from a hub, so the local stack sets EC2BATCH_LAUNCHER=inprocess
and the same handler runs in this process against the same (local) AWS APIs.
"""

from __future__ import annotations

import json
import os
from typing import Any

from .aws import Clients
from .errors import Ec2BatchError
from .names import JobNames

INPROCESS = "inprocess"


class LauncherError(Ec2BatchError):
    """The launcher refused the event or failed; the message is its own."""


def invoke_launcher(clients: Clients, job: str, event: dict[str, Any]) -> Any:
    if os.environ.get("EC2BATCH_LAUNCHER") == INPROCESS:
        from .launcher import Launcher

        return Launcher(clients).handle(event)
    response = clients.lambda_.invoke(
        FunctionName=JobNames(job).launcher_function,
        InvocationType="RequestResponse",
        Payload=json.dumps(event).encode(),
    )
    payload = json.loads(response["Payload"].read() or b"null")
    if response.get("FunctionError"):
        message = payload.get("errorMessage") if isinstance(payload, dict) else payload
        raise LauncherError(f"the launcher refused the run: {message}")
    return payload
