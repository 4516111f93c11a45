"""Static checks of the Terraform module: no `terraform` binary can be installed where this is developed.

Parsed with python-hcl2; checkov runs from its own virtualenv (`make checkov`), as it pins its own hcl2.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import asdict
from functools import cache
from pathlib import Path
from typing import Any

import hcl2
import pytest
from hcl2 import SerializationOptions

from ec2batch.config import SPOT_NEEDS_EPHEMERAL, JobConfig, parse_config
from ec2batch.errors import ConfigError
from ec2batch.launcher.events import schedule_target_input
from ec2batch.names import JOB_NAME_PATTERN, TAG_JOB, TAG_OUTCOME, JobNames

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
    "aws_cloudwatch_event_rule",
    "aws_batch_compute_environment",
    "aws_batch_job_queue",
    "aws_batch_job_definition",
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
    found, sources = {}, {}
    for block in doc.get("data", []):
        for name, body in block.get("aws_iam_policy_document", {}).items():
            statements = body.get("statement", [])
            statements = list(statements) if isinstance(statements, list) else [statements]
            for dynamic in body.get("dynamic", []):
                statements.append(one(one(dynamic["statement"])["content"]))
            found[name] = statements
            sources[name] = [
                re.sub(r"^\$\{data\.aws_iam_policy_document\.(\w+)\.json\}$", r"\1", source)
                for source in body.get("source_policy_documents", [])
            ]
    # A document's source_policy_documents come first in it, as the provider renders them.
    return {name: [s for source in sources[name] for s in found[source]] + found[name] for name in found}


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


SPOT_REQUESTS = "arn:${local.partition}:ec2:${local.region}:${local.account_id}:spot-instances-request/*"


def test_every_ec2_action_that_changes_something_is_limited_by_tag_or_template() -> None:
    launcher = policy_documents(module())["launcher"]
    for statement in launcher:
        mutating = [
            a for a in statement.get("actions", []) if a.startswith("ec2:") and not a.startswith("ec2:Describe")
        ]
        if not mutating:
            continue
        if statement["resources"] == [SPOT_REQUESTS]:
            # The one exception: the untagged Spot request a Spot RunInstances creates, which no tag or template
            # key describes; the launch is held to the template, tags and markets on every other resource.
            assert (statement["sid"], mutating, statement.get("condition")) == (
                "RequestOneTimeSpotInstancesAtLaunch",
                ["ec2:RunInstances"],
                None,
            )
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


# ---------------------------------------------------------------------------------------------------------------
# Real Terraform without a provider: `terraform console` evaluates the module's own expressions and variable
# validations (functions, locals and variables need no provider), so these run wherever the binary is.
# ---------------------------------------------------------------------------------------------------------------

needs_terraform = pytest.mark.skipif(
    shutil.which("terraform") is None, reason="NO `terraform` BINARY ON PATH: the console checks DID NOT RUN"
)
REQUIRED_VARS = {
    "job_name": "daily-report",
    "instance_types": ["m7i.large"],
    "subnet_ids": ["subnet-0a1b2c3d4e5f60718"],
    "launcher_zip": "launcher.zip",
}


def console(
    tmp_path: Path, expression: str, tfvars: dict[str, Any] | None = None, local_values: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`terraform console` in a directory holding the module's variables.tf (and the given locals)."""
    (tmp_path / "variables.tf").write_text((MODULE / "variables.tf").read_text())
    body = "\n".join(f"  {name} = {value}" for name, value in (local_values or {}).items())
    (tmp_path / "locals.tf").write_text(f"locals {{\n{body}\n}}\n")
    (tmp_path / "terraform.tfvars.json").write_text(json.dumps({**REQUIRED_VARS, **(tfvars or {})}))
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "TF_CLI_CONFIG_FILE": os.devnull}
    return subprocess.run(
        ["terraform", "console", "-no-color"],
        cwd=tmp_path,
        input=expression + "\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def value(done: subprocess.CompletedProcess[str]) -> Any:
    """The console's answer to `jsonencode(...)`: an HCL string literal holding JSON."""
    assert done.returncode == 0 and "Error" not in done.stdout, done.stdout + done.stderr
    return json.loads(json.loads(done.stdout.strip().splitlines()[-1]))


def expression_of(text: str) -> str:
    """hcl2 keeps an expression as "${...}": Terraform's own source text inside."""
    assert text.startswith("${") and text.endswith("}"), text
    return text[2:-1]


@needs_terraform
def test_jsonencode_escapes_angle_brackets_as_terraform_documents(tmp_path: Path) -> None:
    # The premise of finding 4: what the Scheduler would receive from a bare jsonencode.
    done = console(tmp_path, 'jsonencode({a="<x>"})')
    assert done.stdout.strip().splitlines()[-1] == '"{\\"a\\":\\"\\\\u003cx\\\\u003e\\"}"', done.stdout


@needs_terraform
def test_the_schedule_input_renders_the_scheduler_placeholders_literally(tmp_path: Path) -> None:
    schedule = next(
        body for rtype, name, body in resources(module()) if (rtype, name) == ("aws_scheduler_schedule", "job")
    )
    done = console(tmp_path, "local.input", local_values={"input": expression_of(one(schedule["target"])["input"])})
    assert done.returncode == 0 and "Error" not in done.stdout, done.stdout + done.stderr
    rendered = json.loads(done.stdout.strip().splitlines()[-1])  # the HCL string literal: the input's text
    assert "<aws.scheduler.scheduled-time>" in rendered and "<aws.scheduler.execution-id>" in rendered
    assert "\\u003c" not in rendered
    assert json.loads(rendered) == json.loads(schedule_target_input("daily-report"))


@needs_terraform
@pytest.mark.parametrize(
    ("secrets", "arns"),
    [
        ({"DB": {"ssm": "/ec2batch/daily-report/db"}}, ["parameter/ec2batch/daily-report/db"]),
        ({"DB": {"ssm": "db-password"}}, ["parameter/db-password"]),
    ],
    ids=["path", "plain-name"],
)
def test_secret_parameter_arns_have_exactly_one_slash_after_parameter(
    tmp_path: Path, secrets: dict[str, Any], arns: list[str]
) -> None:
    # Finding 10: "parameter" + "/a/b" was right, "parameter" + "name" was not.
    expression = expression_of(locals_(module())["secret_ssm_arns"])
    stub = {"partition": '"aws"', "region": '"eu-central-1"', "account_id": '"123456789012"'}
    done = console(tmp_path, "jsonencode(local.arns)", {"secrets": secrets}, {**stub, "arns": expression})
    assert value(done) == [f"arn:aws:ssm:eu-central-1:123456789012:{a}" for a in arns]


REFUSED = [
    ({"secrets": {"DB": {"secretsmanager": "db-password"}}}, "must be the secret's full ARN"),
    ({"secrets": {"DB": {"ssm": "arn:aws:ssm:eu-central-1:123456789012:parameter/x"}}}, "must be a parameter name"),
    ({"secrets": {"DB": {"ssm": "a/b"}}}, "must be a parameter name"),
    ({"egress": []}, "at least one rule"),
    (
        {"egress": [{"description": "db", "protocol": "tcp", "from_port": 5432, "to_port": 5432}]},
        "exactly one destination",
    ),
    (
        {
            "egress": [
                {"description": "db", "protocol": "sctp", "from_port": 1, "to_port": 1, "cidr_ipv4": "10.0.0.0/8"}
            ]
        },
        "must be tcp, udp, icmp or -1",
    ),
    (
        {
            "egress": [
                {"description": "db", "protocol": "tcp", "from_port": 5432, "to_port": 80, "cidr_ipv4": "10.0.0.0/8"}
            ]
        },
        "from_port <= to_port",
    ),
    (
        {"egress": [{"description": "db", "protocol": "tcp", "from_port": 1, "to_port": 2, "cidr_ipv4": "10.0.0.0"}]},
        "CIDR",
    ),
    ({"launcher_reserved_concurrency": 2}, "null or a whole number from 4 to 100"),
    ({"kms_key_arn": "alias/ec2batch"}, "must be a key ARN"),
    ({"job_policy_json": "{}"}, "with a Statement"),
    ({"job_policy_arns": ["ReadOnlyAccess"]}, "must be IAM policy ARNs"),
    # Issue 13: the market and the retry policy, named as ec2batch.config names them.
    ({"market": "spot"}, f"market: {SPOT_NEEDS_EPHEMERAL}"),
    ({"market": "spot-then-on-demand", "strategy": "reuse"}, f"market: {SPOT_NEEDS_EPHEMERAL}"),
    ({"retry": {"market": "spot"}}, f"retry.market: {SPOT_NEEDS_EPHEMERAL}"),
    ({"market": "cheap", "strategy": "ephemeral"}, "market must be on-demand, spot or spot-then-on-demand."),
    ({"retry": {"market": "reserved"}, "strategy": "ephemeral"}, "retry.market must be on-demand, spot or"),
    ({"retry": {"attempts": 11}}, "retry.attempts must be a whole number from 1 to 10."),
    ({"retry": {"attempts": 1.5}}, "retry.attempts must be a whole number from 1 to 10."),
    ({"retry": {"on": ["timeout"]}}, "retry.on must list causes from start-failure"),
    ({"retry": {"on": ["interruption", "interruption"]}}, "each once"),
    ({"retry": {"exit_codes": [0]}}, "retry.exit_codes must be exit codes from 1 to 255"),
    ({"retry": {"exit_codes": [256]}}, "retry.exit_codes must be exit codes from 1 to 255"),
    ({"retry": {"exit_codes": ["120-100"]}}, "retry.exit_codes must be exit codes from 1 to 255"),
    ({"retry": {"exit_codes": ["1-256"]}}, "retry.exit_codes must be exit codes from 1 to 255"),
    ({"retry": {"exit_codes": ["75x"]}}, "retry.exit_codes must be exit codes from 1 to 255"),
    ({"retry": {"interval_seconds": 1.5}}, "retry.interval_seconds must be a whole number from 0 to 900."),
    ({"retry": {"backoff_rate": 0.5}}, "retry.backoff_rate must be a number from 1 to 10."),
    (
        {"retry": {"max_delay_seconds": -1}},
        "retry.max_delay_seconds must be a whole number from 0 to 900 (SQS's longest delay).",
    ),
    (
        {"retry": {"max_delay_seconds": 3600}},
        "retry.max_delay_seconds must be a whole number from 0 to 900 (SQS's longest delay).",
    ),
    (
        {"retry": {"interval_seconds": 600, "max_delay_seconds": 300}},
        "retry.interval_seconds must not be above retry.max_delay_seconds.",
    ),
]


@needs_terraform
@pytest.mark.parametrize(("tfvars", "says"), REFUSED, ids=[f"{next(iter(v))}-{i}" for i, (v, _) in enumerate(REFUSED)])
def test_terraform_refuses_a_bad_input_naming_it(tmp_path: Path, tfvars: dict[str, Any], says: str) -> None:
    done = console(tmp_path, "var.job_name", tfvars)
    # The console answers 0 either way: the diagnostic is what says it refused.
    said = " ".join((done.stdout + done.stderr).split())
    assert "Error: Invalid value for variable" in said, f"accepted {tfvars}"
    assert says in said, said


ACCEPTED = {
    "secrets": {
        "DB": {"ssm": "/ec2batch/daily-report/db"},
        "TOKEN": {"secretsmanager": "arn:aws:secretsmanager:eu-central-1:123456789012:secret:prod/token-AbCdEf"},
    },
    "egress": [
        {"description": "HTTPS", "protocol": "tcp", "from_port": 443, "to_port": 443, "cidr_ipv4": "0.0.0.0/0"},
        {"description": "Postgres", "protocol": "tcp", "from_port": 5432, "to_port": 5432, "cidr_ipv4": "10.0.0.0/16"},
        {"description": "Peers", "protocol": "-1", "security_group_id": "sg-0123456789abcdef0"},
    ],
    "launcher_reserved_concurrency": 10,
    "kms_key_arn": "arn:aws:kms:eu-central-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
    "job_policy_json": json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}
    ),
    "job_policy_arns": ["arn:aws:iam::aws:policy/ReadOnlyAccess"],
}


