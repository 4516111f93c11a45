"""The agent: from boot to power-off, on the job's machine.

    identity (IMDSv2) -> job and run id (instance tags) -> config (SSM) -> run (ledger)
    -> RUNNING -> dockerd -> ECR login -> pull (or reuse the cached image) -> secrets
    -> docker run (awslogs) -> wait, enforcing max runtime -> outcome -> notify -> power off

Whatever happens, the machine powers off at the end (unless the debug switch says otherwise), and the
outcome is recorded whenever the ledger can be reached. If this process is killed, systemd starts it
again; it then finds its run's container by label and waits for it instead of starting another.
"""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from ..aws import Clients
from ..config import JobConfig, load_config
from ..cost import run_cost
from ..errors import Ec2BatchError, TransitionRejected
from ..jsonlog import fields
from ..ledger import (
    FAILED,
    PENDING,
    RUNNING,
    SKIPPED,
    SUCCEEDED,
    TERMINAL,
    TIMED_OUT,
    Ledger,
    Run,
    iso,
    new_run_id,
    utcnow,
)
from ..names import TAG_JOB, TAG_RUN_ID, JobNames
from ..notify import notify
from . import container as engine
from .cwlogs import CloudWatchHandler
from .imds import Identity, Imds
from .secrets import Redactor, resolve_secrets

log = logging.getLogger("ec2batch.agent")

# A file whose presence keeps the machine up after the run, whatever the config says (for debugging an AMI).
KEEP_RUNNING_FLAG = Path("/etc/ec2batch/keep-running")


@dataclass
class Settings:
    """From the environment; on the local stack, the unit's optional EnvironmentFile sets them."""

    engine_timeout: float = 120.0
    awslogs_endpoint: str | None = None
    poweroff_command: list[str] = field(default_factory=lambda: ["systemctl", "poweroff", "--no-block"])
    keep_running_flag: Path = KEEP_RUNNING_FLAG

    @classmethod
    def from_environment(cls) -> Settings:
        command = os.environ.get("EC2BATCH_POWEROFF_COMMAND")
        return cls(
            engine_timeout=float(os.environ.get("EC2BATCH_ENGINE_TIMEOUT", "120")),
            awslogs_endpoint=os.environ.get("EC2BATCH_AWSLOGS_ENDPOINT") or None,
            poweroff_command=command.split() if command else cls().poweroff_command,
        )


