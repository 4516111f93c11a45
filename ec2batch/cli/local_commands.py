"""`ec2batch local ...`: run the whole product on this machine (moto_server, dockerd, a registry, Packer)."""

from __future__ import annotations

import json

import click

from .context import friendly_errors


def _stack():  # imported late: the local stack is not needed for talking to AWS
    from ..local.stack import Stack

    return Stack.default(progress=lambda message: click.echo(message, err=True))


@click.group("local")
def local() -> None:
    """The local stack: AWS APIs (moto_server), a Docker engine, a registry and instance containers.

    \b
    Example:
      sudo ec2batch local up && eval "$(ec2batch local env)" && ec2batch run-now daily-report --follow
    """


@local.command("up")
@friendly_errors
def up() -> None:
    """Install what is missing, start everything, build the images, deploy the example job."""
    result = _stack().up()
    click.echo(json.dumps(result, indent=1))


@local.command("down")
@friendly_errors
def down() -> None:
    """Halt instance containers and stop the emulators, moto_server, the registry and dockerd."""
    _stack().down()


@local.command("reset")
@friendly_errors
def reset() -> None:
    """Wipe all AWS state (runs, instances, logs) and deploy the example job again; images are kept."""
    _stack().reset()


@local.command("status")
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def status(as_json: bool) -> None:
    """What runs, where, on which ports; the jobs and their next fire times."""
    info = _stack().status()
    if as_json:
        click.echo(json.dumps(info, indent=1))
        return
    click.echo(f"stack folder: {info['stack_dir']}")
    for name, service in info["services"].items():
        state = f"running (pid {service['pid']})" if service["running"] else "stopped"
        click.echo(f"  {name:<10} {state:<22} {service['address']}")
    for job, details in info.get("jobs", {}).items():
        click.echo(f"job {job}: schedule {details['schedule'] or 'none'}, next fire {details['next_fire'] or '-'}")
    for instance in info.get("instances", []):
        click.echo(f"instance container {instance}")


@local.command("interrupt")
@click.argument("target")
@click.option(
    "--warning",
    "warning_seconds",
    type=click.FloatRange(min=0),
    default=120.0,
    show_default=True,
    help="Seconds from the notice to the reclaim (AWS gives 120).",
)
@click.option("--rebalance-only", is_flag=True, help="Serve only a rebalance recommendation; nothing is reclaimed.")
@friendly_errors
def interrupt(target: str, warning_seconds: float, rebalance_only: bool) -> None:
    """Interrupt an instance as EC2 does a Spot one: a notice in its metadata, then terminated after the warning.

    TARGET is an instance id, or a job name (its running instance).

    \b
    Example:
      ec2batch local interrupt daily-report --warning 30
    """
    from ..local.interrupt import interrupt as request_interrupt

    stack = _stack()
    click.echo(
        request_interrupt(
            stack.paths, stack.clients().ec2, target, warning_seconds=warning_seconds, rebalance_only=rebalance_only
        )
    )


@local.command("env")
def env() -> None:
    """Print `export` lines that point the CLI at the local stack: eval "$(ec2batch local env)"."""
    from ..local.paths import StackPaths, local_env

    for key, value in local_env(StackPaths.default()).items():
        click.echo(f"export {key}={value}")


COMMANDS = [local]
