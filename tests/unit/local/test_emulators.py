"""The local stack's emulators and helpers, on in-process moto (the stack suite runs them for real)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from ec2batch.local.images import debian_mirror
from ec2batch.local.scheduler_emulator import SchedulerEmulator, fill_context, put_job_schedule
from ec2batch.local.sqs import SqsPoller


def test_the_mirror_comes_from_the_machines_apt_sources(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\nComponents: main\n\n"
        "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\nComponents: main\n"
    )
    assert debian_mirror(tmp_path) == "http://mirror.example/debian"


def test_the_mirror_is_also_found_in_a_classic_sources_list(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list").write_text("deb [arch=amd64] http://other.example/debian bookworm main\n")
    assert debian_mirror(tmp_path) == "http://other.example/debian"


def test_the_scheduler_fills_in_its_context_attributes() -> None:
    template = json.dumps(
        {"job": "j", "scheduled_time": "<aws.scheduler.scheduled-time>", "execution_id": "<aws.scheduler.execution-id>"}
    )
    event = fill_context(template, datetime(2026, 11, 24, 2, 0, tzinfo=UTC), "arn:s", "e-1")
    assert event == {"job": "j", "scheduled_time": "2026-11-24T02:00:00Z", "execution_id": "e-1"}


def test_the_scheduler_emulator_fires_each_time_once_with_the_real_payload(aws) -> None:
    put_job_schedule(aws, "daily-report", "cron(30 2 * * ? *)", "Europe/Berlin")
    fired: list[dict] = []
    now = {"t": datetime(2026, 3, 28, 1, 29, 59, tzinfo=UTC)}  # 02:29:59 in Berlin (CET)
    emulator = SchedulerEmulator(aws, fired.append, clock=lambda: now["t"])

    emulator.step()
    now["t"] = datetime(2026, 3, 28, 1, 30, 0, 300000, tzinfo=UTC)
    emulator.step()
    emulator.step()
    now["t"] = datetime(2026, 3, 29, 1, 0, tzinfo=UTC)  # spring forward: 02:30 does not exist that day
    emulator.step()

    assert [e["scheduled_time"] for e in fired] == ["2026-03-28T01:30:00Z"]
    assert fired[0]["action"] == "schedule" and fired[0]["job"] == "daily-report"


def test_the_sqs_poller_hands_each_message_to_the_launcher_and_deletes_it(aws) -> None:
    url = aws.sqs.create_queue(QueueName="ec2batch-daily-report-timers")["QueueUrl"]
    aws.sqs.send_message(QueueUrl=url, MessageBody='{"n": 1}')
    aws.sqs.send_message(QueueUrl=url, MessageBody='{"n": 2}')
    seen: list[dict] = []

    def launcher(event: dict) -> dict:
        seen.append(event)
        body = json.loads(event["Records"][0]["body"])
        return {"batchItemFailures": [{"itemIdentifier": "x"}] if body["n"] == 2 else []}

    poller = SqsPoller(aws, launcher)
    poller.step()
    poller.pool.shutdown(wait=True)

    assert sorted(json.loads(e["Records"][0]["body"])["n"] for e in seen) == [1, 2]
    assert all(len(e["Records"]) == 1 and e["Records"][0]["eventSource"] == "aws:sqs" for e in seen)
    attributes = aws.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attributes["ApproximateNumberOfMessagesNotVisible"] == "1"  # the failed one comes back later
    assert attributes["ApproximateNumberOfMessages"] == "0"


def test_a_port_held_by_another_program_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    import socket

    import pytest

    from ec2batch.local.paths import StackPaths
    from ec2batch.local.services import Service, StackError, start

    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    paths = StackPaths(tmp_path)
    paths.ensure()
    service = Service("registry", ["true"], ready=lambda: False, env={}, port=port)
    try:
        with pytest.raises(StackError, match=f"port 127.0.0.1:{port} is taken by another program"):
            start(paths, service, progress=lambda _: None)
    finally:
        holder.close()
