"""A small IMDSv2 client: token first, then reads; honours AWS_EC2_METADATA_SERVICE_ENDPOINT like botocore.

The local stack serves an emulator on loopback per instance and points the agent at it with that
variable, so the agent's code path is the one it takes on EC2.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

DEFAULT_ENDPOINT = "http://169.254.169.254"
TOKEN_TTL_SECONDS = 21600
TOKEN_PATH = "/latest/api/token"


@dataclass(frozen=True)
class Identity:
    instance_id: str
    region: str
    instance_type: str | None
    account_id: str | None


class ImdsError(RuntimeError):
    pass


class _TokenRejected(ImdsError):
    pass


class Imds:
    def __init__(self, endpoint: str | None = None, attempts: int = 20, delay: float = 1.0) -> None:
        self.endpoint = (endpoint or os.environ.get("AWS_EC2_METADATA_SERVICE_ENDPOINT") or DEFAULT_ENDPOINT).rstrip(
            "/"
        )
        self.attempts = attempts
        self.delay = delay
        self._token: str | None = None

    def _request(self, method: str, path: str, headers: dict[str, str], attempts: int | None = None) -> str:
        attempts = self.attempts if attempts is None else attempts
        last: Exception | None = None
        for attempt in range(attempts):
            request = urllib.request.Request(self.endpoint + path, method=method, headers=headers)
            try:
                with urllib.request.urlopen(request, timeout=2) as response:
                    return response.read().decode()
            except urllib.error.HTTPError as exc:
                if exc.code == 404:
                    raise ImdsError(f"instance metadata has no {path}") from exc
                last = exc
            except OSError as exc:  # early in boot the metadata service may not answer yet
                last = exc
            if attempt + 1 < attempts:
                time.sleep(self.delay)
        raise ImdsError(f"instance metadata at {self.endpoint} did not answer {path}: {last}") from last

    def token(self, attempts: int | None = None) -> str:
        if self._token is None:
            self._token = self._request(
                "PUT", TOKEN_PATH, {"X-aws-ec2-metadata-token-ttl-seconds": str(TOKEN_TTL_SECONDS)}, attempts
            )
        return self._token

    def get(self, path: str) -> str:
        return self._request("GET", path, {"X-aws-ec2-metadata-token": self.token()})

    def peek(self, path: str) -> str | None:
        """One quick read, for a poll every few seconds: None if metadata has no such item (404).

        No retries (the next poll is the retry); ImdsError on anything else.
        """
        try:
            return self._read_once(path)
        except _TokenRejected:
            self._token = None  # expired: its TTL is 6 h, and a job may run longer
            return self._read_once(path)

    def _read_once(self, path: str) -> str | None:
        headers = {"X-aws-ec2-metadata-token": self.token(attempts=1)}
        request = urllib.request.Request(self.endpoint + path, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=2) as response:
                return response.read().decode()
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            error = _TokenRejected if exc.code == 401 else ImdsError
            raise error(f"instance metadata answered {path} with HTTP {exc.code}") from exc
        except OSError as exc:
            raise ImdsError(f"instance metadata at {self.endpoint} did not answer {path}: {exc}") from exc

    def identity(self) -> Identity:
        document = json.loads(self.get("/latest/dynamic/instance-identity/document"))
        return Identity(
            instance_id=document["instanceId"],
            region=document["region"],
            instance_type=document.get("instanceType"),
            account_id=document.get("accountId"),
        )

    def tag(self, key: str) -> str | None:
        """An instance tag as IMDS serves it (the launch template enables tags in metadata); None if absent.

        The agent's fallback when DescribeTags fails: it still learns which run to record the failure on.
        """
        try:
            return self.get(f"/latest/meta-data/tags/instance/{key}")
        except ImdsError as exc:
            if "has no" in str(exc):
                return None
            raise
