from __future__ import annotations

import json
import threading
import time

import pytest
from click.testing import CliRunner

from ec2batch.cli import main
from ec2batch.ledger import RUNNING, SUCCEEDED, Ledger
from tests.conftest import Job


@pytest.fixture
def cli(aws, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("EC2BATCH_LAUNCHER", "inprocess")
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(main, list(args), catch_exceptions=False)

    return invoke


def agent_finishes(job: Job, exit_code: int, lines: list[str]) -> threading.Thread:
    """Play the agent's part for the newest run: running, log lines, outcome."""
    ledger = Ledger(job.clients.dynamodb, job.config.names.ledger_table)
    names = job.config.names

    def play() -> None:
        for _ in range(50):
            runs = ledger.list_runs(job.name, limit=1)
            if runs:
                break
            time.sleep(0.1)
        run_id = runs[0].run_id
        ledger.transition(job.name, run_id, RUNNING)
        job.clients.logs.create_log_stream(logGroupName=names.log_group, logStreamName=names.run_log_stream(run_id))
        now = int(time.time() * 1000)
        job.clients.logs.put_log_events(
            logGroupName=names.log_group,
            logStreamName=names.run_log_stream(run_id),
            logEvents=[{"timestamp": now + i, "message": line} for i, line in enumerate(lines)],
        )
        status = SUCCEEDED if exit_code == 0 else "FAILED"
        ledger.transition(job.name, run_id, status, exit_code=exit_code)

    thread = threading.Thread(target=play)
    thread.start()
    return thread


def test_run_now_prints_the_run_and_records_its_overrides(job: Job, cli) -> None:
    result = cli("run-now", job.name, "--env", "DAY=2026-11-23", "--command", "python -m report --rows 10", "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["outcome"] == "started"
    run = Ledger(job.clients.dynamodb, job.config.names.ledger_table).require(job.name, payload["run_id"])
    assert run.env == {"DAY": "2026-11-23"}
    assert run.command == ("python", "-m", "report", "--rows", "10")


def test_run_now_follow_streams_the_logs_and_exits_zero_on_success(job: Job, cli) -> None:
    thread = agent_finishes(job, 0, ["rows: 1000", "report written"])
    result = cli("run-now", job.name, "--follow")
    thread.join()
    assert result.exit_code == 0, result.output
    assert "rows: 1000\nreport written\n" in result.output
    assert "SUCCEEDED (exit 0)" in result.output


def test_run_now_wait_exits_non_zero_when_the_run_fails(job: Job, cli) -> None:
    thread = agent_finishes(job, 3, ["boom"])
    result = cli("run-now", job.name, "--wait")
    thread.join()
    assert result.exit_code == 1
    assert "FAILED (exit 3)" in result.output


def test_run_now_same_token_twice_is_one_run(job: Job, cli) -> None:
    first = json.loads(cli("run-now", job.name, "--token", "t-1", "--json").output)
    second = json.loads(cli("run-now", job.name, "--token", "t-1", "--json").output)
    assert first["run_id"] == second["run_id"]
    assert second["outcome"] == "duplicate"


def test_runs_lists_newest_first_as_a_table_and_json(job: Job, cli) -> None:
    cli("run-now", job.name)
    cli("run-now", job.name)  # forbid: the second is skipped
    text = cli("runs", job.name).output.splitlines()
    assert text[0].split() == [
        *("RUN", "ID", "TRIGGER", "STATUS", "ATTEMPTS", "SCHEDULED", "STARTED", "DURATION", "EXIT", "REASON")
    ]
    assert "SKIPPED" in text[1] and "STARTING" in text[2]
    data = json.loads(cli("runs", job.name, "--json", "--limit", "2").output)
    assert [r["status"] for r in data] == ["SKIPPED", "STARTING"]
    # The started run's one attempt, with its machine; a run recorded SKIPPED had none worth listing apart.
    [attempt] = data[1]["attempts"]
    assert attempt["number"] == 1 and attempt["instance_id"] == data[1]["instance_id"]


def test_unknown_job_is_one_line_listing_the_known_ones(job: Job, cli) -> None:
    result = cli("runs", "nightly")
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "Error: unknown job 'nightly': no config at SSM parameter /ec2batch/nightly/config; known jobs: daily-report"
    ]


def test_no_credentials_is_one_line_saying_how_to_give_them(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-central-1")
    result = CliRunner().invoke(main, ["jobs"])
    assert result.exit_code == 1
    assert result.output.startswith("Error: no AWS credentials found: set AWS_PROFILE")
    assert "Traceback" not in result.output


def test_logs_prints_every_line_across_pages(job: Job, cli) -> None:
    thread = agent_finishes(job, 0, [f"line {i}" for i in range(2500)])
    cli("run-now", job.name, "--wait")
    thread.join()
    result = cli("logs", job.name)
    assert result.output.splitlines() == [f"line {i}" for i in range(2500)]


def test_next_json_lists_utc_times(cli) -> None:
    result = cli(
        "next",
        "-e",
        "cron(30 2 * * ? *)",
        "--tz",
        "Europe/Berlin",
        "--after",
        "2026-03-27T12:00:00Z",
        "-n",
        "2",
        "--json",
    )
    assert json.loads(result.output) == ["2026-03-28T01:30:00Z", "2026-03-30T00:30:00Z"]


def test_next_of_a_job_reads_its_deployed_schedule(job: Job, cli) -> None:
    job.clients.scheduler.create_schedule_group(Name="ec2batch-daily-report")
    job.clients.scheduler.create_schedule(
        Name="ec2batch-daily-report",
        GroupName="ec2batch-daily-report",
        ScheduleExpression="cron(0 6 * * ? *)",
        ScheduleExpressionTimezone="Europe/Berlin",
        FlexibleTimeWindow={"Mode": "OFF"},
        Target={
            "Arn": "arn:aws:lambda:eu-central-1:123456789012:function:ec2batch-daily-report-launcher",
            "RoleArn": "arn:aws:iam::123456789012:role/ec2batch-daily-report-scheduler",
        },
    )
    result = cli("next", job.name, "--after", "2026-07-01T00:00:00Z", "-n", "1")
    assert result.output.strip() == "2026-07-01 04:00:00 UTC   2026-07-01 06:00:00 CEST (Europe/Berlin)"


def test_next_rejects_an_invalid_expression_with_its_reason(cli) -> None:
    result = cli("next", "-e", "cron(0 2 * * * *)")
    assert result.exit_code == 2  # bad input, like every refused value (docs/cli.md)
    assert "exactly one of day-of-month ('*') and day-of-week ('*') must be '?'" in result.output


def test_jobs_lists_deployed_jobs(job: Job, cli) -> None:
    assert cli("jobs").output == "daily-report\n"


def test_validate_names_bad_fields_and_passes_good_files(tmp_path, cli) -> None:
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"job": "daily-report", "image": "repo/img:1"}))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"job": "daily-report", "image": "repo/img:1", "strategy": "spot"}))
    assert cli("validate", str(good)).exit_code == 0
    result = CliRunner().invoke(main, ["validate", str(good), str(bad)])
    assert result.exit_code == 2
    assert "bad.json: invalid job config: config.strategy: 'spot' is not one of reuse, ephemeral" in result.output


