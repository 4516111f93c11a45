"""Terraform's plugin protocol 6 for the provider double: schema, plan, and apply dispatched to the handlers.

Plan is the core's: on create every computed attribute the configuration leaves null is unknown; on update the
proposed state (Terraform keeps prior values of computed attributes) is the plan, and a change in one of the
handler's `replace_on` attributes asks for replacement. `tags_all` (tags over the provider's default_tags) and an
unset top-level `region` are known at plan time, as the real provider plans them. Apply, read and delete are the
handlers' (tests.terraform.provider.resources), against the AWS API (moto_server).
"""

from __future__ import annotations

import importlib
import os
import traceback
from collections.abc import Callable
from typing import Any

import grpc
import msgpack
from msgpack.ext import ExtType
from tf.gen import tfplugin_pb2 as pb
from tf.gen import tfplugin_pb2_grpc as rpc
from tf.types import Unknown

from tests.terraform.provider import schema
from tests.terraform.provider.aws import DEFAULT_REGION, ProviderAws
from tests.terraform.provider.policy_document import PolicyDocument

# Data sources the core implements itself: they call no AWS API.
CORE_DATA_SOURCES: dict[str, Any] = {"aws_iam_policy_document": PolicyDocument()}


class HandlerError(Exception):
    """A handler failed; its message becomes the Terraform diagnostic."""


def _ext(code: int, data: bytes) -> Any:
    # cty's msgpack encoding: extension 0 is an unknown value, 12 an unknown with refinements (not null, a string
    # prefix, a length range: Terraform 1.6+). The double plans neither refinements nor anything from them.
    return Unknown if code in (0, 12) else ExtType(code, data)


def _default(value: Any) -> Any:
    if value is Unknown:
        return ExtType(0, b"\x00")
    raise TypeError(f"cannot encode {type(value).__name__} for Terraform")


def decode(value: pb.DynamicValue) -> Any:
    if value.msgpack:
        return msgpack.unpackb(value.msgpack, ext_hook=_ext, strict_map_key=False)
    if value.json:
        import json

        return json.loads(value.json)
    return None


def encode(value: Any) -> pb.DynamicValue:
    # Always msgpack, so that a null (a resource gone) is an explicit nil rather than an empty message.
    return pb.DynamicValue(msgpack=msgpack.packb(value, default=_default))


def _error(summary: str, detail: str = "") -> list[pb.Diagnostic]:
    return [pb.Diagnostic(severity=pb.Diagnostic.ERROR, summary=summary, detail=detail)]


# Extra modules that register handlers (comma-separated): the core's own tests put fakes there.
EXTRA_HANDLERS_ENV = "EC2BATCH_TF_EXTRA_HANDLERS"


def _registries() -> tuple[dict[str, Any], dict[str, Any]]:
    # Imported late: importing the package registers every handler, and a broken handler module should fail the
    # operation that needs it with a diagnostic, not the provider's start.
    from tests.terraform.provider.resources import DATA_SOURCES, RESOURCES

    for module in filter(None, os.environ.get(EXTRA_HANDLERS_ENV, "").split(",")):
        importlib.import_module(module)
    return RESOURCES, {**DATA_SOURCES, **CORE_DATA_SOURCES}


