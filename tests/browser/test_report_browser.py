"""The HTML report in a real browser: Debian's Chromium, headless, over the DevTools protocol (a pipe).

A job with 20 runs (16 succeeded, 3 failed, 1 OOM killed) in the ledger of in-process moto; `ec2batch report
JOB --html FILE` writes the page; Chromium opens it from file:// and the test asserts what a person would
see: no console error, no request leaving the file, six charts with their bars drawn at a visible size, the
table with every run, the OOM run marked. The screenshot is kept in `.cache/artifacts/report.png`.

Without Chromium this suite fails, loudly: `make test-browser` installs it (`apt-get install chromium`).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from ec2batch.cli import main
from ec2batch.ledger import FAILED, SUCCEEDED, Ledger, Run, iso, scheduled_run_id
from ec2batch.usage import GIB, Usage
from tests.browser.chromium import Chromium, find_binary
from tests.conftest import Job

ARTIFACTS = Path(__file__).resolve().parents[2] / ".cache" / "artifacts"
DAY0 = datetime(2026, 11, 1, 2, 0, tzinfo=UTC)


def twenty_runs(job: str) -> list[Run]:
    runs = []
    for day in range(20):
        scheduled = DAY0 + timedelta(days=day)
        started = scheduled + timedelta(seconds=40 + day % 5 * 7)
        ended = started + timedelta(minutes=20 + day % 7 * 3)
        status, exit_code, reason, oom = SUCCEEDED, 0, None, False
        if day in (4, 11, 17):
            status, exit_code, reason = FAILED, 2, "exit code 2"
        if day == 15:
            status, exit_code, reason, oom = FAILED, 137, "out of memory (OOM killed)", True
        peak = int((15.9 if oom else 9.0 + day % 6) * GIB)
        usage = Usage(peak, 16 * GIB, False, 4.0, 35.0 + day % 4 * 10, 60.0 + day % 5 * 8, 240, 5.0, oom)
        runs.append(
            Run(
                job=job,
                run_id=scheduled_run_id(scheduled),
                status=status,
                trigger="schedule",
                triggered_at=iso(scheduled),
                scheduled_at=iso(scheduled),
                instance_running_at=iso(started - timedelta(seconds=8)),
                container_started_at=iso(started),
                ended_at=iso(ended),
                instance_id=f"i-{day:017x}",
                instance_type="m7i.xlarge",
                exit_code=exit_code,
                reason=reason,
                cost_usd=round((ended - started).total_seconds() / 3600 * 0.2318, 6),
                usage=usage,
            )
        )
    return runs


@pytest.fixture(scope="module")
def chromium() -> str:
    binary = find_binary()
    if binary is None:
        pytest.fail(
            "no Chromium here: run `make test-browser` (it installs Debian's chromium) or apt-get install chromium"
        )
    return binary


def test_the_report_of_twenty_runs_opens_in_chromium_with_its_charts_and_table(
    job: Job, chromium: str, tmp_path: Path
) -> None:
    ledger = Ledger(job.clients.dynamodb, job.config.names.ledger_table)
    for run in twenty_runs(job.name):
        ledger.record_terminal_at_creation(run)
    page_file = tmp_path / "report.html"
    result = CliRunner().invoke(
        main, ["report", job.name, "--since", "2026-10-01", "--html", str(page_file)], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    assert "20 runs" in result.output

    browser = Chromium(chromium, tmp_path / "profile")
    try:
        page, session = browser.open(page_file.as_uri())
        seen = browser.evaluate(
            session,
            """JSON.stringify({
              charts: document.querySelectorAll("figure.chart svg").length,
              drawn: Array.from(document.querySelectorAll("figure.chart svg")).map(s =>
                Array.from(s.querySelectorAll("rect.bar")).filter(r => r.getBoundingClientRect().height >= 1).length),
              chartWidth: document.querySelector("figure.chart svg").getBoundingClientRect().width,
              rows: document.querySelectorAll("#runs tbody tr").length,
              oomRows: document.querySelectorAll("#runs tbody tr.oom").length,
              failedRows: document.querySelectorAll("#runs tbody tr.failed").length,
              hint: document.querySelector(".hint").textContent,
              title: document.title,
            })""",
        )
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shot = browser.screenshot(session, ARTIFACTS / "report.png")
        # Sorting by a column is the page's one script: it must run without an error too.
        browser.evaluate(session, 'document.querySelectorAll("#runs th")[4].click(); "ok"')
        browser.drain(0.5)
        late_errors = [e for e in browser._events if e.get("method") == "Runtime.exceptionThrown"]
    finally:
        browser.close()

    figures = json.loads(seen)
    assert page.errors() == [] and late_errors == []
    assert [u for u in page.requests if not u.startswith(("file:", "data:"))] == []  # self-contained
    assert figures["charts"] == 6
    # duration, start lag, memory, CPU, cost: one bar per run; outcomes: SUCCEEDED, FAILED and OOM.
    assert figures["drawn"] == [20, 20, 20, 20, 20, 3]
    assert figures["chartWidth"] > 300
    assert (figures["rows"], figures["oomRows"], figures["failedRows"]) == (20, 1, 3)
    assert "r7i.xlarge has 32 GiB" in figures["hint"]  # 15.9 of 16 GiB on m7i.xlarge, an OOM kill among them
    assert figures["title"] == f"ec2batch report: {job.name}"
    assert shot.stat().st_size > 20_000 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_console_check_catches_an_error(chromium: str, tmp_path: Path) -> None:
    """The check above could pass by never seeing anything: a page with an error must fail it."""
    bad = tmp_path / "bad.html"
    bad.write_text("<!DOCTYPE html><title>x</title><script>console.error('boom'); undefined_call();</script>")
    browser = Chromium(chromium, tmp_path / "profile")
    try:
        page, _ = browser.open(bad.as_uri())
    finally:
        browser.close()
    errors = page.errors()
    assert any("boom" in e for e in errors) and any("undefined_call" in e for e in errors), errors
