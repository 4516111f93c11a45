"""AWS clients, created once per process and passed to whoever needs them.

`AWS_ENDPOINT_URL` (honoured by botocore itself) points every client at the local stack's moto_server.
Without a session given, clients come from a plain botocore session: importing boto3 costs about 50 ms
(its `compat` module imports s3transfer's transfer manager) at every boot of the job's machine and every
cold start of the launcher, and nothing here needs boto3's resources. The CLI and the tests pass a
`boto3.Session` (profiles, moto), which works the same.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

import botocore.session
from botocore.config import Config

# Standard retry mode backs off on throttling and transient errors; EC2 throttles bursts of calls.
_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5, read_timeout=65)


class Clients:
    """One client per service, made on first use and kept. Tests pass a session bound to moto."""

    def __init__(self, session: Any = None, region: str | None = None) -> None:
        # A boto3.Session, or a botocore Session (botocore's has `create_client`, boto3's `client`).
        self.session = session if session is not None else botocore.session.get_session()
        self._region = region

    @property
    def region(self) -> str:
        given = self._region or getattr(self.session, "region_name", None)
        if given is None and hasattr(self.session, "get_config_variable"):
            given = self.session.get_config_variable("region")
        return given or "us-east-1"

    def client(self, service: str, config: Config | None = None) -> Any:
        """A new client of `service` (the cached ones below are the usual way in)."""
        if hasattr(self.session, "create_client"):
            return self.session.create_client(service, region_name=self.region, config=config or _CONFIG)
        return self.session.client(service, config=config or _CONFIG)

    def _client(self, service: str) -> Any:
        return self.client(service)

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
