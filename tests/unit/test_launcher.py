from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from ec2batch.errors import EventError, UnknownJob
from ec2batch.launcher import Launcher
from ec2batch.launcher.machines import Machines
from ec2batch.ledger import FAILED, RUNNING, SKIPPED, STARTING, SUCCEEDED, Ledger
from ec2batch.names import TAG_LIFECYCLE, TAG_RUN_ID
from tests.conftest import Job, Outbox, inject_error, load_event, make_job

SCHEDULED = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)


def launcher_at(job: Job, moment: datetime = SCHEDULED + timedelta(seconds=5), **kwargs) -> Launcher:
    return Launcher(
        job.clients,
        clock=lambda: moment,
        machines=Machines(job.clients.ec2, stopping_wait_seconds=5, sleep=lambda s: None),
        **kwargs,
    )


def ledger(job: Job) -> Ledger:
    return Ledger(job.clients.dynamodb, job.config.names.ledger_table)


def tags(instance: dict) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in instance.get("Tags", [])}


def finish(job: Job, run_id: str) -> None:
    """What the agent does at the end of a run: record it, power off (here: stop through the API)."""
    run = ledger(job).transition(job.name, run_id, RUNNING)
    ledger(job).transition(job.name, run_id, SUCCEEDED, exit_code=0)
    job.clients.ec2.stop_instances(InstanceIds=[run.instance_id])


def test_first_scheduled_run_launches_the_reusable_instance_tagged_with_its_run(job: Job) -> None:
    result = launcher_at(job).handle(load_event("schedule"))

    assert result["outcome"] == "started"
    assert result["run_id"] == "20261124T020000.000Z-schedule"
    run = ledger(job).require(job.name, result["run_id"])
    assert run.status == STARTING
    assert run.scheduled_at == "2026-11-24T02:00:00.000Z"
    assert run.log_stream == f"{result['run_id']}/job"
    [instance] = job.instances("pending", "running")
    assert instance["InstanceId"] == run.instance_id == result["instance_id"]
    assert tags(instance)[TAG_RUN_ID] == result["run_id"]
    assert tags(instance)[TAG_LIFECYCLE] == "reuse"
    assert [(a.action, a.instance_type, a.error) for a in run.placements] == [("launch", "m7i.large", None)]


def test_next_run_starts_the_stopped_instance_in_five_aws_calls_recorded_starting_at_once(
    job: Job, calls: Counter[str]
) -> None:
    first = launcher_at(job).handle(load_event("schedule"))
    finish(job, first["run_id"])
    outbox = Outbox(job.clients)  # the ledger stream's mapping, from here on
    calls.clear()

    event = {**load_event("schedule"), "scheduled_time": "2026-11-25T02:00:00Z"}
    second = launcher_at(job, SCHEDULED + timedelta(days=1, seconds=3)).handle(event)
    made = dict(calls)

    assert second["instance_id"] == first["instance_id"]
    assert len(job.instances()) == 1
    assert tags(job.instances()[0])[TAG_RUN_ID] == second["run_id"]
    assert made == {
        "ssm.GetParameter": 1,
        "ec2.DescribeInstances": 1,  # before the ledger write: the instance is stopped
        "dynamodb.TransactWriteItems": 1,  # the run, STARTING on it, its token, the slot, the start lease
        "ec2.CreateTags": 1,
        "ec2.StartInstances": 1,
    }
    run = ledger(job).require(job.name, second["run_id"])
    assert (run.status, run.previous_status, run.instance_id) == (STARTING, None, first["instance_id"])
    assert [(p.action, p.instance_id, p.error) for p in run.placements] == [("start", first["instance_id"], None)]
    assert run.deadline_at and run.log_stream == f"{second['run_id']}/job" and run.start_lease_until
    # Its run event comes from the ledger's stream, in another invocation (docs/events.md): created STARTING.
    calls.clear()
    outbox.drain()
    assert outbox.launcher.run_events.published == 1
    assert dict(calls) == {"events.PutEvents": 1}


