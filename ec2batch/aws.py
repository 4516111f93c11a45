"""boto3 clients, created once per process and passed to whoever needs them.

`AWS_ENDPOINT_URL` (honoured by boto3 itself) points every client at the local stack's moto_server.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

import boto3
from botocore.config import Config

# Standard retry mode backs off on throttling and transient errors; EC2 throttles bursts of calls.
_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5, read_timeout=65)


class Clients:
    """One client per service, made on first use and kept. Tests pass a session bound to moto."""

    def __init__(self, session: boto3.Session | None = None, region: str | None = None) -> None:
        self.session = session or boto3.Session(region_name=region)

    @property
    def region(self) -> str:
        return self.session.region_name or "us-east-1"

    def _client(self, service: str) -> Any:
        return self.session.client(service, config=_CONFIG)

    @cached_property
    def ec2(self) -> Any:
        return self._client("ec2")

    @cached_property
    def dynamodb(self) -> Any:
        return self._client("dynamodb")

    @cached_property
    def dynamodbstreams(self) -> Any:
        return self._client("dynamodbstreams")

    @cached_property
    def ssm(self) -> Any:
        return self._client("ssm")

    @cached_property
    def sns(self) -> Any:
        return self._client("sns")

    @cached_property
    def sqs(self) -> Any:
        return self._client("sqs")

    @cached_property
    def logs(self) -> Any:
        return self._client("logs")

    @cached_property
    def cloudwatch(self) -> Any:
        return self._client("cloudwatch")

    @cached_property
    def ecr(self) -> Any:
        return self._client("ecr")

    @cached_property
    def secretsmanager(self) -> Any:
        return self._client("secretsmanager")

    @cached_property
    def lambda_(self) -> Any:
        return self._client("lambda")

    @cached_property
    def scheduler(self) -> Any:
        return self._client("scheduler")

    @cached_property
    def batch(self) -> Any:
        return self._client("batch")

    @cached_property
    def events(self) -> Any:
        return self._client("events")

    @cached_property
    def sts(self) -> Any:
        return self._client("sts")
