"""The rules of plan_rules.py: (a) every rule passes on what real Terraform renders for examples/daily-job (through
the provider double, applied against moto_server), and (b) each rule catches its finding on a small plan document
that reproduces the module's old, broken rendering.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import make_server

from ec2batch.local.motoserver import Serialized
from tests.terraform import conftest
from tests.terraform import plan_rules as rules
from tests.terraform.provider.cliconfig import install

ACCOUNT = "123456789012"
REGION = "eu-central-1"
JOB = "daily-report"


# ---------------------------------------------------------------------------------------------------------------
# (a) the real rendering
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def judged(plan_json: dict[str, Any], applied: dict[str, Any]) -> dict[str, Any]:
    """Every value as applied (policies and ARNs are only known then), with the plan's configuration."""
    return {"values": applied["values"], "configuration": plan_json["configuration"]}


@pytest.mark.parametrize("name", sorted(rules.RULES))
def test_every_rule_passes_on_the_applied_example(judged: dict[str, Any], name: str) -> None:
    assert rules.RULES[name](judged) == []


def test_the_applied_example_renders_what_the_rules_judge(judged: dict[str, Any]) -> None:
    # A rule over an empty or unknown rendering would pass without judging anything.
    types = {r["type"] for r in rules.resources(judged)}
    for rtype in (
        "aws_instance",
        "aws_lambda_function",
        "aws_scheduler_schedule",
        "aws_cloudwatch_metric_alarm",
        "aws_kms_key",
        "aws_lambda_event_source_mapping",
        "aws_vpc_security_group_egress_rule",
        "aws_launch_template",
        "aws_iam_role_policy",
    ):
        assert rtype in types, rtype
    assert rules.configured(judged, "aws_instance"), "the plan's configuration has no aws_instance"
    policies = rules.rendered_policies(judged)
    assert all(doc is not None for _, _, doc in policies), policies
    for module, counts in (("module.daily_report.", (3, 4, 1)), ("module.sharded.", (5, 6, 1))):
        kinds = [kind for address, kind, _ in policies if address.startswith(module)]
        # instance, launcher, scheduler; their trusts and the job role's; the topic key's. The sharded job (issue 14)
        # adds the Batch instance and execution roles, each with its trust.
        assert (kinds.count("identity"), kinds.count("trust"), kinds.count("key")) == counts, (module, policies)
    for rtype in ("aws_batch_compute_environment", "aws_batch_job_queue", "aws_batch_job_definition"):
        assert rtype in types, rtype
    roles = {r["values"]["name"] for r in rules.managed(judged, "aws_iam_role")}
    assert f"ec2batch-{JOB}-job" in roles


def test_the_plan_before_apply_leaves_policies_unknown(plan_json: dict[str, Any]) -> None:
    # Why the rules judge the applied state: on a first plan the documents are still unknown.
    assert any(a.startswith("module.daily_report.aws_iam_role_policy") for a in rules.unknowns(plan_json))


OTHER_ACCOUNT = "111122223333"


class OtherAccount:
    """WSGI middleware: every request to this moto_server acts in another account (moto's x-moto-account-id)."""

    def __init__(self, app: Any, account: str) -> None:
        self.app, self.account = app, account

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        environ["HTTP_X_MOTO_ACCOUNT_ID"] = self.account
        return self.app(environ, start_response)


CUSTOMER_KEY_SECRETS = {
    "DB_PASSWORD": {"ssm": "/ec2batch/daily-report/db-password"},
    "API_TOKEN": {"ssm": "api-token"},
    "WAREHOUSE": {
        "secretsmanager": f"arn:aws:secretsmanager:eu-central-1:{OTHER_ACCOUNT}:secret:prod/warehouse-AbCdEf",
        "key": "password",
    },
}


