"""Usage on the run, its metrics (EMF and what CloudWatch extracts from it), the right-sizing hint, the report."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from ec2batch.cost import INSTANCE_SIZES, PriceTable, catalogue_document
from ec2batch.ledger import FAILED, SUCCEEDED, Ledger, Run, iso, run_from_item, run_to_item, scheduled_run_id
from ec2batch.local.emf_extractor import EmfExtractor
from ec2batch.metrics import METRIC_NAMES, emf_document, figures, metric_data_from_emf
from ec2batch.report import render
from ec2batch.rightsizing import hint
from ec2batch.usage import GIB, Usage
from tests.conftest import Job

T0 = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
CATALOGUE = PriceTable.load().catalogue("us-east-1")


def usage(peak_gib: float, *, machine_gib: float = 16, oom: bool = False, cpu: float = 50.0) -> Usage:
    return Usage(int(peak_gib * GIB), int(machine_gib * GIB), False, 4.0, cpu / 2, cpu, 12, 5.0, oom)


def a_run(day: int, peak_gib: float | None, *, instance_type: str = "m7i.xlarge", **changes) -> Run:
    scheduled = T0 + timedelta(days=day)
    run = Run(
        job="daily-report",
        run_id=scheduled_run_id(scheduled),
        status=SUCCEEDED,
        trigger="schedule",
        triggered_at=iso(scheduled),
        scheduled_at=iso(scheduled),
        container_started_at=iso(scheduled + timedelta(seconds=42)),
        ended_at=iso(scheduled + timedelta(seconds=42 + 600)),
        instance_type=instance_type,
        exit_code=0,
        cost_usd=0.0336,
        usage=usage(peak_gib) if peak_gib is not None else None,
    )
    return replace(run, **changes)


# ---------------------------------------------------------------- the ledger
def test_usage_is_stored_on_the_run_and_an_old_run_without_it_still_reads() -> None:
    run = a_run(0, 14.2)
    assert run_from_item(run_to_item(run)) == run
    old = run_to_item(replace(run, usage=None))
    assert "usage" not in old and run_from_item(old).usage is None


# ---------------------------------------------------------------- metrics
def test_an_attempts_figures_become_one_emf_line_that_cloudwatch_reads_back() -> None:
    run = a_run(0, 8.0)
    values = figures(run, SUCCEEDED, run.usage, run.cost_usd)
    assert values == {
        "Runs": 1.0,
        "RunDuration": 600.0,
        "StartLag": 42.0,
        "PeakMemoryPercent": 50.0,
        "PeakCpuPercent": 50.0,
        "Cost": 0.0336,
    }
    assert set(values) == METRIC_NAMES
    line = json.dumps(emf_document("daily-report", run.run_id, SUCCEEDED, values, T0))
    data = metric_data_from_emf(line)
    assert {ns for ns, _ in data} == {"ec2batch/daily-report"}
    by_name = {d["MetricName"]: d for _, d in data}
    assert by_name["PeakMemoryPercent"]["Value"] == 50.0 and by_name["PeakMemoryPercent"]["Unit"] == "Percent"
    assert by_name["PeakMemoryPercent"]["Dimensions"] == [{"Name": "job", "Value": "daily-report"}]
    assert by_name["Runs"]["Dimensions"] == [
        {"Name": "job", "Value": "daily-report"},
        {"Name": "outcome", "Value": SUCCEEDED},
    ]
    assert metric_data_from_emf('{"msg": "not EMF"}') == [] and metric_data_from_emf("plain text") == []


def test_a_run_without_usage_or_container_start_publishes_only_what_is_known() -> None:
    run = a_run(0, None, container_started_at=None, cost_usd=None, status=FAILED)
    assert figures(run, FAILED, None, None) == {"Runs": 1.0}


def test_the_local_extractor_puts_the_agents_emf_lines_into_cloudwatch(job: Job) -> None:
    logs, names = job.clients.logs, job.config.names
    run = a_run(0, 12.0)
    stream = names.agent_log_stream(run.run_id)
    logs.create_log_stream(logGroupName=names.log_group, logStreamName=stream)
    now = int(time.time() * 1000)
    values = figures(run, SUCCEEDED, run.usage, run.cost_usd)
    emf = json.dumps(emf_document(job.name, run.run_id, SUCCEEDED, values, datetime.now(UTC)))
    events = [{"timestamp": now, "message": '{"msg": "run claimed"}'}, {"timestamp": now + 1, "message": emf}]
    logs.put_log_events(logGroupName=names.log_group, logStreamName=stream, logEvents=events)
    extractor = EmfExtractor(job.clients)
    assert extractor.tick() == 6
    reads: list[str] = []
    logs.meta.events.register("before-call.logs.GetLogEvents", lambda **kwargs: reads.append("read"))
    assert extractor.tick() == 0  # each line once
    assert reads == []  # a stream that took in nothing since the last look is not read again
    logs.put_log_events(
        logGroupName=names.log_group, logStreamName=stream, logEvents=[{"timestamp": now + 2, "message": emf}]
    )
    assert extractor.tick() == 6 and reads == ["read"]  # a line written later is still seen, once
    answer = job.clients.cloudwatch.get_metric_data(
        MetricDataQueries=[
            {
                "Id": "memory",
                "MetricStat": {
                    "Metric": {
                        "Namespace": names.metrics_namespace,
                        "MetricName": "PeakMemoryPercent",
                        "Dimensions": [{"Name": "job", "Value": job.name}],
                    },
                    "Period": 60,
                    "Stat": "Maximum",
                },
            }
        ],
        StartTime=datetime.now(UTC) - timedelta(minutes=5),
        EndTime=datetime.now(UTC) + timedelta(minutes=1),
    )
    assert answer["MetricDataResults"][0]["Values"] == [75.0]


# ---------------------------------------------------------------- the hint
def test_a_machine_that_is_too_small_gets_the_next_type_with_more_memory() -> None:
    runs = [a_run(d, p) for d, p in enumerate([11.0, 12.5, 14.2, 13.0])]
    found = hint(runs, CATALOGUE)
    assert found.verdict == "too-small" and found.suggestion == "r7i.xlarge"
    assert (
        found.text
        == "peak 14.2 of 16 GiB (89 %) on m7i.xlarge over the last 4 runs: r7i.xlarge has 32 GiB for +$0.06/h"
    )
    assert found.as_json()["usd_per_hour_change"] == pytest.approx(0.063)


def test_a_machine_that_is_too_big_gets_a_cheaper_type_that_still_holds_the_peak() -> None:
    found = hint([a_run(0, 1.1), a_run(1, 0.9)], CATALOGUE)
    assert found.verdict == "too-big" and found.suggestion == "c7i.large"
    assert found.text.startswith("peak 1.1 of 16 GiB (7 %) on m7i.xlarge over the last 2 runs: c7i.large would do")
    assert "\u2212$0.11/h" in found.text


def test_an_oom_kill_is_too_small_whatever_the_peak_and_fitting_runs_say_so() -> None:
    oom = a_run(1, 7.0, usage=usage(7.0, oom=True))
    assert hint([a_run(0, 6.0), oom], CATALOGUE).verdict == "too-small"
    fits = hint([a_run(0, 9.0)], CATALOGUE)
    assert (fits.verdict, fits.text) == (
        "fits",
        "peak 9.0 of 16 GiB (56 %) on m7i.xlarge over the last 1 run: m7i.xlarge fits",
    )


def test_only_the_newest_type_counts_and_no_usage_means_no_hint() -> None:
    runs = [a_run(0, 15.0, instance_type="m7i.large"), a_run(1, 9.0)]
    assert hint(runs, CATALOGUE).runs == 1
    assert hint([a_run(0, None)], CATALOGUE).verdict == "unknown"
    assert "not in the instance catalogue" in hint([a_run(0, 3.0, instance_type="x9.huge")], CATALOGUE).text


def test_the_catalogue_sizes_every_priced_type_and_terraform_has_its_copy() -> None:
    for region, prices in PriceTable.load().prices.items():
        on_demand = {name for name in prices if "/" not in name and name != "ebs_gp3_gb_month"}
        assert on_demand == set(INSTANCE_SIZES), region
    from pathlib import Path

    copy = Path(__file__).resolve().parents[2] / "terraform/modules/scheduled-job/instance_catalogue.json"
    assert json.loads(copy.read_text()) == catalogue_document(), (
        "regenerate it: python -c 'import json; from ec2batch.cost import catalogue_document as c; "
        "print(json.dumps(c(), indent=2, sort_keys=True))' > terraform/modules/scheduled-job/instance_catalogue.json"
    )


# ---------------------------------------------------------------- the report
def test_the_report_has_every_chart_and_run_and_loads_nothing() -> None:
    runs = [a_run(d, 9.0 + d % 3) for d in range(5)]
    runs.append(
        a_run(5, 15.9, status=FAILED, exit_code=137, reason="out of memory (OOM killed)", usage=usage(15.9, oom=True))
    )
    runs.append(a_run(6, None))  # recorded before usage existed: still a row
    page = render("daily-report", runs, hint(runs, CATALOGUE), since=None, generated_at=T0)
    assert page.count('<figure class="chart">') == 6
    assert page.count("<tr class=") == 7 and page.count('<tr class="oom">') == 1
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "") and "https://" not in page
    assert "r7i.xlarge has 32 GiB" in page


def test_report_cli_writes_the_page_for_the_days_asked(job: Job, tmp_path) -> None:
    from click.testing import CliRunner

    from ec2batch.cli import main

    ledger = Ledger(job.clients.dynamodb, job.config.names.ledger_table)
    for day in range(4):
        ledger.record_terminal_at_creation(a_run(day, 4.0, job=job.name))
    out = tmp_path / "r.html"
    result = CliRunner().invoke(main, ["report", job.name, "--since", "2026-11-26", "--html", str(out)])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"{out}: 2 runs of {job.name} since 2026-11-26"
    assert out.read_text().count("<tr class=") == 2
    missing = CliRunner().invoke(main, ["report", "no-such-job", "--html", str(out)])
    assert missing.exit_code == 1 and "no-such-job" in missing.output


def test_status_and_runs_show_the_usage_and_the_hint_and_carry_them_in_json(job: Job) -> None:
    from click.testing import CliRunner

    from ec2batch.cli import main

    ledger = Ledger(job.clients.dynamodb, job.config.names.ledger_table)
    ledger.record_terminal_at_creation(a_run(0, None, job=job.name))  # from before usage existed
    for day, peak in ((1, 13.0), (2, 14.2)):
        ledger.record_terminal_at_creation(a_run(day, peak, job=job.name))
    cli = CliRunner()
    text = cli.invoke(main, ["runs", job.name], catch_exceptions=False).output.splitlines()
    assert "PEAK MEMORY" in text[0] and "14.2 GiB 89%" in text[1] and text[3].split()[-2:] == ["-", "0"]
    assert text[-1] == (
        "right-sizing: peak 14.2 of 16 GiB (89 %) on m7i.xlarge over the last 2 runs: "
        "r7i.xlarge has 32 GiB for +$0.09/h"
    )
    rows = json.loads(cli.invoke(main, ["runs", job.name, "--json"], catch_exceptions=False).output)
    assert rows[0]["usage"]["peak_memory_percent"] == 88.7 and "usage" not in rows[2]
    status = cli.invoke(main, ["status", job.name], catch_exceptions=False).output
    assert "latest usage: peak 14.2 GiB of 16.0 GiB machine (88.7 %)" in status
    assert "right sizing: peak 14.2 of 16 GiB (89 %)" in status
    info = json.loads(cli.invoke(main, ["status", job.name, "--json"], catch_exceptions=False).output)
    assert info["latest_usage"]["peak_memory_bytes"] == int(14.2 * GIB)
    assert info["right_sizing"]["verdict"] == "too-small" and info["right_sizing"]["suggestion"] == "r7i.xlarge"