@needs_terraform
def test_terraform_accepts_the_documented_inputs_and_defaults_as_documented(tmp_path: Path) -> None:
    done = console(tmp_path, "jsonencode(var.egress)", ACCEPTED)
    assert [rule["description"] for rule in value(done)] == ["HTTPS", "Postgres", "Peers"]
    defaults = console(
        tmp_path,
        "jsonencode([var.egress, var.launcher_reserved_concurrency, var.job_policy_json, var.job_policy_arns])",
    )
    egress, reserved, policy_json, policy_arns = value(defaults)
    # Finding 11's default: HTTPS anywhere; finding 3's: no reservation; issue 11's: a job role with nothing.
    assert [(r["protocol"], r["from_port"], r["to_port"], r["cidr_ipv4"]) for r in egress] == [
        ("tcp", 443, 443, "0.0.0.0/0")
    ]
    assert (reserved, policy_json, policy_arns) == (None, None, [])


@needs_terraform
@pytest.mark.parametrize(("reserved", "timers"), [(None, 5), (4, 2), (8, 4), (100, 5)])
def test_the_timer_queue_never_polls_more_than_a_reservation_allows(
    tmp_path: Path, reserved: int | None, timers: int
) -> None:
    # Finding 9: maximum_concurrency within an opt-in reservation, leaving half of it to schedules and run-now.
    lambda_locals = next(block for block in load(MODULE / "lambda.tf")["locals"] if "timer_concurrency" in block)
    expression = expression_of(lambda_locals["timer_concurrency"])
    done = console(tmp_path, "jsonencode(local.t)", {"launcher_reserved_concurrency": reserved}, {"t": expression})
    assert value(done) == timers


