"""The reuse path's start recorded before it is made (issue 17): what a user notices when the launcher dies or a
response is lost around it, on the fault suite's world (in-process moto, the agent booting on started instances,
planner ticks, one simulated clock that moto's LaunchTime follows too)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ec2batch import stopping
from ec2batch.launcher import starts as starts_module
from ec2batch.launcher.starts import MAX_STARTS
from ec2batch.ledger import CANCELLED, FAILED, INSTANCE_PREFIX, PENDING, STARTING, SUCCEEDED, PlacementTry, Run
from ec2batch.names import LIFECYCLE_EPHEMERAL, TAG_LIFECYCLE, TAG_RUN_ID
from tests.conftest import Faults, inject_error, make_job
from tests.unit.faults.scenarios import BOUND, SCENARIOS, SCHEDULED, Scenario, _earlier_run, _fire, check, stage
from tests.unit.faults.world import PLANNER_PERIOD, World, _tags, fresh_log_handlers, silence_agent_logs

REUSE = SCENARIOS["schedule-reuse-start"]


@pytest.fixture(autouse=True)
def _log_handlers() -> Iterator[None]:
    with fresh_log_handlers():
        yield


@pytest.fixture
def world(aws: Any, faults: Faults, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    """Yesterday's run done: the job's reusable instance is stopped. Faults armed from here on."""
    staged = stage(REUSE, aws, tmp_path, monkeypatch)
    faults.reset()
    yield staged
    silence_agent_logs()


@pytest.fixture
def starts(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every start EC2 (moto) actually made of a stopped instance, by instance id, however it was asked for."""
    from moto.ec2.models import instances

    made: list[str] = []
    original = instances.Instance.start

    def start(self: Any) -> Any:
        previous = original(self)
        if previous.name == "stopped":
            made.append(self.id)
        return previous

    monkeypatch.setattr(instances.Instance, "start", start)
    return made


def today(world: World) -> Run:
    [run] = [r for r in world.ledger.list_runs(world.job.name) if r.scheduled_at == "2026-11-24T02:00:00.000Z"]
    return run


def reusable(world: World) -> str:
    [instance] = [i for i in world.instances() if _tags(i).get(TAG_LIFECYCLE) == "reuse"]
    return instance["InstanceId"]


@pytest.mark.parametrize(
    ("killed_after", "tagged"),
    [(("dynamodb", "TransactWriteItems"), False), (("ec2", "CreateTags"), True)],
    ids=["after-the-transaction", "between-create-tags-and-start-instances"],
)
def test_a_launcher_killed_before_its_start_is_repaired_by_the_reconciler_with_one_start(
    world: World, faults: Faults, starts: list[str], killed_after: tuple[str, str], tagged: bool
) -> None:
    faults.at(*killed_after, "kill")
    _fire(world)
    run = today(world)
    assert run.status == STARTING and run.start_lease_until  # recorded STARTING; the machine never asked for
    assert (_tags(world.instances("stopped")[0]).get(TAG_RUN_ID) == run.run_id) is tagged

    world.run_for(timedelta(minutes=3))  # Lambda's two retries of the event: the lease is live, nothing started
    assert starts == [] and today(world).status == STARTING

    world.run_for(BOUND + PLANNER_PERIOD)

    run = today(world)
    assert run.status == SUCCEEDED
    assert starts == [reusable(world)]  # one start, by the reconciler
    assert any("start repeated (started)" in line for line in run.repaired)
    assert [(p.action, p.error) for p in run.placements] == [("start", None), ("start", None)]
    assert check(world, REUSE) == []


def test_a_duplicate_trigger_after_the_lease_lapsed_repeats_the_start_once(
    world: World, faults: Faults, starts: list[str]
) -> None:
    faults.at("dynamodb", "TransactWriteItems", "kill")
    _fire(world)
    world.clock.moment += timedelta(minutes=4)  # past the 200 s lease, before any planner tick

    again = world.launcher().handle(
        {"action": "schedule", "job": "daily-report", "scheduled_time": "2026-11-24T02:00:00Z"}
    )
    twice = world.launcher().handle(
        {"action": "schedule", "job": "daily-report", "scheduled_time": "2026-11-24T02:00:00Z"}
    )

    assert (again["outcome"], twice["outcome"]) == ("started", "duplicate")  # the second finds the new lease
    assert starts == [reusable(world)]
    world.run_for(BOUND)
    assert today(world).status == SUCCEEDED and starts == [reusable(world)]


