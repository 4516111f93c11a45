"""A scheduled run through what Terraform created, and IAM coverage of every call it makes.

On the moto_server `terraform apply` of examples/daily-job wrote to:
- the local stack's scheduler emulator (`ec2batch.local.scheduler_emulator.SchedulerEmulator`) reads the
  schedule Terraform created and fires it, filling `<aws.scheduler.*>` in its Input literally, as EventBridge
  Scheduler does;
- the launcher is the Lambda's: `Launcher.from_environment` under the function's environment as Terraform set it
  (GetFunctionConfiguration), the handler checked to be the one Terraform configured;
- it starts the instance Terraform created from the launch template Terraform created (strategy "reuse");
- the machine is stood in for: the real agent (`ec2batch.agent.main.Agent`) boots on it with the launch template's
  metadata options (no tags in IMDS: it asks DescribeTags), its AWS calls going to the same moto_server, and an
  engine stand-in (tests/unit/agent/fakes.py) whose container writes its lines through the awslogs driver's calls
  into the log group and stream the agent configured; its power-off is the EC2 emulator's (stop, for "reuse");
- the run ends SUCCEEDED, with the job's and the agent's lines in the log group Terraform created.

The local stack suite (tests/stack/test_terraform_run.py) is to run the same with a real instance container, dockerd,
systemd and the registry, where docker is available.

IAM coverage: a botocore hook (tests/terraform/iam_coverage.py) records every call of the launcher's and the
agent's clients (and the awslogs driver's, made with the instance role's credentials), and each is held against
the policy Terraform rendered for that role. Taking a statement out of a policy makes the check name the call.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock

import boto3
import pytest
from botocore.config import Config

from ec2batch.agent.main import Agent, Settings
from ec2batch.aws import Clients
from ec2batch.config import parse_config
from ec2batch.launcher import Launcher
from ec2batch.ledger import SUCCEEDED, Ledger, Run
from ec2batch.local.scheduler_emulator import SchedulerEmulator
from ec2batch.names import JobNames
from ec2batch.runlogs import read_stream
from tests.terraform import conftest
from tests.terraform import iam_coverage as cov
from tests.terraform import plan_rules as rules
from tests.unit.agent.fakes import Clock, FakeContainers, FakeDocker, FakeImds

pytestmark = pytest.mark.runs_the_job

JOB = "daily-report"
JOB_LINES = ["report: 5000000 rows", "report: written", "done"]
_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5, read_timeout=65)


def daily(applied: dict[str, Any], rtype: str) -> list[dict[str, Any]]:
    """The example job's own resources of a type (the tests' sharded job, conftest.SHARDED_JOB, has its own)."""
    return [r for r in rules.managed(applied, rtype) if r["address"].startswith("module.daily_report.")]


class RecordedClients(Clients):
    """The ec2batch clients, pointed at the test's AWS and recorded as one role's calls."""

    def __init__(self, endpoint: str, recorder: cov.Recorder, role: str) -> None:
        super().__init__(
            boto3.Session(aws_access_key_id="test", aws_secret_access_key="test", region_name=conftest.REGION)
        )
        self.endpoint, self.recorder, self.role = endpoint, recorder, role

    def _client(self, service: str) -> Any:
        client = self.session.client(service, endpoint_url=self.endpoint, config=_CONFIG)
        return self.recorder.attach(client, self.role)


class AwslogsContainers(FakeContainers):
    """`containers.run` as dockerd does it with the awslogs log driver: the container's lines go to the group and
    stream of its log_config, with CreateLogStream and PutLogEvents made with the machine's (instance role's)
    credentials."""

    def __init__(self, engine: FakeDocker, logs: Any) -> None:
        super().__init__(engine)
        self.logs = logs
        self.log_configs: list[dict[str, Any]] = []

    def run(self, image: str, **kwargs: Any) -> Any:
        log_config = kwargs.get("log_config") or {}
        self.log_configs.append(dict(log_config))
        container = super().run(image, **kwargs)
        options = log_config.get("Config", {})
        if log_config.get("Type") == "awslogs":
            group, stream = options["awslogs-group"], options["awslogs-stream"]
            self.logs.create_log_stream(logGroupName=group, logStreamName=stream)
            now = int(datetime.now(UTC).timestamp() * 1000)
            events = [{"timestamp": now + i, "message": line} for i, line in enumerate(JOB_LINES)]
            self.logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=events)
        return container


@dataclass
class ScheduledRun:
    names: dict[str, Any]
    run: Run
    boots: list[int]
    fired: list[dict[str, Any]]
    schedule: dict[str, Any]
    function: dict[str, Any]
    launch_configs: list[dict[str, Any]]
    recorder: cov.Recorder
    policies: dict[str, list[dict[str, Any]]]
    where: cov.Where
    template_lookup: Callable[[dict[str, Any]], dict[str, Any]]


def _instance(aws: Callable[[str], Any], instance_id: str) -> dict[str, Any]:
    return aws("ec2").describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]


def _tags(aws: Callable[[str], Any], resource_id: str) -> dict[str, str]:
    found = aws("ec2").describe_tags(Filters=[{"Name": "resource-id", "Values": [resource_id]}])["Tags"]
    return {t["Key"]: t["Value"] for t in found}


def _boot(
    aws: Callable[[str], Any],
    endpoint: str,
    recorder: cov.Recorder,
    instance_id: str,
    runtime_dir: Path,
    image_tags: bool,
) -> tuple[int, AwslogsContainers]:
    """One boot of the machine: the agent from start to power-off, then the power-off as EC2 does it."""
    shutil.rmtree(runtime_dir, ignore_errors=True)  # /run is a tmpfs: empty at every boot
    runtime_dir.mkdir(parents=True)
    machine = RecordedClients(endpoint, recorder, "instance")
    clock = Clock(datetime.now(UTC))
    engine = FakeDocker(clock, runtime=5)
    engine.containers = AwslogsContainers(engine, machine.logs)
    tags = _tags(aws, instance_id) if image_tags else {}
    logger = logging.getLogger("ec2batch")
    handlers, level = list(logger.handlers), logger.level
    logger.setLevel(logging.INFO)  # as the agent's entry point configures it (jsonlog.configure)
    try:
        agent = Agent(
            Settings(
                poweroff_command=["true"], keep_running_flag=runtime_dir / "keep-running", runtime_dir=runtime_dir
            ),
            imds=FakeImds(instance_id, tags=tags),
            make_clients=lambda region: machine,
            make_docker=lambda: engine,
            clock=clock.now,
            sleep=clock.sleep,
        )
        code = agent.run()
    finally:
        for handler in [h for h in logger.handlers if h not in handlers]:
            handler.flush()
            logger.removeHandler(handler)
        logger.setLevel(level)
    # The EC2 emulator's part: a machine that powered itself off is stopped (or terminated, as its attribute says).
    behaviour = aws("ec2").describe_instance_attribute(
        InstanceId=instance_id, Attribute="instanceInitiatedShutdownBehavior"
    )
    if behaviour["InstanceInitiatedShutdownBehavior"]["Value"] == "terminate":
        aws("ec2").terminate_instances(InstanceIds=[instance_id])
    else:
        aws("ec2").stop_instances(InstanceIds=[instance_id])
    return code, engine.containers  # type: ignore[return-value]


def _template_lookup(aws: Callable[[str], Any], where: cov.Where, applied: dict[str, Any]) -> Callable[..., Any]:
    def lookup(spec: dict[str, Any]) -> dict[str, Any]:
        ec2 = aws("ec2")
        key = (
            {"LaunchTemplateId": spec["LaunchTemplateId"]}
            if "LaunchTemplateId" in spec
            else {"LaunchTemplateName": spec["LaunchTemplateName"]}
        )
        version = ec2.describe_launch_template_versions(**key, Versions=[spec.get("Version", "$Default")])
        found = version["LaunchTemplateVersions"][0]
        (instance_role,) = [
            r["values"]["arn"] for r in daily(applied, "aws_iam_role") if r["values"]["name"].endswith("-instance")
        ]
        return {
            "arn": where.arn("ec2", f"launch-template/{found['LaunchTemplateId']}"),
            "data": found["LaunchTemplateData"],
            "instance_role_arn": instance_role,
        }

    return lookup


@pytest.fixture(scope="session")
def scheduled_run(
    applied: dict[str, Any], aws_endpoint: str, aws: Callable[[str], Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ScheduledRun]:
    names = applied["values"]["outputs"]["names"]["value"]
    recorder = cov.Recorder(tags=lambda resource_id: _tags(aws, resource_id))
    runtime_dir = tmp_path_factory.mktemp("machine") / "run-ec2batch"
    (template,) = daily(applied, "aws_launch_template")
    (instance,) = daily(applied, "aws_instance")
    instance_id = instance["values"]["id"]
    image_tags = rules.first(template["values"].get("metadata_options")).get("instance_metadata_tags") == "enabled"

    # The machine Terraform created boots once with no run waiting, and powers off (boot_without_run: poweroff).
    first_boot, _ = _boot(aws, aws_endpoint, recorder, instance_id, runtime_dir, image_tags)

    # The launcher Lambda, as Terraform configured it.
    function = aws("lambda").get_function_configuration(FunctionName=names["launcher_function"])
    with mock.patch.dict(os.environ, function["Environment"]["Variables"]):
        launcher = Launcher.from_environment(RecordedClients(aws_endpoint, recorder, "launcher"))

    # The Scheduler: Terraform's job schedule, fired at its next time by the local stack's emulator.
    (schedule,) = [s for s in daily(applied, "aws_scheduler_schedule") if s["values"]["name"] == names["schedule"]]
    fired: list[dict[str, Any]] = []

    def invoke(event: dict[str, Any]) -> Any:
        fired.append(event)
        return launcher.handle(copy.deepcopy(event))

    moment = [datetime.now(UTC)]
    emulator = SchedulerEmulator(
        RecordedClients(aws_endpoint, cov.Recorder(), "scheduler"), invoke, clock=lambda: moment[0]
    )
    emulator._schedules = lambda: [  # type: ignore[method-assign]
        s for s in SchedulerEmulator._schedules(emulator) if s["Name"] == names["schedule"]
    ]
    emulator.step()  # sees the schedule, plans its next time
    (due,) = emulator.next_due.values()
    assert due is not None
    moment[0] = due
    (result,) = emulator.step()
    assert result["outcome"] == "started", result

    # The machine boots for the run.
    second_boot, containers = _boot(aws, aws_endpoint, recorder, result["instance_id"], runtime_dir, image_tags)
    ledger = Ledger(aws("dynamodb"), names["ledger_table"])
    run = ledger.require(JOB, result["run_id"])
    policies = {
        "launcher": _role_statements(applied, names["launcher_role"]),
        "instance": _role_statements(applied, names["instance_role"]),
    }
    where = cov.Where("aws", conftest.REGION, instance["values"]["arn"].split(":")[4])
    yield ScheduledRun(
        names=names,
        run=run,
        boots=[first_boot, second_boot],
        fired=fired,
        schedule=schedule,
        function=function,
        launch_configs=containers.log_configs,
        recorder=recorder,
        policies=policies,
        where=where,
        template_lookup=_template_lookup(aws, where, applied),
    )


def _role_statements(applied: dict[str, Any], role_name: str) -> list[dict[str, Any]]:
    (role,) = [r for r in daily(applied, "aws_iam_role") if r["values"]["name"] == role_name]
    statements = rules.role_statements(applied, role)
    assert statements, f"no inline policy of {role_name} in the applied state"
    return statements


# ---------------------------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------------------------


def test_the_scheduler_fills_the_placeholders_of_the_input_terraform_wrote(scheduled_run: ScheduledRun) -> None:
    text = rules.first(scheduled_run.schedule["values"]["target"])["input"]
    assert "<aws.scheduler.scheduled-time>" in text  # literally: no \u003c escape (finding 4)
    (event,) = scheduled_run.fired
    assert event["action"] == "schedule" and event["job"] == JOB
    assert "<" not in json.dumps(event), event
    datetime.strptime(event["scheduled_time"], "%Y-%m-%dT%H:%M:%SZ")


def test_the_launcher_is_the_lambda_terraform_configured(scheduled_run: ScheduledRun) -> None:
    function = scheduled_run.function
    assert function["Handler"] == "ec2batch.launcher.handler"
    assert function["Environment"]["Variables"]["EC2BATCH_JOB"] == JOB


def test_the_run_starts_the_terraform_instance_of_the_terraform_launch_template(
    scheduled_run: ScheduledRun, applied: dict[str, Any], aws: Callable[[str], Any]
) -> None:
    (instance,) = daily(applied, "aws_instance")
    (template,) = daily(applied, "aws_launch_template")
    assert scheduled_run.run.instance_id == instance["values"]["id"]
    assert rules.first(instance["values"]["launch_template"])["id"] == template["values"]["id"]
    started = [c for c in scheduled_run.recorder.calls if c.operation == "StartInstances" and c.role == "launcher"]
    assert [c.params["InstanceIds"] for c in started] == [[instance["values"]["id"]]]
    assert _instance(aws, instance["values"]["id"])["State"]["Name"] == "stopped"  # powered off after the run


def test_the_run_ends_succeeded_with_its_logs_in_the_terraform_log_group(
    scheduled_run: ScheduledRun, aws: Callable[[str], Any]
) -> None:
    run, names = scheduled_run.run, scheduled_run.names
    assert run.status == SUCCEEDED, run
    assert scheduled_run.boots == [0, 0]
    job_names = JobNames(JOB)
    assert names["log_group"] == job_names.log_group
    (log_config,) = scheduled_run.launch_configs
    assert log_config["Config"]["awslogs-group"] == names["log_group"]
    job_lines = read_stream(aws("logs"), names["log_group"], job_names.run_log_stream(run.run_id))[0]
    assert [line.message for line in job_lines] == JOB_LINES
    agent_lines = read_stream(aws("logs"), names["log_group"], job_names.agent_log_stream(run.run_id))[0]
    assert agent_lines, "the agent wrote nothing to the log group Terraform created"


def test_the_config_the_run_used_is_the_document_terraform_wrote(
    scheduled_run: ScheduledRun, aws: Callable[[str], Any]
) -> None:
    value = aws("ssm").get_parameter(Name=scheduled_run.names["config_parameter"], WithDecryption=True)["Parameter"]
    config = parse_config(json.loads(value["Value"]))
    assert config.job == JOB and config.strategy == "reuse"


# ---------------------------------------------------------------------------------------------------------------
# IAM coverage
# ---------------------------------------------------------------------------------------------------------------


def test_every_call_of_the_launcher_and_the_agent_is_allowed_by_its_roles_rendered_policy(
    scheduled_run: ScheduledRun,
) -> None:
    calls = scheduled_run.recorder.calls
    problems = cov.uncovered(calls, scheduled_run.policies, scheduled_run.where, scheduled_run.template_lookup)
    assert problems == []


def test_the_coverage_judged_the_calls_that_matter(scheduled_run: ScheduledRun) -> None:
    # A coverage check over few calls would pass without judging anything.
    made = {(c.role, f"{c.service}:{c.operation}") for c in scheduled_run.recorder.calls}
    for wanted in [
        ("launcher", "ssm:GetParameter"),
        ("launcher", "ec2:StartInstances"),
        ("launcher", "ec2:DescribeInstances"),
        ("instance", "ec2:DescribeTags"),
        ("instance", "ecr:GetAuthorizationToken"),
        ("instance", "logs:PutLogEvents"),
        ("instance", "dynamodb:UpdateItem"),
        ("launcher", "dynamodb:TransactWriteItems"),
        ("launcher", "ec2:CreateTags"),
    ]:
        assert wanted in made, (wanted, sorted(made))
    # Every call made was turned into the requests AWS authorizes (none unknown to iam_coverage).
    for call in scheduled_run.recorder.calls:
        cov.requests(call, scheduled_run.where, scheduled_run.template_lookup)


@pytest.mark.parametrize(
    ("role", "sid", "says"),
    [
        ("launcher", "StartStopOnlyThisJobsInstances", "launcher: ec2:StartInstances needs ec2:StartInstances"),
        ("launcher", "ReadThisJobsConfig", "launcher: ssm:GetParameter needs ssm:GetParameter"),
        ("instance", "WriteThisLogGroup", "instance: logs:PutLogEvents needs logs:PutLogEvents"),
        ("instance", "UpdateThisJobsLedgerItems", "instance: dynamodb:UpdateItem needs dynamodb:UpdateItem"),
        ("instance", "ReadOwnTags", "instance: ec2:DescribeTags needs ec2:DescribeTags"),
    ],
)
def test_a_removed_permission_makes_the_coverage_check_name_the_call(
    scheduled_run: ScheduledRun, role: str, sid: str, says: str
) -> None:
    policies = copy.deepcopy(scheduled_run.policies)
    before = len(policies[role])
    policies[role] = [s for s in policies[role] if s.get("Sid") != sid]
    assert len(policies[role]) == before - 1, f"no statement {sid} in the {role} policy"
    problems = cov.uncovered(scheduled_run.recorder.calls, policies, scheduled_run.where, scheduled_run.template_lookup)
    assert any(p.startswith(says) for p in problems), problems


def test_a_narrowed_condition_makes_the_coverage_check_fail(scheduled_run: ScheduledRun) -> None:
    # The agent may write only its own job's ledger items (dynamodb:LeadingKeys): naming another job denies it, and
    # the launcher may tag only this job's instances (aws:ResourceTag): naming another job denies that too.
    policies = copy.deepcopy(scheduled_run.policies)
    for s in policies["instance"]:
        if s.get("Sid") == "UpdateThisJobsLedgerItems":
            s["Condition"]["ForAllValues:StringEquals"]["dynamodb:LeadingKeys"] = ["another-job"]
    for s in policies["launcher"]:
        if s.get("Sid") == "TagOnlyThisJobsInstances":
            s["Condition"]["StringEquals"]["aws:ResourceTag/ec2batch:job"] = ["another-job"]
    problems = cov.uncovered(scheduled_run.recorder.calls, policies, scheduled_run.where, scheduled_run.template_lookup)
    assert any(p.startswith("instance: dynamodb:UpdateItem needs") for p in problems), problems
    assert any(p.startswith("launcher: ec2:CreateTags needs") for p in problems), problems


def test_the_schedule_fired_is_due_after_the_apply(scheduled_run: ScheduledRun) -> None:
    scheduled = datetime.strptime(scheduled_run.fired[0]["scheduled_time"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert timedelta(0) < scheduled - datetime.now(UTC) <= timedelta(days=1, hours=1)


def test_what_terraform_rendered_lets_the_agent_send_retry_timers_to_its_queue_only(
    scheduled_run: ScheduledRun, aws: Callable[[str], Any]
) -> None:
    # Issue 13: the agent sends the delayed "retry" timer itself (ec2batch.timers.send) when an attempt ends.
    timers = aws("sqs").get_queue_url(QueueName=scheduled_run.names["timer_queue"])["QueueUrl"]
    dead_letters = aws("sqs").get_queue_url(QueueName=scheduled_run.names["dead_letter_queue"])["QueueUrl"]
    sends = [
        cov.Call("instance", "sqs", "GetQueueUrl", {"QueueName": scheduled_run.names["timer_queue"]}),
        cov.Call("instance", "sqs", "SendMessage", {"QueueUrl": timers, "MessageBody": "{}", "DelaySeconds": 30}),
    ]
    assert cov.uncovered(sends, scheduled_run.policies, scheduled_run.where) == []
    elsewhere = cov.Call("instance", "sqs", "SendMessage", {"QueueUrl": dead_letters, "MessageBody": "{}"})
    assert cov.uncovered([elsewhere], scheduled_run.policies, scheduled_run.where) != []


def test_what_terraform_rendered_for_an_on_demand_job_launches_on_demand_and_never_spot(
    scheduled_run: ScheduledRun,
) -> None:
    # The example's market is on-demand: a launch as the launcher makes it is allowed, the same launch on Spot not
    # (neither the instance's market nor the Spot request nor the service-linked role).
    tags = [{"Key": "ec2batch:job", "Value": JOB}]
    request: dict[str, Any] = {
        "LaunchTemplate": {"LaunchTemplateName": scheduled_run.names["launch_template"], "Version": "$Latest"},
        "MinCount": 1,
        "MaxCount": 1,
        "TagSpecifications": [{"ResourceType": "instance", "Tags": tags}, {"ResourceType": "volume", "Tags": tags}],
    }
    spot = {
        "MarketType": "spot",
        "SpotOptions": {"SpotInstanceType": "one-time", "InstanceInterruptionBehavior": "terminate"},
    }

    def problems(params: dict[str, Any]) -> list[str]:
        call = cov.Call("launcher", "ec2", "RunInstances", params)
        return cov.uncovered([call], scheduled_run.policies, scheduled_run.where, scheduled_run.template_lookup)

    assert problems(request) == []
    refused = problems({**request, "InstanceMarketOptions": spot})
    for needed in ("ec2:RunInstances on arn:aws:ec2:", "spot-instances-request/*", "iam:CreateServiceLinkedRole"):
        assert any(needed in p for p in refused), (needed, refused)
    assert any("instance/*" in p and "'ec2:InstanceMarketType': ['spot']" in p for p in refused), refused
