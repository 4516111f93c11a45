"""The interface between the provider double's core and its resource handlers (see the contract in issue 10).

The core speaks Terraform's plugin protocol and plans; a handler only turns one resource's attributes into the
AWS API calls the real provider makes (through boto3, against moto_server) and back. Values are plain Python:
map/object -> dict, list/set -> list, a nested block with nesting list/set -> list[dict], nesting single ->
dict | None. Every attribute and block of the schema is present as a key (None / [] when unset).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar, Protocol

from botocore.exceptions import ClientError

Value = Any  # str | int | float | bool | None | list | dict


class Aws(Protocol):
    """boto3 clients bound to the provider's configured endpoint/region/credentials: aws.client("sqs")."""

    region: str
    account_id: str
    # Optional (read with getattr(aws, "default_tags", {})): the provider's default_tags, which read leaves out of
    # `tags` as the real provider does.

    def client(self, service: str) -> Any: ...


class ResourceHandler(Protocol):
    type_name: str
    replace_on: frozenset[str]
    # Optional (read it with getattr(handler, "update_unknown", frozenset())): computed attributes whose value
    # AWS changes on any in-place update (a parameter's version, a launch template's latest_version, a
    # function's last_modified). The real provider marks them unknown in the update plan (SetNewComputed);
    # the core should too: otherwise Terraform accepts the new value only because the core declares the legacy
    # type system, and the plan showed the old value as if it would stay.

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
    update_unknown: ClassVar[frozenset[str]] = frozenset()

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
    """AWS's tag list as Terraform's map, without the "aws:" system tags (the provider ignores those)."""
    return {item[key]: item[value] for item in items or [] if not item[key].startswith("aws:")}


def tags_to_send(planned: dict[str, Value]) -> dict[str, str]:
    """The provider sends tags_all (tags merged with default_tags), computed by the core before the handler."""
    return dict(planned.get("tags_all") or planned.get("tags") or {})


def fill(values: dict[str, Value], **computed: Value) -> dict[str, Value]:
    """`values` with each of `computed` filled in where still unset (None): what the plan left unknown.

    Terraform refuses a new state that differs from a known planned value, so a handler never overwrites one.
    """
    out = dict(values)
    for key, value in computed.items():
        if out.get(key) is None:
            out[key] = value
    return out


def refresh(state: dict[str, Value], observed: dict[str, Value], computed: tuple[str, ...] = ()) -> dict[str, Value]:
    """`state` updated with what AWS reports now.

    An argument the configuration left unset stays unset: the double has no schema defaults, so writing AWS's
    default into it would show a change on every plan. Attributes named in `computed` are always taken.
    """
    out = dict(state)
    for key, value in observed.items():
        if key in computed or out.get(key) is not None:
            out[key] = value
    return out


def same_json(a: str | None, b: str | None) -> bool:
    """Two JSON documents equal as data (the provider keeps the configured text when AWS reformats a policy)."""
    if a is None or b is None:
        return a is b
    try:
        return bool(json.loads(a) == json.loads(b))
    except ValueError:
        return a == b


def json_kept(configured: str | None, observed: str | None) -> str | None:
    """The configured JSON text if AWS's copy means the same, else AWS's (so a change made outside shows)."""
    return configured if same_json(configured, observed) else observed


def arn(aws: Aws, service: str, resource: str, *, regional: bool = True) -> str:
    region = aws.region if regional else ""
    return f"arn:aws:{service}:{region}:{aws.account_id}:{resource}"


def first(blocks: list[dict[str, Value]] | dict[str, Value] | None) -> dict[str, Value] | None:
    """The single element of a MaxItems=1 block (list nesting), or None when absent."""
    if isinstance(blocks, dict):
        return blocks
    return blocks[0] if blocks else None


def drop_none(**kwargs: Value) -> dict[str, Value]:
    """Request parameters without the unset ones (boto3 refuses None)."""
    return {k: v for k, v in kwargs.items() if v is not None}


def resource_name(planned: dict[str, Value], prefix_key: str = "name_prefix") -> str:
    """The configured name, else one made from name_prefix as the provider does (prefix + a unique suffix)."""
    if planned.get("name"):
        return str(planned["name"])
    prefix = planned.get(prefix_key) or "terraform-"
    return f"{prefix}{time.strftime('%Y%m%d%H%M%S')}{uuid.uuid4().hex[:8]}"


@contextmanager
def unless_gone(*codes: str) -> Iterator[None]:
    """Run a delete; an object already gone is what the delete wanted (the provider treats it as done)."""
    try:
        yield
    except ClientError as err:
        if not is_not_found(err, *codes):
            raise


def split_tags(aws: Aws, state: dict[str, Value], all_tags: dict[str, str]) -> dict[str, dict[str, str]]:
    """AWS's tags as the provider reads them: `tags_all` is all of them; `tags` leaves out the provider's
    default_tags (unless the configuration repeats one), or every plan would show them as a change."""
    defaults = getattr(aws, "default_tags", None) or {}
    configured = state.get("tags") or {}
    tags = {k: v for k, v in all_tags.items() if k in configured or defaults.get(k) != v}
    return {"tags": tags, "tags_all": dict(all_tags)}
