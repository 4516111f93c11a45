"""Run events and `after` (issue 15) in what real Terraform applied: the downstream job's rule is the one the local
stack makes (ec2batch.dependencies), its one target is its own launcher, only that rule may invoke it; the ledger
has the stream the launcher publishes from, through a mapping as docs/events.md describes; only the launcher's role
may publish, only ec2batch's events, only to the job's bus, and it may read only its own ledger's stream."""

from __future__ import annotations

import json
from typing import Any

from ec2batch.config import parse_config
from ec2batch.dependencies import rule_pattern, target_input
from tests.terraform import iam_coverage as cov
from tests.terraform import plan_rules as rules
from tests.terraform.test_iam import ACCOUNT, REGION, WHERE, render
from tests.unit.test_terraform import module, policy_documents

DOWNSTREAM = "daily-summary"
BUS = f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/default"


def one(applied: dict[str, Any], rtype: str, where: str) -> dict[str, Any]:
    found = [r["values"] for r in rules.managed(applied, rtype) if where in r["address"]]
    assert len(found) == 1, (rtype, where, found)
    return found[0]


def test_the_downstream_rule_matches_its_upstream_jobs_endings_as_the_local_stack_does(
    applied: dict[str, Any], aws: Any
) -> None:
    names = applied["values"]["outputs"]["downstream_names"]["value"]
    document = aws("ssm").get_parameter(Name=names["config_parameter"], WithDecryption=True)["Parameter"]["Value"]
    config = parse_config(json.loads(document))
    assert [(a.job, a.status) for a in config.after] == [("daily-report", "SUCCEEDED")]

    rule = one(applied, "aws_cloudwatch_event_rule", "module.downstream.")
    assert rule["name"] == names["after_rule"] == f"ec2batch-{DOWNSTREAM}-after"
    assert json.loads(rule["event_pattern"]) == rule_pattern(config)
    got = aws("events").describe_rule(Name=rule["name"])  # as AWS (moto) holds it
    assert json.loads(got["EventPattern"]) == rule_pattern(config)


def test_its_one_target_is_its_own_launcher_and_only_the_rule_may_invoke_it(applied: dict[str, Any]) -> None:
    rule = one(applied, "aws_cloudwatch_event_rule", "module.downstream.")
    target = one(applied, "aws_cloudwatch_event_target", "module.downstream.")
    launcher = one(applied, "aws_lambda_function", "module.downstream.")
    assert target["rule"] == rule["name"] and target["arn"] == launcher["arn"]
    assert target["input_transformer"][0]["input_template"] == target_input(DOWNSTREAM)
    permission = one(applied, "aws_lambda_permission", "module.downstream.")
    assert (permission["principal"], permission["source_arn"]) == ("events.amazonaws.com", rule["arn"])
    assert permission["function_name"] == launcher["function_name"]


def test_a_job_without_after_has_no_after_rule_but_counts_lost_events(applied: dict[str, Any]) -> None:
    report_rules = [r for r in rules.managed(applied, "aws_cloudwatch_event_rule") if "daily_report" in r["address"]]
    assert report_rules == []
    filters = [
        r["values"]
        for r in rules.managed(applied, "aws_cloudwatch_log_metric_filter")
        if "module.daily_report." in r["address"] and "run_events" in r["address"]
    ]
    assert sorted(f["log_group_name"] for f in filters) == ["/aws/lambda/ec2batch-daily-report-launcher"]
    assert {f["pattern"] for f in filters} == {'{ $.msg = "run event not published" }'}


def put_events(role: str, source: str = "ec2batch", bus: str | None = None) -> cov.Call:
    entry = {"Source": source, "DetailType": "ec2batch Run State Change", "Detail": "{}"}
    if bus:
        entry["EventBusName"] = bus
    return cov.Call(role, "events", "PutEvents", {"Entries": [entry]})


def test_only_the_launcher_publishes_only_ec2batch_events_only_to_the_jobs_bus() -> None:
    documents = policy_documents(module())
    roles = {name: rules.statements(render(documents[name])) for name in ("instance", "launcher")}
    allowed = [put_events("launcher"), put_events("launcher", bus="default")]
    assert cov.uncovered(allowed, roles, WHERE) == []
    denied = [
        put_events("instance"),  # the machine writes the ledger; the launcher publishes from its stream
        put_events("launcher", source="com.example.billing"),
        put_events("launcher", bus="another-bus"),
    ]
    assert len(cov.uncovered(denied, roles, WHERE)) == len(denied)


