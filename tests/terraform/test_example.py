"""examples/daily-job through real Terraform: init, validate, plan, apply, a second plan, destroy."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.terraform.conftest import EXAMPLE, TfRunner
from tests.terraform.provider.cliconfig import provider_version

MODULE = Path("terraform/modules/scheduled-job")


def test_init_installs_the_provider_from_the_mirror_and_locks_it(initialized: Any, tf_dir: Path) -> None:
    lock = (tf_dir / EXAMPLE / ".terraform.lock.hcl").read_text()
    assert f'version     = "{provider_version()}"' in lock
    assert re.search(r'"h1:[A-Za-z0-9+/=]+"', lock)


def test_validate_passes(tf: TfRunner, initialized: Any) -> None:
    assert "The configuration is valid" in tf("validate").stdout


def test_plan_creates_the_job_and_nothing_else(plan_json: dict[str, Any]) -> None:
    changes = [c for c in plan_json["resource_changes"] if c["mode"] == "managed"]
    assert {tuple(c["change"]["actions"]) for c in changes} == {("create",)}
    types = {c["type"] for c in changes}
    for wanted in ("aws_lambda_function", "aws_scheduler_schedule", "aws_dynamodb_table", "aws_launch_template"):
        assert wanted in types


def test_apply_creates_every_planned_resource(applied: dict[str, Any], plan_json: dict[str, Any]) -> None:
    planned = {c["address"] for c in plan_json["resource_changes"] if c["mode"] == "managed"}
    in_state = {r["address"] for r in _resources(applied["values"]["root_module"]) if r["mode"] == "managed"}
    assert planned - in_state == set()


def test_a_second_plan_after_apply_has_no_changes(tf: TfRunner, applied: dict[str, Any]) -> None:
    # -detailed-exitcode: 0 no changes, 2 changes. A perpetual diff is what a user sees on every plan.
    proc = tf("plan", "-detailed-exitcode", check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.destroys
def test_destroy_leaves_nothing(tf: TfRunner, tf_dir: Path, applied: dict[str, Any], aws: Callable[[str], Any]) -> None:
    names = applied["values"]["outputs"]["names"]["value"]
    # The run ledger is deletion-protected, and AWS refuses to delete it: turn the protection off first, as a user
    # who means to destroy the job must.
    (tf_dir / MODULE / "ledger_override.tf").write_text(
        'resource "aws_dynamodb_table" "ledger" {\n  deletion_protection_enabled = false\n}\n'
    )
    tf("apply", "-auto-approve")
    ledger = aws("dynamodb").describe_table(TableName=names["ledger_table"])["Table"]
    assert ledger["DeletionProtectionEnabled"] is False
    tf("destroy", "-auto-approve")
    assert aws("dynamodb").list_tables()["TableNames"] == []
    assert aws("sqs").list_queues(QueueNamePrefix=names["base"]).get("QueueUrls", []) == []
    roles = [r["RoleName"] for r in aws("iam").list_roles()["Roles"] if r["RoleName"].startswith(names["base"])]
    assert roles == []
    assert aws("iam").list_instance_profiles()["InstanceProfiles"] == []
    assert aws("lambda").list_functions()["Functions"] == []
    scheduler = aws("scheduler")
    assert scheduler.list_schedules()["Schedules"] == []
    assert [g["Name"] for g in scheduler.list_schedule_groups()["ScheduleGroups"]] in ([], ["default"])
    groups = aws("logs").describe_log_groups()["logGroups"]
    assert [g["logGroupName"] for g in groups if names["base"] in g["logGroupName"]] == []
    assert aws("sns").list_topics()["Topics"] == []
    assert aws("ssm").describe_parameters()["Parameters"] == []
    assert aws("ecr").describe_repositories()["repositories"] == []
    assert aws("ec2").describe_launch_templates()["LaunchTemplates"] == []
    by_name = [{"Name": "group-name", "Values": [names["security_group"]]}]
    assert aws("ec2").describe_security_groups(Filters=by_name)["SecurityGroups"] == []
    reservations = aws("ec2").describe_instances(
        Filters=[{"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]}]
    )["Reservations"]
    assert reservations == []
    state = json.loads(tf("show", "-json").stdout)
    assert _resources(state.get("values", {}).get("root_module", {})) == []


def _resources(module: dict[str, Any]) -> list[dict[str, Any]]:
    out = list(module.get("resources", []))
    for child in module.get("child_modules", []):
        out.extend(_resources(child))
    return out
