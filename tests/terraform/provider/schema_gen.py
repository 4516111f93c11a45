"""Generate the provider double's schema (aws_schema.json) from the real provider's published bindings.

The PyPI wheel `cdktn-provider-aws` (CDK Terrain's prebuilt bindings of hashicorp/aws) is generated from the real
provider's `terraform providers schema -json`. Its `_jsii/provider-aws@<v>.jsii.tgz` holds one
`package/lib/<type>/index.js` per resource and data source, in which every attribute and block carries
`// <name> - computed: <bool>, optional: <bool>, required: <bool>` and its input type (`isBlock`, `type`,
`storageClassType`). This module reads those back into Terraform's own schema JSON format (block, attributes with
cty types, block_types with nesting_mode and min/max items) for the types the module uses.

What the bindings cannot tell (so the subset leaves it out): `sensitive`, `deprecated`, descriptions, and the
schema version of each resource (all are 0 here; the double never upgrades state).

Run (the wheel is 70 MB, so only the subset is committed):
    pip download --no-deps cdktn-provider-aws==25.8.1 -d .cache/cdktn
    python -m tests.terraform.provider.schema_gen .cache/cdktn/cdktn_provider_aws-25.8.1-py3-none-any.whl
"""

from __future__ import annotations

import argparse
import io
import json
import re
import sys
import tarfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCHEMA_PATH = Path(__file__).with_name("aws_schema.json")
WHEEL_VERSION = "25.8.1"

# The types the module (terraform/modules/scheduled-job) uses, and those its planned changes add.
RESOURCES = (
    "aws_batch_compute_environment",
    "aws_batch_job_definition",
    "aws_batch_job_queue",
    "aws_cloudwatch_dashboard",
    "aws_cloudwatch_event_rule",
    "aws_cloudwatch_event_target",
    "aws_cloudwatch_log_group",
    "aws_cloudwatch_log_metric_filter",
    "aws_cloudwatch_metric_alarm",
    "aws_dynamodb_table",
    "aws_ec2_instance_state",
    "aws_ecr_lifecycle_policy",
    "aws_ecr_repository",
    "aws_iam_instance_profile",
    "aws_iam_role",
    "aws_iam_role_policy",
    "aws_iam_role_policy_attachment",
    "aws_instance",
    "aws_kms_alias",
    "aws_kms_key",
    "aws_lambda_event_source_mapping",
    "aws_lambda_function",
    "aws_lambda_function_event_invoke_config",
    "aws_lambda_permission",
    "aws_launch_template",
    "aws_scheduler_schedule",
    "aws_scheduler_schedule_group",
    "aws_security_group",
    "aws_sns_topic",
    "aws_sns_topic_subscription",
    "aws_sqs_queue",
    "aws_ssm_parameter",
    "aws_vpc_security_group_egress_rule",
)
DATA_SOURCES = (
    "aws_ami",
    "aws_caller_identity",
    "aws_iam_policy_document",
    "aws_partition",
    "aws_region",
    "aws_subnet",
)

_FLAGS = re.compile(r"^\s*// (\w+) - computed: (true|false), optional: (true|false), required: (true|false)$", re.M)
_CLASS = re.compile(r"^class (\w+) extends ([\w.]+) \{$(.*?)^\}$", re.M | re.S)
_HCL_FUNC = re.compile(r"^function (\w+)ToHclTerraform\(struct\) \{$(.*?)^\}$", re.M | re.S)
_HCL_SYNTH = re.compile(r"synthesizeHclAttributes\(\) \{(.*?)^    \}$", re.M | re.S)
_HCL_ATTR = re.compile(
    r"^\s*(\w+): \{\s*value: .*?,\s*isBlock: (true|false),\s*type: \"(\w+)\",\s*storageClassType: \"(\w+)\",\s*\}",
    re.M | re.S,
)
_PRIMITIVE = {"string": "string", "number": "number", "boolean": "bool"}
_GETTER_TYPES = {
    "getStringAttribute": "string",
    "getNumberAttribute": "number",
    "getBooleanAttribute": "bool",
    "getStringMapAttribute": ["map", "string"],
    "getNumberMapAttribute": ["map", "number"],
    "getBooleanMapAttribute": ["map", "bool"],
    "getNumberListAttribute": ["list", "number"],
}


class SchemaGenError(Exception):
    """The bindings hold something this reader does not understand (a newer generator): fix the reader."""


@dataclass
class Hcl:
    is_block: bool
    kind: str  # simple | list | set | map | struct
    storage: str  # string | stringList | ... | <StructName>List | <StructName>


