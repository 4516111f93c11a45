"""What the agent's claim line says about its start-up: when its process started, and each step's seconds."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from ec2batch.agent.startup import StartupTimings, process_started_at
from ec2batch.ledger import parse_time, utcnow


def test_a_new_process_knows_it_started_before_its_imports() -> None:
    began = utcnow()
    # The child imports the agent (a few hundred ms) and then asks when it started: before those imports.
    code = "from ec2batch.agent.startup import process_started_at; from ec2batch.ledger import iso, utcnow; "
    code += "import ec2batch.agent.main; print(iso(process_started_at()), iso(utcnow()))"
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    started, now = (parse_time(text) for text in child.stdout.split())
    assert began - timedelta(seconds=1) <= started < now


def test_an_unreadable_stat_file_gives_no_start_time(tmp_path: Path) -> None:
    assert process_started_at(tmp_path / "absent") is None


def test_each_step_is_timed_from_the_one_before() -> None:
    timings = StartupTimings(utcnow() - timedelta(seconds=2))
    timings.mark("imports")
    timings.mark("identity")
    assert 1.9 < timings.steps["imports"] < 10
    assert 0 <= timings.steps["identity"] < 1
    assert list(timings.steps) == ["imports", "identity"]


def test_the_agent_makes_no_eventbridge_client_and_its_runs_events_still_come_from_the_ledgers_stream(
    job, tmp_path: Path
) -> None:
    from ec2batch.ledger import RUNNING, SUCCEEDED
    from tests.conftest import Outbox
    from tests.unit.agent.conftest import launch, ledger, machine_for

    run = launch(job)
    outbox = Outbox(job.clients)  # from here on: the agent's writes
    machine = machine_for(job, run, tmp_path)
    assert machine.boot() == 0
    assert ledger(job).require(job.name, run.run_id).status == SUCCEEDED
    assert "events" not in vars(job.clients)  # no client made (Clients makes each on first use), no PutEvents

    published: list[tuple[str, str]] = []
    job.clients.events.meta.events.register(
        "provide-client-params.events.PutEvents",
        lambda params, **_: published.extend(
            (json.loads(e["Detail"])["previous_status"], json.loads(e["Detail"])["status"]) for e in params["Entries"]
        ),
    )
    outbox.drain()
    assert published == [("STARTING", RUNNING), (RUNNING, SUCCEEDED)]
