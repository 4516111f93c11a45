"""Static checks of the Terraform module: no `terraform` binary can be installed where this is developed.

Parsed with python-hcl2; checkov runs from its own virtualenv (`make checkov`), as it pins its own hcl2.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import hcl2
import pytest
from hcl2 import SerializationOptions

from ec2batch.config import JobConfig
from ec2batch.launcher.events import schedule_target_input
from ec2batch.names import JOB_NAME_PATTERN, TAG_JOB, JobNames

ROOT = Path(__file__).parents[2]
TERRAFORM = ROOT / "terraform"
MODULE = TERRAFORM / "modules" / "scheduled-job"
OPTIONS = SerializationOptions(strip_string_quotes=True, explicit_blocks=False)
CHECKOV = ROOT / ".cache" / "checkov-venv" / "bin" / "checkov"

# Resource types of this module that take tags (AWS provider docs); every one must carry local.tags.
TAGGABLE = {
    "aws_ecr_repository",
    "aws_ssm_parameter",
    "aws_dynamodb_table",
    "aws_sns_topic",
    "aws_cloudwatch_log_group",
    "aws_security_group",
    "aws_vpc_security_group_egress_rule",
    "aws_launch_template",
    "aws_instance",
    "aws_iam_role",
    "aws_iam_instance_profile",
    "aws_lambda_function",
    "aws_sqs_queue",
    "aws_lambda_event_source_mapping",
    "aws_scheduler_schedule_group",
    "aws_cloudwatch_metric_alarm",
}


def one(value: Any) -> Any:
    """hcl2 gives a block written once as a one-element list."""
    return value[0] if isinstance(value, list) and len(value) == 1 else value


def load(path: Path) -> dict[str, Any]:
    with path.open() as f:
        return hcl2.load(f, serialization_options=OPTIONS)


@cache
def module() -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for path in sorted(MODULE.glob("*.tf")):
        for key, blocks in load(path).items():
            merged.setdefault(key, []).extend(blocks)
    return merged


def resources(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    found = []
    for block in doc.get("resource", []):
        for rtype, named in block.items():
            for name, body in named.items():
                found.append((rtype, name, body))
    return found


def locals_(doc: dict[str, Any]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for block in doc.get("locals", []):
        merged.update(block)
    return merged


def policy_documents(doc: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    found = {}
    for block in doc.get("data", []):
        for name, body in block.get("aws_iam_policy_document", {}).items():
            statements = body.get("statement", [])
            statements = list(statements) if isinstance(statements, list) else [statements]
            for dynamic in body.get("dynamic", []):
                statements.append(one(one(dynamic["statement"])["content"]))
            found[name] = statements
    return found


@pytest.mark.parametrize("path", sorted(TERRAFORM.rglob("*.tf")), ids=lambda p: str(p.relative_to(TERRAFORM)))
def test_every_tf_file_parses(path: Path) -> None:
    assert load(path) is not None


def test_the_module_has_the_terraform_aws_modules_layout() -> None:
    for name in ("main.tf", "iam.tf", "variables.tf", "outputs.tf", "versions.tf", "README.md"):
        assert (MODULE / name).exists(), name
    for name in ("main.tf", "variables.tf", "outputs.tf", "versions.tf", "terraform.tfvars.example", "README.md"):
        assert (TERRAFORM / "examples" / "daily-job" / name).exists(), name


def test_every_variable_has_type_and_description_and_risky_ones_are_validated() -> None:
    variables = {name: body for block in module()["variable"] for name, body in block.items()}
    for name, body in variables.items():
        assert body.get("type"), f"variable {name} has no type"
        assert body.get("description"), f"variable {name} has no description"
    for name in (
        "job_name",
        "schedule_expression",
        "schedule_timezone",
        "strategy",
        "concurrency",
        "max_runtime_seconds",
        "instance_types",
        "subnet_ids",
        "log_retention_days",
    ):
        assert variables[name].get("validation"), f"variable {name} has no validation"


def test_the_job_name_validation_is_the_python_pattern() -> None:
    condition = one(next(b for b in module()["variable"] if "job_name" in b)["job_name"]["validation"])["condition"]
    assert JOB_NAME_PATTERN in condition


def test_the_module_readme_documents_every_input_and_output() -> None:
    readme = (MODULE / "README.md").read_text()
    doc = module()
    for kind in ("variable", "output"):
        for block in doc[kind]:
            for name in block:
                assert f"| `{name}` |" in readme, f"{kind} {name} is not in the module README"


def test_every_output_has_a_description() -> None:
    for block in module()["output"]:
        for name, body in block.items():
            assert body.get("description"), f"output {name} has no description"


def test_every_taggable_resource_is_tagged_with_the_job_tags() -> None:
    for rtype, name, body in resources(module()):
        if rtype in TAGGABLE:
            assert "local.tags" in str(body.get("tags", "")), f"{rtype}.{name} is not tagged with local.tags"
    assert f'"{TAG_JOB}"' in (MODULE / "locals.tf").read_text()


def resolve(template: str, job: str) -> str:
    base = f"ec2batch-{job}"
    return template.replace("${local.base}", base).replace("${var.job_name}", job)


@pytest.mark.parametrize("job", ["daily-report", "x1", "a-very-long-job-name-of-31-char"])
def test_terraform_derives_the_same_names_as_the_local_stack(job: str) -> None:
    names = locals_(module())["names"]
    assert {key: resolve(value, job) for key, value in names.items()} == JobNames(job).as_dict()


def test_terraform_writes_the_config_document_the_schema_reads() -> None:
    config = locals_(module())["job_config"]
    assert set(config) == set(JobConfig.__dataclass_fields__)


def test_the_schedule_target_input_is_the_launchers() -> None:
    schedule = next(
        body for rtype, name, body in resources(module()) if (rtype, name) == ("aws_scheduler_schedule", "job")
    )
    target_input = one(schedule["target"])["input"]
    pairs = dict(re.findall(r'(\w+)\s*=\s*("[^"]*"|var\.\w+)', target_input))
    rendered = {k: (v.strip('"') if v.startswith('"') else "daily-report") for k, v in pairs.items()}
    assert rendered == json.loads(schedule_target_input("daily-report"))


# Key policies (documents used as an aws_kms_key's policy), where AWS's own default key policy grants the account
# root "kms:*" (that is what lets IAM policies grant the key at all) and AWS documents "kms:GenerateDataKey*" for
# services publishing to an encrypted topic. Nowhere else may an action have a wildcard.
KEY_POLICIES = {"topic_key"}
KEY_POLICY_WILDCARDS = {"kms:*", "kms:GenerateDataKey*"}


def test_iam_has_no_wildcard_action_and_every_wildcard_resource_is_justified() -> None:
    text = "\n".join(p.read_text() for p in sorted(MODULE.glob("*.tf")))
    for name, statements in policy_documents(module()).items():
        for statement in statements:
            actions = statement.get("actions", [])
            wildcards = {a for a in actions if "*" in a}
            if name in KEY_POLICIES:
                assert wildcards <= KEY_POLICY_WILDCARDS, f"{name}/{statement.get('sid')}: wildcard action {actions}"
                if "kms:*" in wildcards:
                    principals = one(statement["principals"])
                    assert principals["identifiers"] == ["arn:${local.partition}:iam::${local.account_id}:root"]
            else:
                assert not wildcards, f"{name}/{statement.get('sid')}: wildcard action {actions}"
            if statement.get("resources") == ["*"]:
                sid = statement["sid"]
                block = text[text.index(f'sid = "{sid}"') - 40 : text.index(f'sid = "{sid}"') + 400]
                assert 'requires "*"' in block, f'{name}/{sid}: resources = ["*"] without a reason'


def versions_constraint(path: Path) -> str:
    return one(one(load(path)["terraform"])["required_providers"])["aws"]["version"]


# The newest argument or attribute the module uses, per the provider's CHANGELOG: the floor must be at least
# each of these (finding 6: `>= 5.40` admitted providers without tags on the event source mapping).
NEWEST_ARGUMENTS = {
    ("data.aws_region", "region"): (6, 0),  # 6.0.0: `region` added, `name` deprecated
    ("aws_lambda_event_source_mapping", "tags"): (5, 70),  # 5.70.0 (issue 10, finding 6)
}


def floor_and_ceiling(constraint: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    floor = re.search(r">=\s*([0-9.]+)", constraint)
    ceiling = re.search(r"<\s*([0-9.]+)", constraint)
    assert floor and ceiling, f"{constraint!r} needs a floor (>=) and a ceiling (<)"
    return tuple(int(x) for x in floor.group(1).split(".")), tuple(int(x) for x in ceiling.group(1).split("."))


@pytest.mark.parametrize("root", [MODULE, TERRAFORM / "examples" / "daily-job"], ids=["module", "example"])
def test_the_provider_constraint_has_every_argument_used_and_stops_before_the_next_major(root: Path) -> None:
    floor, ceiling = floor_and_ceiling(versions_constraint(root / "versions.tf"))
    source = "\n".join(p.read_text() for p in root.glob("*.tf")) if root == MODULE else ""
    for (rtype, argument), introduced in NEWEST_ARGUMENTS.items():
        assert floor >= introduced, f"{rtype}.{argument} needs >= {introduced}, the floor is {floor}"
        if root == MODULE:
            assert argument in source, f"{rtype}.{argument} is no longer used: drop it from NEWEST_ARGUMENTS"
    assert ceiling == (floor[0] + 1, 0), f"the ceiling {ceiling} must be the next major version after {floor}"


def test_the_module_reads_the_region_from_its_current_attribute() -> None:
    # data.aws_region's `name` is deprecated since provider 6.0 (Terraform warns on every plan).
    source = "\n".join(p.read_text() for p in MODULE.glob("*.tf"))
    assert not re.search(r"data\.aws_region\.\w+\.name\b", source)
    assert "data.aws_region.current.region" in source


def test_every_ec2_action_that_changes_something_is_limited_by_tag_or_template() -> None:
    launcher = policy_documents(module())["launcher"]
    for statement in launcher:
        mutating = [
            a for a in statement.get("actions", []) if a.startswith("ec2:") and not a.startswith("ec2:Describe")
        ]
        if not mutating:
            continue
        conditions = statement.get("condition", [])
        conditions = conditions if isinstance(conditions, list) else [conditions]
        variables = {c["variable"] for c in conditions}
        assert variables & {
            "aws:ResourceTag/${local.tag_job}",
            "aws:RequestTag/${local.tag_job}",
            "ec2:LaunchTemplate",
        }, f"{statement['sid']}: {mutating} without a tag condition"


def test_the_launch_template_requires_imdsv2_and_encrypts_its_volume() -> None:
    template = next(body for rtype, _, body in resources(module()) if rtype == "aws_launch_template")
    metadata = one(template["metadata_options"])
    assert (metadata["http_tokens"], metadata["http_put_response_hop_limit"]) == ("required", 1)
    ebs = one(one(template["block_device_mappings"])["ebs"])
    assert (ebs["encrypted"], ebs["volume_type"]) == (True, "gp3")
    types = {rtype for rtype, _, _ in resources(module())}
    assert not types & {"aws_vpc_security_group_ingress_rule", "aws_security_group_rule"}  # no ingress at all
    group = next(body for rtype, _, body in resources(module()) if rtype == "aws_security_group")
    assert "ingress" not in group


def test_packer_builds_the_ami_with_imdsv2_and_an_encrypted_gp3_root() -> None:
    packer = load(ROOT / "packer" / "ec2batch.pkr.hcl")
    ebs = next(one(block["amazon-ebs"])["instance"] for block in packer["source"] if "amazon-ebs" in block)
    metadata, disk = one(ebs["metadata_options"]), one(ebs["launch_block_device_mappings"])
    assert (metadata["http_tokens"], metadata["http_put_response_hop_limit"]) == ("required", 1)
    assert (disk["encrypted"], disk["volume_type"]) == (True, "gp3")
    assert "al2023-ami" in one(ebs["source_ami_filter"])["filters"]["name"]


def test_checkov_finds_no_failed_check_and_every_skip_has_a_reason() -> None:
    assert CHECKOV.exists(), "checkov is missing: run `make checkov` (make test does)"
    done = subprocess.run(
        [
            str(CHECKOV),
            "-d",
            str(TERRAFORM),
            "--framework",
            "terraform",
            "--skip-download",
            "--quiet",
            "--output",
            "json",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    report = json.loads(done.stdout)
    summary = report["summary"] if isinstance(report, dict) else report[0]["summary"]
    assert summary["failed"] == 0, done.stdout[-3000:]
    assert summary["passed"] > 100
    skips = [text for p in TERRAFORM.rglob("*.tf") for text in p.read_text().splitlines() if "checkov:skip" in text]
    assert len(skips) == 2
    for line in skips:
        assert re.search(r"checkov:skip=CKV\w*_\d+: .{30,}", line), f"skip without a real reason: {line.strip()}"


@pytest.mark.skipif(
    shutil.which("terraform") is None, reason="no terraform binary: `make tf-check` runs it where one is"
)
def test_terraform_fmt_is_clean() -> None:
    # `terraform fmt` needs no providers, so it runs offline; `validate` needs `init`, which downloads them.
    done = subprocess.run(["terraform", "fmt", "-check", "-recursive", str(TERRAFORM)], capture_output=True, text=True)
    assert done.returncode == 0, f"not formatted: {done.stdout}"


def test_every_alarm_metric_filter_matches_a_message_the_code_logs() -> None:
    filters = locals_(module())["metric_filters"]
    source = "\n".join(p.read_text() for p in (ROOT / "ec2batch").rglob("*.py"))
    for name, spec in filters.items():
        message = re.search(r'\$\.msg = \\?"([^"\\]+)', spec["pattern"]).group(1)
        assert f'"{message}"' in source, f"metric filter {name} looks for {message!r}, which no code logs"
