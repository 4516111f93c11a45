"""Commands about jobs: jobs, validate, names."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..config import parse_config_text
from ..errors import ConfigError
from ..jobs import list_jobs
from ..names import JobNames, validate_job_name
from .context import Context, friendly_errors

pass_ctx = click.make_pass_decorator(Context)


@click.command("jobs")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
@pass_ctx
@friendly_errors
def jobs(ctx: Context, as_json: bool) -> None:
    """List the jobs deployed in this account and region (configs under /ec2batch/ in SSM)."""
    found = list_jobs(ctx.clients.ssm)
    if as_json:
        click.echo(json.dumps(found))
    elif found:
        click.echo("\n".join(found))
    else:
        click.echo("no jobs deployed (no /ec2batch/<job>/config parameters in SSM)")


@click.command("validate")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
def validate(files: tuple[Path, ...]) -> None:
    """Check job config files against the schema; every bad field is named, one line per file.

    Exits 2 if any file is invalid (bad input, like a bad option).

    \b
    Example:
      ec2batch validate examples/daily-report.json
    """
    failed = False
    for path in files:
        try:
            config = parse_config_text(read_text(path), source=str(path))
        except ConfigError as exc:
            click.echo(f"{path}: {exc}", err=True)
            failed = True
            continue
        click.echo(
            f"{path}: OK ({config.job}: {config.strategy}, {config.concurrency}, "
            f"max runtime {config.max_runtime_seconds}s)"
        )
    if failed:
        raise SystemExit(2)


def read_text(path: Path) -> str:
    """The file as UTF-8 (what SSM and Terraform's jsonencode hold); anything else is named, not a traceback."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError([f"not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})"]) from exc


@click.command("names")
@click.argument("job")
def names(job: str) -> None:
    """Print every AWS name ec2batch derives for JOB, as JSON (what Terraform creates)."""
    try:
        validate_job_name(job)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    click.echo(json.dumps(JobNames(job).as_dict(), indent=1))


COMMANDS = [jobs, validate, names]
