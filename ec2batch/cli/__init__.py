"""The `ec2batch` command: a thin layer that parses, calls the library, and prints.

Every error a person can cause or fix is printed as one line (`Error: ...`) with exit code 1. Bad input (a
wrong option, argument or value) is one line naming it, with exit code 2, and nothing is read or written
before it is checked. A traceback means a bug.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, TextIO, cast

import click
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError, NoRegionError

from .. import jsonlog
from ..aws import Clients
from ..errors import Ec2BatchError, UnknownJob


class Context:
    """What every command gets: AWS clients made once, on first use."""

    def __init__(self, profile: str | None, region: str | None) -> None:
        self.profile = profile
        self.region = region
        self._clients: Clients | None = None

    @property
    def clients(self) -> Clients:
        if self._clients is None:
            import boto3

            self._clients = Clients(boto3.Session(profile_name=self.profile, region_name=self.region))
        return self._clients


def friendly_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn the errors a person can act on into one line."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except UnknownJob as exc:
            ctx = click.get_current_context().find_object(Context)
            raise click.ClickException(f"{exc}; {_known_jobs_hint(ctx)}") from exc
        except Ec2BatchError as exc:
            raise click.ClickException(str(exc)) from exc
        except NoCredentialsError as exc:
            raise click.ClickException(
                "no AWS credentials found: set AWS_PROFILE (or pass --profile), run `aws configure`, "
                "or export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
            ) from exc
        except NoRegionError as exc:
            raise click.ClickException("no AWS region set: pass --region or set AWS_REGION") from exc
        except EndpointConnectionError as exc:
            raise click.ClickException(
                f"cannot reach AWS at {exc.kwargs.get('endpoint_url')}: check AWS_ENDPOINT_URL "
                "(for the local stack: `ec2batch local status`)"
            ) from exc
        except ClientError as exc:
            error = exc.response.get("Error", {})
            raise click.ClickException(
                f"AWS refused {exc.operation_name}: {error.get('Code')}: {error.get('Message')}"
            ) from exc

    return wrapper


def _known_jobs_hint(ctx: Context | None) -> str:
    if ctx is None:
        return "run `ec2batch jobs` to list the known jobs"
    from ..jobs import list_jobs

    try:
        jobs = list_jobs(ctx.clients.ssm)
    except Exception:
        return "run `ec2batch jobs` to list the known jobs"
    return f"known jobs: {', '.join(jobs)}" if jobs else "no jobs are deployed in this account and region"


class OneLineUsageError(click.UsageError):
    """A usage error as one line (`Error: Invalid value for '--in': ...`), without click's usage block."""

    def show(self, file: Any = None) -> None:
        click.echo(f"Error: {self.format_message()}", file=file, err=file is None)


class Ec2BatchGroup(click.Group):
    """The `ec2batch` group: bad input anywhere below it is reported on one line (exit code 2)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except OneLineUsageError:
            raise
        except click.UsageError as exc:
            raise OneLineUsageError(exc.format_message(), exc.ctx) from exc


@click.group(cls=Ec2BatchGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--profile", envvar="AWS_PROFILE", help="AWS profile (default: the standard credential chain).")
@click.option("--region", envvar="AWS_REGION", help="AWS region (default: the profile's or AWS_DEFAULT_REGION).")
@click.version_option(package_name="ec2batch")
@click.pass_context
def main(ctx: click.Context, profile: str | None, region: str | None) -> None:
    """Scheduled container jobs on a dedicated EC2 instance that runs only while the job does.

    AWS_ENDPOINT_URL points every call elsewhere (the local stack sets it).
    """
    ctx.obj = Context(profile, region)
    _library_logs()


class _CurrentStderr:
    """Writes to whatever sys.stderr is at the time (a handler must not keep a stream that is gone)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def _library_logs() -> None:
    """The CLI speaks in its own lines; the library's JSON log lines (what the launcher and the agent send to
    CloudWatch) are off, so a warning never becomes a second line of an error. EC2BATCH_LOG=info (or debug,
    warning) shows them on stderr."""
    wanted = logging.getLevelName(os.environ.get("EC2BATCH_LOG", "").upper() or "OFF")
    level = wanted if isinstance(wanted, int) else logging.CRITICAL + 1
    jsonlog.configure(level=level, stream=cast(TextIO, _CurrentStderr()))


def _register() -> None:
    from . import cost, jobs, local, runs, schedules, timers

    for module in (runs, timers, schedules, jobs, cost, local):
        for command in module.COMMANDS:
            main.add_command(command)


_register()


def run() -> None:  # pragma: no cover - console entry point alias
    sys.exit(main())
