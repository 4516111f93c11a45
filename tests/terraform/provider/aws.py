"""The provider's configuration turned into boto3 clients, as the handlers see it (`Aws` in resources/base.py)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

# The real provider's `endpoints` keys that are not boto3's service names (its aliases).
_ENDPOINT_ALIASES = {
    "cloudwatchlogs": "logs",
    "cloudwatchevents": "events",
    "eventbridge": "events",
    "eventbridgescheduler": "scheduler",
}
DEFAULT_REGION = "us-east-1"


@dataclass
class ProviderAws:
    """Clients bound to the configured region, credentials and endpoints; one client per service per process."""

    region: str
    endpoints: dict[str, str]
    default_tags: dict[str, str]
    access_key: str | None = None
    secret_key: str | None = None
    _session: Any = None
    _clients: dict[str, Any] = field(default_factory=dict)
    _account_id: str | None = None

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> ProviderAws:
        """The provider block's values: region, access_key/secret_key, endpoints { svc = url }, default_tags."""
        region = config.get("region") or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        endpoints: dict[str, str] = {}
        for block in config.get("endpoints") or []:
            for name, url in block.items():
                if url:
                    endpoints[_ENDPOINT_ALIASES.get(name, name)] = url
        tags: dict[str, str] = {}
        for block in config.get("default_tags") or []:
            tags.update(block.get("tags") or {})
        return cls(
            region=region or DEFAULT_REGION,
            endpoints=endpoints,
            default_tags=tags,
            access_key=config.get("access_key"),
            secret_key=config.get("secret_key"),
        )

    def client(self, service: str) -> Any:
        if service not in self._clients:
            if self._session is None:
                import boto3  # here, not at the top: most of the provider's starts (schema, validate) need no AWS

                self._session = boto3.Session(
                    aws_access_key_id=self.access_key,
                    aws_secret_access_key=self.secret_key,
                    region_name=self.region,
                )
            # Without an endpoint for the service, boto3 itself honours AWS_ENDPOINT_URL(_<SERVICE>).
            self._clients[service] = self._session.client(service, endpoint_url=self.endpoints.get(service))
        return self._clients[service]

    @property
    def account_id(self) -> str:
        if self._account_id is None:
            self._account_id = self.client("sts").get_caller_identity()["Account"]
        return self._account_id
