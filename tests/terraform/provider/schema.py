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