def test_the_job_role_trusts_only_this_jobs_instance_role_and_gets_only_the_users_policies() -> None:
    docs = policy_documents(module())
    trust, shards = docs["job_assume"]
    assert trust["actions"] == ["sts:AssumeRole"]
    # With shards (issue 14) the shards' ECS tasks run as the role too: ECS tasks of this account only, and only
    # when the job has shards (the statement is dynamic on local.uses_batch).
    assert (shards["sid"], shards["actions"]) == ("EcsTasksOfThisAccountAssumeTheRoleForShards", ["sts:AssumeRole"])
    assert one(shards["principals"]) == {"type": "Service", "identifiers": ["ecs-tasks.amazonaws.com"]}
    assert {c["variable"]: c["values"] for c in shards["condition"]} == {
        "aws:SourceAccount": ["${local.account_id}"],
        "aws:SourceArn": ["arn:${local.partition}:ecs:${local.region}:${local.account_id}:*"],
    }
    text = (MODULE / "iam.tf").read_text()
    block = text[: text.index('sid     = "EcsTasksOfThisAccountAssumeTheRoleForShards"')]
    assert block[block.rindex('dynamic "statement"') :].count("for_each = local.uses_batch ? [1] : []") == 1
    assert one(trust["principals"]) == {"type": "AWS", "identifiers": ["${aws_iam_role.instance.arn}"]}
    condition = one(trust["condition"])
    assert (condition["variable"], condition["values"]) == ("aws:PrincipalTag/${local.tag_job}", ["${var.job_name}"])
    # Only the instance role may assume it, and the instance role may assume nothing else.
    assuming = [
        (name, s["sid"], s.get("resources"))
        for name, stmts in docs.items()
        for s in stmts
        if "sts:AssumeRole" in s["actions"]
    ]
    granted = [(name, sid, res) for name, sid, res in assuming if not name.endswith("_assume")]
    assert granted == [("instance", "AssumeTheJobRole", ["${aws_iam_role.job.arn}"])]
    # Its permissions come from the user's variables only, none by default.
    job_policies = [
        (rtype, body)
        for rtype, _, body in resources(module())
        if "aws_iam_role.job" in json.dumps(body.get("role", ""))
    ]
    assert {rtype for rtype, _ in job_policies} == {"aws_iam_role_policy", "aws_iam_role_policy_attachment"}
    for rtype, body in job_policies:
        source = json.dumps(body)
        assert "var.job_policy_json" in source or "var.job_policy_arns" in source, (rtype, body)
    variables = {name: body for block in module()["variable"] for name, body in block.items()}
    assert (variables["job_policy_json"]["default"], variables["job_policy_arns"]["default"]) == (None, [])
    assert locals_(module())["names"]["job_role"] == "${local.base}-job"


