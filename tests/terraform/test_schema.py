"""The provider double's schema: the real provider's, for every type the module uses."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.terraform.provider import schema_gen

ROOT = Path(__file__).resolve().parents[2]
WHEEL = ROOT / ".cache" / "cdktn" / f"cdktn_provider_aws-{schema_gen.WHEEL_VERSION}-py3-none-any.whl"


def _used_types() -> tuple[set[str], set[str]]:
    resources: set[str] = set()
    data: set[str] = set()
    for tf in (ROOT / "terraform").rglob("*.tf"):
        for kind, name in re.findall(r'^(resource|data) "(aws_[a-z0-9_]+)"', tf.read_text(), re.M):
            (resources if kind == "resource" else data).add(name)
    return resources, data


def test_the_committed_schema_has_every_type_the_module_uses() -> None:
    schema = json.loads(schema_gen.SCHEMA_PATH.read_text())
    resources, data = _used_types()
    assert resources - set(schema["resource_schemas"]) == set(), "add them to schema_gen.RESOURCES and regenerate"
    assert data - set(schema["data_source_schemas"]) == set(), "add them to schema_gen.DATA_SOURCES and regenerate"


def test_the_schema_keeps_what_the_provider_says_is_required_computed_and_nested() -> None:
    schema = json.loads(schema_gen.SCHEMA_PATH.read_text())
    queue = schema["resource_schemas"]["aws_sqs_queue"]["block"]["attributes"]
    assert queue["arn"] == {"computed": True, "type": "string"}
    assert queue["name"] == {"computed": True, "optional": True, "type": "string"}
    instance = schema["resource_schemas"]["aws_instance"]["block"]["block_types"]
    assert instance["root_block_device"]["max_items"] == 1
    assert instance["ebs_block_device"]["nesting_mode"] == "set"
    assert "max_items" not in instance["ebs_block_device"]
    assert instance["timeouts"]["nesting_mode"] == "single"
    role = schema["resource_schemas"]["aws_iam_role"]["block"]["attributes"]
    assert role["assume_role_policy"] == {"required": True, "type": "string"}
    ami = schema["data_source_schemas"]["aws_ami"]["block"]["attributes"]
    assert ami["block_device_mappings"]["type"][0] == "set"
    assert schema["provider"]["block"]["block_types"]["endpoints"]["nesting_mode"] == "set"


@pytest.mark.skipif(not WHEEL.exists(), reason=f"no {WHEEL.name} in .cache/cdktn (make tf-schema downloads it)")
def test_the_committed_schema_is_what_the_generator_makes_from_the_wheel() -> None:
    assert schema_gen.dump(schema_gen.generate(WHEEL)) == schema_gen.SCHEMA_PATH.read_text()
