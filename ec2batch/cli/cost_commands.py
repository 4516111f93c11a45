"""`ec2batch cost`: what a job's runs cost, and `cost compare` for timed-event designs."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import click

from .. import cost as costs
from ..config import load_config
from ..jobs import find_instances
from ..ledger import Attempt, Ledger, parse_time, utcnow
from .context import Context, friendly_errors
from .params import ISO_TIME
from .run_commands import job_argument

pass_ctx = click.make_pass_decorator(Context)


class CostGroup(click.Group):
    """`cost JOB` and `cost compare ...` side by side: anything that is not a subcommand is a job."""

    def resolve_command(self, ctx: click.Context, args: list[str]) -> Any:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["job", *args]
        return super().resolve_command(ctx, args)


@click.group("cost", cls=CostGroup)
def cost() -> None:
    """What JOB's runs cost (`cost JOB`), or compare designs for timed events (`cost compare`).

    \b
    Examples:
      ec2batch cost daily-report --since 2026-11-01
      ec2batch cost compare --events-per-hour 120 --work-ms 200 --memory-mb 128 --due-second 30
    """


def _price_table(_ctx: click.Context, _param: click.Parameter, path: str | None) -> costs.PriceTable:
    """The price table, read while the options are checked: a bad file is bad input (exit 2)."""
    try:
        return costs.PriceTable.load(path)
    except costs.PriceError as exc:
        raise click.BadParameter(str(exc)) from exc


@cost.command("job", hidden=True)
@job_argument
@click.option(
    "--since", type=ISO_TIME, help="Only runs triggered at or after this ISO 8601 time (default: 30 days ago)."
)
@click.option(
    "--prices",
    type=click.Path(exists=True, dir_okay=False),
    callback=_price_table,
    help="JSON price file to override defaults.",
)
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
@friendly_errors
def job_cost(ctx: Context, job: str, since: datetime | None, prices: costs.PriceTable, as_json: bool) -> None:
    clients = ctx.clients
    config = load_config(clients.ssm, job)
    table = prices
    start = since or utcnow() - timedelta(days=30)
    runs = [
        r
        for r in Ledger(clients.dynamodb, config.names.ledger_table).list_runs(job, limit=10000)
        if parse_time(r.triggered_at) >= start and (r.billed_seconds or r.cost_usd is not None)
    ]
    rows = [
        {
            "run_id": r.run_id,
            "status": r.status,
            "instance_type": r.instance_type,
            "billed_seconds": r.billed_seconds,
            "cost_usd": r.cost_usd or 0.0,
            "attempts": [_attempt_cost(a) for a in r.all_attempts()],
            # Batch reports no per-job cost: a sharded run's is estimated from its shards' running time.
            "estimate": bool(r.shard_count),
        }
        for r in runs
    ]
    total = sum(row["cost_usd"] for row in rows)
    ebs = _ebs_while_stopped(clients, config, table, start, sum(r.billed_seconds or 0 for r in runs))
    result = {
        "job": job,
        "since": start.isoformat(),
        "runs": rows,
        "runs_usd": round(total, 6),
        **ebs,
        "total_usd": round(total + ebs.get("ebs_usd", 0.0), 6),
    }
    if as_json:
        click.echo(json.dumps(result, indent=1))
        return
    click.echo(f"{'RUN ID':<38} {'STATUS':<10} {'TYPE':<12} {'BILLED':>8} {'USD':>10}")
    for row in rows:
        billed = f"{row['billed_seconds']:>7}s" if row["billed_seconds"] else f"{'-':>8}"
        mark = " (estimate: Batch shards)" if row["estimate"] else ""
        click.echo(
            f"{row['run_id']:<38} {row['status']:<10} {row['instance_type'] or '-':<12} "
            f"{billed} {row['cost_usd']:>10.4f}{mark}"
        )
        if len(row["attempts"]) > 1:  # a retried run: what each attempt cost
            for a in row["attempts"]:
                label = f"  attempt {a['number']} {a['market']}"
                click.echo(
                    f"{label:<38} {a['status']:<10} {a['instance_type'] or '-':<12} "
                    f"{a['billed_seconds'] or 0:>7}s {a['cost_usd'] or 0.0:>10.4f}"
                )
    click.echo(f"{'runs':<70} {total:>10.4f}")
    if ebs:
        click.echo(
            f"{'EBS while stopped (' + str(ebs['ebs_gb']) + ' GB gp3, ' + str(ebs['stopped_hours']) + ' h)':<70}"
            f" {ebs['ebs_usd']:>10.4f}"
        )
    click.echo(f"{'total since ' + start.strftime('%Y-%m-%d'):<70} {result['total_usd']:>10.4f}")


def _ebs_while_stopped(clients: Any, config: Any, table: costs.PriceTable, start: Any, run_seconds: int) -> dict:
    if config.strategy != "reuse":
        return {}
    volumes = [
        m["Ebs"]["VolumeId"]
        for i in find_instances(clients.ec2, config.job)
        for m in i.get("BlockDeviceMappings", [])
        if "Ebs" in m
    ]
    if not volumes:
        return {}
    found = clients.ec2.describe_volumes(VolumeIds=volumes)["Volumes"]
    size = sum(v["Size"] for v in found)
    since = max([start, *(v["CreateTime"] for v in found)])  # a volume is billed from its creation
    hours = max(0.0, (utcnow() - since).total_seconds() - run_seconds) / 3600
    usd = size * table.gb_month(clients.region) * hours / costs.HOURS_PER_MONTH
    return {"ebs_gb": size, "stopped_hours": round(hours, 1), "ebs_usd": round(usd, 6)}


@cost.command("compare")
@click.option("--events-per-hour", type=click.IntRange(1), required=True, help="Timed events per hour (N).")
@click.option("--work-ms", type=click.IntRange(1), required=True, help="Work per event, in ms (W).")
@click.option(
    "--memory-mb", type=click.IntRange(128, 10240), default=128, show_default=True, help="Function memory (M)."
)
@click.option(
    "--due-second",
    type=click.IntRange(0, 59),
    default=30,
    show_default=True,
    help="Second of the minute the events are due (S).",
)
@click.option(
    "--assumptions",
    type=click.Choice(["published", "current"]),
    default="published",
    show_default=True,
    help="published: the widely cited comparison's accounting; current: today's billing rules.",
)
@click.option("--json", "as_json", is_flag=True)
def compare(
    events_per_hour: int, work_ms: int, memory_mb: int, due_second: int, assumptions: str, as_json: bool
) -> None:
    """Per-hour cost of four ways to act on N timed events an hour (cron, lambda-wait, step-functions, cron-sqs)."""
    scenario = costs.Scenario(events_per_hour, work_ms, memory_mb, due_second)
    result = costs.compare(scenario, assumptions)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "assumptions": assumptions,
                    "assumed": costs.ASSUMPTIONS[assumptions],
                    "strategies": {
                        name: {"usd_per_hour": costs.total(items), "items": [i.as_dict() for i in items]}
                        for name, items in result.items()
                    },
                },
                indent=1,
            )
        )
        return
    click.echo(
        f"{events_per_hour} events/hour, {work_ms} ms of work each at {memory_mb} MB, due at second "
        f"{due_second}; {assumptions} accounting"
    )
    for name, items in result.items():
        click.echo(f"\n{name}")
        for item in items:
            click.echo(f"  {item.name:<52} {item.quantity:>8g}/h x ${item.unit_usd:.10f} = ${item.usd:.8f}")
        click.echo(f"  {'total per hour':<52} {'':>32}${costs.total(items):.8f}")
    click.echo("\nassumed: " + "; ".join(costs.ASSUMPTIONS[assumptions]))


COMMANDS = [cost]


def _attempt_cost(attempt: Attempt) -> dict[str, Any]:
    return {
        "number": attempt.number,
        "status": attempt.status,
        "market": attempt.market or "on-demand",
        "instance_type": attempt.instance_type,
        "billed_seconds": attempt.billed_seconds,
        "cost_usd": attempt.cost_usd,
    }