def test_the_agent_may_tag_only_the_outcome_key_and_only_on_this_jobs_instances() -> None:
    (statement,) = [s for s in policy_documents(module())["instance"] if "ec2:CreateTags" in s["actions"]]
    conditions = {c["variable"]: (c["test"], c["values"]) for c in statement["condition"]}
    assert conditions == {
        "aws:ResourceTag/${local.tag_job}": ("StringEquals", ["${var.job_name}"]),
        "aws:TagKeys": ("ForAllValues:StringEquals", ["${local.tag_outcome}"]),
    }
    assert statement["resources"] == ["arn:${local.partition}:ec2:${local.region}:${local.account_id}:instance/*"]
    assert locals_(module())["tag_outcome"] == TAG_OUTCOME


# ---------------------------------------------------------------------------------------------------------------
# The config document as Terraform renders it (issue 13): market and retry, omitted attributes as Python's defaults
# ---------------------------------------------------------------------------------------------------------------

# What the job config's references to other resources render to (the ARN formats of the provider).
RENDERED_REFERENCES = {
    "aws_sns_topic.this.arn": '"arn:aws:sns:eu-central-1:123456789012:ec2batch-daily-report"',
    "aws_iam_role.job.arn": '"arn:aws:iam::123456789012:role/ec2batch-daily-report-job"',
    "local.image": '"123456789012.dkr.ecr.eu-central-1.amazonaws.com/ec2batch/daily-report:latest"',
}


def local_source(name: str) -> str:
    """The source text of local `name` in locals.tf: an object `{ ... }` (its braces matched) or one line."""
    text = (MODULE / "locals.tf").read_text()
    found = re.search(rf"^  {name}\s*=\s*", text, re.MULTILINE)
    assert found, f"no local {name} in locals.tf"
    start = found.end()
    if text[start] != "{":
        return text[start : text.index("\n", start)]
    depth = 0
    for end in range(start, len(text)):
        depth += {"{": 1, "}": -1}.get(text[end], 0)
        if depth == 0:
            return text[start : end + 1]
    raise AssertionError(f"unbalanced braces in local {name}")


def rendered_config(tmp_path: Path, tfvars: dict[str, Any]) -> dict[str, Any]:
    """local.job_config as real Terraform evaluates it for `tfvars` (the module's own expression text)."""
    expression = local_source("job_config")
    for reference, rendered in RENDERED_REFERENCES.items():
        expression = re.sub(rf"\b{re.escape(reference)}\b", rendered, expression)
    locals_needed = {"job_config": expression}
    todo = [expression]
    while todo:  # the locals it uses (retry_market, ...), with their own expression text
        for name in re.findall(r"\blocal\.(\w+)", todo.pop()):
            if name not in locals_needed:
                locals_needed[name] = local_source(name)
                todo.append(locals_needed[name])
    unresolved = set(re.findall(r"\baws_\w+\.\w+", " ".join(locals_needed.values())))
    assert not unresolved, f"add a rendering of {unresolved} to RENDERED_REFERENCES"
    return value(console(tmp_path, "jsonencode(local.job_config)", tfvars, locals_needed))


