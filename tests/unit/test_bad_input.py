"""Every bad input a person can type is one line naming what is wrong, exit code 2, and nothing written.

Driven as a user would: through click's CliRunner against in-process moto (with a run already live, so
`~active` and the token items exist to be confused with runs), and once as a real `ec2batch` process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from ec2batch.cli import main
from tests.conftest import AWS_ENVIRONMENT, Job

BIG = "x" * (64 * 1024)


def config_file(tmp: Path, **fields: Any) -> str:
    path = tmp / "job.json"
    path.write_text(json.dumps({"job": "daily-report", "image": "repo/img:1", **fields}))
    return str(path)


def raw_file(tmp: Path, data: bytes, name: str = "file.json") -> str:
    path = tmp / name
    path.write_bytes(data)
    return str(path)


# (name, arguments given a temporary folder, what the one line must name)
CASES: list[tuple[str, Callable[[Path], list[str]], str]] = [
    (
        "nested instance type",
        lambda t: ["validate", config_file(t, instance_types=[["m7i.large"]])],
        "config.instance_types[0]",
    ),
    (
        "nested subnet id",
        lambda t: ["validate", config_file(t, subnet_ids=[{"id": "subnet-1"}])],
        "config.subnet_ids[0]",
    ),
    ("config not UTF-8", lambda t: ["validate", raw_file(t, b'{"job": "daily-report\xff"}')], "not UTF-8"),
    ("unbalanced quote, run-now", lambda t: ["run-now", "daily-report", "--command", "python 'oops"], "'--command'"),
    (
        "unbalanced quote, run-at",
        lambda t: ["run-at", "daily-report", "--in", "1h", "--command", 'a "b'],
        "'--command'",
    ),
    ("empty command", lambda t: ["run-now", "daily-report", "--command", "  "], "'--command'"),
    ("huge --in", lambda t: ["run-at", "daily-report", "--in", "99999999999999d"], "'--in'"),
    ("enormous --in", lambda t: ["run-at", "daily-report", "--in", "9" * 5000 + "s"], "'--in'"),
    ("--in past a year", lambda t: ["run-at", "daily-report", "--in", "400d"], "'--in'"),
    ("WHEN past datetime", lambda t: ["run-at", "daily-report", "9999-12-31T23:59:59-05:00"], "WHEN"),
    ("WHEN far ahead", lambda t: ["run-at", "daily-report", "2150-01-01T00:00:00Z"], "WHEN"),
    ("WHEN long ago", lambda t: ["run-at", "daily-report", "2001-01-01T00:00:00Z"], "WHEN"),
    (
        "next --after overflow",
        lambda t: ["next", "-e", "rate(1 hour)", "--after", "9999-12-31T23:59:59-05:00"],
        "'--after'",
    ),
    (
        "next --after year 9999",
        lambda t: ["next", "-e", "rate(1 hour)", "--after", "9999-12-31T23:59:59Z"],
        "'--after'",
    ),
    ("cost --since overflow", lambda t: ["cost", "daily-report", "--since", "9999-12-31T23:59:59-05:00"], "'--since'"),
    ("cost --since underflow", lambda t: ["cost", "daily-report", "--since", "0001-01-01T00:00:00+05:00"], "'--since'"),
    ("cancel ~active", lambda t: ["cancel", "daily-report", "~active"], "RUN_ID"),
    ("logs ~active", lambda t: ["logs", "daily-report", "~active"], "RUN_ID"),
    ("cancel a token key", lambda t: ["cancel", "daily-report", "~token#abc"], "RUN_ID"),
    ("prices not JSON", lambda t: ["cost", "daily-report", "--prices", raw_file(t, b"m7i.large: 0.1")], "'--prices'"),
    ("prices a list", lambda t: ["cost", "daily-report", "--prices", raw_file(t, b"[1, 2]")], "'--prices'"),
    (
        "prices, a region not an object",
        lambda t: ["cost", "daily-report", "--prices", raw_file(t, b'{"eu-central-1": 3}')],
        "eu-central-1",
    ),
    (
        "prices, a price not a number",
        lambda t: ["cost", "daily-report", "--prices", raw_file(t, b'{"eu-central-1": {"m7i.large": "cheap"}}')],
        "eu-central-1.m7i.large",
    ),
    ("prices not UTF-8", lambda t: ["cost", "daily-report", "--prices", raw_file(t, b"\xff\xfe{")], "'--prices'"),
    ("env over 64 KiB, run-now", lambda t: ["run-now", "daily-report", "--env", f"BIG={BIG}"], "'--env'"),
    ("env over 64 KiB, run-at", lambda t: ["run-at", "daily-report", "--in", "1h", "--env", f"BIG={BIG}"], "'--env'"),
    ("env name", lambda t: ["run-now", "daily-report", "--env", "1DAY=x"], "'--env'"),
    ("command over 64 KiB", lambda t: ["run-now", "daily-report", "--command", f"echo {BIG}"], "'--command'"),
    ("empty token", lambda t: ["run-now", "daily-report", "--token", ""], "'--token'"),
    ("job name", lambda t: ["run-now", "Daily_Report"], "'JOB'"),
    ("job name, cost", lambda t: ["cost", "Daily_Report"], "'JOB'"),
]


def snapshot(job: Job) -> dict[str, Any]:
    """Everything a command could have written: ledger items, queued timers, instances."""
    db = job.clients.dynamodb
    items = db.scan(TableName=job.config.names.ledger_table)["Items"]
    queue = job.clients.sqs.get_queue_url(QueueName=job.config.names.timer_queue)["QueueUrl"]
    attributes = job.clients.sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["All"])["Attributes"]
    return {
        "ledger": sorted(json.dumps(i, sort_keys=True) for i in items),
        "timers": attributes["ApproximateNumberOfMessages"] + "/" + attributes["ApproximateNumberOfMessagesDelayed"],
        "instances": sorted(i["InstanceId"] for i in job.instances()),
    }


@pytest.fixture
def live_job(job: Job, monkeypatch: pytest.MonkeyPatch) -> Job:
    """The example job with a run in progress: `~active` and a token item are in its ledger."""
    monkeypatch.setenv("EC2BATCH_LAUNCHER", "inprocess")
    result = CliRunner().invoke(main, ["run-now", job.name, "--json"], catch_exceptions=False)
    assert json.loads(result.output)["outcome"] == "started"
    return job


@pytest.mark.parametrize(("name", "args", "named"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_naming_it_exit_2_nothing_written(
    live_job: Job, tmp_path: Path, name: str, args: Callable[[Path], list[str]], named: str
) -> None:
    before = snapshot(live_job)

    result = CliRunner().invoke(main, args(tmp_path))

    assert result.exit_code == 2, (result.output, result.exception)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert named in lines[0]
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)  # not a crash
    assert snapshot(live_job) == before


def test_a_real_ec2batch_process_reports_bad_input_on_one_line(tmp_path: Path) -> None:
    """No AWS needed: the input is refused before any client is made."""
    exe = Path(sys.executable).with_name("ec2batch")
    env = {**os.environ, **AWS_ENVIRONMENT, "AWS_ENDPOINT_URL": "http://127.0.0.1:9"}  # nothing listens there
    for args, named in (
        (["run-at", "daily-report", "--in", "99999999999999d"], "'--in'"),
        (["cancel", "daily-report", "~active"], "RUN_ID"),
        (["validate", config_file(tmp_path, instance_types=["m7i.large", ["m6i.large"]])], "config.instance_types[1]"),
        (["report", "daily-report", "--since", "yesterday", "--html", str(tmp_path / "report.html")], "'--since'"),
    ):
        done = subprocess.run([str(exe), *args], capture_output=True, text=True, env=env, timeout=60)
        assert done.returncode == 2, done
        assert done.stdout == ""
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and named in lines[0], done.stderr
    assert not (tmp_path / "report.html").exists()  # refused before anything is written
