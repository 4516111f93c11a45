"""Commands about runs: run-now, status, runs, logs."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import click

from ..config import load_config
from ..cost import PriceTable
from ..errors import Ec2BatchError
from ..invoke import invoke_launcher
from ..jobs import find_instances, get_schedule
from ..launcher.events import TOKEN_REUSED
from ..ledger import Attempt, Ledger, Run, parse_time, utcnow
from ..names import JobNames, validate_job_name
from ..rightsizing import LAST_RUNS, Hint, hint
from ..runlogs import follow_stream, read_stream
from ..runview import summary
from ..shards import summary as shard_summary
from ..usage import format_bytes
from .context import Context, friendly_errors
from .params import RUN_ID, check_overrides, parse_command, parse_env

pass_ctx = click.make_pass_decorator(Context)


def job_argument(func: Any) -> Any:
    def check(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
        try:
            return validate_job_name(value)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from exc

    return click.argument("job", callback=check)(func)


def json_option(func: Any) -> Any:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")(func)


def ledger_for(ctx: Context, job: str) -> Ledger:
    return Ledger(ctx.clients.dynamodb, JobNames(job).ledger_table)


@click.command("run-now")
@job_argument
@click.option("--env", "env", multiple=True, metavar="NAME=VALUE", help="Add or override a variable (repeatable).")
@click.option("--command", "command", metavar="CMD", help='Override the command, e.g. --command "python -m report".')
@click.option(
    "--token",
    help="Idempotency token: the same token always means the same run (default: a new one per invocation).",
)
@click.option("--wait", is_flag=True, help="Wait for the run to end; exit 1 unless it SUCCEEDED.")
@click.option("--follow", is_flag=True, help="Print the job's log lines as they arrive (implies --wait).")
@click.option(
    "--timeout", type=click.IntRange(1), default=None, help="With --wait: give up waiting after this many seconds."
)
@click.option(
    "--with-downstream",
    is_flag=True,
    help="Let the jobs that run after JOB follow this run (`ec2batch graph`); without it they do not.",
)
@json_option
@pass_ctx
@friendly_errors
def run_now(
    ctx: Context,
    job: str,
    env: tuple[str, ...],
    command: str | None,
    token: str | None,
    wait: bool,
    follow: bool,
    timeout: int | None,
    with_downstream: bool,
    as_json: bool,
) -> None:
    """Trigger a run of JOB now, through the job's launcher (the schedule's own path).

    \b
    Example:
      ec2batch run-now daily-report --env REPORT_DAY=2026-11-23 --follow
      ec2batch run-now extract --with-downstream   # transform and report follow it, as after a schedule
    """
    overrides = parse_env(env)
    argv = parse_command(command)
    own_token = token is None
    # Always a token: a retried Invoke (botocore's, after a lost response) then finds this same run.
    token = token if token is not None else f"run-now-{uuid.uuid4().hex}"
    check_overrides(job, argv, overrides, token)
    event: dict[str, Any] = {"action": "run", "job": job, "token": token}
    if overrides:
        event["env"] = overrides
    if argv:
        event["command"] = list(argv)
    if with_downstream:
        event["with_downstream"] = True
    result = invoke_launcher(ctx.clients, job, event)
    if own_token and result.get("outcome") == "duplicate":
        result = _first_attempt(result)
    if as_json and not (wait or follow):
        click.echo(json.dumps(result))
    else:
        click.echo(_describe_result(result), err=as_json)
    if result.get("outcome") in ("skipped", "failed") or result.get("reason") == TOKEN_REUSED:
        raise SystemExit(1)
    if not (wait or follow):
        return
    run = _wait(ctx, job, result["run_id"], follow=follow, timeout=timeout)
    if as_json:
        click.echo(json.dumps(_run_json(run)))
    else:
        click.echo(summary(run))
    if run.status != "SUCCEEDED":
        raise SystemExit(1)


def _first_attempt(result: dict[str, Any]) -> dict[str, Any]:
    """Our own token can only have been seen by our own earlier attempt (a retry after a lost response):
    report what that attempt did, not "duplicate"."""
    status = result.get("status")
    outcome = {"SKIPPED": "skipped", "FAILED": "failed"}.get(str(status), "started")
    return {**result, "outcome": outcome}


def _describe_result(result: dict[str, Any]) -> str:
    outcome = result.get("outcome")
    text = f"run {result.get('run_id')}: {outcome}"
    if result.get("instance_id"):
        text += f" on {result['instance_id']}"
    text += f" ({result.get('status')})"
    if result.get("reason"):
        text += f": {result['reason']}"
    return text


def _wait(ctx: Context, job: str, run_id: str, *, follow: bool, timeout: int | None) -> Run:
    ledger = ledger_for(ctx, job)
    deadline = time.monotonic() + timeout if timeout else None
    state: dict[str, Any] = {"run": ledger.require(job, run_id), "status": None}

    def finished() -> bool:
        run = state["run"] = ledger.require(job, run_id)
        if run.status != state["status"]:
            state["status"] = run.status
            click.echo(f"[{_clock()}] {run.status}" + (f": {run.reason}" if run.reason else ""), err=True)
        if deadline and time.monotonic() > deadline:
            raise Ec2BatchError(f"gave up waiting after {timeout}s; the run goes on (ec2batch runs {job})")
        return run.terminal

    names = JobNames(job)
    if follow:
        for line in follow_stream(ctx.clients.logs, names.log_group, names.run_log_stream(run_id), finished):
            click.echo(line.message)
    else:
        while not finished():
            time.sleep(2)
    return state["run"]


def _clock() -> str:
    return utcnow().strftime("%H:%M:%S")


def _run_json(run: Run) -> dict[str, Any]:
    data = {k: v for k, v in run.__dict__.items() if v not in (None, (), {})}
    data["attempts"] = [{k: v for k, v in a.__dict__.items() if v is not None} for a in run.all_attempts()]
    data["placements"] = [{k: v for k, v in p.__dict__.items() if v is not None} for p in run.placements]
    if run.shard_count:
        data["shards"] = [{k: v for k, v in x.__dict__.items() if v is not None} for x in run.shards]
        data["shards_summary"] = shard_summary(run)
    data["duration_seconds"] = run.duration_seconds()
    if run.usage is not None:
        data["usage"] = run.usage.as_json()
    return data


@click.command("runs")
@job_argument
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True, help="How many runs.")
@json_option
@pass_ctx
@friendly_errors
def runs(ctx: Context, job: str, limit: int, as_json: bool) -> None:
    """List JOB's runs, newest first (planned runs included).

    \b
    Example:
      ec2batch runs daily-report --limit 5
    """
    load_config(ctx.clients.ssm, job)  # an unknown job is an error, not an empty table
    found = ledger_for(ctx, job).list_runs(job, limit=limit)
    if as_json:
        click.echo(json.dumps([_run_json(r) for r in found], indent=1))
        return
    if not found:
        click.echo(f"no runs of {job} yet")
        return
    click.echo(table(found))
    click.echo(f"\nright-sizing: {_hint(ctx, found[:LAST_RUNS]).text}")


def _hint(ctx: Context, runs: list[Run]) -> Hint:
    """From the runs given (newest first); a suggestion with its evidence, never acted on."""
    return hint(runs, PriceTable.load().catalogue(ctx.clients.region))


def table(runs: list[Run]) -> str:
    sharded = any(r.shard_count for r in runs)  # the SHARDS column only where a job has shards
    measured = any(r.usage for r in runs)  # PEAK MEMORY only where runs have usage (older ones have none)
    chained = any(r.upstream for r in runs)  # the UPSTREAM column only where a job runs after others
    header = ("RUN ID", "TRIGGER", "STATUS", "ATTEMPTS", *(("SHARDS",) if sharded else ()), "SCHEDULED")
    header = (*header, *(("UPSTREAM",) if chained else ()), "STARTED", "DURATION")
    header = (*header, *(("PEAK MEMORY", "CPU") if measured else ()), "EXIT", "REASON")
    rows = [header]
    for run in runs:
        duration = run.duration_seconds()
        rows.append(
            (
                run.run_id,
                run.trigger,
                run.status,
                _attempts_cell(run),
                *((shard_summary(run) if run.shard_count else "-",) if sharded else ()),
                _short(run.scheduled_at),
                *((", ".join(run.upstream) or "-",) if chained else ()),
                _short(run.container_started_at or run.instance_running_at or run.start_requested_at),
                f"{duration:.0f}s" if duration is not None else "-",
                *(_usage_cells(run) if measured else ()),
                str(run.exit_code) if run.exit_code is not None else "-",
                (run.reason or "")[:60],
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows)


def _usage_cells(run: Run) -> tuple[str, str]:
    """`14.2 GiB 89%` (of the machine, or of the container's limit: `...% of limit`), `avg/peak` CPU."""
    u = run.usage
    if u is None:
        return "-", "-"
    memory = f"{format_bytes(u.peak_memory_bytes)} {u.peak_memory_percent:.0f}%" + (" of limit" if u.limited else "")
    return memory + (" OOM" if u.oom_killed else ""), f"{u.average_cpu_percent:.0f}/{u.peak_cpu_percent:.0f}%"


def _attempt_line(a: Attempt) -> str:
    cost = f" ${a.cost_usd:.4f}" if a.cost_usd is not None else ""
    where = f"{a.instance_id or '-'} {a.instance_type or ''} {a.market or 'on-demand'}".strip()
    return f"attempt {a.number}: {a.status} on {where}{cost}" + (f" ({a.reason})" if a.reason else "")


def _attempts_cell(run: Run) -> str:
    """`1`, or for a retried run each attempt's market and ending: `2 (spot INTERRUPTED, on-demand)`."""
    attempts = run.all_attempts()
    if len(attempts) <= 1 and not run.market:
        return str(len(attempts) or 1)
    parts = [f"{a.market or 'on-demand'}{' ' + a.status if a.status != run.status else ''}" for a in attempts]
    return f"{len(attempts)} ({', '.join(parts)})"


def _short(stamp: str | None) -> str:
    return parse_time(stamp).strftime("%Y-%m-%d %H:%M:%S") if stamp else "-"


@click.command("status")
@job_argument
@json_option
@pass_ctx
@friendly_errors
def status(ctx: Context, job: str, as_json: bool) -> None:
    """Show JOB's config, schedule, machine and latest run."""
    clients = ctx.clients
    config = load_config(clients.ssm, job)
    ledger = ledger_for(ctx, job)
    recent = ledger.list_runs(job, limit=LAST_RUNS)  # the hint's evidence; the newest is the latest run
    latest = recent[:1]
    advice = _hint(ctx, recent)
    schedule = get_schedule(clients.scheduler, job)
    instances = find_instances(clients.ec2, job)
    info = {
        "job": job,
        "image": config.image,
        "strategy": config.strategy,
        "concurrency": config.concurrency,
        "schedule": f"{schedule.expression} ({schedule.timezone}, {schedule.state})" if schedule else None,
        "active_run": ledger.active_run_id(job),
        "instances": [f"{i['InstanceId']} {i['State']['Name']} {i.get('InstanceType', '')}" for i in instances],
        "market": config.market,
        "retry": f"{config.retry.attempts} attempt(s), on {', '.join(config.retry.on) or 'no cause'}"
        + (f" and exit codes {config.retry.to_document()['exit_codes']}" if config.retry.exit_codes else ""),
        "latest_run": f"{latest[0].run_id} {latest[0].status}" if latest else None,
        "latest_attempts": [_attempt_line(a) for a in latest[0].all_attempts()] if latest else [],
        "shards": config.shards,
        "latest_shards": shard_summary(latest[0]) if latest and latest[0].shard_count else None,
        "latest_usage": latest[0].usage.describe() if latest and latest[0].usage else None,
        "right_sizing": advice.text,
    }
    if as_json:
        usage = latest[0].usage.as_json() if latest and latest[0].usage else None
        click.echo(json.dumps({**info, "latest_usage": usage, "right_sizing": advice.as_json()}, indent=1))
        return
    for key, value in info.items():
        if isinstance(value, list):
            value = ", ".join(value) or "none"
        click.echo(f"{key.replace('_', ' ') + ':':<13} {value if value is not None else 'none'}")


@click.command("logs")
@job_argument
@click.argument("run_id", required=False, type=RUN_ID)
@click.option("--follow", "-f", is_flag=True, help="Keep printing new lines until the run ends.")
@click.option("--agent", is_flag=True, help="Show the agent's own log (pull, start, power-off) instead.")
@click.option("--shard", type=click.IntRange(0), default=None, help="A sharded run: this shard's log (0-based).")
@pass_ctx
@friendly_errors
def logs(ctx: Context, job: str, run_id: str | None, follow: bool, agent: bool, shard: int | None) -> None:
    """Print a run's log lines from CloudWatch (the latest run if RUN_ID is left out).

    \b
    Example:
      ec2batch logs daily-report --follow
    """
    ledger = ledger_for(ctx, job)
    if run_id is None:
        latest = [r for r in ledger.list_runs(job, limit=10) if r.status not in ("PLANNED", "SKIPPED")]
        if not latest:
            raise Ec2BatchError(f"{job} has no run with logs yet")
        run_id = latest[0].run_id
    else:
        ledger.require(job, run_id)
    names = JobNames(job)
    if shard is not None:
        _shard_logs(ctx, ledger.require(job, run_id), shard)
        return
    stream = names.agent_log_stream(run_id) if agent else names.run_log_stream(run_id)
    if follow:
        for line in follow_stream(
            ctx.clients.logs, names.log_group, stream, lambda: ledger.require(job, run_id).terminal
        ):
            click.echo(line.message)
        return
    lines, _ = read_stream(ctx.clients.logs, names.log_group, stream)
    for line in lines:
        click.echo(line.message)


# Where AWS Batch writes a child's output when its job definition names no group (moto always does).
BATCH_DEFAULT_LOG_GROUP = "/aws/batch/job"


def _shard_logs(ctx: Context, run: Run, index: int) -> None:
    if not run.shard_count:
        raise Ec2BatchError(f"run {run.run_id} has no shards: leave out --shard")
    if index >= run.shard_count:
        raise Ec2BatchError(f"--shard {index}: run {run.run_id} has shards 0 to {run.shard_count - 1}")
    found = [s for s in run.shards if s.index == index]
    if not found or not found[0].log_stream:
        raise Ec2BatchError(f"shard {index} of run {run.run_id} has no log stream yet (it has not started)")
    stream = found[0].log_stream
    groups = (JobNames(run.job).log_group, BATCH_DEFAULT_LOG_GROUP)
    for group in groups:
        lines, _ = read_stream(ctx.clients.logs, group, stream)  # a stream that is not there reads as empty
        if lines:
            for line in lines:
                click.echo(line.message)
            return
    raise Ec2BatchError(f"shard {index}: log stream {stream} has no lines in {' or '.join(groups)}")


COMMANDS = [run_now, status, runs, logs]