# (tfvars, what a user writes in the JSON config for the same thing)
RETRY_CASES = [
    ({}, {}),
    ({"market": "spot", "strategy": "ephemeral"}, {"market": "spot", "strategy": "ephemeral"}),
    (
        {"market": "spot-then-on-demand", "strategy": "ephemeral", "retry": {"attempts": 3}},
        {"market": "spot-then-on-demand", "strategy": "ephemeral", "retry": {"attempts": 3}},
    ),
    (
        {
            "market": "spot",
            "strategy": "ephemeral",
            "retry": {
                "attempts": 4,
                "on": ["interruption", "start-failure"],
                "exit_codes": [75, "100-119", "007", "009-012", "42-42"],
                "interval_seconds": 60,
                "backoff_rate": 1.5,
                "max_delay_seconds": 600,
                "market": "spot-then-on-demand",
            },
        },
        {
            "market": "spot",
            "strategy": "ephemeral",
            "retry": {
                "attempts": 4,
                "on": ["interruption", "start-failure"],
                "exit_codes": [75, "100-119", 7, "9-12", 42],
                "interval_seconds": 60,
                "backoff_rate": 1.5,
                "max_delay_seconds": 600,
                "market": "spot-then-on-demand",
            },
        },
    ),
    ({"retry": {"on": [], "market": "on-demand"}}, {"retry": {"on": [], "market": "on-demand"}}),
]


@needs_terraform
@pytest.mark.parametrize(
    ("tfvars", "python"), RETRY_CASES, ids=["defaults", "spot", "spot-then-on-demand", "everything", "no-causes"]
)
def test_the_rendered_config_document_is_what_python_derives_for_the_same_settings(
    tmp_path: Path, tfvars: dict[str, Any], python: dict[str, Any]
) -> None:
    document = rendered_config(tmp_path, tfvars)
    config = parse_config(document)  # the launcher and the agent read it
    # The same settings written as a JSON config, everything the user left out left out there too.
    written = {key: value for key, value in document.items() if key not in ("market", "retry", "strategy")}
    expected = parse_config({**written, **python})
    assert config == expected
    # The document carries market and retry in full, exactly as Python writes them (store_config, validate).
    assert (document["market"], document["retry"]) == (expected.market, expected.retry.to_document())


@needs_terraform
def test_the_document_gets_exit_codes_as_numbers_and_ranges_as_strings(tmp_path: Path) -> None:
    tfvars = {"strategy": "ephemeral", "market": "spot", "retry": {"exit_codes": [75, "100-119", "3"]}}
    document = rendered_config(tmp_path, tfvars)
    assert document["retry"]["exit_codes"] == [75, "100-119", 3]
    assert parse_config(document).retry.exit_codes == ((75, 75), (100, 119), (3, 3))
    # Left out: Python's defaults, retries on the market's own terms.
    assert {k: v for k, v in document["retry"].items() if k != "exit_codes"} == {
        "attempts": 1,
        "on": ["start-failure", "interruption", "instance-lost", "agent-lost"],
        "interval_seconds": 30,
        "backoff_rate": 2,
        "max_delay_seconds": 900,
        "market": "spot",
    }


def test_the_launcher_may_launch_spot_only_in_the_jobs_markets_and_create_only_the_spot_role() -> None:
    launcher = {s["sid"]: s for s in policy_documents(module())["launcher"]}
    conditions = launcher["LaunchOnlyTaggedInstancesAndVolumes"]["condition"]
    market = next(c for c in conditions if c["variable"] == "ec2:InstanceMarketType")
    assert (market["test"], market["values"]) == ("StringEqualsIfExists", "${local.launch_markets}")
    role = launcher["CreateTheSpotServiceLinkedRole"]
    assert role["actions"] == ["iam:CreateServiceLinkedRole"]
    assert role["resources"] == [
        "arn:${local.partition}:iam::${local.account_id}:role/aws-service-role/spot.amazonaws.com/AWSServiceRoleForEC2Spot"
    ]
    assert one(role["condition"]) == {
        "test": "StringEquals",
        "variable": "iam:AWSServiceName",
        "values": ["spot.amazonaws.com"],
    }
    # Both Spot statements exist only when a Spot market is configured.
    text = (MODULE / "iam.tf").read_text()
    for sid in ("RequestOneTimeSpotInstancesAtLaunch", "CreateTheSpotServiceLinkedRole"):
        block = text[: text.index(f'sid       = "{sid}"')]
        assert block[block.rindex('dynamic "statement"') :].count("for_each = local.uses_spot ? [1] : []") == 1, sid


