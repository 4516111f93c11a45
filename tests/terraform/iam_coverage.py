"""IAM coverage: every AWS call the launcher and the agent make, held against the policy of the role that made it.

`Recorder` is a botocore event hook (`before-parameter-build`, so it sees the API's own parameters) that notes
each call a client makes, under the name of the role whose credentials would make it on AWS. `requests(call)`
turns a call into the authorization requests AWS evaluates for it: (IAM action, resource ARN, condition
context), after the Service Authorization Reference (a TransactWriteItems is one request per item, a
RunInstances one per resource type it touches, a CreateTags one per resource). `evaluate` judges a request
against a role's statements as IAM does for one identity policy: an explicit Deny wins, else an Allow whose
action, resource and every condition hold. An operation without a rule here is reported, never passed: a new
call must say what it needs.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Statement = dict[str, Any]
Context = dict[str, list[str]]
# A tags lookup: the tags of an EC2 resource (instance, volume) by its id, as AWS knows them at the call.
Tags = Callable[[str], dict[str, str]]


@dataclass(frozen=True)
class Call:
    role: str  # who made it: "launcher" or "instance"
    service: str  # the IAM service prefix (botocore's signing name)
    operation: str
    params: dict[str, Any]
    context: dict[str, Any] = field(default_factory=dict)  # what AWS knows at the call (EC2 tags)


@dataclass(frozen=True)
class Request:
    action: str
    resource: str
    context: Context


class Recorder:
    """Notes every call of the clients it is attached to; `attach(client, role)` for each."""

    def __init__(self, tags: Tags | None = None) -> None:
        self.calls: list[Call] = []
        self.tags = tags

    def attach(self, client: Any, role: str) -> Any:
        service = client.meta.service_model.signing_name

        def note(params: dict[str, Any], model: Any, **_: Any) -> None:
            context: dict[str, Any] = {}
            if service == "ec2" and self.tags is not None and model.name in EC2_TAGGED_OPERATIONS:
                # The tags a resource has when the call is made (aws:ResourceTag), read before it changes them.
                ids = params.get("InstanceIds") or params.get("Resources") or []
                context["tags"] = {i: self.tags(i) for i in ids}
            self.calls.append(Call(role, service, model.name, dict(params), context))

        client.meta.events.register(f"before-parameter-build.{client.meta.service_model.service_name}", note)
        return client


EC2_TAGGED_OPERATIONS = {
    "StartInstances",
    "StopInstances",
    "TerminateInstances",
    "CreateTags",
    "ModifyInstanceAttribute",
}


# ---------------------------------------------------------------------------------------------------------------
# From a call to the requests AWS authorizes
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Where:
    partition: str
    region: str
    account: str

    def arn(self, service: str, rest: str, region: bool = True, account: bool = True) -> str:
        return (
            f"arn:{self.partition}:{service}:{self.region if region else ''}:{self.account if account else ''}:{rest}"
        )


def _leading_keys(key: dict[str, Any] | None, partition_key: str = "job") -> list[str]:
    value = (key or {}).get(partition_key, {})
    return [v for v in value.values()] if isinstance(value, dict) else []


def _query_leading_keys(params: dict[str, Any], partition_key: str = "job") -> list[str]:
    names = params.get("ExpressionAttributeNames", {})
    values = params.get("ExpressionAttributeValues", {})
    found = []
    for name, placeholder in re.findall(r"(#?\w+)\s*=\s*(:\w+)", params.get("KeyConditionExpression", "")):
        if names.get(name, name) == partition_key:
            found += [v for v in values.get(placeholder, {}).values()]
    return found


def _dynamodb(call: Call, where: Where) -> list[Request]:
    op, p = call.operation, call.params

    def table(name: str) -> str:
        return where.arn("dynamodb", f"table/{name}")

    if op in ("GetItem", "PutItem", "UpdateItem", "DeleteItem"):
        key = p.get("Key") if op != "PutItem" else p.get("Item")
        return [Request(f"dynamodb:{op}", table(p["TableName"]), {"dynamodb:LeadingKeys": _leading_keys(key)})]
    if op == "Query":
        context = {"dynamodb:LeadingKeys": _query_leading_keys(p)}
        return [Request("dynamodb:Query", table(p["TableName"]), context)]
    if op == "TransactWriteItems":
        kinds = {
            "Put": "PutItem",
            "Update": "UpdateItem",
            "Delete": "DeleteItem",
            "ConditionCheck": "ConditionCheckItem",
        }
        out = []
        for item in p["TransactItems"]:
            ((kind, body),) = item.items()
            key = body.get("Item") if kind == "Put" else body.get("Key")
            context = {"dynamodb:LeadingKeys": _leading_keys(key)}
            out.append(Request(f"dynamodb:{kinds[kind]}", table(body["TableName"]), context))
        return out
    if op in ("DescribeStream", "GetShardIterator"):  # the stream's event source mapping, as the function's role
        return [Request(f"dynamodb:{op}", p["StreamArn"], {})]
    if op == "GetRecords":  # the iterator stands for its stream: the caller names it in `context`
        return [Request("dynamodb:GetRecords", call.context["stream_arn"], {})]
    if op == "ListStreams":  # no resource-level permissions
        return [Request("dynamodb:ListStreams", "*", {})]
    raise KeyError(op)


def _instance(where: Where, instance_id: str) -> str:
    return where.arn("ec2", f"instance/{instance_id}")


def _resource_tags(call: Call, resource_id: str) -> Context:
    tags = call.context.get("tags", {}).get(resource_id, {})
    return {f"aws:ResourceTag/{k}": [v] for k, v in tags.items()}


def _ec2_arn(where: Where, resource_id: str) -> str:
    kinds = {"i-": "instance", "vol-": "volume", "lt-": "launch-template", "sg-": "security-group"}
    kind = next((k for prefix, k in kinds.items() if resource_id.startswith(prefix)), None)
    if kind is None:
        raise KeyError(f"CreateTags on {resource_id}")
    return where.arn("ec2", f"{kind}/{resource_id}")


def _ec2(call: Call, where: Where, launch_template: Callable[[dict[str, Any]], dict[str, Any]] | None) -> list[Request]:
    op, p = call.operation, call.params
    if op in ("DescribeInstances", "DescribeTags", "DescribeInstanceStatus", "DescribeLaunchTemplates"):
        return [Request(f"ec2:{op}", "*", {})]
    if op in ("StartInstances", "StopInstances", "TerminateInstances"):
        return [Request(f"ec2:{op}", _instance(where, i), _resource_tags(call, i)) for i in p["InstanceIds"]]
    if op == "ModifyInstanceAttribute":
        i = p["InstanceId"]
        return [Request("ec2:ModifyInstanceAttribute", _instance(where, i), _resource_tags(call, i))]
    if op == "CreateTags":
        keys = [t["Key"] for t in p["Tags"]]
        request_tags = {f"aws:RequestTag/{t['Key']}": [t["Value"]] for t in p["Tags"]}
        return [
            Request(
                "ec2:CreateTags", _ec2_arn(where, r), {**_resource_tags(call, r), **request_tags, "aws:TagKeys": keys}
            )
            for r in p["Resources"]
        ]
    if op == "RunInstances":
        # AWS authorizes a launch on every resource it touches; the tags at launch are the request's and the
        # template's TagSpecifications together, and each tag-on-create is a CreateTags with ec2:CreateAction.
        template = launch_template(p["LaunchTemplate"]) if launch_template and "LaunchTemplate" in p else {}
        template_arn = template.get("arn", "")
        data = template.get("data", {})
        specs = [*data.get("TagSpecifications", []), *p.get("TagSpecifications", [])]
        by_type: dict[str, dict[str, str]] = {}
        for spec in specs:
            by_type.setdefault(spec["ResourceType"], {}).update({t["Key"]: t["Value"] for t in spec["Tags"]})
        common: Context = {"ec2:LaunchTemplate": [template_arn]} if template_arn else {}
        # The market: InstanceMarketOptions of the request, else of the template; none is on-demand. It is the
        # instance's ec2:InstanceMarketType, and a Spot launch also creates a Spot Instance request (EC2 User
        # Guide, "Tag Spot Instance requests") through the service-linked role AWSServiceRoleForEC2Spot, which
        # EC2 creates with the caller's permissions where the account has none yet (counted here as needed).
        options = p.get("InstanceMarketOptions") or data.get("InstanceMarketOptions") or {}
        market = str(options.get("MarketType") or "on-demand")
        out = []
        for kind in ("instance", "volume"):
            tags = by_type.get(kind, {})
            context = {**common, **{f"aws:RequestTag/{k}": [v] for k, v in tags.items()}, "aws:TagKeys": list(tags)}
            if kind == "instance":
                context["ec2:InstanceMarketType"] = [market]
            out.append(Request("ec2:RunInstances", where.arn("ec2", f"{kind}/*"), context))
            if tags:
                out.append(
                    Request(
                        "ec2:CreateTags",
                        where.arn("ec2", f"{kind}/*"),
                        {**context, "ec2:CreateAction": ["RunInstances"]},
                    )
                )
        image = p.get("ImageId") or data.get("ImageId") or "*"
        out.append(Request("ec2:RunInstances", where.arn("ec2", f"image/{image}", account=False), common))
        subnet = p.get("SubnetId") or "*"
        out.append(Request("ec2:RunInstances", where.arn("ec2", f"subnet/{subnet}"), common))
        out.append(Request("ec2:RunInstances", where.arn("ec2", "network-interface/*"), common))
        for group in data.get("SecurityGroupIds", []) or ["*"]:
            out.append(Request("ec2:RunInstances", where.arn("ec2", f"security-group/{group}"), common))
        if template_arn:
            out.append(Request("ec2:RunInstances", template_arn, common))
        if market == "spot":
            out.append(Request("ec2:RunInstances", where.arn("ec2", "spot-instances-request/*"), {}))
            role = "role/aws-service-role/spot.amazonaws.com/AWSServiceRoleForEC2Spot"
            context = {"iam:AWSServiceName": ["spot.amazonaws.com"]}
            out.append(Request("iam:CreateServiceLinkedRole", where.arn("iam", role, region=False), context))
        profile = data.get("IamInstanceProfile", {})
        if profile.get("Arn") or profile.get("Name"):
            role = template.get("instance_role_arn")
            if role:
                out.append(Request("iam:PassRole", role, {"iam:PassedToService": ["ec2.amazonaws.com"]}))
        return out
    raise KeyError(op)


def _logs(call: Call, where: Where) -> list[Request]:
    op, p = call.operation, call.params
    group = where.arn("logs", f"log-group:{p['logGroupName']}")
    if op in ("CreateLogStream", "PutLogEvents"):
        return [Request(f"logs:{op}", f"{group}:log-stream:{p['logStreamName']}", {})]
    if op in ("DescribeLogStreams", "GetLogEvents", "FilterLogEvents"):
        return [Request(f"logs:{op}", f"{group}:*", {})]
    raise KeyError(op)


def _sqs(call: Call, where: Where) -> list[Request]:
    p = call.params
    name = p["QueueName"] if "QueueName" in p else p["QueueUrl"].rstrip("/").rsplit("/", 1)[1]
    return [Request(f"sqs:{call.operation}", where.arn("sqs", name), {})]


def _ssm(call: Call, where: Where) -> list[Request]:
    names = call.params.get("Names") or [call.params["Name"]]
    action = "ssm:GetParameters" if call.operation == "GetParameters" else f"ssm:{call.operation}"
    return [Request(action, where.arn("ssm", f"parameter/{n.lstrip('/')}"), {}) for n in names]


def _batch(call: Call, where: Where) -> list[Request]:
    """AWS Batch (issue 14): SubmitJob is authorized on the queue and the job definition (by name, or a revision
    by name:revision or ARN), and, with tags, as TagResource on the new job; TerminateJob on the job, with its
    tags; DescribeJobs and ListJobs have no resource type."""
    op, p = call.operation, call.params

    def named(kind: str, value: str) -> str:
        return value if value.startswith("arn:") else where.arn("batch", f"{kind}/{value}")

    if op == "SubmitJob":
        out = [
            Request("batch:SubmitJob", named("job-queue", p["jobQueue"]), {}),
            Request("batch:SubmitJob", named("job-definition", p["jobDefinition"]), {}),
        ]
        if tags := p.get("tags"):
            context = {**{f"aws:RequestTag/{k}": [v] for k, v in tags.items()}, "aws:TagKeys": list(tags)}
            out.append(Request("batch:TagResource", where.arn("batch", "job/*"), context))
        return out
    if op == "TerminateJob":
        tags = call.context.get("tags", {}).get(p["jobId"], {})
        context = {f"aws:ResourceTag/{k}": [v] for k, v in tags.items()}
        return [Request("batch:TerminateJob", where.arn("batch", f"job/{p['jobId']}"), context)]
    if op in ("DescribeJobs", "ListJobs"):
        return [Request(f"batch:{op}", "*", {})]
    raise KeyError(op)


def requests(
    call: Call, where: Where, launch_template: Callable[[dict[str, Any]], dict[str, Any]] | None = None
) -> list[Request]:
    """What AWS authorizes for `call`; KeyError for an operation no rule here knows."""
    service, op, p = call.service, call.operation, call.params
    if service == "dynamodb":
        return _dynamodb(call, where)
    if service == "ec2":
        return _ec2(call, where, launch_template)
    if service == "logs":
        return _logs(call, where)
    if service == "sqs":
        return _sqs(call, where)
    if service == "ssm":
        return _ssm(call, where)
    if service == "batch":
        return _batch(call, where)
    if service == "events" and op == "PutEvents":
        # One request per entry, on its bus, with the entry's source and detail type as condition keys.
        return [
            Request(
                "events:PutEvents",
                where.arn("events", f"event-bus/{e.get('EventBusName') or 'default'}"),
                {"events:source": [e["Source"]], "events:detail-type": [e["DetailType"]]},
            )
            for e in p["Entries"]
        ]
    if service == "sns" and op == "Publish":
        return [Request("sns:Publish", p["TopicArn"], {})]
    if service == "ecr" and op == "GetAuthorizationToken":
        return [Request("ecr:GetAuthorizationToken", "*", {})]
    if service == "secretsmanager" and op == "GetSecretValue":
        return [Request("secretsmanager:GetSecretValue", p["SecretId"], {})]
    if service == "sts" and op == "GetCallerIdentity":
        return []  # needs no permission: AWS answers it even when every action is denied
    if service == "sts" and op == "AssumeRole":
        return [Request("sts:AssumeRole", p["RoleArn"], {})]
    raise KeyError(f"{service}:{op}")


# ---------------------------------------------------------------------------------------------------------------
# Evaluating a request against a role's statements
# ---------------------------------------------------------------------------------------------------------------


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _like(pattern: str, value: str) -> bool:
    return fnmatch.fnmatchcase(value, pattern)


def _lower(context: Context) -> dict[str, list[str]]:
    return {k.lower(): v for k, v in context.items()}


def condition_holds(operator: str, key: str, expected: Any, context: Context) -> bool:
    """One condition of a statement, as IAM evaluates it (keys are case-insensitive, values are not)."""
    values = _lower(context).get(key.lower())
    wanted = [str(v) for v in _as_list(expected)]
    qualifier, _, op = operator.rpartition(":")
    if_exists = op.endswith("IfExists")
    op = op.removesuffix("IfExists")
    compare: dict[str, Callable[[str, str], bool]] = {
        "StringEquals": lambda w, v: w == v,
        "StringNotEquals": lambda w, v: w != v,
        "StringEqualsIgnoreCase": lambda w, v: w.lower() == v.lower(),
        "StringLike": _like,
        "StringNotLike": lambda w, v: not _like(w, v),
        "ArnEquals": lambda w, v: w == v,
        "ArnLike": _like,
        "Bool": lambda w, v: w.lower() == v.lower(),
    }
    if op == "Null":
        return (values is None) == (wanted[0].lower() == "true")
    if op not in compare:
        raise ValueError(f"condition operator {operator} is not modelled: add it to condition_holds")
    test = compare[op]
    negated = op.startswith("StringNot")
    if qualifier == "ForAllValues":
        return all(any(test(w, v) for w in wanted) for v in values or [])
    if values is None:
        return if_exists
    if qualifier == "ForAnyValue":
        return any(test(w, v) for w in wanted for v in values)
    if negated:
        return all(test(w, v) for w in wanted for v in values)
    return any(test(w, v) for w in wanted for v in values)


def _statement_applies(s: Statement, request: Request) -> bool:
    if not any(_like(a.lower(), request.action.lower()) for a in _as_list(s.get("Action"))):
        return False
    if not any(_like(r, request.resource) for r in _as_list(s.get("Resource"))):
        return False
    return all(
        condition_holds(operator, key, expected, request.context)
        for operator, block in s.get("Condition", {}).items()
        for key, expected in block.items()
    )


def evaluate(statements: list[Statement], request: Request) -> str:
    """ "deny" (an explicit Deny applies), "allow" (an Allow applies) or "implicit-deny"."""
    if any(s.get("Effect") == "Deny" and _statement_applies(s, request) for s in statements):
        return "deny"
    if any(s.get("Effect") == "Allow" and _statement_applies(s, request) for s in statements):
        return "allow"
    return "implicit-deny"


def uncovered(
    calls: list[Call],
    policies: dict[str, list[Statement]],
    where: Where,
    launch_template: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> list[str]:
    """Every call (by role) whose requests the role's policy does not allow, or that no rule here knows."""
    problems = []
    for call in calls:
        try:
            needed = requests(call, where, launch_template)
        except KeyError as missing:
            problems.append(f"{call.role}: {call.service}:{call.operation}: no rule for {missing} in iam_coverage")
            continue
        for request in needed:
            verdict = evaluate(policies[call.role], request)
            if verdict != "allow":
                problems.append(
                    f"{call.role}: {call.service}:{call.operation} needs {request.action} on {request.resource} "
                    f"with {request.context}: {verdict}"
                )
    return sorted(set(problems))