@dataclass
class Entry:
    name: str
    computed: bool
    optional: bool
    required: bool
    code: str  # the getter/setter code that follows the comment


@dataclass
class Module:
    """One index.js: its classes' attribute entries and its structs' HCL input types."""

    classes: dict[str, tuple[str, list[Entry]]] = field(default_factory=dict)
    hcl: dict[str, dict[str, Hcl]] = field(default_factory=dict)  # struct (lowerCamel) or class name -> attrs


def lib_dir(type_name: str, data: bool) -> str:
    """aws_sqs_queue -> sqs-queue; data aws_ami -> data-aws-ami (the bindings' directory names)."""
    name = type_name.removeprefix("aws_").replace("_", "-")
    return f"data-aws-{name}" if data else name


def parse_module(source: str) -> Module:
    mod = Module()
    for match in _CLASS.finditer(source):
        name, base, body = match.groups()
        mod.classes[name] = (base, _entries(body))
        synth = _HCL_SYNTH.search(body)
        if synth:
            mod.hcl[name] = _hcl_attrs(synth.group(1))
    for match in _HCL_FUNC.finditer(source):
        mod.hcl[match.group(1)] = _hcl_attrs(match.group(2))
    return mod


def _entries(body: str) -> list[Entry]:
    found = list(_FLAGS.finditer(body))
    entries = []
    for i, m in enumerate(found):
        end = found[i + 1].start() if i + 1 < len(found) else len(body)
        name, computed, optional, required = m.groups()
        entries.append(Entry(name, computed == "true", optional == "true", required == "true", body[m.end() : end]))
    return entries


def _hcl_attrs(body: str) -> dict[str, Hcl]:
    return {m.group(1): Hcl(m.group(2) == "true", m.group(3), m.group(4)) for m in _HCL_ATTR.finditer(body)}


def _lower_first(name: str) -> str:
    return name[:1].lower() + name[1:]


def _input_type(hcl: Hcl, where: str) -> Any:
    if hcl.kind == "simple":
        return _PRIMITIVE[hcl.storage]
    element = re.fullmatch(r"(string|number|boolean)(List|Map)", hcl.storage)
    if not element:
        raise SchemaGenError(f"{where}: input type {hcl.kind}/{hcl.storage} is not a primitive collection")
    return [hcl.kind, _PRIMITIVE[element.group(1)]]


def _computed_type(mod: Module, entry: Entry, where: str) -> Any:
    """The cty type of an attribute that has no input (computed only), from its getter."""
    code = entry.code
    nested = re.search(r"new (\w+)List\(this, \"\w+\", (true|false)\)", code)
    if nested:
        obj = _object_type(mod, f"{nested.group(1)}OutputReference", f"{where}.{entry.name}")
        return ["set" if nested.group(2) == "true" else "list", obj]
    single = re.search(r"new (\w+)OutputReference\(this, \"\w+\"\)", code)
    if single:
        return ["list", _object_type(mod, f"{single.group(1)}OutputReference", f"{where}.{entry.name}")]
    if re.search(r"new cdktn\.StringMap\(", code):
        return ["map", "string"]
    if "getListAttribute" in code:
        return ["set" if "cdktn.Fn.tolist" in code else "list", "string"]
    for getter, cty in _GETTER_TYPES.items():
        if getter in code:
            return cty
    if "interpolationForAttribute" in code:
        return "dynamic"
    raise SchemaGenError(f"{where}.{entry.name}: no type found in its getter")


def _object_type(mod: Module, class_name: str, where: str) -> Any:
    _, entries = mod.classes[class_name]
    return ["object", {e.name: _computed_type(mod, e, where) for e in entries}]


def _block(mod: Module, class_name: str, hcl: dict[str, Hcl], where: str) -> dict[str, Any]:
    """Terraform's schema JSON for the block whose getters are in `class_name` and inputs in `hcl`."""
    attributes: dict[str, Any] = {}
    block_types: dict[str, Any] = {}
    for entry in mod.classes[class_name][1]:
        path = f"{where}.{entry.name}"
        inp = hcl.get(entry.name)
        if inp is not None and inp.is_block:
            block_types[entry.name] = _nested_block(mod, entry, inp, path)
            continue
        cty = _input_type(inp, path) if inp is not None else _computed_type(mod, entry, where)
        attr: dict[str, Any] = {"type": cty}
        for flag in ("required", "optional", "computed"):
            if getattr(entry, flag):
                attr[flag] = True
        if len(attr) == 1:
            raise SchemaGenError(f"{path}: neither required, optional nor computed")
        attributes[entry.name] = attr
    out: dict[str, Any] = {"attributes": attributes}
    if block_types:
        out["block_types"] = block_types
    return out


