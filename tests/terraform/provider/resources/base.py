"""The interface between the provider double's core and its resource handlers (see the contract in issue 10).

The core speaks Terraform's plugin protocol and plans; a handler only turns one resource's attributes into the
AWS API calls the real provider makes (through boto3, against moto_server) and back. Values are plain Python:
map/object -> dict, list/set -> list, a nested block with nesting list/set -> list[dict], nesting single ->
dict | None. Every attribute and block of the schema is present as a key (None / [] when unset).
"""

from __future__ import annotations

from typing import Any, ClassVar, Protocol

from botocore.exceptions import ClientError

Value = Any  # str | int | float | bool | None | list | dict


class Aws(Protocol):
    """boto3 clients bound to the provider's configured endpoint/region/credentials: aws.client("sqs")."""

    region: str
    account_id: str

    def client(self, service: str) -> Any: ...


class ResourceHandler(Protocol):
    type_name: str
    replace_on: frozenset[str]

    def create(self, aws: Aws, planned: dict[str, Value]) -> dict[str, Value]: ...

    def read(self, aws: Aws, state: dict[str, Value]) -> dict[str, Value] | None: ...

    def update(self, aws: Aws, prior: dict[str, Value], planned: dict[str, Value]) -> dict[str, Value]: ...

    def delete(self, aws: Aws, state: dict[str, Value]) -> None: ...


class DataHandler(Protocol):
    type_name: str

    def read(self, aws: Aws, config: dict[str, Value]) -> dict[str, Value]: ...


RESOURCES: dict[str, ResourceHandler] = {}
DATA_SOURCES: dict[str, DataHandler] = {}


def register_resource(handler: ResourceHandler) -> ResourceHandler:
    RESOURCES[handler.type_name] = handler
    return handler


def register_data(handler: DataHandler) -> DataHandler:
    DATA_SOURCES[handler.type_name] = handler
    return handler


class Resource:
    """Optional base for handlers: class attributes for the protocol's fields, and the helpers most handlers share."""

    type_name: ClassVar[str] = ""
    replace_on: ClassVar[frozenset[str]] = frozenset()

    def create(self, aws: Aws, planned: dict[str, Value]) -> dict[str, Value]:
        raise NotImplementedError

    def read(self, aws: Aws, state: dict[str, Value]) -> dict[str, Value] | None:
        raise NotImplementedError

    def update(self, aws: Aws, prior: dict[str, Value], planned: dict[str, Value]) -> dict[str, Value]:
        raise NotImplementedError

    def delete(self, aws: Aws, state: dict[str, Value]) -> None:
        raise NotImplementedError


class Data:
    """Optional base for data sources."""

    type_name: ClassVar[str] = ""

    def read(self, aws: Aws, config: dict[str, Value]) -> dict[str, Value]:
        raise NotImplementedError


def is_not_found(err: Exception, *codes: str) -> bool:
    """True when `err` is an AWS error whose code says the object does not exist."""
    if not isinstance(err, ClientError):
        return False
    code = err.response.get("Error", {}).get("Code", "")
    return code in codes or "NotFound" in code or "NoSuch" in code


def tag_list(tags: dict[str, str] | None, key: str = "Key", value: str = "Value") -> list[dict[str, str]]:
    """Terraform's tags map as the [{Key, Value}] list most AWS APIs take."""
    return [{key: k, value: v} for k, v in sorted((tags or {}).items())]


def tag_map(items: list[dict[str, str]] | None, key: str = "Key", value: str = "Value") -> dict[str, str]:
    return {item[key]: item[value] for item in items or []}


def tags_to_send(planned: dict[str, Value]) -> dict[str, str]:
    """The provider sends tags_all (tags merged with default_tags), computed by the core before the handler."""
    return dict(planned.get("tags_all") or planned.get("tags") or {})
