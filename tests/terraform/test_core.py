"""The provider double's core through real Terraform, with a fake handler (tests/terraform/fake_store.py).

What a user of the double relies on: computed values are unknown in a create plan and known after apply; tags_all
and region are planned as the real provider plans them; a change updates in place unless the handler names the
attribute in replace_on; an object gone behind Terraform's back is planned again; destroy deletes; data sources
that depend on unknown values are read at apply.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.terraform.provider.cliconfig import install
from tests.terraform.provider.server import EXTRA_HANDLERS_ENV

# Not imported from fake_store: importing it would register the fake in this process, over the real handler.
STORE_ENV = "EC2BATCH_TF_FAKE_STORE"
CONFIG = """
terraform {
  required_providers {
    aws = { source = "hashicorp/aws", version = "~> 6.0" }
  }
}

provider "aws" {
  region     = "eu-central-1"
  access_key = "test"
  secret_key = "test"
  default_tags {
    tags = { owner = "tests" }
  }
}

variable "name" {
  type    = string
  default = "/core/p"
}

variable "value" {
  type    = string
  default = "one"
}

resource "aws_ssm_parameter" "p" {
  name  = var.name
  type  = "String"
  value = var.value
  tags  = { a = "1" }
}

data "aws_iam_policy_document" "read" {
  statement {
    actions   = ["ssm:GetParameter"]
    resources = [aws_ssm_parameter.p.arn]
  }
}

output "policy" {
  value = data.aws_iam_policy_document.read.json
}
"""


class Workspace:
    def __init__(self, terraform: str, where: Path) -> None:
        self.terraform = terraform
        self.where = where
        self.store = where / "store.json"
        (where / "main.tf").write_text(CONFIG)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TF_"))}
        self.env.update(install(where / ".double"))
        self.env.update({EXTRA_HANDLERS_ENV: "tests.terraform.fake_store", STORE_ENV: str(self.store)})

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [self.terraform, args[0], "-no-color", *args[1:]],
            cwd=self.where,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 0, f"terraform {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
        return proc

    def plan(self, *args: str) -> dict[str, Any]:
        self.run("plan", "-out=tfplan", *args)
        return json.loads(self.run("show", "-json", "tfplan").stdout)

    def stored(self) -> dict[str, Any]:
        return json.loads(self.store.read_text())


@pytest.fixture
def ws(terraform_bin: str, tmp_path: Path) -> Workspace:
    workspace = Workspace(terraform_bin, tmp_path)
    workspace.run("init")
    return workspace


def _change(plan: dict[str, Any], address: str) -> dict[str, Any]:
    (change,) = [c["change"] for c in plan["resource_changes"] if c["address"] == address]
    return change


def test_create_plans_computed_values_unknown_and_tags_all_region_known(ws: Workspace) -> None:
    change = _change(ws.plan(), "aws_ssm_parameter.p")
    assert change["actions"] == ["create"]
    assert change["after_unknown"]["arn"] is True
    assert change["after_unknown"]["version"] is True
    assert change["after"]["tags_all"] == {"a": "1", "owner": "tests"}
    assert change["after"]["region"] == "eu-central-1"


def test_apply_fills_computed_values_and_reads_dependent_data_sources(ws: Workspace) -> None:
    ws.run("apply", "-auto-approve")
    arn = "arn:aws:ssm:eu-central-1:123456789012:parameter/core/p"
    assert ws.stored()["/core/p"]["arn"] == arn
    outputs = json.loads(ws.run("output", "-json").stdout)
    assert json.loads(outputs["policy"]["value"])["Statement"][0]["Resource"] == arn
    # Nothing to do after an apply, though the handler reported a default ("") for the unset description.
    assert ws.plan()["resource_changes"][0]["change"]["actions"] == ["no-op"]


def test_a_change_updates_in_place_unless_the_handler_says_replace(ws: Workspace) -> None:
    ws.run("apply", "-auto-approve")
    assert _change(ws.plan("-var", "value=two"), "aws_ssm_parameter.p")["actions"] == ["update"]
    ws.run("apply", "-auto-approve", "-var", "value=two")
    assert ws.stored()["/core/p"]["version"] == 2
    replace = _change(ws.plan("-var", "value=two", "-var", "name=/core/q"), "aws_ssm_parameter.p")
    assert replace["actions"] == ["delete", "create"]


def test_an_object_deleted_behind_terraforms_back_is_planned_again(ws: Workspace) -> None:
    ws.run("apply", "-auto-approve")
    ws.store.write_text("{}")
    assert _change(ws.plan(), "aws_ssm_parameter.p")["actions"] == ["create"]


def test_destroy_deletes_through_the_handler(ws: Workspace) -> None:
    ws.run("apply", "-auto-approve")
    ws.run("destroy", "-auto-approve")
    assert ws.stored() == {}