def test_a_lost_start_response_is_not_started_twice(world: World, faults: Faults, starts: list[str]) -> None:
    faults.at("ec2", "StartInstances", "lost")  # applied; botocore sends it again and gets the second answer

    _fire(world)
    world.run_for(BOUND)

    run = today(world)
    assert run.status == SUCCEEDED and starts == [reusable(world)]
    assert [(p.action, p.error) for p in run.placements] == [("start", None)]


def test_a_start_made_whose_agent_died_before_claiming_is_never_started_again(
    world: World, faults: Faults, starts: list[str]
) -> None:
    """The crux: tags cannot tell a start made from one not made (they come first); LaunchTime can."""
    faults.at("ec2", "StartInstances", "kill")  # started, then the launcher died: nothing says so in the ledger
    world.hang = True  # and the machine's agent never comes up
    _fire(world)
    with world.quiet():  # ... so systemd powers the machine off (OnFailure=poweroff.target)
        world.job.clients.ec2.stop_instances(InstanceIds=[reusable(world)])
    world.hang = False

    world.run_for(BOUND + PLANNER_PERIOD)

    run = today(world)
    assert starts == [reusable(world)]  # the reconciler saw LaunchTime after the recorded try: no second start
    assert run.status == FAILED and run.cause in ("agent-lost", "instance-lost"), run.reason
    assert check(world, REUSE, faulted="kill") == []


def test_a_start_that_never_reaches_ec2_is_given_up_after_max_starts(
    world: World, faults: Faults, starts: list[str]
) -> None:
    faults.at("dynamodb", "TransactWriteItems", "kill")
    for nth in range(1, MAX_STARTS):  # every repeat dies after tagging, before its start
        faults.at("ec2", "CreateTags", "kill", nth=nth)
    _fire(world)

    world.run_for(BOUND + PLANNER_PERIOD * (MAX_STARTS + 1))

    run = today(world)
    assert starts == []
    assert run.status == FAILED and run.cause == "start-failure"
    assert f"({MAX_STARTS} starts tried, none reached EC2)" in (run.reason or "")
    assert [n["status"] for n in world.job.notifications()] == [FAILED]