@needs_terraform
@pytest.mark.parametrize(
    ("tfvars", "markets"),
    [
        ({}, ["on-demand"]),
        ({"strategy": "ephemeral", "market": "spot"}, ["spot"]),
        ({"strategy": "ephemeral", "market": "spot-then-on-demand"}, ["spot", "on-demand"]),
        ({"strategy": "ephemeral", "market": "spot", "retry": {"market": "on-demand"}}, ["spot", "on-demand"]),
        ({"strategy": "ephemeral", "retry": {"market": "spot"}}, ["on-demand", "spot"]),
        (
            {"strategy": "ephemeral", "market": "spot-then-on-demand", "retry": {"market": "spot"}},
            ["spot", "on-demand"],
        ),
    ],
    ids=["on-demand", "spot", "spot-then-on-demand", "spot-retry-on-demand", "retry-on-spot", "spot-retry-spot"],
)
def test_the_launch_markets_are_the_first_attempts_and_the_retries(
    tmp_path: Path, tfvars: dict[str, Any], markets: list[str]
) -> None:
    names = ("retry_market", "launch_markets", "uses_spot")
    done = console(
        tmp_path, "jsonencode([local.launch_markets, local.uses_spot])", tfvars, {n: local_source(n) for n in names}
    )
    assert value(done) == [markets, "spot" in markets]


# ---------------------------------------------------------------------------------------------------------------
# Shards on AWS Batch (issue 14)
# ---------------------------------------------------------------------------------------------------------------

SHARD_COMMAND = ["python3", "/app/shard.py", "--rows", "5 000"]
# (tfvars, what a user writes in the JSON config for the same thing)
SHARD_CASES = [
    ({}, {}),
    ({"shards": 4, "command": SHARD_COMMAND}, {"shards": 4}),
    (
        {"shards": 10000, "command": SHARD_COMMAND, "batch": {"max_vcpus": 100000, "vcpus": 4, "memory_mb": 16384}},
        {"shards": 10000, "batch": {"max_vcpus": 100000, "vcpus": 4, "memory_mb": 16384}},
    ),
    (
        {"shards": 2, "command": SHARD_COMMAND, "batch": {"compute": "fargate", "vcpus": 0.25, "memory_mb": 512}},
        {"shards": 2, "batch": {"compute": "fargate", "vcpus": 0.25, "memory_mb": 512}},
    ),
    (
        {"shards": 3, "command": SHARD_COMMAND, "batch": {"compute": "fargate", "vcpus": 16, "memory_mb": 122880}},
        {"shards": 3, "batch": {"compute": "fargate", "vcpus": 16, "memory_mb": 122880}},
    ),
]


@needs_terraform
@pytest.mark.parametrize(
    ("tfvars", "python"), SHARD_CASES, ids=["one-shard", "four", "largest", "fargate-smallest", "fargate-largest"]
)
def test_the_rendered_shards_and_batch_are_what_python_derives(
    tmp_path: Path, tfvars: dict[str, Any], python: dict[str, Any]
) -> None:
    document = rendered_config(tmp_path, tfvars)
    config = parse_config(document)
    written = {key: value for key, value in document.items() if key not in ("shards", "batch")}
    expected = parse_config({**written, **python})
    assert config == expected
    assert (document["shards"], document["batch"]) == (expected.shards, asdict(expected.batch))


SHARD_REFUSED = [
    ({"shards": 0}, "shards must be a whole number from 1 to 10000"),
    ({"shards": 10001, "command": ["x"]}, "shards must be a whole number from 1 to 10000"),
    ({"shards": 2.5, "command": ["x"]}, "shards must be a whole number from 1 to 10000"),
    ({"shards": 4}, "shards above 1 need command"),
    ({"batch": {"vcpus": 2}}, "batch: only applies with shards above 1"),
    ({"shards": 2, "command": ["x"], "batch": {"compute": "lambda"}}, "batch.compute must be ec2 or fargate."),
    ({"shards": 2, "command": ["x"], "batch": {"max_vcpus": 0}}, "batch.max_vcpus must be a whole number"),
    ({"shards": 2, "command": ["x"], "batch": {"max_vcpus": 100001}}, "batch.max_vcpus must be a whole number"),
    ({"shards": 2, "command": ["x"], "batch": {"memory_mb": 256}}, "batch.memory_mb must be a whole number"),
    ({"shards": 2, "command": ["x"], "batch": {"vcpus": 0}}, "batch.vcpus must be a number above 0"),
    ({"shards": 2, "command": ["x"], "batch": {"vcpus": 0.5}}, "batch.vcpus: on EC2 a shard has whole vCPUs"),
    (
        {"shards": 2, "command": ["x"], "batch": {"compute": "fargate", "vcpus": 3}},
        "batch.vcpus: 3 is not a Fargate size",
    ),
    (
        {"shards": 2, "command": ["x"], "batch": {"compute": "fargate", "vcpus": 0.25, "memory_mb": 4096}},
        "batch.memory_mb: 4096 is not allowed with 0.25 Fargate vCPUs",
    ),
    (
        {"shards": 2, "command": ["x"], "batch": {"compute": "fargate", "vcpus": 8, "memory_mb": 17408}},
        "batch.memory_mb: 17408 is not allowed with 8 Fargate vCPUs",
    ),
    ({"shards": 2, "command": ["x"], "batch": {"vcpus": 8, "max_vcpus": 4}}, "batch.vcpus must not be above"),
]


