from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ec2batch.errors import TransitionRejected
from ec2batch.ledger import (
    FAILED,
    PENDING,
    PLANNED,
    RANK,
    RUNNING,
    STARTING,
    STATUSES,
    SUCCEEDED,
    Ledger,
    PlacementTry,
    Run,
    iso,
    new_run_id,
    scheduled_run_id,
    table_definition,
)

T0 = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)


@pytest.fixture
def ledger(aws) -> Ledger:
    aws.dynamodb.create_table(**table_definition("runs"))
    return Ledger(aws.dynamodb, "runs", clock=lambda: T0)


def new(run_id: str, status: str = PENDING) -> Run:
    return Run(job="daily-report", run_id=run_id, status=status, trigger="manual", triggered_at=iso(T0))


def test_run_ids_sort_by_time_whatever_their_trigger() -> None:
    ids = [
        scheduled_run_id(T0),
        new_run_id("manual", T0 + timedelta(milliseconds=1)),
        new_run_id("at", T0 + timedelta(seconds=1)),
        scheduled_run_id(T0 + timedelta(days=1)),
    ]
    assert sorted(ids) == ids
    assert scheduled_run_id(T0) == scheduled_run_id(T0) == "20261124T020000.000Z-schedule"
    assert new_run_id("manual", T0, "tok") == new_run_id("manual", T0, "tok")


@pytest.mark.parametrize("start", STATUSES)
def test_a_run_never_moves_backwards_or_sideways(ledger: Ledger, start: str) -> None:
    ledger.create_run(new("r1", start), exclusive=False)
    for target in STATUSES:
        if RANK[target] > RANK[start]:
            continue
        with pytest.raises(TransitionRejected, match=f"cannot move to {target}: it is {start}"):
            ledger.transition("daily-report", "r1", target)
    assert ledger.require("daily-report", "r1").status == start


def test_the_happy_path_stamps_each_step(ledger: Ledger) -> None:
    ledger.create_run(new("r1", PLANNED), exclusive=False)
    for status in (PENDING, STARTING, RUNNING):
        ledger.transition("daily-report", "r1", status)
    run = ledger.transition("daily-report", "r1", SUCCEEDED, exit_code=0, image_digest="sha256:abc")
    assert (run.start_requested_at, run.instance_running_at, run.ended_at) == (iso(T0),) * 3
    assert run.exit_code == 0 and run.image_digest == "sha256:abc"


def test_placement_tries_are_stored_in_order(ledger: Ledger) -> None:
    ledger.create_run(new("r1"), exclusive=False)
    attempts = (
        PlacementTry("start", "m7i.large", "subnet-1", "i-1", "InsufficientInstanceCapacity: no"),
        PlacementTry("launch", "m6i.large", "subnet-2", "i-2", market="spot", attempt=2),
    )
    ledger.transition("daily-report", "r1", STARTING, placements=attempts)
    assert ledger.require("daily-report", "r1").placements == attempts


def test_terminal_transition_frees_the_slot_only_for_its_holder(ledger: Ledger) -> None:
    ledger.create_run(new("r1"), exclusive=True)
    ledger.create_run(new("r2"), exclusive=False)
    ledger.transition("daily-report", "r2", FAILED)
    assert ledger.active_run_id("daily-report") == "r1"
    ledger.transition("daily-report", "r1", FAILED)
    assert ledger.active_run_id("daily-report") is None


def test_exclusive_creation_is_blocked_by_a_live_run_and_records_the_skip(ledger: Ledger) -> None:
    ledger.create_run(new("r1"), exclusive=True)
    outcome = ledger.create_run(new("r2"), exclusive=True, token="t")
    assert (outcome.kind, outcome.active_run_id, outcome.run.reason) == ("blocked", "r1", "run r1 active")
    assert ledger.require("daily-report", "r2").status == "SKIPPED"
    again = ledger.create_run(new("r3"), exclusive=True, token="t")
    assert (again.kind, again.run.run_id) == ("duplicate", "r2")


def test_bookkeeping_items_never_show_in_listings(ledger: Ledger) -> None:
    ledger.create_run(new("20261124T020000.000Z-manual-a"), exclusive=True, token="t")
    assert [r.run_id for r in ledger.list_runs("daily-report")] == ["20261124T020000.000Z-manual-a"]


def test_listing_pages_through_many_runs(ledger: Ledger) -> None:
    for i in range(120):
        ledger.create_run(new(new_run_id("manual", T0 + timedelta(seconds=i))), exclusive=False)
    runs = ledger.list_runs("daily-report", limit=110)
    assert len(runs) == 110
    assert runs[0].run_id > runs[-1].run_id


def test_update_fields_refuses_a_finished_run(ledger: Ledger) -> None:
    ledger.create_run(new("r1"), exclusive=False)
    ledger.transition("daily-report", "r1", SUCCEEDED)
    with pytest.raises(TransitionRejected, match="is finished or missing"):
        ledger.update_fields("daily-report", "r1", reason="late")
    assert ledger.update_fields("daily-report", "r1", unless_terminal=False, instance_id="i-1").instance_id == "i-1"


# ---------------------------------------------------------------- idempotent under retry (issue 9, finding 1)
def test_a_transition_applied_whose_response_was_lost_is_our_success_not_someone_elses(ledger: Ledger, faults) -> None:
    ledger.create_run(new("r1", PLANNED), exclusive=False)
    faults.at("dynamodb", "UpdateItem", "lost")
    moved = ledger.transition("daily-report", "r1", PENDING)  # botocore's retry fails our own condition
    assert moved.status == PENDING
    assert faults.fired == [("dynamodb", "UpdateItem", 1, "lost")]


def test_a_write_that_really_lost_the_race_is_still_refused(ledger: Ledger) -> None:
    ledger.create_run(new("r1", PLANNED), exclusive=False)
    ledger.transition("daily-report", "r1", PENDING)
    with pytest.raises(TransitionRejected) as refused:
        ledger.transition("daily-report", "r1", PENDING)
    assert refused.value.current.status == PENDING


def test_a_retried_creation_is_created_once_not_a_duplicate_of_itself(ledger: Ledger, faults) -> None:
    faults.at("dynamodb", "TransactWriteItems", "lost")
    created = ledger.create_run(new("r1"), exclusive=True)
    assert created.kind == "created"
    assert ledger.active_run_id("daily-report") == "r1"


def test_a_start_lease_is_held_until_it_lapses_then_taken_over(aws) -> None:
    aws.dynamodb.create_table(**table_definition("runs"))
    now = [T0]
    ledger = Ledger(aws.dynamodb, "runs", clock=lambda: now[0])
    ledger.create_run(new("r1"), exclusive=False)
    assert ledger.take_start_lease("daily-report", "r1", force=True) is not None
    assert ledger.take_start_lease("daily-report", "r1") is None  # the launcher that created it is at work
    now[0] = T0 + timedelta(minutes=4)
    assert ledger.take_start_lease("daily-report", "r1") is not None  # it died: the run is an orphan
    ledger.transition("daily-report", "r1", STARTING)
    now[0] = T0 + timedelta(hours=1)
    assert ledger.take_start_lease("daily-report", "r1") is None  # only PENDING runs have a lease


def test_one_publisher_per_notification(ledger: Ledger) -> None:
    ledger.create_run(new("r1"), exclusive=False)
    assert ledger.claim_notification("daily-report", "r1")
    assert not ledger.claim_notification("daily-report", "r1")
