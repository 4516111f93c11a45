"""examples/daily-job through real Terraform: init, validate, plan, apply, a second plan, destroy."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.terraform.conftest import EXAMPLE, TfRunner
from tests.terraform.provider import schema
from tests.terraform.provider.cliconfig import SOURCE, provider_version

MODULE = Path("terraform/modules/scheduled-job")
JOB = "daily-report"  # the example's job_name


def test_init_installs_the_provider_from_the_mirror_and_locks_it(initialized: Any, tf_dir: Path) -> None:
    lock = (tf_dir / EXAMPLE / ".terraform.lock.hcl").read_text()
    assert f'version     = "{provider_version()}"' in lock
    assert re.search(r'"h1:[A-Za-z0-9+/=]+"', lock)


def test_terraform_sees_the_real_providers_schema(tf: TfRunner, initialized: Any) -> None:
    # What Terraform reads through the protocol is the committed schema, every type, attribute, block and nesting.
    seen = json.loads(tf("providers", "schema", "-json").stdout)["provider_schemas"][SOURCE]
    committed = schema.load()

    def plain(value: Any) -> Any:
        if isinstance(value, dict):
            # Terraform's JSON leaves out description kinds, versions and a block's empty attribute list.
            dropped = ("description_kind", "version")
            return {k: plain(v) for k, v in value.items() if k not in dropped and not (k == "attributes" and not v)}
        return value

    for kind in ("resource_schemas", "data_source_schemas"):
        assert plain(seen[kind]) == plain(committed[kind])
    assert plain(seen["provider"]) == plain(committed["provider"])


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
    # By name, so that the check also holds on a shared endpoint (the local stack's moto_server).
    base = names["base"]
    assert names["ledger_table"] not in aws("dynamodb").list_tables()["TableNames"]
    assert aws("sqs").list_queues(QueueNamePrefix=base).get("QueueUrls", []) == []
    assert [r["RoleName"] for r in aws("iam").list_roles()["Roles"] if r["RoleName"].startswith(base)] == []
    profiles = aws("iam").list_instance_profiles()["InstanceProfiles"]
    assert [p["InstanceProfileName"] for p in profiles if p["InstanceProfileName"].startswith(base)] == []
    assert [f["FunctionName"] for f in aws("lambda").list_functions()["Functions"] if base in f["FunctionName"]] == []
    scheduler = aws("scheduler")
    assert [s["Name"] for s in scheduler.list_schedules()["Schedules"] if s["Name"].startswith(base)] == []
    assert [g["Name"] for g in scheduler.list_schedule_groups()["ScheduleGroups"] if g["Name"].startswith(base)] == []
    groups = aws("logs").describe_log_groups()["logGroups"]
    ours = {names["log_group"], names["launcher_log_group"]}
    assert [g["logGroupName"] for g in groups if g["logGroupName"] in ours] == []
    topic = f":{names['notification_topic']}"
    assert [t["TopicArn"] for t in aws("sns").list_topics()["Topics"] if t["TopicArn"].endswith(topic)] == []
    parameters = aws("ssm").describe_parameters()["Parameters"]
    assert [p["Name"] for p in parameters if p["Name"] == names["config_parameter"]] == []
    repos = aws("ecr").describe_repositories()["repositories"]
    assert [r["repositoryName"] for r in repos if r["repositoryName"] == names["ecr_repository"]] == []
    templates = aws("ec2").describe_launch_templates()["LaunchTemplates"]
    assert [t["LaunchTemplateName"] for t in templates if t["LaunchTemplateName"] == names["launch_template"]] == []
    by_name = [{"Name": "group-name", "Values": [names["security_group"]]}]
    assert aws("ec2").describe_security_groups(Filters=by_name)["SecurityGroups"] == []
    live = [{"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]}]
    job = [{"Name": "tag:ec2batch:job", "Values": [JOB]}]
    assert aws("ec2").describe_instances(Filters=live + job)["Reservations"] == []
    state = json.loads(tf("show", "-json").stdout)
    assert _resources(state.get("values", {}).get("root_module", {})) == []


def _resources(module: dict[str, Any]) -> list[dict[str, Any]]:
    out = list(module.get("resources", []))
    for child in module.get("child_modules", []):
        out.extend(_resources(child))
    return out