def test_twenty_concurrent_deliveries_of_one_schedule_event_make_one_run_and_one_start(
    job: Job, calls: Counter[str]
) -> None:
    first = launcher_at(job).handle({"action": "run", "job": job.name})
    finish(job, first["run_id"])
    calls.clear()
    launcher = launcher_at(job)
    results: list[dict] = []
    barrier = threading.Barrier(20)

    errors: list[BaseException] = []

    def deliver() -> None:
        barrier.wait()
        try:
            results.append(launcher.handle(load_event("schedule")))
        except BaseException as exc:  # a lost thread would hide in the counts below
            errors.append(exc)

    threads = [threading.Thread(target=deliver) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert errors == []
    assert sorted(r["outcome"] for r in results) == ["duplicate"] * 19 + ["started"]
    assert {r["run_id"] for r in results} == {"20261124T020000.000Z-schedule"}
    assert calls["ec2.StartInstances"] + calls["ec2.RunInstances"] == 1
    assert len(ledger(job).list_runs(job.name)) == 2


def test_forbid_two_racing_triggers_start_one_run_and_skip_the_other(job: Job, calls: Counter[str]) -> None:
    launcher = launcher_at(job)
    barrier = threading.Barrier(2)
    results: list[dict] = []

    def trigger(event: dict) -> None:
        barrier.wait()
        results.append(launcher.handle(event))

    threads = [
        threading.Thread(target=trigger, args=(load_event("schedule"),)),
        threading.Thread(target=trigger, args=({"action": "run", "job": job.name},)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    outcomes = sorted(r["outcome"] for r in results)
    assert outcomes == ["skipped", "started"]
    started = next(r for r in results if r["outcome"] == "started")
    skipped = next(r for r in results if r["outcome"] == "skipped")
    assert skipped["reason"] == f"run {started['run_id']} active"
    assert calls["ec2.RunInstances"] + calls["ec2.StartInstances"] == 1
    assert ledger(job).require(job.name, skipped["run_id"]).status == SKIPPED
    assert [n["status"] for n in job.notifications()] == ["SKIPPED"]


def test_forbid_frees_the_slot_when_the_run_ends(job: Job) -> None:
    first = launcher_at(job).handle(load_event("schedule"))
    finish(job, first["run_id"])

    second = launcher_at(job).handle({"action": "run", "job": job.name})

    assert second["outcome"] == "started"


def test_forbid_takes_over_a_slot_left_by_a_run_that_ended_without_freeing_it(job: Job) -> None:
    first = launcher_at(job).handle(load_event("schedule"))
    # The agent died between writing the outcome and freeing the slot: the item still names the run.
    runs = ledger(job)
    runs.update_fields(job.name, first["run_id"], status=FAILED)
    job.clients.ec2.stop_instances(InstanceIds=[first["instance_id"]])

    second = launcher_at(job).handle({"action": "run", "job": job.name})

    assert second["outcome"] == "started"
    assert runs.active_run_id(job.name) == second["run_id"]


def test_allow_launches_an_extra_ephemeral_instance_while_the_job_runs(aws) -> None:
    job = make_job(aws, concurrency="allow")
    first = launcher_at(job).handle(load_event("schedule"))

    second = launcher_at(job).handle({"action": "run", "job": job.name})

    assert second["outcome"] == "started"
    assert second["instance_id"] != first["instance_id"]
    extra = next(i for i in job.instances() if i["InstanceId"] == second["instance_id"])
    assert tags(extra)[TAG_LIFECYCLE] == "ephemeral"


def test_ephemeral_strategy_always_launches_and_terminates_at_power_off(aws) -> None:
    job = make_job(aws, strategy="ephemeral", concurrency="allow")
    results = [launcher_at(job).handle({"action": "run", "job": job.name}) for _ in range(2)]

    ids = {r["instance_id"] for r in results}
    assert len(ids) == 2
    for instance_id in ids:
        attr = job.clients.ec2.describe_instance_attribute(
            InstanceId=instance_id, Attribute="instanceInitiatedShutdownBehavior"
        )
        assert attr["InstanceInitiatedShutdownBehavior"]["Value"] == "terminate"


def test_a_trigger_later_than_the_starting_deadline_is_skipped_as_missed(job: Job, calls: Counter[str]) -> None:
    result = launcher_at(job, SCHEDULED + timedelta(seconds=901)).handle(load_event("schedule"))

    assert result["outcome"] == "skipped"
    run = ledger(job).require(job.name, result["run_id"])
    assert run.status == SKIPPED
    assert run.reason.startswith("missed: triggered 901s after its scheduled time")
    assert calls["ec2.RunInstances"] + calls["ec2.StartInstances"] + calls["ec2.DescribeInstances"] == 0


def test_a_trigger_just_inside_the_deadline_starts(job: Job) -> None:
    result = launcher_at(job, SCHEDULED + timedelta(seconds=899)).handle(load_event("schedule"))
    assert result["outcome"] == "started"


def test_capacity_errors_fall_back_through_types_and_subnets_in_order(job: Job) -> None:
    first = launcher_at(job).handle({"action": "run", "job": job.name})
    finish(job, first["run_id"])
    inject_error(job.clients.ec2, "StartInstances", ["InsufficientInstanceCapacity"])
    inject_error(job.clients.ec2, "RunInstances", ["InsufficientInstanceCapacity", "Unsupported"])

    result = launcher_at(job).handle(load_event("schedule"))

    run = ledger(job).require(job.name, result["run_id"])
    a, b = job.config.subnet_ids
    assert [(x.action, x.instance_type, x.subnet_id, (x.error or "").split(":")[0]) for x in run.placements] == [
        ("start", "m7i.large", a, "InsufficientInstanceCapacity"),
        ("launch", "m7i.large", b, "InsufficientInstanceCapacity"),
        ("launch", "m6i.large", a, "Unsupported"),
        ("launch", "m6i.large", b, ""),
    ]
    assert run.status == STARTING
    assert run.instance_type == "m6i.large" and run.subnet_id == b
    fallback = next(i for i in job.instances() if i["InstanceId"] == run.instance_id)
    assert tags(fallback)[TAG_LIFECYCLE] == "ephemeral"  # the reusable instance stays the one to reuse
    assert tags(fallback)[TAG_RUN_ID] == run.run_id


def test_exhausted_capacity_fails_the_run_with_every_attempt_and_notifies(job: Job) -> None:
    inject_error(job.clients.ec2, "RunInstances", ["InsufficientInstanceCapacity"] * 4)

    result = launcher_at(job).handle(load_event("schedule"))

    assert result["outcome"] == "failed"
    run = ledger(job).require(job.name, result["run_id"])
    assert run.status == FAILED
    assert len(run.placements) == 4
    assert run.reason.startswith("no capacity after 4 tries: launch on-demand m7i.large in")
    [message] = job.notifications()
    assert message["status"] == FAILED and len(message["attempts"]) == 1 and "after 4 tries" in message["reason"]
    assert ledger(job).active_run_id(job.name) is None


def test_a_permission_error_is_not_retried_on_other_types(job: Job) -> None:
    seen = inject_error(job.clients.ec2, "RunInstances", ["UnauthorizedOperation", "UnauthorizedOperation"])

    result = launcher_at(job).handle(load_event("schedule"))

    assert result["outcome"] == "failed"
    assert seen == ["UnauthorizedOperation"]
    assert "UnauthorizedOperation" in result["reason"]


def test_a_stopping_instance_that_never_stops_fails_the_run_and_frees_the_slot(job: Job) -> None:
    first = launcher_at(job).handle({"action": "run", "job": job.name})
    ledger(job).transition(job.name, first["run_id"], SUCCEEDED, exit_code=0)  # ...but the machine stays up

    result = launcher_at(job).handle(load_event("schedule"))

    assert result["outcome"] == "failed"
    assert f"instance {first['instance_id']} is running" in result["reason"]
    assert ledger(job).active_run_id(job.name) is None


def test_manual_run_with_a_token_records_one_run_with_its_overrides(job: Job) -> None:
    launcher = launcher_at(job)
    first = launcher.handle(load_event("manual"))
    again = launcher_at(job, SCHEDULED + timedelta(minutes=3)).handle(load_event("manual"))

    assert first["outcome"] == "started" and again["outcome"] == "duplicate"
    assert again["run_id"] == first["run_id"]
    run = ledger(job).require(job.name, first["run_id"])
    assert run.trigger == "manual"
    assert run.command == ("python", "-m", "report", "--rows", "1000")
    assert run.env == {"REPORT_DAY": "2026-11-23"}
    assert len(ledger(job).list_runs(job.name)) == 1


def test_manual_runs_without_token_are_separate_runs(job: Job) -> None:
    job = job
    launcher = launcher_at(job)
    a = launcher.handle({"action": "run", "job": job.name})
    finish(job, a["run_id"])
    b = launcher.handle({"action": "run", "job": job.name})
    assert a["run_id"] != b["run_id"]


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ({"action": "destroy", "job": "daily-report"}, "unknown launcher event (action='destroy')"),
        ({"job": "daily-report"}, "unknown launcher event (action=None)"),
        ({"action": "run", "job": "Daily_Report"}, "job: job name 'Daily_Report' is invalid"),
        ({"action": "run", "job": "daily-report", "cmd": ["x"]}, "unknown field(s) cmd in run event"),
        ({"action": "run", "job": "daily-report", "command": "ls -l"}, "command: must be a non-empty list"),
        ({"action": "run", "job": "daily-report", "env": {"1X": "y"}}, "env.1X: names are letters"),
        ({"action": "schedule", "job": "daily-report"}, "scheduled_time: must be an ISO 8601 time"),
        ({"action": "schedule", "job": "daily-report", "scheduled_time": "2026-11-24T02:00:00"}, "has no UTC offset"),
        ({"Records": [{"eventSource": "aws:sns"}]}, "Records[0]: only SQS records are accepted"),
        ([1, 2], "launcher event must be a JSON object, got list"),
    ],
)
def test_unknown_or_malformed_events_are_rejected_before_anything_is_written(
    job: Job, calls: Counter[str], event: object, message: str
) -> None:
    with pytest.raises(EventError) as raised:
        launcher_at(job).handle(event)
    assert message in str(raised.value)
    assert sum(calls.values()) == 0


def test_an_unknown_job_is_an_error_naming_its_parameter(aws) -> None:
    with pytest.raises(UnknownJob, match="no config at SSM parameter /ec2batch/nightly/config"):
        Launcher(aws).handle({"action": "run", "job": "nightly"})


def test_a_launcher_pinned_to_its_job_refuses_other_jobs(job: Job) -> None:
    with pytest.raises(EventError, match="this launcher serves job 'other-job', not 'daily-report'"):
        launcher_at(job, only_job="other-job").handle(load_event("schedule"))


def test_handler_logs_json_lines(job: Job, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    import json

    import ec2batch.launcher as entry

    monkeypatch.setenv("EC2BATCH_JOB", job.name)
    entry._launcher.cache_clear()
    monkeypatch.setattr(Launcher, "from_environment", classmethod(lambda cls: launcher_at(job, only_job=job.name)))
    try:
        result = entry.handler(load_event("manual"), None)
    finally:
        entry._launcher.cache_clear()
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {"msg": "machine requested", "run_id": result["run_id"], "action": "launch"}.items() <= lines[-1].items()