@pytest.mark.parametrize("command", sorted(main.commands))
def test_every_command_has_help_and_is_documented(command: str) -> None:
    from pathlib import Path

    result = CliRunner().invoke(main, [command, "--help"])
    assert result.exit_code == 0
    assert f"ec2batch {command}" in Path(__file__).parents[2].joinpath("docs", "cli.md").read_text()


def test_run_at_in_plans_a_run_and_cancel_cancels_it(job: Job, cli) -> None:
    planned = json.loads(cli("run-at", job.name, "--in", "2h", "--json").output)
    assert planned["status"] == "PLANNED"
    assert "PLANNED" in cli("runs", job.name).output

    result = cli("cancel", job.name, planned["run_id"])

    assert result.output.strip() == f"run {planned['run_id']} CANCELLED"
    again = cli("cancel", job.name, planned["run_id"])  # idempotent: a retry of a cancel is no error
    assert again.exit_code == 0 and again.output.strip() == f"run {planned['run_id']} CANCELLED"


def test_run_at_refuses_a_time_without_offset(job: Job, cli) -> None:
    result = cli("run-at", job.name, "2026-11-24T14:02:30")
    assert result.exit_code == 2 and "has no UTC offset" in result.output


def test_cost_lists_billed_runs_and_ebs_only_since_the_volume_exists(job: Job, cli) -> None:
    first = json.loads(cli("run-now", job.name, "--json").output)
    ledger = Ledger(job.clients.dynamodb, job.config.names.ledger_table)
    ledger.transition(job.name, first["run_id"], SUCCEEDED, exit_code=0, billed_seconds=1800, cost_usd=0.05795)

    data = json.loads(cli("cost", job.name, "--json").output)

    assert [(r["billed_seconds"], r["cost_usd"]) for r in data["runs"]] == [(1800, 0.05795)]
    assert data["runs_usd"] == 0.05795
    assert data["stopped_hours"] == 0.0  # the volume was made moments ago, not 30 days ago
    assert data["total_usd"] == pytest.approx(0.05795, abs=1e-4)


def test_status_shows_config_instance_and_latest_run(job: Job, cli) -> None:
    started = json.loads(cli("run-now", job.name, "--json").output)
    lines = dict(line.split(":", 1) for line in cli("status", job.name).output.splitlines())
    assert lines["strategy"].strip() == "reuse"
    assert lines["active run"].strip() == started["run_id"]
    assert started["instance_id"] in lines["instances"]
    assert lines["latest run"].strip() == f"{started['run_id']} STARTING"