@needs_terraform
@pytest.mark.parametrize(("tfvars", "says"), SHARD_REFUSED, ids=[f"shards-{i}" for i in range(len(SHARD_REFUSED))])
def test_terraform_refuses_bad_shards_naming_the_field(tmp_path: Path, tfvars: dict[str, Any], says: str) -> None:
    done = console(tmp_path, "var.job_name", tfvars)
    said = " ".join((done.stdout + done.stderr).split())
    assert "Error: Invalid value for variable" in said, f"accepted {tfvars}"
    assert says in said, said


@pytest.mark.parametrize(
    "doc",
    [
        {"shards": 2, "batch": {"compute": "fargate", "vcpus": 3}},
        {"shards": 2, "batch": {"compute": "fargate", "vcpus": 0.25, "memory_mb": 4096}},
        {"shards": 2, "batch": {"vcpus": 0.5}},
        {"shards": 1, "batch": {"vcpus": 2}},
    ],
    ids=["fargate-size", "fargate-memory", "ec2-fraction", "batch-without-shards"],
)
def test_python_refuses_what_terraform_refuses(doc: dict[str, Any]) -> None:
    # The same settings are refused on both sides (the messages above are ec2batch.config's, field first).
    base = {"job": "daily-report", "image": "x", "instance_types": ["m7i.large"], "subnet_ids": ["subnet-0a1b2c3d"]}
    with pytest.raises(ConfigError, match=r"config\.batch"):
        parse_config({**base, **doc})


def batch_locals(tmp_path: Path, expression: str, tfvars: dict[str, Any]) -> Any:
    """An expression over batch.tf's locals, evaluated by real Terraform for `tfvars`."""
    text = (MODULE / "batch.tf").read_text()
    block = text[text.index("locals {") : text.index('resource "aws_batch_compute_environment"')]
    wanted = ("uses_batch", "batch_fargate", "batch_ec2", "batch_markets", "batch_environments", "batch_command")
    sources = {}
    for name in wanted:
        found = re.search(rf"^  {name}\s*=\s*", block, re.MULTILINE)
        assert found, name
        rest = block[found.end() :]
        nxt = re.search(r"^\n?  (#|\w+\s*=)", rest[1:], re.MULTILINE)
        sources[name] = rest[: nxt.start() + 1 if nxt else len(rest)].strip()
    names = {
        "names": '{ batch_compute_environment = "ec2batch-x", batch_spot_compute_environment = "ec2batch-x-spot" }'
    }
    return value(console(tmp_path, f"jsonencode({expression})", tfvars, {**sources, **names}))


@needs_terraform
@pytest.mark.parametrize(
    ("tfvars", "environments"),
    [
        ({}, {}),
        ({"shards": 2, "command": ["x"]}, {"on-demand": {"order": 1, "name": "ec2batch-x", "type": "EC2"}}),
        (
            {"shards": 2, "command": ["x"], "market": "spot", "strategy": "ephemeral"},
            {"spot": {"order": 1, "name": "ec2batch-x-spot", "type": "SPOT"}},
        ),
        (
            {"shards": 2, "command": ["x"], "market": "spot-then-on-demand", "strategy": "ephemeral"},
            {
                "spot": {"order": 1, "name": "ec2batch-x-spot", "type": "SPOT"},
                "on-demand": {"order": 2, "name": "ec2batch-x", "type": "EC2"},
            },
        ),
        (
            {
                "shards": 2,
                "command": ["x"],
                "market": "spot-then-on-demand",
                "strategy": "ephemeral",
                "batch": {"compute": "fargate"},
            },
            {
                "spot": {"order": 1, "name": "ec2batch-x-spot", "type": "FARGATE_SPOT"},
                "on-demand": {"order": 2, "name": "ec2batch-x", "type": "FARGATE"},
            },
        ),
    ],
    ids=["one-shard", "on-demand", "spot", "spot-then-on-demand", "fargate-spot-then-on-demand"],
)
def test_the_compute_environments_follow_the_market_spot_first(
    tmp_path: Path, tfvars: dict[str, Any], environments: dict[str, Any]
) -> None:
    assert batch_locals(tmp_path, "local.batch_environments", tfvars) == environments


@needs_terraform
def test_each_shard_runs_the_command_behind_the_index_shim(tmp_path: Path) -> None:
    command = batch_locals(tmp_path, "local.batch_command", {"shards": 3, "command": SHARD_COMMAND})
    assert command[:2] == ["/bin/sh", "-c"] and command[3:] == ["ec2batch-shard", *SHARD_COMMAND]
    shim = command[2]
    assert shim == 'export EC2BATCH_SHARD_INDEX="${AWS_BATCH_JOB_ARRAY_INDEX:-${AWS_BATCH_JOB_ID##*:}}"; exec "$@"'
    # What a shard sees: the array index, else the index at the end of its job id; the arguments untouched.
    script = 'printf "%s|" "$EC2BATCH_SHARD_INDEX" "$@"'
    for env, index in (({"AWS_BATCH_JOB_ARRAY_INDEX": "7"}, "7"), ({"AWS_BATCH_JOB_ID": "4c3b2a1d:3"}, "3")):
        done = subprocess.run(
            [*command[:3], command[3], "/bin/sh", "-c", script, "sh", *SHARD_COMMAND[1:]],
            env={"PATH": os.environ["PATH"], **env},
            capture_output=True,
            text=True,
            check=True,
        )
        assert done.stdout == "|".join([index, *SHARD_COMMAND[1:]]) + "|", done.stdout