STREAM = WHERE.arn("dynamodb", "table/ec2batch-daily-report-runs/stream/2026-11-24T02:00:00.000")
OTHER_STREAM = WHERE.arn("dynamodb", "table/ec2batch-another-job-runs/stream/2026-11-24T02:00:00.000")


def read_stream(role: str, stream: str = STREAM) -> list[cov.Call]:
    """The calls the event source mapping makes as the function's role to read a stream."""
    return [
        cov.Call(role, "dynamodb", "ListStreams", {"TableName": "ec2batch-daily-report-runs"}),
        cov.Call(role, "dynamodb", "DescribeStream", {"StreamArn": stream}),
        cov.Call(
            role, "dynamodb", "GetShardIterator", {"StreamArn": stream, "ShardId": "s", "ShardIteratorType": "LATEST"}
        ),
        cov.Call(role, "dynamodb", "GetRecords", {"ShardIterator": "i"}, {"stream_arn": stream}),
    ]


def test_the_launcher_reads_its_own_ledgers_stream_and_nothing_else_does() -> None:
    documents = policy_documents(module())
    roles = {name: rules.statements(render(documents[name])) for name in ("instance", "launcher")}
    assert cov.uncovered(read_stream("launcher"), roles, WHERE) == []
    denied = read_stream("launcher", OTHER_STREAM)[1:] + read_stream("instance")
    assert len(cov.uncovered(denied, roles, WHERE)) == len(denied)  # ListStreams reads no record: "*" (iam.tf)


def test_the_ledger_streams_its_items_to_the_launcher_as_docs_events_md_says(applied: dict[str, Any], aws: Any) -> None:
    from ec2batch.ledger import STREAM_SPECIFICATION

    table = one(applied, "aws_dynamodb_table", "module.daily_report.")
    assert (table["stream_enabled"], table["stream_view_type"]) == (True, STREAM_SPECIFICATION["StreamViewType"])
    described = aws("dynamodb").describe_table(TableName=table["name"])["Table"]
    assert described["StreamSpecification"] == STREAM_SPECIFICATION
    mappings = [
        m["values"]
        for m in rules.managed(applied, "aws_lambda_event_source_mapping")
        if "module.daily_report." in m["address"] and m["values"]["event_source_arn"] == table["stream_arn"]
    ]
    [mapping] = mappings
    launcher = one(applied, "aws_lambda_function", "module.daily_report.")
    assert mapping["function_name"] == launcher["arn"]
    assert (mapping["starting_position"], mapping["maximum_batching_window_in_seconds"]) == ("LATEST", 0)
    assert mapping["function_response_types"] == ["ReportBatchItemFailures"]
    assert mapping["bisect_batch_on_function_error"] is True
    assert 0 < mapping["maximum_retry_attempts"] <= 10 and 0 < mapping["maximum_record_age_in_seconds"] <= 86400
    dead_letters = aws("sqs").get_queue_url(QueueName="ec2batch-daily-report-dlq")["QueueUrl"]
    dlq_arn = aws("sqs").get_queue_attributes(QueueUrl=dead_letters, AttributeNames=["QueueArn"])["Attributes"]
    assert mapping["destination_config"][0]["on_failure"][0]["destination_arn"] == dlq_arn["QueueArn"]
    got = aws("lambda").get_event_source_mapping(UUID=mapping["uuid"])  # as AWS (moto) holds it
    assert got["EventSourceArn"] == described["LatestStreamArn"] and got["StartingPosition"] == "LATEST"
    [pattern] = [json.loads(f["pattern"]) for f in mapping["filter_criteria"][0]["filter"]]
    assert pattern["eventName"] == ["INSERT", "MODIFY"]
    prefixes = [p["prefix"] for p in pattern["dynamodb"]["Keys"]["run_id"]["S"]]
    assert sorted(prefixes) == [str(d) for d in range(10)]  # every run id, no `~` bookkeeping key


def test_the_launchers_bus_and_the_config_documents_are_one_variable(applied: dict[str, Any], aws: Any) -> None:
    # One variable, two carriers: the launcher's environment and the config document (the local stack's source).
    for module_address, job in (("module.daily_report.", "daily-report"), ("module.downstream.", DOWNSTREAM)):
        launcher = one(applied, "aws_lambda_function", module_address)
        parameter = f"/ec2batch/{job}/config"
        document = aws("ssm").get_parameter(Name=parameter, WithDecryption=True)["Parameter"]["Value"]
        bus = launcher["environment"][0]["variables"]["EC2BATCH_EVENT_BUS"]
        assert bus == parse_config(json.loads(document)).event_bus == "default"