class ProviderServicer(rpc.ProviderServicer):
    def __init__(self) -> None:
        self.aws = ProviderAws.from_config({})
        self._schema: pb.GetProviderSchema.Response | None = None

    # ------------------------------------------------------------ schema, config
    def GetMetadata(self, request: Any, context: Any) -> pb.GetMetadata.Response:
        data = schema.load()
        return pb.GetMetadata.Response(
            server_capabilities=pb.ServerCapabilities(get_provider_schema_optional=True),
            resources=[pb.GetMetadata.ResourceMetadata(type_name=t) for t in data["resource_schemas"]],
            data_sources=[pb.GetMetadata.DataSourceMetadata(type_name=t) for t in data["data_source_schemas"]],
        )

    def GetProviderSchema(self, request: Any, context: Any) -> pb.GetProviderSchema.Response:
        if self._schema is None:
            data = schema.load()
            self._schema = pb.GetProviderSchema.Response(
                provider=schema.to_pb(data["provider"]),
                provider_meta=pb.Schema(block=pb.Schema.Block()),
                resource_schemas={t: schema.to_pb(s) for t, s in data["resource_schemas"].items()},
                data_source_schemas={t: schema.to_pb(s) for t, s in data["data_source_schemas"].items()},
                server_capabilities=pb.ServerCapabilities(get_provider_schema_optional=True),
            )
        return self._schema

    def ValidateProviderConfig(self, request: Any, context: Any) -> Any:
        return pb.ValidateProviderConfig.Response()

    def ValidateResourceConfig(self, request: Any, context: Any) -> Any:
        return pb.ValidateResourceConfig.Response()

    def ValidateDataResourceConfig(self, request: Any, context: Any) -> Any:
        return pb.ValidateDataResourceConfig.Response()

    def ConfigureProvider(self, request: pb.ConfigureProvider.Request, context: Any) -> Any:
        config = schema.conform(schema.provider_block(), decode(request.config) or {}, unknown_to_none=True)
        self.aws = ProviderAws.from_config(config or {})
        return pb.ConfigureProvider.Response()

    def UpgradeResourceState(self, request: pb.UpgradeResourceState.Request, context: Any) -> Any:
        import json

        state = json.loads(request.raw_state.json) if request.raw_state.json else None
        block = schema.resource_block(request.type_name)
        return pb.UpgradeResourceState.Response(upgraded_state=encode(schema.conform(block, state)))

    # ------------------------------------------------------------ resources
    def ReadResource(self, request: pb.ReadResource.Request, context: Any) -> Any:
        block = schema.resource_block(request.type_name)
        current = schema.conform(block, decode(request.current_state))
        handler = _registries()[0].get(request.type_name)
        if handler is None or current is None:
            return pb.ReadResource.Response(new_state=encode(current), private=request.private)
        try:
            state = _call(request.type_name, lambda: handler.read(self.aws, current))
        except HandlerError as err:
            return pb.ReadResource.Response(diagnostics=_error(str(err), err.__cause__ and _trace(err.__cause__)))
        new = schema.conform(block, state, unknown_to_none=True)
        if new is not None:
            new = schema.keep_unset(block, current, new)
        return pb.ReadResource.Response(new_state=encode(new), private=request.private)

    def PlanResourceChange(self, request: pb.PlanResourceChange.Request, context: Any) -> Any:
        type_name = request.type_name
        proposed = decode(request.proposed_new_state)
        if proposed is None:  # destroy
            return pb.PlanResourceChange.Response(planned_state=request.proposed_new_state, legacy_type_system=True)
        block = schema.resource_block(type_name)
        prior = schema.conform(block, decode(request.prior_state))
        config = decode(request.config)
        planned = schema.conform(block, proposed)
        if prior is None:
            planned = schema.unknown_computed(block, config, planned)
        else:
            planned = schema.keep_prior_blocks(block, prior, planned)
        planned = self._plan_known_computed(block, planned)
        replace: list[pb.AttributePath] = []
        handler = _registries()[0].get(type_name)
        if prior is not None and handler is not None:
            for name in sorted(getattr(handler, "replace_on", frozenset())):
                cty = block["attributes"].get(name, {}).get("type")
                if not schema.same(prior.get(name), planned.get(name), cty):
                    replace.append(pb.AttributePath(steps=[pb.AttributePath.Step(attribute_name=name)]))
        return pb.PlanResourceChange.Response(
            planned_state=encode(planned),
            requires_replace=replace,
            planned_private=request.prior_private,
            # As the real provider's SDKv2 resources: Terraform tolerates small differences between plan and apply.
            legacy_type_system=True,
        )

    def _plan_known_computed(self, block: schema.Block, planned: dict[str, Any]) -> dict[str, Any]:
        attrs = block["attributes"]
        if "region" in attrs and attrs["region"].get("computed") and planned.get("region") in (None, Unknown):
            planned["region"] = self.aws.region
        if "tags_all" in attrs and "tags" in attrs:
            tags = planned.get("tags")
            if schema.contains_unknown(tags):
                planned["tags_all"] = Unknown
            else:
                planned["tags_all"] = {**self.aws.default_tags, **(tags or {})}
        return planned

    def ApplyResourceChange(self, request: pb.ApplyResourceChange.Request, context: Any) -> Any:
        type_name = request.type_name
        block = schema.resource_block(type_name)
        prior = schema.conform(block, decode(request.prior_state))
        planned = schema.conform(block, decode(request.planned_state), unknown_to_none=True)
        handler = _registries()[0].get(type_name)
        if handler is None:
            return pb.ApplyResourceChange.Response(
                diagnostics=_error(f"{type_name}: the provider double has no handler for this type")
            )
        try:
            if planned is None:
                _call(type_name, lambda: handler.delete(self.aws, prior))
                return pb.ApplyResourceChange.Response(new_state=encode(None))
            if prior is None:
                state = _call(type_name, lambda: handler.create(self.aws, planned))
            else:
                state = _call(type_name, lambda: handler.update(self.aws, prior, planned))
        except HandlerError as err:
            # A failed create leaves nothing in state; a failed update or delete keeps the prior object.
            return pb.ApplyResourceChange.Response(
                new_state=encode(prior), diagnostics=_error(str(err), _trace(err.__cause__))
            )
        new = schema.conform(block, {**planned, **(state or {})}, unknown_to_none=True) or {}
        new = schema.keep_configured(block, planned, new)
        return pb.ApplyResourceChange.Response(
            new_state=encode(new), private=request.planned_private, legacy_type_system=True
        )

    def ImportResourceState(self, request: Any, context: Any) -> Any:
        return pb.ImportResourceState.Response(diagnostics=_error("the provider double imports nothing"))

    def MoveResourceState(self, request: Any, context: Any) -> Any:
        return pb.MoveResourceState.Response(diagnostics=_error("the provider double moves nothing"))

    # ------------------------------------------------------------ data sources
    def ReadDataSource(self, request: pb.ReadDataSource.Request, context: Any) -> Any:
        type_name = request.type_name
        block = schema.data_block(type_name)
        config = schema.conform(block, decode(request.config), unknown_to_none=True) or {}
        handler = _registries()[1].get(type_name)
        if handler is None:
            return pb.ReadDataSource.Response(
                diagnostics=_error(f"data.{type_name}: the provider double has no handler for this type")
            )
        try:
            state = _call(type_name, lambda: handler.read(self.aws, config))
        except HandlerError as err:
            return pb.ReadDataSource.Response(diagnostics=_error(str(err), _trace(err.__cause__)))
        attrs = block["attributes"]
        merged = {**config, **(state or {})}
        if "region" in attrs and merged.get("region") is None and type_name != "aws_region":
            merged["region"] = self.aws.region
        return pb.ReadDataSource.Response(state=encode(schema.conform(block, merged, unknown_to_none=True)))

    # ------------------------------------------------------------ the rest
    def GetFunctions(self, request: Any, context: Any) -> Any:
        return pb.GetFunctions.Response()

    def StopProvider(self, request: Any, context: Any) -> Any:
        return pb.StopProvider.Response()


def _call(type_name: str, fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except Exception as exc:  # every handler error, botocore's included, is the user's diagnostic
        raise HandlerError(f"{type_name}: {exc}") from exc


def _trace(exc: BaseException | None) -> str:
    if exc is None:
        return ""
    return "".join(traceback.format_exception(exc)[-3:])


def serve(server: grpc.Server) -> ProviderServicer:
    servicer = ProviderServicer()
    rpc.add_ProviderServicer_to_server(servicer, server)
    return servicer


__all__ = ["DEFAULT_REGION", "ProviderServicer", "decode", "encode", "serve"]