BATCH_TYPES = {
    "aws_batch_compute_environment",
    "aws_batch_job_queue",
    "aws_batch_job_definition",
    "aws_cloudwatch_event_rule",
    "aws_cloudwatch_event_target",
    "aws_lambda_permission",
}


def test_nothing_of_aws_batch_exists_with_one_shard() -> None:
    # Every resource and policy document of batch.tf, and the Batch roles, counted on the shards (issue 14):
    # with shards = 1 the module makes exactly what it made before.
    gates = ("local.uses_batch", "local.batch_ec2", "local.batch_environments")
    for kind in ("resource", "data"):
        for block in load(MODULE / "batch.tf").get(kind, []):
            for rtype, named in block.items():
                for name, body in named.items():
                    gate = str(body.get("count", body.get("for_each", "")))
                    assert any(g in gate for g in gates), f"{rtype}.{name} exists without shards"
    iam = load(MODULE / "iam.tf")
    for kind in ("resource", "data"):
        for block in iam.get(kind, []):
            for rtype, named in block.items():
                for name, body in named.items():
                    if name.startswith("batch"):
                        gate = str(body.get("count", ""))
                        assert any(g in gate for g in gates), f"{rtype}.{name} exists without shards"
    types = {rtype for rtype, _, _ in resources(module())}
    assert types >= BATCH_TYPES
    assert {rtype for rtype, _, _ in resources(load(MODULE / "batch.tf"))} >= BATCH_TYPES - {"aws_launch_template"}
    # The launcher's Batch statements are dynamic on the shards too.
    text = (MODULE / "iam.tf").read_text()
    for sid in BATCH_LAUNCHER_SIDS:
        block = text[: text.index(f'"{sid}"')]
        assert block[block.rindex('dynamic "statement"') :].count("for_each = local.uses_batch ? [1] : []") == 1, sid
    assert locals_(load(MODULE / "batch.tf"))["uses_batch"] == "${var.shards > 1}"


BATCH_LAUNCHER_SIDS = (
    "SubmitShardsToThisJobsQueue",
    "TagShardJobsAtSubmit",
    "DescribeAndListShardJobs",
    "TerminateOnlyThisJobsShardJobs",
)


def test_the_launcher_submits_only_to_this_jobs_queue_and_definition_and_terminates_only_its_jobs() -> None:
    launcher = {s["sid"]: s for s in policy_documents(module())["launcher"]}
    submit = launcher["SubmitShardsToThisJobsQueue"]
    assert submit["actions"] == ["batch:SubmitJob"]
    assert submit["resources"] == [
        "${aws_batch_job_queue.this[0].arn}",
        "${aws_batch_job_definition.this[0].arn_prefix}",
        "${aws_batch_job_definition.this[0].arn_prefix}:*",
    ]
    jobs = "arn:${local.partition}:batch:${local.region}:${local.account_id}:job/*"
    tag, terminate = launcher["TagShardJobsAtSubmit"], launcher["TerminateOnlyThisJobsShardJobs"]
    assert (tag["actions"], tag["resources"]) == (["batch:TagResource"], [jobs])
    assert one(tag["condition"])["variable"] == "aws:RequestTag/${local.tag_job}"
    assert (terminate["actions"], terminate["resources"]) == (["batch:TerminateJob"], [jobs])
    assert one(terminate["condition"])["variable"] == "aws:ResourceTag/${local.tag_job}"
    assert launcher["DescribeAndListShardJobs"]["actions"] == ["batch:DescribeJobs", "batch:ListJobs"]


def test_the_state_change_rule_sends_this_queues_batch_events_to_the_launcher() -> None:
    bodies = {(rtype, name): body for rtype, name, body in resources(load(MODULE / "batch.tf"))}
    pattern = bodies[("aws_cloudwatch_event_rule", "batch_state")]["event_pattern"]
    for text in ('source        = ["aws.batch"]', '"detail-type" = ["Batch Job State Change"]'):
        assert text in (MODULE / "batch.tf").read_text(), text
    assert "aws_batch_job_queue.this[0].arn" in pattern
    target = bodies[("aws_cloudwatch_event_target", "batch_state")]
    assert target["arn"] == "${aws_lambda_function.launcher.arn}" and "input" not in target
    permission = bodies[("aws_lambda_permission", "batch_state")]
    assert (permission["principal"], permission["source_arn"]) == (
        "events.amazonaws.com",
        "${aws_cloudwatch_event_rule.batch_state[0].arn}",
    )
    assert locals_(module())["names"]["batch_state_rule"] == "${local.base}-batch-state"
