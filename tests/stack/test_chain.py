"""Three jobs chained on the local stack (issue 15): extract -> transform -> report.

Everything between the runs is what AWS would do: each status change is published by whoever makes it (the
launcher here, the agent on the instance) to moto_server's EventBridge; the downstream job's rule (made as
Terraform makes it) puts the matching endings in its timer queue, and the stack's SQS poller hands them to the
launcher, which starts the downstream run."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from ec2batch.launcher import Launcher
from ec2batch.ledger import FAILED, SUCCEEDED, Run, iso, parse_time
from ec2batch.run_events import entry
from tests.stack.conftest import LocalJob

QUICK = {"REPORT_ROWS": "1000"}


def after_runs(job: LocalJob) -> list[Run]:
    return sorted((r for r in job.ledger.list_runs(job.name) if r.trigger == "after"), key=lambda r: r.run_id)


def seconds(start: str | None, end: str | None) -> float:
    return (parse_time(end or "") - parse_time(start or "")).total_seconds()


def wait_for(what: str, check: Callable[[], Any], timeout: float = 150) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.5)
    raise AssertionError(f"{what}: not within {timeout}s")


def ended_after_run(job: LocalJob, count: int) -> Run:
    """The job's `count`-th run triggered by its upstream, once it has ended."""
    runs = wait_for(f"{job.name}: after run #{count}", lambda: len(after_runs(job)) >= count and after_runs(job))
    return job.wait_run(runs[count - 1].run_id, timeout=150)


def messages(url: str, sqs: Any, settle: float = 3.0) -> list[dict[str, Any]]:
    time.sleep(settle)
    return sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])


def test_one_schedule_fire_runs_the_chain_a_failure_stops_it_and_a_duplicate_starts_nothing(
    deploy: Callable[..., LocalJob],
) -> None:
    extract = deploy("t-chain-extract", env=QUICK)
    transform = deploy("t-chain-transform", env=QUICK, after=[{"job": "t-chain-extract"}])
    report = deploy("t-chain-report", env=QUICK, after=[{"job": "t-chain-transform", "status": "SUCCEEDED"}])
    transform_inbox, report_inbox = transform.inbox(), report.inbox()

    # One schedule fire of the first job, as EventBridge Scheduler sends it.
    fired = Launcher(extract.clients).handle(
        {"action": "schedule", "job": extract.name, "scheduled_time": iso(datetime.now(UTC))}
    )
    first = extract.wait_run(fired["run_id"])
    second = ended_after_run(transform, 1)
    third = ended_after_run(report, 1)

    assert [first.status, second.status, third.status] == [SUCCEEDED] * 3
    assert second.upstream == (f"{extract.name}/{first.run_id}",)
    assert third.upstream == (f"{transform.name}/{second.run_id}",)
    assert third.lineage == (extract.name, transform.name)
    assert first.ended_at <= second.triggered_at and second.ended_at <= third.triggered_at  # in order
    hops = [seconds(first.ended_at, second.triggered_at), seconds(second.ended_at, third.triggered_at)]
    print(f"chain: upstream end -> downstream trigger {hops[0]:.2f}s, {hops[1]:.2f}s; "
          f"fire -> last end {seconds(first.triggered_at, third.ended_at):.1f}s")  # fmt: skip

    # EventBridge delivers the extract's SUCCEEDED again: nothing starts twice.
    extract.clients.events.put_events(Entries=[entry(first, "default")])
    time.sleep(5)  # the rule, the queue and the poller have had ample time (the chain above took ~1 s per hop)
    assert len(after_runs(transform)) == 1

    # The second job now fails: the third does not run, and the failure is notified once (by the second job).
    deploy("t-chain-transform", env={**QUICK, "JOB_EXIT_CODE": "3"}, after=[{"job": "t-chain-extract"}])
    fired = Launcher(extract.clients).handle(
        {"action": "schedule", "job": extract.name, "scheduled_time": iso(datetime.now(UTC))}
    )
    assert extract.wait_run(fired["run_id"]).status == SUCCEEDED
    failed = ended_after_run(transform, 2)
    assert (failed.status, failed.exit_code) == (FAILED, 3)
    time.sleep(5)
    assert len(after_runs(report)) == 1
    sqs = extract.clients.sqs
    assert len(messages(transform_inbox, sqs)) == 1
    assert messages(report_inbox, sqs, settle=0) == []
