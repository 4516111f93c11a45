"""`ec2batch graph`: the jobs and what they run after, with the checks that need every job (unknown jobs, cycles)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..config import JobConfig, load_config, parse_config_text
from ..dependencies import Graph
from ..jobs import get_schedule, list_jobs
from .context import Context, friendly_errors
from .job_commands import read_text

pass_ctx = click.make_pass_decorator(Context)


@click.command("graph")
@click.option(
    "--file",
    "files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A job config about to be deployed: replaces the deployed job of its name (repeatable).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the graph as JSON.")
@pass_ctx
@friendly_errors
def graph(ctx: Context, files: tuple[Path, ...], as_json: bool) -> None:
    """Print the deployed jobs, upstream first, with what each runs after and what follows it.

    Refuses (exit 2, each problem named) an `after` that names no job, and cycles: run it before a deploy.

    \b
    Example:
      ec2batch graph
      ec2batch graph --file transform.json --json
    """
    configs = {job: load_config(ctx.clients.ssm, job) for job in list_jobs(ctx.clients.ssm)}
    for path in files:
        config = parse_config_text(read_text(path), source=str(path))
        configs[config.job] = config
    the_graph = Graph.of(configs)
    problems = the_graph.problems()
    if problems:
        for problem in problems:
            click.echo(problem, err=True)
        raise SystemExit(2)
    if as_json:
        click.echo(json.dumps(the_graph.as_dict(), indent=1))
        return
    if not configs:
        click.echo("no jobs deployed (no /ec2batch/<job>/config parameters in SSM)")
        return
    click.echo(text(the_graph, {job: _starts(ctx, config) for job, config in configs.items()}))


def _starts(ctx: Context, config: JobConfig) -> str:
    """What starts the job besides its upstream jobs: its schedule, if it has one."""
    schedule = get_schedule(ctx.clients.scheduler, config.job)
    return "(schedule)" if schedule is not None and schedule.state == "ENABLED" else ""


def text(the_graph: Graph, starts: dict[str, str]) -> str:
    rows = []
    for job in the_graph.order():
        after = ", ".join(f"{u} {s}" for u, s in the_graph.after[job])
        first = " ".join(x for x in (starts.get(job, ""), f"after {after}" if after else "") if x)
        downstream = ", ".join(the_graph.downstream(job))
        rows.append((job, first, f"-> {downstream}" if downstream else ""))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join("   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)


COMMANDS = [graph]
