"""`ec2batch report`: a job's runs as one self-contained HTML page (docs/metrics.md#the-html-report)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click

from ..config import load_config
from ..cost import PriceTable
from ..ledger import utcnow
from ..report import render
from ..rightsizing import hint
from .context import Context, friendly_errors
from .run_commands import job_argument, ledger_for

pass_ctx = click.make_pass_decorator(Context)


@click.command("report")
@job_argument
@click.option(
    "--since",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=None,
    help="Only runs from this day on (UTC, YYYY-MM-DD); default: every run in the ledger.",
)
@click.option(
    "--html",
    "html_file",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    required=True,
    help="Write the page here (one file: charts and style inline, no network).",
)
@pass_ctx
@friendly_errors
def report(ctx: Context, job: str, since: datetime | None, html_file: Path) -> None:
    """Write an HTML report of JOB's runs: durations, start lag, memory and CPU peaks, cost, outcomes, the table.

    \b
    Example:
      ec2batch report daily-report --since 2026-11-01 --html report.html
    """
    load_config(ctx.clients.ssm, job)  # an unknown job is an error, not an empty page
    now = utcnow()
    start = since.replace(tzinfo=UTC) if since else datetime(2000, 1, 1, tzinfo=UTC)
    runs = ledger_for(ctx, job).runs_between(job, start, now)
    advice = hint(runs, PriceTable.load().catalogue(ctx.clients.region))
    html_file.write_text(render(job, runs, advice, since=since and start, generated_at=now), encoding="utf-8")
    click.echo(f"{html_file}: {len(runs)} runs of {job}" + (f" since {start.date()}" if since else ""))


COMMANDS = [report]
