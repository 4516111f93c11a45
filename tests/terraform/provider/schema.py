"""The committed schema (aws_schema.json, Terraform's own schema JSON format): protocol messages and value shaping.

Values are plain Python as msgpack gives them (objects -> dict, list/set -> list, null -> None), with
`tf.types.Unknown` for a value Terraform does not know yet.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from tf.gen import tfplugin_pb2 as pb
from tf.types import Unknown

from tests.terraform.provider.schema_gen import SCHEMA_PATH

Block = dict[str, Any]  # {"attributes": {...}, "block_types": {...}}

_NESTING = {
    "list": pb.Schema.NestedBlock.NestingMode.LIST,
    "set": pb.Schema.NestedBlock.NestingMode.SET,
    "single": pb.Schema.NestedBlock.NestingMode.SINGLE,
}


@cache
def load() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text())


def resource_block(type_name: str) -> Block:
    return load()["resource_schemas"][type_name]["block"]


def data_block(type_name: str) -> Block:
    return load()["data_source_schemas"][type_name]["block"]


def provider_block() -> Block:
    return load()["provider"]["block"]


def to_pb(schema: dict[str, Any]) -> pb.Schema:
    return pb.Schema(version=schema.get("version", 0), block=_block_pb(schema["block"]))


def _block_pb(block: Block) -> pb.Schema.Block:
    attributes = [
        pb.Schema.Attribute(
            name=name,
            type=json.dumps(attr["type"]).encode(),
            required=attr.get("required", False),
            optional=attr.get("optional", False),
            computed=attr.get("computed", False),
        )
        for name, attr in sorted(block["attributes"].items())
    ]
    blocks = [
        pb.Schema.NestedBlock(
            type_name=name,
            block=_block_pb(nested["block"]),
            nesting=_NESTING[nested["nesting_mode"]],
            min_items=nested.get("min_items", 0),
            max_items=nested.get("max_items", 0),
        )
        for name, nested in sorted(block.get("block_types", {}).items())
    ]
    return pb.Schema.Block(attributes=attributes, block_types=blocks)


# ---------------------------------------------------------------- values


def conform(block: Block, value: dict[str, Any] | None, unknown_to_none: bool = False) -> dict[str, Any] | None:
    """`value` with exactly the keys of `block`: missing attributes None, missing list/set blocks [].

    Primitives are coerced to their schema type (a handler may hand back 30 for "30"), which is what the real
    provider's SDK does when it writes state. With `unknown_to_none`, values still unknown become None (after apply).
    """
    if value is None:
        return None
    out: dict[str, Any] = {}
    for name, attr in block["attributes"].items():
        out[name] = _conform_type(attr["type"], value.get(name), unknown_to_none)
    for name, nested in block.get("block_types", {}).items():
        out[name] = _conform_nested(nested, value.get(name), unknown_to_none)
    return out


def _conform_nested(nested: dict[str, Any], value: Any, unknown_to_none: bool) -> Any:
    if value is Unknown:
        return None if unknown_to_none else Unknown
    if nested["nesting_mode"] == "single":
        if isinstance(value, list):  # a handler may give a single block as a one-element list
            value = value[0] if value else None
        return conform(nested["block"], value, unknown_to_none)
    if isinstance(value, dict):
        value = [value]
    return [conform(nested["block"], v, unknown_to_none) for v in value or []]


def _conform_type(cty: Any, value: Any, unknown_to_none: bool) -> Any:
    if value is Unknown:
        return None if unknown_to_none else Unknown
    if value is None:
        return None
    if cty == "string":
        if isinstance(value, bool):
            return "true" if value else "false"
        return value if isinstance(value, str) else str(value)
    if cty == "number":
        if isinstance(value, str):
            number = float(value)
            return int(number) if number.is_integer() else number
        return value
    if cty == "bool":
        return value if isinstance(value, bool) else str(value).lower() == "true"
    kind, element = cty[0], cty[1]
    if kind in ("list", "set"):
        return [_conform_type(element, v, unknown_to_none) for v in value]
    if kind == "map":
        return {k: _conform_type(element, v, unknown_to_none) for k, v in value.items()}
    if kind == "object":
        return {k: _conform_type(t, value.get(k), unknown_to_none) for k, t in element.items()}
    raise ValueError(f"type {cty!r} is not supported by the provider double")


def unknown_computed(block: Block, config: dict[str, Any] | None, planned: dict[str, Any] | None) -> Any:
    """The create plan: every computed attribute the configuration leaves null is unknown, in nested blocks too."""
    if planned is None:
        return None
    out = dict(planned)
    for name, attr in block["attributes"].items():
        if attr.get("computed") and (config or {}).get(name) is None and out.get(name) is None:
            out[name] = Unknown
    for name, nested in block.get("block_types", {}).items():
        value, conf = out.get(name), (config or {}).get(name)
        if value is None or value is Unknown:
            continue
        if nested["nesting_mode"] == "single":
            out[name] = unknown_computed(nested["block"], conf, value)
        elif nested["nesting_mode"] == "list":
            confs = conf if isinstance(conf, list) else []
            out[name] = [
                unknown_computed(nested["block"], confs[i] if i < len(confs) else None, v) for i, v in enumerate(value)
            ]
        else:  # set elements have no position to match config by: the planned element carries the config values
            out[name] = [unknown_computed(nested["block"], v, v) for v in value]
    return out


def contains_unknown(value: Any) -> bool:
    if value is Unknown:
        return True
    if isinstance(value, dict):
        return any(contains_unknown(v) for v in value.values())
    if isinstance(value, list):
        return any(contains_unknown(v) for v in value)
    return False


def same(a: Any, b: Any, cty: Any = None) -> bool:
    """Equal as Terraform compares: sets ignore order."""
    if isinstance(a, list) and isinstance(b, list) and isinstance(cty, list) and cty[0] == "set":
        key = lambda v: json.dumps(v, sort_keys=True, default=repr)  # noqa: E731
        return sorted(map(key, a)) == sorted(map(key, b))
    return a == b


def keep_configured(block: Block, planned: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """`new` with every non-computed attribute as planned (which is as configured), in nested blocks too.

    Terraform holds a provider to this: a value the configuration sets (or leaves null) is the value in state. The
    real provider's defaults (`skip_destroy = false`) are not in the published bindings, so a handler that reports
    AWS's default for an unset argument would otherwise show a change on every plan. Blocks the configuration leaves
    out but the handler reports (computed blocks, like aws_instance's root_block_device) are kept as reported.
    """
    out = dict(new)
    for name, attr in block["attributes"].items():
        if not attr.get("computed"):
            out[name] = planned.get(name)
    for name, nested in block.get("block_types", {}).items():
        want, have = planned.get(name), new.get(name)
        if nested["nesting_mode"] == "single":
            out[name] = have if want is None else keep_configured(nested["block"], want, have or {})
        elif not want:
            out[name] = have if have else want
        elif nested["nesting_mode"] == "list" and have and len(have) == len(want):
            out[name] = [keep_configured(nested["block"], w, h or {}) for w, h in zip(want, have, strict=True)]
        elif nested["nesting_mode"] == "set" and have and len(have) == len(want) and _has_computed(nested["block"]):
            out[name] = have  # set elements have no position to pair them by; the handler's carry computed values
        else:
            out[name] = want
    return out


def keep_unset(block: Block, prior: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """After a refresh: a non-computed attribute that was null stays null (see keep_configured); others drift."""
    out = dict(new)
    for name, attr in block["attributes"].items():
        if not attr.get("computed") and prior.get(name) is None:
            out[name] = None
    for name, nested in block.get("block_types", {}).items():
        was, now = prior.get(name), new.get(name)
        if nested["nesting_mode"] == "single" and was is not None and now is not None:
            out[name] = keep_unset(nested["block"], was, now)
        elif nested["nesting_mode"] == "list" and was and now and len(was) == len(now):
            out[name] = [keep_unset(nested["block"], w, n) for w, n in zip(was, now, strict=True)]
    return out


def keep_prior_blocks(block: Block, prior: dict[str, Any], planned: dict[str, Any]) -> dict[str, Any]:
    """An update plan keeps blocks the configuration leaves out but state has (the SDK's optional+computed blocks)."""
    out = dict(planned)
    for name, nested in block.get("block_types", {}).items():
        left_out = planned.get(name) is None if nested["nesting_mode"] == "single" else not planned.get(name)
        if left_out and prior.get(name):
            out[name] = prior[name]
    return out


def _has_computed(block: Block) -> bool:
    return any(a.get("computed") for a in block["attributes"].values()) or any(
        _has_computed(n["block"]) for n in block.get("block_types", {}).values()
    )
