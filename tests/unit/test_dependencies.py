"""Jobs that run after other jobs: config validation, the graph across jobs (unknown job, cycles), the downstream
rule as moto's EventBridge matches it, and the launcher's decision with one and several upstream jobs.

The chain runs as on the local stack: an upstream run's status changes are records on its ledger's stream, which
the launcher publishes to moto's EventBridge (the stream's mapping: `tests.conftest.Outbox`), the downstream's
rule (made by `ec2batch.local.provision`, as Terraform makes it) puts the matching ones in the downstream's timer
queue, and the launcher gets them as SQS records."""

from __future__ import annotations

import itertools
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ec2batch.aws import Clients
from ec2batch.config import parse_config
from ec2batch.dependencies import Graph, rule_pattern
from ec2batch.errors import ConfigError, EventError
from ec2batch.launcher import Launcher
from ec2batch.launcher.after import ARRIVAL_PREFIX
from ec2batch.launcher.machines import Machines
from ec2batch.ledger import FAILED, RUNNING, STARTING, SUCCEEDED, Ledger, Run
from ec2batch.local.provision import provision_job
from tests.conftest import REGION, Job, Outbox, make_job

NOW = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)


def config(job: str, *after: Any) -> Any:
    return parse_config({"job": job, "image": "img", "after": list(after)})


