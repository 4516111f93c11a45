"""The launcher's events: what it refuses before anything is written, and what a reused token says."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from ec2batch.config import load_config, store_config
from ec2batch.errors import ConfigError, EventError
from ec2batch.launcher import Launcher
from ec2batch.launcher.events import OVERRIDE_MAX_BYTES, TOKEN_REUSED, parse_event
from ec2batch.ledger import RUN_ID_PATTERN, Ledger, new_run_id, scheduled_run_id, utcnow
from tests.conftest import Job, load_event


def items(job: Job) -> list[dict[str, Any]]:
    return job.clients.dynamodb.scan(TableName=job.config.names.ledger_table)["Items"]


def timer(run_id: Any) -> dict[str, Any]:
    body = {"job": "daily-report", "run_id": run_id, "kind": "start", "due": "2026-11-24T14:02:30Z"}
    return {"Records": [{"messageId": "m-1", "eventSource": "aws:sqs", "body": json.dumps(body)}]}


def test_the_run_id_pattern_matches_every_id_the_ledger_makes_and_nothing_else() -> None:
    now = utcnow()
    made = [
        scheduled_run_id(now),
        *(new_run_id(t, now) for t in ("manual", "at", "boot")),
        new_run_id("manual", now, "t"),
    ]
    assert all(RUN_ID_PATTERN.match(run_id) for run_id in made)
    for other in (
        "~active",
        "~token#abc",
        "~instance#i-1",
        "",
        "20261124T140230.000Z-at-1a2b3c4d\n",
        "r",
        "\u0662\u0660\u0662\u06661124T140230.000Z-schedule",  # Arabic-Indic digits,
    ):
        assert not RUN_ID_PATTERN.match(other), other


@pytest.mark.parametrize("run_id", ["~active", "~token#0a1b", "../x", "", 7])
def test_a_timer_naming_no_run_is_refused_before_anything_is_read_or_written(job: Job, run_id: Any) -> None:
    started = Launcher(job.clients).handle({"action": "run", "job": job.name})  # `~active` now exists
    before = items(job)
    reads: list[str] = []
    job.clients.dynamodb.meta.events.register("before-call.dynamodb.*", lambda model, **_: reads.append(model.name))

    with pytest.raises(EventError, match=r"Records\[0\]\.body\.run_id: .* is not a run id"):
        Launcher(job.clients).handle(timer(run_id))

    assert reads == [] and items(job) == before
    assert Ledger(job.clients.dynamodb, job.config.names.ledger_table).active_run_id(job.name) == started["run_id"]


@pytest.mark.parametrize(
    ("event", "field"),
    [
        ({"env": {"BIG": "x" * OVERRIDE_MAX_BYTES}}, "env: 65539 bytes"),
        ({"env": {f"V{i}": "x" * 1000 for i in range(70)}}, "env: "),
        ({"command": ["echo", "x" * OVERRIDE_MAX_BYTES]}, "command: 65540 bytes"),
    ],
)
def test_a_manual_run_with_overrides_over_64_kib_is_refused_and_nothing_written(
    job: Job, event: dict[str, Any], field: str
) -> None:
    with pytest.raises(EventError, match=f"^{field}.*at most 65536 \\(64 KiB\\)"):
        Launcher(job.clients).handle({"action": "run", "job": job.name, **event})
    assert items(job) == [] and job.instances() == []


def test_overrides_just_under_the_limit_are_a_run(job: Job) -> None:
    env = {"BIG": "x" * (OVERRIDE_MAX_BYTES - 3)}
    result = Launcher(job.clients).handle({"action": "run", "job": job.name, "env": env})
    assert result["outcome"] == "started"


def test_the_same_token_with_other_overrides_says_the_first_run_stands(job: Job) -> None:
    launcher = Launcher(job.clients)
    first = launcher.handle({"action": "run", "job": job.name, "token": "t-1", "env": {"DAY": "2026-11-23"}})

    other = launcher.handle({"action": "run", "job": job.name, "token": "t-1", "env": {"DAY": "2026-11-24"}})
    other_command = launcher.handle({"action": "run", "job": job.name, "token": "t-1", "command": ["true"]})
    same = launcher.handle({"action": "run", "job": job.name, "token": "t-1", "env": {"DAY": "2026-11-23"}})

    assert other["outcome"] == other_command["outcome"] == "duplicate"
    assert other["run_id"] == other_command["run_id"] == first["run_id"]
    assert other["reason"] == other_command["reason"] == TOKEN_REUSED
    assert same["outcome"] == "duplicate" and "reason" not in same  # a plain retry is no news
    runs = Ledger(job.clients.dynamodb, job.config.names.ledger_table).list_runs(job.name)
    assert [(r.run_id, dict(r.env)) for r in runs] == [(first["run_id"], {"DAY": "2026-11-23"})]
    assert len(job.instances()) == 1


@pytest.mark.parametrize("field", ["instance_types", "subnet_ids"])
def test_a_nested_value_in_a_deployed_config_is_a_config_error_naming_it(job: Job, field: str) -> None:
    """The launcher and the agent read the config through load_config: a named ConfigError, not a TypeError."""
    doc = job.config.to_document()
    doc[field] = [doc[field][0], [doc[field][0]]]
    job.clients.ssm.put_parameter(
        Name=job.config.names.config_parameter, Value=json.dumps(doc), Type="SecureString", Overwrite=True
    )

    with pytest.raises(ConfigError, match=rf"config\.{field}\[1\]: must be a non-empty string"):
        load_config(job.clients.ssm, job.name)
    with pytest.raises(ConfigError, match=rf"config\.{field}\[1\]"):
        Launcher(job.clients).handle({"action": "run", "job": job.name})
    assert items(job) == []
    store_config(job.clients.ssm, job.config)  # and a good config reads again
    assert load_config(job.clients.ssm, job.name) == job.config


def test_the_after_event_is_parsed_directly_and_in_an_sqs_record() -> None:
    import json as _json

    from ec2batch.launcher.events import UpstreamEnded, parse_event
    from tests.conftest import load_event

    event = load_event("after")
    direct = parse_event(event)
    assert isinstance(direct, UpstreamEnded)
    assert (direct.job, direct.upstream_job, direct.status, direct.lineage) == (
        "report",
        "transform",
        "SUCCEEDED",
        ("extract",),
    )
    assert direct.ended_at == "2026-11-24T02:49:12.930Z" and direct.chained
    [queued] = parse_event({"Records": [{"eventSource": "aws:sqs", "messageId": "m1", "body": _json.dumps(event)}]})
    assert queued == UpstreamEnded(**{**direct.__dict__, "message_id": "m1"})


def test_a_ledger_stream_batch_becomes_the_run_event_of_its_status_change() -> None:
    from ec2batch.launcher.events import LedgerChanges
    from ec2batch.run_events import changed_run, detail

    parsed = parse_event(load_event("ledger-stream"))
    assert isinstance(parsed, LedgerChanges)
    [change] = parsed.changes
    run = changed_run(change)
    assert run is not None
    got = detail(run)
    assert (got["status"], got["previous_status"], got["instance_id"]) == ("STARTING", "PENDING", "i-0123456789abcdef0")
    assert got["event_time"] == "2026-11-24T02:00:05.118Z"


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"eventSource": "aws:dynamodb", "eventName": "TRUNCATE"}, "Records[0].eventName: 'TRUNCATE' is not one of"),
        ({"eventSource": "aws:dynamodb", "eventName": "INSERT", "dynamodb": {}}, "Records[0].dynamodb.Keys: must"),
    ],
)
def test_a_malformed_stream_record_is_refused_naming_it(record: dict[str, Any], message: str) -> None:
    with pytest.raises(EventError, match=re.escape(message)):
        parse_event({"Records": [record]})