def test_a_cancel_racing_the_start_leaves_no_machine_running(
    world: World, starts: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    ec2 = world.job.clients.ec2
    cancelled: list[Run] = []

    def cancel_first(**_: Any) -> None:  # the user cancels between the record and StartInstances
        if not cancelled:
            [run] = [r for r in world.ledger.list_runs(world.job.name) if r.status == STARTING]
            cancelled.append(stopping.cancel_run(world.job.clients, world.job.config, run.run_id))

    ran_before = sum(len(engine.all) for engine in world.engines.values())  # yesterday's container
    ec2.meta.events.register("before-call.ec2.StartInstances", cancel_first)
    try:
        _fire(world)
    finally:
        ec2.meta.events.unregister("before-call.ec2.StartInstances", cancel_first)
    world.run_for(BOUND)

    run = today(world)
    assert run.status == CANCELLED and cancelled
    assert starts == [reusable(world)]  # the start landed after the cancel ...
    assert world.instances("pending", "running") == []  # ... and the agent powered off without running the job
    assert sum(len(engine.all) for engine in world.engines.values()) == ran_before, "the job ran, cancelled"
    assert check(world, Scenario("cancelled", _fire, expect=(CANCELLED,))) == []


def test_twenty_concurrent_deliveries_make_one_run_and_one_start(world: World, starts: list[str]) -> None:
    results: list[dict[str, Any]] = []
    barrier = threading.Barrier(20)
    world.clock.moment = SCHEDULED + timedelta(seconds=3)

    def deliver() -> None:
        barrier.wait()
        results.append(
            world.launcher().handle(
                {"action": "schedule", "job": "daily-report", "scheduled_time": "2026-11-24T02:00:00Z"}
            )
        )

    threads = [threading.Thread(target=deliver) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert sorted(r["outcome"] for r in results) == ["duplicate"] * 19 + ["started"]
    assert starts == [reusable(world)]
    world.run_for(BOUND)
    assert today(world).status == SUCCEEDED and starts == [reusable(world)]


def _manual_run_just_recorded() -> Run:
    """A manual run a second before the schedule fires: recorded, its machine not started yet."""
    return Run(
        job="daily-report",
        run_id="20261124T015959.000Z-manual-0000abcd",
        status=PENDING,
        trigger="manual",
        triggered_at="2026-11-24T01:59:59.000Z",
    )


def test_forbid_with_a_live_run_holding_the_slot_skips_the_trigger_without_any_machine(
    world: World, starts: list[str]
) -> None:
    # A manual run has just been recorded (it holds the slot) and has not started the stopped instance yet.
    holder = _manual_run_just_recorded()
    assert world.ledger.create_run(holder, exclusive=True).kind == "created"

    _fire(world)

    run = today(world)
    assert (run.status, run.reason) == ("SKIPPED", f"run {holder.run_id} active")
    assert (run.instance_id, run.placements, run.deadline_at, run.start_lease_until) == (None, (), None, None)
    assert starts == []


# ---------------------------------------------------------------- concurrency: allow
@pytest.fixture
def allow_world(aws: Any, faults: Faults, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    scenario = Scenario("allow", _fire, setup=_earlier_run, config={"concurrency": "allow"})
    staged = stage(scenario, aws, tmp_path, monkeypatch)
    faults.reset()
    yield staged
    silence_agent_logs()


def test_allow_takes_the_instance_claim_in_the_creating_transaction(allow_world: World, faults: Faults) -> None:
    world = allow_world
    _fire(world)
    made = [call for call in faults.seen if call[0] in ("ssm", "ec2", "dynamodb")]

    run = today(world)
    instance_id = reusable(world)
    assert run.instance_id == instance_id and run.status == STARTING
    assert world.ledger.active_run_id(world.job.name, INSTANCE_PREFIX + instance_id) == run.run_id
    assert made == [
        ("ssm", "GetParameter"),
        ("ec2", "DescribeInstances"),
        ("dynamodb", "TransactWriteItems"),  # the run, its claim of the instance, the check that its holder ended
        ("ec2", "CreateTags"),
        ("ec2", "StartInstances"),
    ]
    world.run_for(BOUND)
    assert today(world).status == SUCCEEDED


def test_allow_with_the_instance_claimed_by_a_live_run_launches_an_extra_instance(
    allow_world: World, starts: list[str]
) -> None:
    world = allow_world
    instance_id = reusable(world)
    # Another run has just claimed the stopped instance and is about to tag and start it.
    other = _manual_run_just_recorded()
    world.ledger.create_run(other, exclusive=False)
    assert world.ledger.claim_slot("daily-report", other.run_id, INSTANCE_PREFIX + instance_id) is None

    _fire(world)

    run = today(world)
    assert run.status == STARTING and run.instance_id != instance_id and starts == []
    [extra] = [i for i in world.instances() if i["InstanceId"] == run.instance_id]
    assert _tags(extra)[TAG_LIFECYCLE] == LIFECYCLE_EPHEMERAL
    assert world.ledger.active_run_id("daily-report", INSTANCE_PREFIX + instance_id) == other.run_id


def test_a_capacity_error_on_the_recorded_start_falls_back_to_an_ephemeral_instance(
    world: World, starts: list[str]
) -> None:
    inject_error(world.job.clients.ec2, "StartInstances", ["InsufficientInstanceCapacity"])

    _fire(world)

    run = today(world)
    assert run.status == STARTING and run.instance_id != reusable(world) and starts == []
    assert [(p.action, (p.error or "").split(":")[0]) for p in run.placements] == [
        ("start", "InsufficientInstanceCapacity"),
        ("launch", ""),
    ]
    world.run_for(BOUND)
    assert today(world).status == SUCCEEDED and starts == []
    assert world.instances("pending", "running") == []


# ---------------------------------------------------------------- the verdict, on its own
T = datetime(2026, 11, 24, 2, 0, 3, 400_000, tzinfo=UTC)
TRY = PlacementTry(action="start", instance_id="i-1", at="2026-11-24T02:00:03.400Z")
RECORDED = Run(
    job="daily-report",
    run_id="20261124T020000.000Z-schedule",
    status=STARTING,
    trigger="schedule",
    triggered_at="2026-11-24T02:00:03.400Z",
    instance_id="i-1",
    placements=(TRY,),
    start_lease_until="2026-11-24T02:03:23.400Z",
)
LAPSED = T + timedelta(seconds=201)


def machine(state: str, launched: datetime) -> dict[str, Any]:
    return {"InstanceId": "i-1", "State": {"Name": state}, "LaunchTime": launched}


@pytest.mark.parametrize(
    ("run", "instance", "now", "expected"),
    [
        (RECORDED, machine("stopped", T - timedelta(days=1)), LAPSED, starts_module.REPEAT),
        (RECORDED, machine("stopped", T - timedelta(days=1)), T + timedelta(seconds=30), starts_module.WAIT),
        # LaunchTime has whole seconds: 02:00:03 is a start made for a try at 02:00:03.400, so is 02:00:02
        (RECORDED, machine("stopped", T.replace(microsecond=0)), LAPSED, None),
        (RECORDED, machine("stopped", T - timedelta(seconds=1.4)), LAPSED, None),
        (RECORDED, machine("stopped", T - timedelta(seconds=3.4)), LAPSED, starts_module.REPEAT),
        (RECORDED, machine("running", T - timedelta(days=1)), LAPSED, None),  # started: the usual rules
        (RECORDED, machine("stopping", T - timedelta(days=1)), LAPSED, None),
        (RECORDED, None, LAPSED, None),  # gone: instance-lost, as before
        (replace(RECORDED, instance_running_at="2026-11-24T02:00:20.000Z"), machine("stopped", T), LAPSED, None),
        (replace(RECORDED, start_lease_until=None), machine("stopped", T - timedelta(days=1)), LAPSED, None),
        (replace(RECORDED, placements=(replace(TRY, error="InsufficientInstanceCapacity: no"),)), None, LAPSED, None),
        (replace(RECORDED, instance_id="i-2"), machine("stopped", T - timedelta(days=1)), LAPSED, None),
        (
            replace(RECORDED, placements=(TRY,) * starts_module.MAX_STARTS),
            machine("stopped", T - timedelta(days=1)),
            LAPSED,
            starts_module.GIVE_UP,
        ),
    ],
)
def test_the_verdict_on_a_recorded_start(run: Run, instance: dict[str, Any] | None, now: datetime, expected) -> None:
    assert starts_module.verdict(run, instance, now) == expected


def test_moto_sets_launch_time_at_every_start_as_ec2_does(aws: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from moto.ec2.models import instances

    job = make_job(aws)
    ec2 = job.clients.ec2
    now = [datetime(2026, 11, 24, 2, 0, 0)]  # moto's clock: naive UTC
    monkeypatch.setattr(instances, "utcnow", lambda: now[0])
    template = {"LaunchTemplateName": job.config.names.launch_template}
    [instance] = ec2.run_instances(LaunchTemplate=template, MinCount=1, MaxCount=1)["Instances"]
    instance_id = instance["InstanceId"]

    def launched() -> datetime:
        return ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]["LaunchTime"]

    ec2.stop_instances(InstanceIds=[instance_id])
    now[0] = datetime(2026, 11, 25, 2, 0, 0)
    ec2.start_instances(InstanceIds=[instance_id])  # the next day
    now[0] = datetime(2026, 11, 25, 3, 0, 0)
    ec2.start_instances(InstanceIds=[instance_id])  # already running: no new launch

    assert instance["LaunchTime"] == datetime(2026, 11, 24, 2, 0, 0, tzinfo=UTC)
    assert launched() == datetime(2026, 11, 25, 2, 0, 0, tzinfo=UTC)