# ---------------------------------------------------------------- validation
@pytest.mark.parametrize(
    ("after", "message"),
    [
        ([{"job": "load"}], "config.after[0].job: 'load' is this job: a job cannot run after itself"),
        ([{"job": "extract"}, {"job": "extract"}], "config.after[1].job: 'extract' is listed twice"),
        ([{"job": "extract", "status": "SKIPPED"}], "config.after[0].status: 'SKIPPED' is not one of SUCCEEDED"),
        ([{"job": "Extract"}], "config.after[0].job: 'Extract' is not valid"),
        ([{"job": "extract", "when": "x"}], "config.after[0].when: unknown field"),
        ("extract", "config.after: must be a list of at most 5 objects"),
    ],
)
def test_a_bad_after_entry_is_refused_naming_the_field(after: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_config({"job": "load", "image": "img", "after": after})


def test_an_upstream_job_that_does_not_exist_is_named() -> None:
    graph = Graph.of({"extract": config("extract"), "load": config("load", {"job": "extrakt"})})
    assert graph.problems() == ["load: config.after[0].job: 'extrakt' is not a known job (known: extract, load)"]


def test_a_cycle_is_refused_with_the_cycle_named() -> None:
    graph = Graph.of(
        {
            "extract": config("extract", {"job": "report"}),
            "transform": config("transform", {"job": "extract"}),
            "report": config("report", {"job": "transform"}),
            "other": config("other"),
        }
    )
    [problem] = graph.problems()
    assert problem.startswith("a cycle: ")
    cycle = problem.removeprefix("a cycle: ").split(";")[0].split(" -> ")
    assert cycle[0] == cycle[-1] and sorted(cycle[:-1]) == ["extract", "report", "transform"]
    # Read as "runs before": each step's job is in the next one's after list.
    for upstream, downstream in itertools.pairwise(cycle):
        assert upstream in {u for u, _ in graph.after[downstream]}


def test_the_graph_lists_jobs_upstream_first_with_their_downstream() -> None:
    graph = Graph.of(
        {
            "report": config("report", {"job": "transform"}, {"job": "extract", "status": "FAILED"}),
            "transform": config("transform", {"job": "extract"}),
            "extract": config("extract"),
        }
    )
    assert graph.problems() == []
    assert graph.order() == ("extract", "transform", "report")
    assert graph.as_dict()["jobs"][0] == {"job": "extract", "after": [], "downstream": ["report", "transform"]}
    assert graph.as_dict()["jobs"][2]["after"] == [
        {"job": "transform", "status": "SUCCEEDED"},
        {"job": "extract", "status": "FAILED"},
    ]


# ---------------------------------------------------------------- the chain on moto
class Chain:
    def __init__(self, aws: Clients) -> None:
        self.aws = aws
        self.jobs: dict[str, Job] = {}
        self.clock = NOW
        self.outbox = Outbox(aws, self.launcher())

    def add(self, name: str, *after: dict[str, str]) -> Job:
        if not self.jobs:
            self.jobs[name] = make_job(self.aws, job=name, after=list(after))
            return self.jobs[name]
        first = next(iter(self.jobs.values()))
        doc = {**first.config.to_document(), "job": name, "after": list(after)}
        doc["notifications"] = {"topic_arn": f"arn:aws:sns:{REGION}:123456789012:ec2batch-{name}", "on": ["FAILED"]}
        config = parse_config(doc)
        template = self.aws.ec2.describe_launch_templates(LaunchTemplateIds=[first.provisioned.launch_template_id])
        version = self.aws.ec2.describe_launch_template_versions(
            LaunchTemplateId=template["LaunchTemplates"][0]["LaunchTemplateId"]
        )["LaunchTemplateVersions"][0]
        provisioned = provision_job(
            self.aws, config, image_id=version["LaunchTemplateData"]["ImageId"], subnet_id=config.subnet_ids[0]
        )
        inbox = self.aws.sqs.create_queue(QueueName=f"inbox-{name}")["QueueUrl"]
        arn = self.aws.sqs.get_queue_attributes(QueueUrl=inbox, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        self.aws.sns.subscribe(TopicArn=provisioned.topic_arn, Protocol="sqs", Endpoint=arn)
        self.jobs[name] = Job(self.aws, config, provisioned, inbox)
        return self.jobs[name]

    def ledger(self, name: str) -> Ledger:
        return Ledger(self.aws.dynamodb, self.jobs[name].config.names.ledger_table)

    def end(self, name: str, status: str, *, trigger: str = "schedule", seconds: int = 0, **fields: Any) -> Run:
        """A run of `name` from PENDING to `status`, as the launcher and the agent write it."""
        self.clock = NOW + timedelta(seconds=seconds)
        run_id = self.clock.strftime("%Y%m%dT%H%M%S.000Z") + ("-schedule" if trigger == "schedule" else "")
        if trigger == "manual":
            run_id += "-manual-0000000" + str(seconds % 10)
        run = Run(name, run_id, "PENDING", trigger, self.clock.isoformat(), **fields)
        ledger = self.ledger(name)
        ledger.create_run(run, exclusive=False)
        for step in (STARTING, RUNNING, status):
            run = ledger.transition(name, run_id, step)
        return run

    def deliveries(self, name: str) -> list[dict[str, Any]]:
        """What the downstream's rule put in its queue, as the SQS event source would hand it to the launcher."""
        self.outbox.drain()  # the ledgers' streams to EventBridge
        url = self.jobs[name].provisioned.timer_queue_url
        messages = self.aws.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        for m in messages:
            self.aws.sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        return [
            {"Records": [{"eventSource": "aws:sqs", "messageId": m["MessageId"], "body": m["Body"]}]} for m in messages
        ]

    def launcher(self) -> Launcher:
        return Launcher(
            self.aws,
            clock=lambda: self.clock + timedelta(seconds=1),
            machines=Machines(self.aws.ec2, stopping_wait_seconds=5, sleep=lambda s: None),
        )

    def deliver(self, name: str) -> list[dict[str, Any]]:
        return [r for d in self.deliveries(name) for r in self.launcher().handle(d)["results"]]

    def after_runs(self, name: str) -> list[Run]:
        return [r for r in self.ledger(name).list_runs(name) if r.trigger == "after"]


@pytest.fixture
def chain(aws: Clients) -> Chain:
    return Chain(aws)


def test_one_upstream_success_starts_the_downstream_once_with_its_upstream_recorded(chain: Chain) -> None:
    chain.add("extract")
    chain.add("transform", {"job": "extract"})
    upstream = chain.end("extract", SUCCEEDED)

    deliveries = chain.deliveries("transform")
    assert len(deliveries) == 1  # only the ending matches the rule, not PENDING, STARTING or RUNNING
    [started] = chain.launcher().handle(deliveries[0])["results"]
    again = chain.launcher().handle(deliveries[0])["results"]  # EventBridge and SQS deliver at least once

    assert started["outcome"] == "started"
    assert again[0]["outcome"] in ("waiting", "duplicate")
    [run] = chain.after_runs("transform")
    assert run.run_id == started["run_id"] and run.run_id.endswith(run.run_id[-8:])
    assert run.status == STARTING and run.upstream == (f"extract/{upstream.run_id}",)
    assert run.lineage == ("extract",)


def test_a_duplicate_event_before_the_first_is_consumed_finds_the_same_run(chain: Chain) -> None:
    chain.add("extract")
    chain.add("transform", {"job": "extract"})
    chain.end("extract", SUCCEEDED)
    [delivery] = chain.deliveries("transform")
    ledger = chain.ledger("transform")
    launcher = chain.launcher()
    first = launcher.handle(delivery)["results"][0]
    # The first handler died after recording the run, before marking the arrival consumed:
    ledger.db.update_item(
        TableName=ledger.table,
        Key={"job": {"S": "transform"}, "run_id": {"S": ARRIVAL_PREFIX + "extract"}},
        UpdateExpression="REMOVE consumed_by",
    )
    second = launcher.handle(delivery)["results"][0]
    assert (second["outcome"], second["run_id"]) == ("duplicate", first["run_id"])
    assert len(chain.after_runs("transform")) == 1


def test_an_upstream_failure_stops_the_chain_and_only_the_upstream_notifies(chain: Chain) -> None:
    chain.add("extract")
    transform = chain.add("transform", {"job": "extract"})
    chain.end("extract", FAILED)

    [result] = chain.deliver("transform")
    assert result["outcome"] == "waiting" and "ended FAILED, not SUCCEEDED" in result["reason"]
    assert chain.after_runs("transform") == []
    assert transform.notifications() == []


def test_a_plain_run_now_does_not_chain_but_with_downstream_does(chain: Chain) -> None:
    chain.add("extract")
    chain.add("transform", {"job": "extract"})
    chain.end("extract", SUCCEEDED, trigger="manual", seconds=1)
    assert chain.deliveries("transform") == []  # the rule matches only runs that chain
    chain.end("extract", SUCCEEDED, trigger="manual", seconds=2, with_downstream=True)
    [result] = chain.deliver("transform")
    assert result["outcome"] == "started"


def test_with_two_upstream_jobs_the_downstream_runs_once_both_have_a_matching_run_since_its_last(chain: Chain) -> None:
    chain.add("extract")
    chain.add("prices")
    chain.add("report", {"job": "extract"}, {"job": "prices"})

    a1 = chain.end("extract", SUCCEEDED, seconds=0)
    [waiting] = chain.deliver("report")
    assert waiting["outcome"] == "waiting" and "prices" in waiting["reason"]
    p1 = chain.end("prices", SUCCEEDED, seconds=10)
    [started] = chain.deliver("report")
    assert started["outcome"] == "started"
    [run] = chain.after_runs("report")
    assert run.upstream == tuple(sorted((f"extract/{a1.run_id}", f"prices/{p1.run_id}")))
    for step in (RUNNING, SUCCEEDED):  # the report's agent ends it and powers off
        chain.ledger("report").transition("report", run.run_id, step)
    chain.aws.ec2.stop_instances(InstanceIds=[run.instance_id])

    # The next day: extract succeeds again, prices fails. Its failure withdraws its arrival: no report run,
    # not even with the day before's prices.
    chain.end("extract", SUCCEEDED, seconds=86400)
    chain.end("prices", FAILED, seconds=86410)
    results = chain.deliver("report")
    assert [r["outcome"] for r in results] == ["waiting", "waiting"]
    assert "prices's last run" in results[1]["reason"] and "ended FAILED" in results[1]["reason"]
    # prices is rerun and succeeds: both have a matching run since the report's last run, so it runs.
    chain.end("prices", SUCCEEDED, trigger="manual", seconds=86500, with_downstream=True)
    [started] = chain.deliver("report")
    assert started["outcome"] == "started"
    assert len(chain.after_runs("report")) == 2


def test_an_event_that_closes_a_cycle_starts_nothing(chain: Chain) -> None:
    chain.add("extract")
    chain.add("transform", {"job": "extract"})
    upstream = chain.end("extract", SUCCEEDED, lineage=("transform",))  # a run that itself followed transform
    [result] = chain.deliver("transform")
    assert result["outcome"] == "nothing" and result["reason"].startswith("cycle: transform -> extract -> transform")
    assert chain.after_runs("transform") == []
    assert upstream.status == SUCCEEDED


def test_the_rule_pattern_names_the_upstream_jobs_endings_that_chain() -> None:
    pattern = rule_pattern(config("report", {"job": "transform"}, {"job": "extract", "status": "FAILED"}))
    assert pattern == {
        "source": ["ec2batch"],
        "detail-type": ["ec2batch Run State Change"],
        "detail": {
            "job": ["extract", "transform"],
            "status": ["SUCCEEDED", "FAILED", "TIMED_OUT", "CANCELLED"],
            "downstream": [True],
        },
    }


def test_an_after_event_of_another_shape_is_refused(chain: Chain) -> None:
    chain.add("extract")
    chain.add("transform", {"job": "extract"})
    chain.end("extract", SUCCEEDED)
    [delivery] = chain.deliveries("transform")
    body = json.loads(delivery["Records"][0]["body"])
    body["event"]["detail"]["version"] = "2"
    with pytest.raises(EventError, match=re.escape("event.detail.version: '2'; this launcher reads version 1")):
        chain.launcher().handle(body)
