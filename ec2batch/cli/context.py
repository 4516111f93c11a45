"""What every command shares: the context with AWS clients made once, and errors as one line."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

import click
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError, NoRegionError

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