class Agent:
    def __init__(
        self,
        settings: Settings,
        *,
        imds: Imds | None = None,
        make_clients: Callable[[str], Clients] = lambda region: Clients(region=region),
        make_docker: Callable[[], Any] | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.settings = settings
        self.imds = imds or Imds()
        self.make_clients = make_clients
        self.make_docker = make_docker or _docker_from_env
        self.clock = clock
        self.keep_running = False
        self.redact = Redactor()
        self.region = "us-east-1"

    # ---------------------------------------------------------------- entry point
    def run(self) -> int:
        """Do the run, then power off. Returns the process exit code (0: outcome recorded)."""
        code = 1
        try:
            code = self._run()
        except Exception as exc:
            log.exception("agent failed", extra=fields(error=self.redact(str(exc))))
        finally:
            self.power_off()
        return code

    def power_off(self) -> None:
        if self.keep_running or self.settings.keep_running_flag.exists():
            log.warning("debug switch on: the machine stays up; stop it yourself when done")
            return
        log.info("powering off", extra=fields(command=" ".join(self.settings.poweroff_command)))
        self._flush_logs()
        subprocess.run(self.settings.poweroff_command, check=False)

    # ---------------------------------------------------------------- the run
    def _run(self) -> int:
        identity = self.imds.identity()
        self.region = identity.region
        clients = self.make_clients(identity.region)
        job, tagged_run = self._tags(clients, identity)
        if job is None:
            log.error(
                "instance has no ec2batch:job tag: nothing to run", extra=fields(instance_id=identity.instance_id)
            )
            return 1
        ledger = Ledger(clients.dynamodb, JobNames(job).ledger_table, clock=self.clock)
        try:
            config = load_config(clients.ssm, job)
        except Ec2BatchError as exc:
            self._fail_unconfigured(ledger, job, tagged_run, identity, f"bad config: {exc}")
            return 1
        self.keep_running = config.keep_running_for_debug
        run = self._claim(ledger, config, tagged_run, identity)
        if run is None:
            return 0
        self._attach_cloudwatch(clients, config, run.run_id)
        log.info("run claimed", extra=fields(job=job, run_id=run.run_id, instance_id=identity.instance_id))
        try:
            final = self._execute(clients, ledger, config, run, identity)
        except Exception as exc:
            reason = self.redact(f"{type(exc).__name__}: {exc}" if not isinstance(exc, Ec2BatchError) else str(exc))
            log.error("run failed", extra=fields(run_id=run.run_id, reason=reason))
            final = self._finish(ledger, run, FAILED, reason=reason)
        if final is not None:
            notify(clients.sns, config, final)
        return 0

    def _tags(self, clients: Clients, identity: Identity) -> tuple[str | None, str | None]:
        response = clients.ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [identity.instance_id]}])
        tags = {t["Key"]: t["Value"] for t in response["Tags"]}
        return tags.get(TAG_JOB), tags.get(TAG_RUN_ID)

    def _claim(self, ledger: Ledger, config: JobConfig, run_id: str | None, identity: Identity) -> Run | None:
        """Move our run to RUNNING; a boot with no run waiting for it becomes a `boot` run, never nothing."""
        run = ledger.get(config.job, run_id) if run_id else None
        if run is not None and run.status == RUNNING and run.instance_id in (None, identity.instance_id):
            log.info("run already RUNNING: the agent restarted", extra=fields(run_id=run.run_id))
            return run
        if run is not None and run.status not in TERMINAL and run.status != RUNNING:
            try:
                return ledger.transition(
                    config.job,
                    run.run_id,
                    RUNNING,
                    instance_id=identity.instance_id,
                    instance_type=identity.instance_type,
                )
            except TransitionRejected as exc:
                log.warning("run moved on before the agent claimed it", extra=fields(error=str(exc)))
        return self._boot_run(ledger, config, run, identity)

    def _boot_run(self, ledger: Ledger, config: JobConfig, previous: Run | None, identity: Identity) -> Run | None:
        now = self.clock()
        why = (
            f"booted with no run waiting (tag points at {previous.run_id}, {previous.status})"
            if previous
            else "booted with no run waiting (no run id tag)"
        )
        run_id = new_run_id("boot", now)
        run = Run(
            job=config.job,
            run_id=run_id,
            status=PENDING,
            trigger="boot",
            triggered_at=iso(now),
            instance_id=identity.instance_id,
            instance_type=identity.instance_type,
        )
        if config.boot_without_run == "poweroff":
            skipped = Run(
                **{
                    **run.__dict__,
                    "status": SKIPPED,
                    "ended_at": iso(now),
                    "reason": f"{why}; boot_without_run is poweroff",
                }
            )
            ledger.record_terminal_at_creation(skipped)
            log.warning("no run waiting: recorded and powering off", extra=fields(run_id=run_id, reason=why))
            return None
        created = ledger.create_run(run, exclusive=config.concurrency == "forbid")
        if created.kind != "created":
            log.warning("boot run not started", extra=fields(run_id=run.run_id, reason=created.run.reason))
            return None
        log.info("no run waiting: running the job as a boot run", extra=fields(run_id=run.run_id, reason=why))
        return ledger.transition(config.job, run.run_id, RUNNING)

    def _execute(self, clients: Clients, ledger: Ledger, config: JobConfig, run: Run, identity: Identity) -> Run | None:
        docker = engine.wait_for_engine(self.make_docker, self.settings.engine_timeout)
        existing = engine.find_run_container(docker, run.run_id)
        if existing is None:
            engine.remove_old_containers(docker, config.job, run.run_id)
            auth = engine.ecr_auth(clients.ecr)
            digest, pulled = engine.pull(docker, config.image, auth)
            secrets = resolve_secrets(clients.ssm, clients.secretsmanager, config.secrets)
            self.redact = Redactor(secrets)
            environment = {**config.env, **run.env, **secrets}
            command = list(run.command) if run.command else (list(config.command) if config.command else None)
            stream = config.names.run_log_stream(run.run_id)
            container = engine.start_container(
                docker,
                config,
                run.run_id,
                command=command,
                environment=environment,
                log_stream=stream,
                region=identity.region,
                awslogs_endpoint=self.settings.awslogs_endpoint,
                instance_id=identity.instance_id,
            )
            log.info(
                "container started",
                extra=fields(run_id=run.run_id, container=container.name, digest=digest, pulled=pulled),
            )
            begun = engine.started_at(container) or self.clock()
            ledger.update_fields(
                config.job, run.run_id, container_started_at=iso(begun), image_digest=digest, log_stream=stream
            )
        else:
            container = existing
            begun = engine.started_at(container) or self.clock()
            log.info(
                "re-attached to the run's container",
                extra=fields(run_id=run.run_id, container=container.name, status=container.status),
            )
        deadline = begun + timedelta(seconds=config.max_runtime_seconds)
        outcome = engine.wait_with_deadline(container, deadline, config.stop_grace_seconds, self.clock)
        if outcome.timed_out:
            return self._finish(
                ledger,
                run,
                TIMED_OUT,
                exit_code=outcome.exit_code,
                reason=f"max runtime {config.max_runtime_seconds}s reached; stopped with "
                f"{config.stop_grace_seconds}s grace",
            )
        if outcome.exit_code == 0:
            return self._finish(ledger, run, SUCCEEDED, exit_code=0)
        reason = "out of memory (OOM killed)" if outcome.oom_killed else f"exit code {outcome.exit_code}"
        return self._finish(ledger, run, FAILED, exit_code=outcome.exit_code, reason=reason)

    def _finish(self, ledger: Ledger, run: Run, status: str, **changes: Any) -> Run | None:
        # The machine powers off right after this: the run's billed time ends about now.
        changes.update(run_cost(ledger.get(run.job, run.run_id) or run, self.clock(), self.region))
        try:
            final = ledger.transition(run.job, run.run_id, status, **changes)
        except TransitionRejected as exc:
            # Someone else ended it first (the external deadline, a cancel): theirs stands.
            log.warning("outcome not recorded: run already ended", extra=fields(run_id=run.run_id, error=str(exc)))
            return None
        log.info(
            "run ended", extra=fields(run_id=run.run_id, status=status, exit_code=final.exit_code, reason=final.reason)
        )
        return final

    def _fail_unconfigured(self, ledger: Ledger, job: str, run_id: str | None, identity: Identity, reason: str) -> None:
        log.error("cannot run", extra=fields(job=job, run_id=run_id, reason=reason))
        if run_id:
            try:
                ledger.transition(job, run_id, FAILED, reason=reason, instance_id=identity.instance_id)
            except Exception:
                log.exception("could not record the failure")

    # ---------------------------------------------------------------- logs
    def _attach_cloudwatch(self, clients: Clients, config: JobConfig, run_id: str) -> None:
        handler = CloudWatchHandler(clients.logs, config.names.log_group, config.names.agent_log_stream(run_id))
        from ..jsonlog import JsonFormatter

        handler.setFormatter(JsonFormatter())
        logging.getLogger("ec2batch").addHandler(handler)

    def _flush_logs(self) -> None:
        for handler in logging.getLogger("ec2batch").handlers:
            handler.flush()


def _docker_from_env() -> Any:
    import docker

    return docker.from_env(timeout=30)