def _nested_block(mod: Module, entry: Entry, inp: Hcl, where: str) -> dict[str, Any]:
    struct = inp.storage.removesuffix("List")
    ref = f"{struct}OutputReference"
    inner = _block(mod, ref, mod.hcl.get(_lower_first(struct), {}), where)
    nesting = {"list": "list", "set": "set", "struct": "single"}[inp.kind]
    out: dict[str, Any] = {"nesting_mode": nesting, "block": inner}
    # A list/set block the bindings model as one object (no XxxList class) has max_items = 1.
    if nesting != "single" and f"new {struct}List(" not in entry.code:
        out["max_items"] = 1
    if entry.required and nesting != "single":
        out["min_items"] = 1
    return out


def type_schema(source: str, type_name: str) -> dict[str, Any]:
    mod = parse_module(source)
    bases = ("cdktn.TerraformResource", "cdktn.TerraformDataSource")
    tops = [n for n, (base, _) in mod.classes.items() if base in bases]
    if len(tops) != 1:
        raise SchemaGenError(f"{type_name}: expected one resource class, found {tops}")
    return {"version": 0, "block": _block(mod, tops[0], mod.hcl.get(tops[0], {}), type_name)}


def provider_schema(source: str) -> dict[str, Any]:
    """The provider's configuration: top-level flags from the class, nested blocks from their input structs."""
    mod = parse_module(source)
    (name,) = [n for n, (base, _) in mod.classes.items() if base == "cdktn.TerraformProvider"]
    attributes: dict[str, Any] = {}
    block_types: dict[str, Any] = {}
    hcl = mod.hcl[name]
    for entry in mod.classes[name][1]:
        inp = hcl[entry.name]
        if inp.is_block:
            struct = _lower_first(inp.storage.removesuffix("List"))
            inner = {
                k: {"type": _input_type(v, f"provider.{entry.name}.{k}"), "optional": True}
                for k, v in mod.hcl[struct].items()
            }
            block_types[entry.name] = {"nesting_mode": inp.kind, "block": {"attributes": inner}}
            if inp.kind == "list":
                block_types[entry.name]["max_items"] = 1
        elif entry.name != "alias":  # `alias` is Terraform's meta-argument, not the provider's
            attributes[entry.name] = {"type": _input_type(inp, f"provider.{entry.name}"), "optional": True}
    return {"version": 0, "block": {"attributes": attributes, "block_types": block_types}}


def _provider_version(source: str) -> str:
    found = re.search(r"providerVersion: '([\d.]+)'", source)
    if not found:
        raise SchemaGenError("no providerVersion in the bindings")
    return found.group(1)


def read_libs(wheel: Path, names: list[str]) -> dict[str, str]:
    """index.js of each named lib directory, read from the wheel's jsii tarball without unpacking the 46 MB."""
    with zipfile.ZipFile(wheel) as zf:
        (tgz,) = [n for n in zf.namelist() if n.endswith(".jsii.tgz")]
        data = zf.read(tgz)
    wanted = {f"package/lib/{n}/index.js": n for n in names}
    out: dict[str, str] = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for member in tar:
            if member.name in wanted:
                extracted = tar.extractfile(member)
                if extracted is not None:
                    out[wanted[member.name]] = extracted.read().decode()
    missing = sorted(set(names) - set(out))
    if missing:
        raise SchemaGenError(f"not in the bindings: {', '.join(missing)}")
    return out


def generate(wheel: Path) -> dict[str, Any]:
    libs = read_libs(
        wheel,
        ["provider"] + [lib_dir(t, False) for t in RESOURCES] + [lib_dir(t, True) for t in DATA_SOURCES],
    )
    return {
        "generated_from": f"cdktn-provider-aws {wheel.name.split('-')[1]}",
        "provider_version": _provider_version(libs[lib_dir(RESOURCES[0], False)]),
        "provider": provider_schema(libs["provider"]),
        "resource_schemas": {t: type_schema(libs[lib_dir(t, False)], t) for t in RESOURCES},
        "data_source_schemas": {t: type_schema(libs[lib_dir(t, True)], t) for t in DATA_SOURCES},
    }


def dump(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=1, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("wheel", type=Path, help=f"cdktn_provider_aws-{WHEEL_VERSION}-py3-none-any.whl")
    parser.add_argument("--out", type=Path, default=SCHEMA_PATH)
    args = parser.parse_args(argv)
    args.out.write_text(dump(generate(args.wheel)))
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