@pytest.fixture(scope="session")
def customer_key_plan(terraform_bin: str, tf_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The example applied a second time, with a customer key and secrets of both kinds (what its defaults leave
    out): findings 8 and 10 on a real rendering. Its own moto_server and working copy, so the shared applied
    state stays as the example's defaults make it; the applied state with the plan's configuration."""
    # moto's backends are one per process: a second server of our own still needs an account of its own.
    app = Serialized(OtherAccount(DomainDispatcherApplication(create_backend_app), OTHER_ACCOUNT))
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="tf-moto-server-customer-key", daemon=True)
    thread.start()
    endpoint = f"http://127.0.0.1:{server.server_port}"
    session = boto3.Session(aws_access_key_id="test", aws_secret_access_key="test", region_name=conftest.REGION)

    def aws(service: str) -> Any:
        return session.client(service, endpoint_url=endpoint)

    try:
        tmp = tmp_path_factory.mktemp("tf-customer-key")
        ignore = shutil.ignore_patterns(".terraform*", "*.tfstate*", "*.tfplan", "tfplan", "terraform.tfvars.json")
        shutil.copytree(tf_dir / "terraform", tmp / "terraform", ignore=ignore)
        shutil.copytree(tf_dir / "dist", tmp / "dist")
        conftest._instance_image(aws)
        key = aws("kms").create_key(Description="ec2batch tests: a customer key")["KeyMetadata"]["Arn"]
        tfvars = {
            "aws_endpoint": endpoint,
            "region": conftest.REGION,
            "subnet_ids": [conftest._subnet(aws)],
            "kms_key_arn": key,
            "secrets": CUSTOMER_KEY_SECRETS,
        }
        example = tmp / conftest.EXAMPLE
        (example / "terraform.tfvars.json").write_text(json.dumps(tfvars))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TF_"))}
        env.update(install(tmp / ".terraform-double"))
        env.update(AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test", AWS_REGION=conftest.REGION)
        env.update(AWS_ENDPOINT_URL=endpoint, TF_DATA_DIR=str(example / ".terraform"))

        def tf(*args: str) -> str:
            done = subprocess.run(
                [terraform_bin, args[0], "-no-color", *args[1:]], cwd=example, env=env, capture_output=True, text=True
            )
            assert done.returncode == 0, f"terraform {' '.join(args)}:\n...{done.stdout[-3000:]}\n{done.stderr}"
            return done.stdout

        tf("init")
        tf("plan", "-out=tfplan")
        configuration = json.loads(tf("show", "-json", "tfplan"))["configuration"]
        tf("apply", "-auto-approve", "tfplan")
        state = json.loads(tf("show", "-json"))
        yield {"values": state["values"], "configuration": configuration, "test_key_arn": key}
    finally:
        server.shutdown()
        thread.join(timeout=10)


def test_every_rule_passes_with_a_customer_key_and_secrets(customer_key_plan: dict[str, Any]) -> None:
    problems = {name: rule(customer_key_plan) for name, rule in rules.RULES.items()}
    assert {name: found for name, found in problems.items() if found} == {}


def test_the_customer_key_rendering_is_known_and_has_the_key_and_secret_statements(
    customer_key_plan: dict[str, Any],
) -> None:
    policies = {address: doc for address, kind, doc in rules.rendered_policies(customer_key_plan) if kind == "identity"}
    assert all(doc is not None for doc in policies.values()), [a for a, d in policies.items() if d is None]
    key = customer_key_plan["test_key_arn"]
    launcher = policies["module.daily_report.aws_iam_role_policy.launcher"]
    assert rules.allows(rules.statements(launcher), "kms:CreateGrant", key)
    assert rules.allows(rules.statements(launcher), "kms:ReEncryptFrom", key)
    instance = rules.statements(policies["module.daily_report.aws_iam_role_policy.instance"])
    prefix = f"arn:aws:ssm:eu-central-1:{OTHER_ACCOUNT}:parameter/"
    for name in ("ec2batch/daily-report/db-password", "api-token"):
        assert rules.allows(instance, "ssm:GetParameter", prefix + name), name
    warehouse = CUSTOMER_KEY_SECRETS["WAREHOUSE"]["secretsmanager"]
    assert rules.allows(instance, "secretsmanager:GetSecretValue", warehouse)
    # No key of the module's own once the customer's is given; the topic uses the customer's.
    daily = [r for r in rules.resources(customer_key_plan) if r["address"].startswith("module.daily_report.")]
    assert [r for r in daily if r["type"] == "aws_kms_key"] == []
    (topic,) = [r for r in daily if r["type"] == "aws_sns_topic"]
    assert topic["values"]["kms_master_key_id"] == key


def test_every_policy_with_a_customer_key_matches_aws_definitions(customer_key_plan: dict[str, Any]) -> None:
    assert rules.iam_matches_aws_definitions(customer_key_plan) == []


# ---------------------------------------------------------------------------------------------------------------
# (b) the old rendering, in small plan documents
# ---------------------------------------------------------------------------------------------------------------


def arn(service: str, rest: str, region: str = REGION) -> str:
    return f"arn:aws:{service}:{region}:{ACCOUNT}:{rest}"


def res(rtype: str, name: str, values: dict[str, Any]) -> dict[str, Any]:
    return {"address": f"module.job.{rtype}.{name}", "mode": "managed", "type": rtype, "name": name, "values": values}


def doc(*stmts: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(stmts)})


def allow(actions: list[str], resources: list[str] | str, sid: str = "S", **extra: Any) -> dict[str, Any]:
    return {"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resources, **extra}


LAUNCHER_ROLE = arn("iam", "role/ec2batch-daily-report-launcher", region="")
INSTANCE_ROLE = arn("iam", "role/ec2batch-daily-report-instance", region="")
JOB_ROLE = arn("iam", "role/ec2batch-daily-report-job", region="")
TOPIC = arn("sns", "ec2batch-daily-report")
TIMERS = arn("sqs", "ec2batch-daily-report-timers")
DLQ = arn("sqs", "ec2batch-daily-report-dlq")
KEY = arn("kms", "key/0b7d3a6e-0000-4000-8000-000000000001")
FUNCTION = arn("lambda", "function:ec2batch-daily-report-launcher")


def fixed_plan() -> dict[str, Any]:
    """A compact rendering of the fixed module: every rule passes on it (so each broken copy shows one finding)."""
    trust_lambda = doc(
        {"Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {"Service": "lambda.amazonaws.com"}}
    )
    trust_ec2 = doc({"Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {"Service": "ec2.amazonaws.com"}})
    trust_job = doc(
        {
            "Effect": "Allow",
            "Action": "sts:AssumeRole",
            "Principal": {"AWS": INSTANCE_ROLE},
            "Condition": {"StringEquals": {"aws:PrincipalTag/ec2batch:job": JOB}},
        }
    )
    key_policy = doc(
        {
            "Sid": "Root",
            "Effect": "Allow",
            "Action": "kms:*",
            "Resource": "*",
            "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
        },
        {
            "Sid": "CloudWatch",
            "Effect": "Allow",
            "Action": ["kms:Decrypt", "kms:GenerateDataKey*"],
            "Resource": "*",
            "Principal": {"Service": "cloudwatch.amazonaws.com"},
            "Condition": {"StringEquals": {"aws:SourceAccount": ACCOUNT}},
        },
    )
    launcher_policy = doc(
        allow(["xray:PutTraceSegments", "xray:PutTelemetryRecords"], "*", "XRay"),
        allow(["sns:Publish"], TOPIC, "Publish"),
        allow(["sqs:SendMessage", "sqs:ReceiveMessage"], TIMERS, "Timers"),
        allow(["kms:Decrypt", "kms:GenerateDataKey"], KEY, "Keys"),
        allow(
            ["ec2:StartInstances"],
            arn("ec2", "instance/*"),
            "Start",
            Condition={"StringEquals": {"aws:ResourceTag/ec2batch:job": JOB}},
        ),
        allow(["ssm:GetParameter"], arn("ssm", "parameter/ec2batch/daily-report/config"), "Config"),
    )
    instance_policy = doc(
        allow(["sns:Publish"], TOPIC, "Publish"),
        allow(["kms:Decrypt", "kms:GenerateDataKey"], KEY, "Keys"),
        allow(["sts:AssumeRole"], JOB_ROLE, "AssumeTheJobRole"),
    )
    resources = [
        res(
            "aws_iam_role",
            "launcher",
            {"name": "ec2batch-daily-report-launcher", "arn": LAUNCHER_ROLE, "assume_role_policy": trust_lambda},
        ),
        res(
            "aws_iam_role",
            "instance",
            {"name": "ec2batch-daily-report-instance", "arn": INSTANCE_ROLE, "assume_role_policy": trust_ec2},
        ),
        res(
            "aws_iam_role",
            "job",
            {"name": "ec2batch-daily-report-job", "arn": JOB_ROLE, "assume_role_policy": trust_job},
        ),
        res("aws_iam_role_policy", "launcher", {"role": "ec2batch-daily-report-launcher", "policy": launcher_policy}),
        res("aws_iam_role_policy", "instance", {"role": "ec2batch-daily-report-instance", "policy": instance_policy}),
        res("aws_kms_key", "topic", {"arn": KEY, "key_id": KEY.rsplit("/", 1)[1], "policy": key_policy}),
        res("aws_sns_topic", "this", {"arn": TOPIC, "kms_master_key_id": KEY}),
        res(
            "aws_cloudwatch_metric_alarm",
            "this",
            {"alarm_name": "ec2batch-daily-report-failed-run", "alarm_actions": [TOPIC]},
        ),
        res(
            "aws_lambda_function",
            "launcher",
            {
                "arn": FUNCTION,
                "function_name": "ec2batch-daily-report-launcher",
                "role": LAUNCHER_ROLE,
                "timeout": 180,
                "reserved_concurrent_executions": -1,
                "tracing_config": [{"mode": "Active"}],
            },
        ),
        res(
            "aws_sqs_queue",
            "timers",
            {
                "arn": TIMERS,
                "visibility_timeout_seconds": 1080,
                "kms_master_key_id": "alias/aws/sqs",
                "redrive_policy": json.dumps({"deadLetterTargetArn": DLQ, "maxReceiveCount": 5}),
            },
        ),
        res(
            "aws_lambda_event_source_mapping",
            "timers",
            {"event_source_arn": TIMERS, "function_name": FUNCTION, "scaling_config": [{"maximum_concurrency": 5}]},
        ),
        res(
            "aws_scheduler_schedule",
            "job",
            {
                "target": [
                    {
                        "arn": FUNCTION,
                        "input": '{"action":"schedule","job":"daily-report",'
                        '"scheduled_time":"<aws.scheduler.scheduled-time>"}',
                    }
                ]
            },
        ),
        res("aws_security_group", "this", {"id": "sg-0123456789abcdef0"}),
        res(
            "aws_vpc_security_group_egress_rule",
            "this",
            {
                "security_group_id": "sg-0123456789abcdef0",
                "ip_protocol": "tcp",
                "from_port": 443,
                "to_port": 443,
                "cidr_ipv4": "0.0.0.0/0",
            },
        ),
        res(
            "aws_launch_template",
            "this",
            {
                "vpc_security_group_ids": ["sg-0123456789abcdef0"],
                "metadata_options": [{"http_tokens": "required", "instance_metadata_tags": "disabled"}],
                "block_device_mappings": [{"ebs": [{"kms_key_id": None}]}],
            },
        ),
        res("aws_instance", "reusable", {"metadata_options": [{"http_tokens": "required"}]}),
    ]
    configuration = {
        "root_module": {
            "module_calls": {
                "job": {
                    "module": {
                        "resources": [
                            {
                                "address": "aws_instance.reusable",
                                "type": "aws_instance",
                                "expressions": {
                                    "subnet_id": {"references": ["var.subnet_ids"]},
                                    "launch_template": [{}],
                                },
                            }
                        ]
                    }
                }
            }
        }
    }
    return {"planned_values": {"root_module": {"resources": resources}}, "configuration": configuration}


def find(plan: dict[str, Any], rtype: str, name: str) -> dict[str, Any]:
    return next(r for r in rules.resources(plan) if (r["type"], r["name"]) == (rtype, name))


def set_policy(plan: dict[str, Any], name: str, mutate: Any) -> None:
    r = find(plan, "aws_iam_role_policy", name)
    policy = json.loads(r["values"]["policy"])
    mutate(policy["Statement"])
    r["values"]["policy"] = json.dumps(policy)


def test_every_rule_passes_on_the_compact_fixed_rendering() -> None:
    plan = fixed_plan()
    assert {name: rule(plan) for name, rule in rules.RULES.items() if rule(plan)} == {}


def broken(finding: str) -> dict[str, Any]:
    """The fixed rendering with one finding of issue 10 put back as the module used to render it."""
    plan = copy.deepcopy(fixed_plan())
    if finding == "1":
        instance = plan["configuration"]["root_module"]["module_calls"]["job"]["module"]["resources"][0]
        instance["expressions"]["associate_public_ip_address"] = {"constant_value": False}
    elif finding == "2":
        set_policy(plan, "launcher", lambda s: s.pop(0))
    elif finding == "3":
        find(plan, "aws_lambda_function", "launcher")["values"]["reserved_concurrent_executions"] = 5
    elif finding == "4":
        # What jsonencode renders, as `echo 'jsonencode({a="<x>"})' | terraform console` shows.
        target = find(plan, "aws_scheduler_schedule", "job")["values"]["target"][0]
        target["input"] = target["input"].replace("<", "\\u003c").replace(">", "\\u003e")
    elif finding == "5":
        find(plan, "aws_sns_topic", "this")["values"]["kms_master_key_id"] = "alias/aws/sns"
    elif finding == "5-key":
        key = find(plan, "aws_kms_key", "topic")
        key["values"]["policy"] = json.dumps({"Statement": json.loads(key["values"]["policy"])["Statement"][:1]})
    elif finding == "8":
        template = find(plan, "aws_launch_template", "this")
        template["values"]["block_device_mappings"][0]["ebs"][0]["kms_key_id"] = KEY
    elif finding == "8-publish":
        set_policy(plan, "instance", lambda s: s.pop(1))
    elif finding == "9":
        find(plan, "aws_sqs_queue", "timers")["values"]["visibility_timeout_seconds"] = 360
        queue = find(plan, "aws_sqs_queue", "timers")["values"]
        queue["redrive_policy"] = json.dumps({"deadLetterTargetArn": DLQ, "maxReceiveCount": 3})
        find(plan, "aws_lambda_event_source_mapping", "timers")["values"]["scaling_config"] = []
    elif finding == "10":
        bad = [
            allow(["ssm:GetParameter"], arn("ssm", "parameterdb/password"), "Ssm"),
            allow(["secretsmanager:GetSecretValue"], "db-password", "Sm"),
        ]
        set_policy(plan, "launcher", lambda s: s.extend(bad))
    elif finding == "11":
        rule = find(plan, "aws_vpc_security_group_egress_rule", "this")["values"]
        rule.update(from_port=5432, to_port=5432, cidr_ipv4="10.0.0.0/16")
    elif finding == "12":
        find(plan, "aws_launch_template", "this")["values"]["metadata_options"][0]["instance_metadata_tags"] = "enabled"
    return plan


CAUGHT_BY = [
    ("1", rules.instance_sends_no_network_interface, "network interface"),
    ("2", rules.traced_functions_may_send_traces, "xray:PutTraceSegments"),
    ("3", rules.reserved_concurrency_fits_a_new_account, "leaves 5 of a quota of 10"),
    ("4", rules.scheduler_inputs_keep_context_placeholders, "escapes"),
    ("5", rules.alarm_topics_accept_cloudwatch, "alias/aws/sns"),
    ("5-key", rules.alarm_topics_accept_cloudwatch, "does not admit CloudWatch"),
    ("8", rules.encrypted_destinations_are_usable, "kms:CreateGrant"),
    ("8-publish", rules.encrypted_destinations_are_usable, "publishes to"),
    ("9", rules.queue_sources_fit_their_function, "visibility timeout 360 < 6 x 180"),
    ("10", rules.policy_arns_are_well_formed, "parameterdb/password"),
    ("11", rules.instances_reach_the_aws_apis, "tcp 443"),
    ("12", rules.metadata_tags_are_off, "instance_metadata_tags is enabled"),
]


@pytest.mark.parametrize(("finding", "rule", "says"), CAUGHT_BY, ids=[c[0] for c in CAUGHT_BY])
def test_each_rule_catches_its_finding_in_the_old_rendering(finding: str, rule: Any, says: str) -> None:
    problems = rule(broken(finding))
    assert problems, f"finding {finding} went unnoticed"
    assert any(says in p for p in problems), problems


def test_the_queue_rule_names_each_of_its_three_problems() -> None:
    problems = " | ".join(rules.queue_sources_fit_their_function(broken("9")))
    assert "maxReceiveCount 3 < 5" in problems and "no scaling_config.maximum_concurrency" in problems


def test_the_arn_rule_catches_a_bare_secret_name() -> None:
    assert any("'db-password' is not an ARN" in p for p in rules.policy_arns_are_well_formed(broken("10")))


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (lambda t: t.update(Principal={"AWS": f"arn:aws:iam::{ACCOUNT}:root"}), "not only"),
        (lambda t: t.pop("Condition"), "no condition naming the job"),
    ],
    ids=["account-trusted", "no-job-condition"],
)
def test_the_job_role_rule_catches_a_wide_trust(change: Any, says: str) -> None:
    plan = fixed_plan()
    job = find(plan, "aws_iam_role", "job")["values"]
    trust = json.loads(job["assume_role_policy"])
    change(trust["Statement"][0])
    job["assume_role_policy"] = json.dumps(trust)
    assert any(says in p for p in rules.job_roles_trust_only_their_instance_role(plan))


def test_the_job_role_rule_catches_a_launcher_that_may_assume_it_and_an_instance_role_that_cannot() -> None:
    plan = fixed_plan()
    set_policy(plan, "launcher", lambda s: s.append(allow(["sts:AssumeRole"], JOB_ROLE, "Sneak")))
    set_policy(plan, "instance", lambda s: s.pop(2))
    problems = " | ".join(rules.job_roles_trust_only_their_instance_role(plan))
    assert "launcher: may assume" in problems and "may not sts:AssumeRole" in problems
