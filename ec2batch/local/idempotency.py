"""Idempotency tokens as AWS honours them, in front of moto (which ignores them).

botocore fills in `ClientToken` (EC2 RunInstances) and `ClientRequestToken` (DynamoDB TransactWriteItems) once per
call and sends the same value on each of its retries, and ec2batch derives these tokens from the run where a retry
can come from a later invocation (`ec2batch.launcher.machines`). AWS answers a repeated token with the first
response, and a token reused with other parameters with `IdempotentParameterMismatch`. moto acts twice: a second
instance, a second transaction attempt that then fails its own condition. Without this layer the tests and the local
stack could not tell a real defect from a moto artefact.

One implementation serves both places: the local stack's moto_server (a WSGI wrapper, `ec2batch.local.motoserver`)
and in-process moto in the unit tests (tests/conftest.py wraps moto's botocore stubber).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import parse_qs

# (service, operation) -> (the token's parameter name, how long AWS remembers it in seconds).
TOKENS: dict[tuple[str, str], tuple[str, float]] = {
    ("ec2", "RunInstances"): ("ClientToken", 7 * 24 * 3600.0),
    ("ec2", "CreateFleet"): ("ClientToken", 7 * 24 * 3600.0),
    ("dynamodb", "TransactWriteItems"): ("ClientRequestToken", 600.0),  # DynamoDB: 10 minutes
}
_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/[^/]+/([^/]+)/aws4_request")


@dataclass(frozen=True)
class Reply:
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


@dataclass(frozen=True)
class _Seen:
    fingerprint: str
    reply: Reply
    expires: float


def operation_of(headers: Mapping[str, str | bytes], body: bytes) -> tuple[str, str] | None:
    """(service, operation) of a signed AWS request (JSON or query protocol), or None."""
    lower = _lower(headers)
    scope = _SCOPE.search(lower.get("authorization", ""))
    if not scope:
        return None
    if "x-amz-target" in lower:  # JSON protocols: DynamoDB_20120810.TransactWriteItems
        return scope.group(1), lower["x-amz-target"].rpartition(".")[2]
    if body[:7] == b"Action=" or b"&Action=" in body:  # query protocol (EC2, SQS query, SNS)
        form = parse_qs(body.decode("utf-8", "replace"))
        return scope.group(1), (form.get("Action") or [""])[0]
    return scope.group(1), ""  # REST protocols: the operation is in the path; no token of ours lives there


def identify(headers: Mapping[str, str | bytes], body: bytes) -> tuple[str, str, str, str] | None:
    """(service, operation, token, fingerprint of the other parameters), for a request that carries a token."""
    found = operation_of(headers, body)
    if found is None or found not in TOKENS:
        return None
    service, operation = found
    name = TOKENS[service, operation][0]
    if "x-amz-target" in _lower(headers):
        try:
            params = json.loads(body or b"{}")
        except ValueError:
            return None
        token = params.pop(name, None)
        rest = json.dumps(params, sort_keys=True)
    else:
        form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        token = (form.pop(name, None) or [None])[0]
        rest = json.dumps(sorted(form.items()))
    if not token:
        return None
    return service, operation, token, hashlib.sha256(rest.encode()).hexdigest()


def _lower(headers: Mapping[str, str | bytes]) -> dict[str, str]:
    return {k.lower(): v.decode("latin-1") if isinstance(v, bytes) else v for k, v in headers.items()}


class TokenCache:
    """Remembers successful replies by token; thread-safe (moto_server serves threads)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._seen: dict[tuple[str, str, str], _Seen] = {}
        self._lock = threading.Lock()
        self._clock = clock

    def handle(self, headers: Mapping[str, str | bytes], body: bytes, forward: Callable[[], Reply]) -> Reply:
        """The reply AWS would give: the first reply again for a repeated token, else `forward()`'s."""
        found = identify(headers, body)
        if found is None:
            return forward()
        service, operation, token, fingerprint = found
        key = (service, operation, token)
        with self._lock:
            seen = self._seen.get(key)
            if seen is not None and seen.expires > self._clock():
                if seen.fingerprint != fingerprint:
                    return mismatch(service, operation)
                return seen.reply
            reply = forward()
            if 200 <= reply.status < 300:
                ttl = TOKENS[service, operation][1]
                self._seen[key] = _Seen(fingerprint, reply, self._clock() + ttl)
            return reply


def mismatch(service: str, operation: str) -> Reply:
    message = f"the client token was used before with other parameters ({operation})"
    if service == "dynamodb":
        body = json.dumps(
            {"__type": "com.amazonaws.dynamodb.v20120810#IdempotentParameterMismatchException", "message": message}
        ).encode()
        return Reply(400, (("Content-Type", "application/x-amz-json-1.0"),), body)
    xml = (
        '<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error><Code>IdempotentParameterMismatch</Code>'
        f"<Message>{message}</Message></Error></Errors><RequestID>ec2batch-local</RequestID></Response>"
    )
    return Reply(400, (("Content-Type", "text/xml"),), xml.encode())