def test_runs_status_and_cost_show_each_attempt_of_a_retried_run(aws, cli) -> None:
    from ec2batch import attempts
    from ec2batch.ledger import FAILED, STARTING, iso, utcnow
    from tests.conftest import make_job

    job = make_job(aws, retry={"attempts": 2, "exit_codes": [75]}, starting_deadline_seconds=3600)
    ledger = Ledger(job.clients.dynamodb, job.config.names.ledger_table)
    cli("run-now", job.name)
    [run] = ledger.list_runs(job.name)
    run = ledger.transition(job.name, run.run_id, RUNNING, attempt=1)
    retried = attempts.end_attempt(
        job.clients, job.config, ledger, run, status=FAILED, cause="exit-code", exit_code=75, reason="exit code 75",
        ended_at=utcnow(), cost={"billed_seconds": 120, "cost_usd": 0.0034},
    )  # fmt: skip
    second = ledger.transition(
        job.name, run.run_id, STARTING, attempt=2, instance_id="i-0second", instance_type="m6i.large",
        start_requested_at=iso(utcnow()),
    )  # fmt: skip
    second = ledger.transition(job.name, run.run_id, RUNNING, attempt=2)
    attempts.end_attempt(
        job.clients, job.config, ledger, second, status=SUCCEEDED, cause=None, reason=None, exit_code=0,
        ended_at=utcnow(), cost={"billed_seconds": 300, "cost_usd": 0.008},
    )  # fmt: skip
    assert retried.attempt == 2

    table = cli("runs", job.name).output.splitlines()
    assert "SUCCEEDED  2 (on-demand FAILED, on-demand)" in table[1]
    listed = json.loads(cli("runs", job.name, "--json").output)[0]
    assert [(a["number"], a["status"], a.get("exit_code")) for a in listed["attempts"]] == [
        (1, FAILED, 75),
        (2, SUCCEEDED, 0),
    ]
    status = json.loads(cli("status", job.name, "--json").output)
    assert status["retry"].startswith("2 attempt(s), on start-failure, interruption")
    assert status["latest_attempts"][1] == "attempt 2: SUCCEEDED on i-0second m6i.large on-demand $0.0080"
    cost = json.loads(cli("cost", job.name, "--json").output)
    [row] = cost["runs"]
    assert (row["billed_seconds"], row["cost_usd"]) == (420, 0.0114)  # the run: both attempts
    assert [a["cost_usd"] for a in row["attempts"]] == [0.0034, 0.008]
    text = cli("cost", job.name).output
    assert "  attempt 1 on-demand" in text and "  attempt 2 on-demand" in text


def test_graph_prints_the_chain_upstream_first_and_refuses_a_cycle_naming_it(aws, cli, tmp_path) -> None:
    from ec2batch.config import parse_config, store_config

    for job, after in (("report", "transform"), ("extract", None), ("transform", "extract")):
        doc = {"job": job, "image": "img", "instance_types": ["m7i.large"], "after": [{"job": after}] if after else []}
        store_config(aws.ssm, parse_config(doc), tags=False)

    text = cli("graph").output.splitlines()
    assert [line.split()[0] for line in text] == ["extract", "transform", "report"]
    assert text[1].split() == ["transform", "after", "extract", "SUCCEEDED", "->", "report"]
    graph = json.loads(cli("graph", "--json").output)
    assert graph["jobs"][0] == {"job": "extract", "after": [], "downstream": ["transform"]}

    looped = tmp_path / "extract.json"
    looped.write_text(json.dumps({"job": "extract", "image": "img", "after": [{"job": "report"}]}))
    result = CliRunner().invoke(main, ["graph", "--file", str(looped)])
    assert result.exit_code == 2
    assert "a cycle: extract -> transform -> report -> extract" in result.output

    typo = tmp_path / "report.json"
    typo.write_text(json.dumps({"job": "report", "image": "img", "after": [{"job": "transfrom"}]}))
    result = CliRunner().invoke(main, ["graph", "--file", str(typo)])
    assert result.exit_code == 2
    assert "report: config.after[0].job: 'transfrom' is not a known job" in result.output


def test_run_now_with_downstream_asks_the_launcher_to_chain(job: Job, cli) -> None:
    result = json.loads(cli("run-now", job.name, "--with-downstream", "--json").output)
    run = Ledger(job.clients.dynamodb, job.config.names.ledger_table).require(job.name, result["run_id"])
    assert run.with_downstream is True
    plain = json.loads(cli("run-now", job.name, "--json").output)
    assert (
        Ledger(job.clients.dynamodb, job.config.names.ledger_table).require(job.name, plain["run_id"]).with_downstream
        is False
    )


def test_runs_shows_the_upstream_of_an_after_run(job: Job, cli) -> None:
    from ec2batch.ledger import Run

    ledger = Ledger(job.clients.dynamodb, job.config.names.ledger_table)
    upstream = "extract/20261124T020000.000Z-schedule"
    ledger.create_run(
        Run(job.name, "20261124T023140.007Z-after-a0c36709", "PENDING", "after", "2026-11-24T02:31:41.220Z",
            upstream=(upstream,), lineage=("extract",)),
        exclusive=False,
    )  # fmt: skip
    table = cli("runs", job.name).output
    assert "UPSTREAM" in table.splitlines()[0] and upstream in table
    [listed] = json.loads(cli("runs", job.name, "--json").output)
    assert (listed["upstream"], listed["lineage"]) == ([upstream], ["extract"])
