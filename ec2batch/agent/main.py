"""The agent: from boot to power-off, on the job's machine.

    identity (IMDSv2) -> job and run id (instance tags) -> config (SSM) -> run (ledger)
    -> RUNNING -> dockerd -> ECR login -> pull (or reuse the cached image) -> secrets -> job role
    (credentials endpoint) -> docker run (awslogs) -> wait, enforcing max runtime -> outcome
    -> container removed (its inspect shows the secrets) -> notify -> power off

Whatever happens, the machine powers off at the end (unless the debug switch says otherwise), and the
outcome is recorded: in the ledger (retried with backoff for about a minute), or failing that on the
instance's `ec2batch:outcome` tag, where the reconciler finds it. If this process is killed, systemd
starts it again; it then finds its run's container by label and waits for it instead of starting
another, and a run that has ended is never run again (`BootNotes` tells a restart from a new boot).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .. import attempts
from ..attempts import EXIT_CODE, INTERRUPTION, TIMEOUT
from ..aws import Clients
from ..config import JobConfig, load_config
from ..cost import run_cost
from ..errors import Ec2BatchError, TransitionRejected, describe_error
from ..jsonlog import JsonFormatter, fields
from ..ledger import (
    FAILED,
    INTERRUPTED,
    PENDING,
    RUNNING,
    SKIPPED,
    SUCCEEDED,
    TIMED_OUT,
    Ledger,
    Run,
    iso,
    new_run_id,
    parse_time,
    utcnow,
)
from ..metrics import emf_document, figures
from ..names import TAG_ATTEMPT, TAG_JOB, TAG_OUTCOME, TAG_RUN_ID, JobNames, tagged_attempt
from ..notify import notify
from ..outcome_tag import OutcomeTag
from ..usage import MIB, Usage
from . import container as engine
from .credentials import (
    REFRESH_AFTER_SECONDS,
    TOKEN_VARIABLE,
    URI_VARIABLE,
    CredentialsEndpoint,
    CredentialsError,
    JobCredentials,
    from_container_environment,
    new_token,
    session_name,
)
from .cwlogs import CloudWatchHandler
from .imds import Identity, Imds
from .interruption import POLL_SECONDS, InterruptionWatcher
from .sampler import SAMPLE_SECONDS, UsageSampler
from .secrets import Redactor, resolve_secrets
from .service_models import use_lean_models
from .startup import StartupTimings, in_background, process_started_at, release_memory

log = logging.getLogger("ec2batch.agent")

# DescribeTags, when instance metadata has no tags either: retried for about this long (1, 2, 4, 8 s).
TAGS_BUDGET_SECONDS = 15.0

# A file whose presence keeps the machine up after the run, whatever the config says (for debugging an AMI).
KEEP_RUNNING_FLAG = Path("/etc/ec2batch/keep-running")


@dataclass
class Settings:
    """From the environment; on the local stack, the unit's optional EnvironmentFile sets them."""

    engine_timeout: float = 120.0
    awslogs_endpoint: str | None = None
    poweroff_command: list[str] = field(default_factory=lambda: ["systemctl", "poweroff", "--no-block"])
    keep_running_flag: Path = KEEP_RUNNING_FLAG
    # systemd's RuntimeDirectory= (/run/ec2batch, a tmpfs emptied at every boot, kept across restarts of
    # the unit): where the agent notes which runs this boot was for. None: unknown, so an instance whose
    # tag points at an ended run is never taken for a hand start and never runs anything.
    runtime_dir: Path | None = None
    # The final ledger write: retried with backoff for about this long, then left on the instance's tags.
    record_budget_seconds: float = 60.0
    # The engine going away mid-run: this many reconnect attempts, this far apart, then FAILED(engine).
    engine_reconnect_attempts: int = 5
    engine_reconnect_delay: float = 2.0
    # The job's credentials endpoint. On AWS it listens where ECS's agent does, and the job reaches it at
    # ECS's link-local address (DNAT'd here by the AMI's job-network.sh); the local stack listens on a free
    # loopback port and hands the job that address (credentials_uri None).
    credentials_listen: tuple[str, int] = ("127.0.0.1", 51679)
    credentials_uri: str | None = "http://169.254.170.2/v1/credentials"
    credentials_refresh_seconds: float = REFRESH_AFTER_SECONDS
    # Overrides of what the job's container gets; the local stack sets them (no bridge, AWS is moto).
    job_network: str | None = None
    job_aws_endpoint_url: str | None = None
    # The slice the job's containers run in: the AMI's IMDS block for host-network jobs matches it.
    job_cgroup_parent: str | None = None
    # How often instance metadata is asked for a Spot interruption notice while the job runs (AWS: every 5 s).
    interruption_poll_seconds: float = POLL_SECONDS
    # How often the job's container's memory and CPU are sampled (0: not at all).
    usage_sample_seconds: float = SAMPLE_SECONDS

    @classmethod
    def from_environment(cls) -> Settings:
        env = os.environ
        command = env.get("EC2BATCH_POWEROFF_COMMAND")
        runtime = env.get("RUNTIME_DIRECTORY")  # set by systemd for RuntimeDirectory=
        listen = env.get("EC2BATCH_CREDENTIALS_LISTEN")
        host, _, port = (listen or "").rpartition(":")
        return cls(
            engine_timeout=float(env.get("EC2BATCH_ENGINE_TIMEOUT", "120")),
            awslogs_endpoint=env.get("EC2BATCH_AWSLOGS_ENDPOINT") or None,
            poweroff_command=command.split() if command else cls().poweroff_command,
            runtime_dir=Path(runtime.split(":")[0]) if runtime else None,
            credentials_listen=(host, int(port)) if listen else cls.credentials_listen,
            credentials_uri=env.get("EC2BATCH_CREDENTIALS_URI", cls.credentials_uri) or None,
            credentials_refresh_seconds=float(env.get("EC2BATCH_CREDENTIALS_REFRESH_SECONDS", REFRESH_AFTER_SECONDS)),
            job_network=env.get("EC2BATCH_JOB_NETWORK") or None,
            job_aws_endpoint_url=env.get("EC2BATCH_JOB_AWS_ENDPOINT_URL") or None,
            job_cgroup_parent=env.get("EC2BATCH_JOB_CGROUP_PARENT") or None,
            interruption_poll_seconds=float(env.get("EC2BATCH_INTERRUPTION_POLL_SECONDS", POLL_SECONDS)),
            usage_sample_seconds=float(env.get("EC2BATCH_USAGE_SAMPLE_SECONDS", SAMPLE_SECONDS)),
        )


def backoff(budget: float, first: float = 1.0, cap: float = 15.0) -> list[float]:
    """Delays 1, 2, 4, 8, 15, 15, ... whose sum is about `budget` (the last one is cut to fit)."""
    delays: list[float] = []
    delay = first
    while sum(delays) < budget:
        delays.append(min(delay, cap, budget - sum(delays)))
        delay *= 2
    return delays


class BootNotes:
    """What this boot of the machine was for, kept where a restart of the agent finds it and a reboot does not.

    `seen(run_id)`: a tag pointing at this run was read earlier in this boot. `boot_run`: the `boot` run
    this boot created. Both tell a restarted agent apart from a machine started again later.
    """

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory if directory is not None and _writable(directory) else None

    @property
    def known(self) -> bool:
        # Without a directory we can write, every restart would look like a new boot: play safe instead.
        return self.directory is not None

    def seen(self, run_id: str) -> bool:
        return self.directory is not None and (self.directory / f"seen-{run_id}").exists()

    def note_seen(self, run_id: str) -> None:
        self._write(f"seen-{run_id}", run_id)

    @property
    def boot_run(self) -> str | None:
        if self.directory is None or not (self.directory / "boot-run").exists():
            return None
        return (self.directory / "boot-run").read_text().strip() or None

    def note_boot_run(self, run_id: str) -> None:
        self._write("boot-run", run_id)

    def _write(self, name: str, text: str) -> None:
        if self.directory is None:
            return
        try:
            (self.directory / name).write_text(text + "\n")
        except OSError as exc:
            log.warning("could not note what this boot is for", extra=fields(path=str(self.directory), error=str(exc)))


def _iso_or_none(moment: datetime | None) -> str | None:
    return iso(moment) if moment is not None else None


def _writable(directory: Path) -> bool:
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(directory, os.W_OK)


class Agent:
    def __init__(
        self,
        settings: Settings,
        *,
        imds: Imds | None = None,
        make_clients: Callable[[str], Clients] | None = None,
        make_docker: Callable[[], Any] | None = None,
        clock: Callable[[], datetime] = utcnow,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self.imds = imds or Imds()
        self.make_clients = make_clients or agent_clients
        self.make_docker = make_docker or _docker_from_env
        self.clock = clock
        self.sleep = sleep
        self.keep_running = False
        # One redactor for the agent's whole life: the log formatters hold it and it learns the secrets later.
        self.redact = Redactor()
        self.region = "us-east-1"
        self.notes = BootNotes(settings.runtime_dir)
        self.began = clock()  # billing falls back to this if no run was claimed (the agent's own clock)
        self.tagged_attempt = 1  # the attempt of its run this machine was started for (its ec2batch:attempt tag)
        self.timings = StartupTimings(process_started_at())
        self.cloudwatch: CloudWatchHandler | None = None  # the agent's own stream, once its run is claimed
        # Begun before they are needed, in the background (`in_background`): the engine (with the Docker SDK's
        # import) from the start, the job's image (ECR login, registry check or pull) once the config is read.
        self._engine: Future[Any] | None = None
        self._image: Future[tuple[str, bool]] | None = None
        self._logs_client: Callable[[], Any] | None = None
        self._role: JobCredentials | None = None  # the job role's credentials, asked for during the claim

    # ---------------------------------------------------------------- entry point
    def run(self) -> int:
        """Do the run, then power off. Returns the process exit code (0: outcome recorded)."""
        code = 1
        try:
            code = self._run()
        except Exception as exc:
            log.exception("agent failed", extra=fields(error=self.redact(describe_error(exc))))
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
        self.timings.mark("imports and set-up")
        # The SDK's import and the engine's first answer take ~50 ms of CPU; the AWS calls below leave the CPU
        # idle while they wait on the network, and this uses it.
        self._begin_engine()
        identity = self.imds.identity()  # without it nothing can be recorded anywhere: power off
        self.timings.mark("identity (IMDS)")
        self.region = identity.region
        clients = self.make_clients(identity.region)
        job, tagged_run, self.tagged_attempt = self._tags(clients, identity)
        self.timings.mark("tags (DescribeTags)")
        if job is None:
            log.error(
                "instance has no ec2batch:job tag: nothing to run", extra=fields(instance_id=identity.instance_id)
            )
            return 1
        # No run events from here: the launcher publishes them from the ledger's stream (ec2batch.run_events).
        ledger = Ledger(clients.dynamodb, JobNames(job).ledger_table, clock=self.clock)
        scene = _Scene(clients, ledger, job, identity)
        step = "reading the job config (SSM GetParameter)"
        config: JobConfig | None = None
        try:
            try:
                config = load_config(clients.ssm, job)
                self.timings.mark("config (SSM)")
            except Ec2BatchError as exc:
                self._fail_before_claim(scene, tagged_run, f"bad config: {exc}")
                return 1
            self.keep_running = config.keep_running_for_debug
            scene = replace(scene, config=config)
            # Lines from here on go to the run's stream once it is named (after the claim): the pull's among them.
            self._attach_cloudwatch(clients, config)
            # The image does not depend on the claim: its ECR login and registry check (or pull) run meanwhile.
            self._begin_image(clients, config)
            if config.job_role_arn and tagged_run:
                # The job role's first credentials, for the run the tag names (the claim nearly always keeps it).
                self._role = self._job_credentials(clients, config, tagged_run)
                in_background("job-role", self._role.current)
            step = "claiming the run (DynamoDB)"
            run = self._claim(scene, config, tagged_run)
            self.timings.mark("claim (DynamoDB)")
        except Exception as exc:
            # AccessDenied, throttling beyond botocore's retries, a network fault: the run still gets an end.
            failed = self._fail_before_claim(scene, tagged_run, f"{step}: {describe_error(exc)}")
            if failed is not None and config is not None:
                notify(clients.sns, config, failed, scene.ledger)
            return 1
        if run is None:
            self._detach_cloudwatch()
            return 0
        assert self.cloudwatch is not None
        self.cloudwatch.stream = config.names.agent_log_stream(run.run_id)
        log.info(
            "run claimed",
            extra=fields(
                job=job,
                run_id=run.run_id,
                instance_id=identity.instance_id,
                # When this process was exec'd, before its imports: `make bench` splits boot from start-up with it.
                agent_started_at=_iso_or_none(self.timings.started),
                startup_seconds=self.timings.take(),
            ),
        )
        try:
            final = self._execute(clients, scene.ledger, config, run, identity)
        except Exception as exc:
            reason = self.redact(str(exc) if isinstance(exc, Ec2BatchError) else describe_error(exc))
            # An unexpected error keeps its traceback in the log (redacted by the formatter); ours are one line.
            unexpected = not isinstance(exc, Ec2BatchError)
            log.error("run failed", exc_info=unexpected, extra=fields(run_id=run.run_id, reason=reason))
            final = self._finish(scene, run, FAILED, reason=reason)
        if final is not None:
            # With the ledger: claimed and recorded, so the reconciler never publishes it a second time.
            notify(clients.sns, config, final, scene.ledger)
        return 0

    def _tags(self, clients: Clients, identity: Identity) -> tuple[str | None, str | None, int]:
        """Job and run id from the instance's tags. The run must get an end even if DescribeTags fails: the
        launch template serves the same tags in instance metadata; without those, DescribeTags is retried."""
        delays = backoff(TAGS_BUDGET_SECONDS)
        attempt = 0
        while True:
            try:
                response = clients.ec2.describe_tags(
                    Filters=[{"Name": "resource-id", "Values": [identity.instance_id]}]
                )
                break
            except Exception as exc:
                log.warning("DescribeTags failed", extra=fields(attempt=attempt + 1, error=describe_error(exc)))
                if attempt == 0 and (job := self._metadata_tag(TAG_JOB)) is not None:
                    log.info("tags read from instance metadata instead", extra=fields(job=job))
                    number = tagged_attempt({TAG_ATTEMPT: self._metadata_tag(TAG_ATTEMPT) or "1"})
                    return job, self._metadata_tag(TAG_RUN_ID), number
                if attempt == len(delays):
                    raise
                self.sleep(delays[attempt])
                attempt += 1
        tags = {t["Key"]: t["Value"] for t in response["Tags"]}
        return tags.get(TAG_JOB), tags.get(TAG_RUN_ID), tagged_attempt(tags)

    def _metadata_tag(self, key: str) -> str | None:
        try:
            return self.imds.tag(key)
        except Exception as exc:  # metadata out of reach too: DescribeTags is retried instead
            log.warning("instance metadata has no tags for us", extra=fields(key=key, error=describe_error(exc)))
            return None

    # ---------------------------------------------------------------- which run this boot is for
    def _claim(self, scene: _Scene, config: JobConfig, run_id: str | None) -> Run | None:
        """The run this boot is for, moved to RUNNING; None: nothing to do but power off.

        - no run id tag, or a tag naming a run the ledger does not have: a `boot` run (boot_without_run);
        - a run waiting (PLANNED..STARTING): claimed; already RUNNING on this machine: the agent restarted;
        - a run that has ended: see `_ended`; it is never run again.
        """
        ledger, identity = scene.ledger, scene.identity
        if self.notes.boot_run:
            return self._resume_boot_run(scene.ledger, config, self.notes.boot_run, scene.identity)
        seen_before = bool(run_id) and self.notes.seen(run_id)  # type: ignore[arg-type]
        if run_id and not seen_before:
            # The usual boot: one conditional write claims the run; only a refusal is looked into, with the item
            # as the refusal read it back (saves the read before the write: one round trip on every boot).
            self.notes.note_seen(run_id)
            try:
                return self._claim_write(ledger, config, run_id, self.tagged_attempt, identity)
            except TransitionRejected as exc:
                run = exc.current if isinstance(exc.current, Run) else None
        else:
            run = ledger.get(config.job, run_id) if run_id else None
            if run_id:
                self.notes.note_seen(run_id)
        if run is None:
            why = (
                f"booted with no run waiting (tag points at {run_id}, which the ledger does not have)"
                if run_id
                else "booted with no run waiting (no run id tag)"
            )
            return self._boot_run(scene, config, why)
        if run.status == RUNNING:
            if run.instance_id in (None, identity.instance_id):
                log.info("run already RUNNING: the agent restarted", extra=fields(run_id=run.run_id))
                return run
            log.warning(
                "the tagged run is RUNNING on another instance: powering off without acting",
                extra=fields(run_id=run.run_id, other_instance=run.instance_id),
            )
            return None
        if run.terminal:
            return self._ended(scene, config, run, seen_before)
        if run.attempt != self.tagged_attempt:
            log.warning(
                "this machine was for another attempt of the run: powering off without acting",
                extra=fields(run_id=run.run_id, machine_attempt=self.tagged_attempt, run_attempt=run.attempt),
            )
            return None
        try:
            return self._claim_write(ledger, config, run.run_id, run.attempt, identity)
        except TransitionRejected as exc:
            current = ledger.get(config.job, run.run_id)
            if current and current.status == RUNNING and current.instance_id == identity.instance_id:
                return current  # our own claim, applied, its answer lost
            log.warning(
                "run ended before the agent could claim it: powering off without acting",
                extra=fields(run_id=run.run_id, status=current.status if current else None, error=str(exc)),
            )
            return None

    @staticmethod
    def _claim_write(ledger: Ledger, config: JobConfig, run_id: str, attempt: int, identity: Identity) -> Run:
        """RUNNING on this machine, if the run is still waiting (PLANNED..STARTING) on that attempt."""
        return ledger.transition(
            config.job,
            run_id,
            RUNNING,
            attempt=attempt,
            instance_id=identity.instance_id,
            instance_type=identity.instance_type,
        )

    def _ended(self, scene: _Scene, config: JobConfig, run: Run, seen_before: bool) -> Run | None:
        """The tag names a run that has ended. Only a machine started again later (by hand) is a `boot` run."""
        identity = scene.identity
        ran_here = run.instance_id == identity.instance_id and run.instance_running_at is not None
        if self.notes.known and not seen_before and ran_here:
            # It ran here in an earlier boot; this boot is someone starting the machine again.
            why = f"booted with no run waiting (tag points at {run.run_id}, {run.status})"
            return self._boot_run(scene, config, why)
        if seen_before:
            what = "the agent restarted after the run ended"
        elif not ran_here:
            what = "the machine was started for a run that ended before it was claimed"
        else:
            what = "the run ended (this boot's purpose is unknown: no runtime directory)"
        log.warning(
            f"{what}: powering off without acting",
            extra=fields(run_id=run.run_id, status=run.status, instance_id=identity.instance_id),
        )
        return None

    def _resume_boot_run(self, ledger: Ledger, config: JobConfig, run_id: str, identity: Identity) -> Run | None:
        """A restarted agent finds the `boot` run this boot created: re-attach if it runs, else power off."""
        run = ledger.get(config.job, run_id)
        if run is not None and run.status == RUNNING and run.instance_id == identity.instance_id:
            log.info("boot run already RUNNING: the agent restarted", extra=fields(run_id=run_id))
            return run
        if run is not None and run.status == PENDING:  # recorded, then the agent died before claiming it
            return ledger.transition(config.job, run_id, RUNNING)
        log.warning(
            "this boot's boot run has ended: powering off without acting",
            extra=fields(run_id=run_id, status=run.status if run else None),
        )
        return None

    def _boot_run(self, scene: _Scene, config: JobConfig, why: str) -> Run | None:
        ledger, identity = scene.ledger, scene.identity
        now = self.clock()
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
        self.notes.note_boot_run(run_id)
        if config.boot_without_run == "poweroff":
            skipped = replace(run, status=SKIPPED, ended_at=iso(now), reason=f"{why}; boot_without_run is poweroff")
            ledger.record_terminal_at_creation(skipped)
            log.warning("no run waiting: recorded and powering off", extra=fields(run_id=run_id, reason=why))
            return None
        created = ledger.create_run(run, exclusive=config.concurrency == "forbid")
        if created.kind != "created":
            log.warning("boot run not started", extra=fields(run_id=run.run_id, reason=created.run.reason))
            return None
        log.info("no run waiting: running the job as a boot run", extra=fields(run_id=run.run_id, reason=why))
        self._tag_boot_run(scene, run_id)
        return ledger.transition(config.job, run.run_id, RUNNING)

    def _tag_boot_run(self, scene: _Scene, run_id: str) -> None:
        # The machine's run tag must name the run it is running: the reconciler stops a machine whose tag
        # names an ended run, and a restarted agent finds its boot run by the tag like any other.
        try:
            scene.clients.ec2.create_tags(
                Resources=[scene.identity.instance_id], Tags=[{"Key": TAG_RUN_ID, "Value": run_id}]
            )
        except Exception as exc:
            log.warning(
                "could not tag the machine with its boot run", extra=fields(run_id=run_id, error=describe_error(exc))
            )

    # ---------------------------------------------------------------- the job
    def _job_credentials(self, clients: Clients, config: JobConfig, run_id: str) -> JobCredentials:
        assert config.job_role_arn is not None
        return JobCredentials(
            clients.sts,
            config.job_role_arn,
            run_id,
            clock=self.clock,
            refresh_after=self.settings.credentials_refresh_seconds,
            on_new=lambda served: self.redact.add({"key": served.secret_access_key, "token": served.token}),
        )

    def _begin_engine(self) -> Future[Any]:
        """The engine's client, asked for in the background (once; the Docker SDK is imported there)."""
        if self._engine is None:
            self._engine = in_background(
                "engine", engine.wait_for_engine, self.make_docker, self.settings.engine_timeout
            )
        return self._engine

    def _docker(self) -> Any:
        """The engine's client, once it has answered (begun at the agent's start)."""
        return self._begin_engine().result()

    def _begin_image(self, clients: Clients, config: JobConfig) -> Future[tuple[str, bool]]:
        """The job's image, prepared in the background (once: during the claim, or here for a caller that did not)."""
        if self._image is None:
            self._image = in_background("image", self._prepare_image, clients.ecr, config.image)
        return self._image

    def _prepare_image(self, ecr: Any, image: str) -> tuple[str, bool]:
        """The job's image on disk at the registry's current digest: (digest, pulled)."""
        auth = engine.ecr_auth(ecr)
        return engine.pull(self._docker(), image, auth)

    def _execute(self, clients: Clients, ledger: Ledger, config: JobConfig, run: Run, identity: Identity) -> Run | None:
        docker = self._docker()
        self.timings.mark("engine (ping)")
        existing = engine.find_run_container(docker, run.run_id, run.attempt)
        self.timings.mark("own container? (list)")
        scene = _Scene(clients, ledger, config.job, identity, config)
        # A restarted agent serves the address and token its run's container was given.
        found = _environment_of(existing) if existing is not None else None
        endpoint, credentials = self._serve_credentials(clients, config, run, found)
        self.timings.mark("job credentials (STS)")
        watcher: InterruptionWatcher | None = None
        sampler: UsageSampler | None = None
        try:
            if existing is None:
                container, begun = self._start(clients, docker, ledger, config, run, identity, credentials)
            else:
                container, begun = self._reattach(docker, ledger, config, run, existing)
            release_memory()  # what start-up parsed and dropped goes back to the machine before the long wait
            sampler = self._sample(container, config)
            watcher = InterruptionWatcher(
                self.imds, poll_seconds=self.settings.interruption_poll_seconds, clock=self.clock
            ).start()
            outcome = engine.wait_with_deadline(
                container,
                begun + timedelta(seconds=config.max_runtime_seconds),
                config.stop_grace_seconds,
                self.clock,
                reconnect_attempts=self.settings.engine_reconnect_attempts,
                reconnect_delay=self.settings.engine_reconnect_delay,
                sleep=self.sleep,
                interruption=watcher,
            )
        finally:
            if sampler is not None:
                sampler.stop()
            if watcher is not None:
                watcher.close()
            if endpoint is not None:
                endpoint.close()
        usage = sampler.usage(outcome.oom_killed) if sampler is not None else None
        if sampler is not None and usage is not None:
            spent = round(sampler.cpu_seconds, 4)  # what sampling cost the agent (make bench measures the engine's)
            log.info(
                "usage measured", extra=fields(run_id=run.run_id, usage=usage.describe(), sampler_cpu_seconds=spent)
            )
        final = self._outcome(scene, config, replace(run, usage=usage), outcome)
        if not self.keep_running:
            # `docker inspect` of the exited container shows every secret: it does not stay on a reused disk.
            engine.remove_container(container)
        return final

    def _sample(self, container: Any, config: JobConfig) -> UsageSampler | None:
        if self.settings.usage_sample_seconds <= 0:
            return None
        limit = config.limits.memory_mb * MIB if config.limits.memory_mb else None
        return UsageSampler(
            container,
            interval=self.settings.usage_sample_seconds,
            memory_limit_bytes=limit,
            cpus=config.limits.cpus,
            clock=lambda: self.clock().timestamp(),
        ).start()

    def _outcome(self, scene: _Scene, config: JobConfig, run: Run, outcome: engine.Outcome) -> Run | None:
        if outcome.interruption is not None:
            return self._interrupted(scene, config, run, outcome)
        if outcome.timed_out:
            return self._finish(
                scene,
                run,
                TIMED_OUT,
                exit_code=outcome.exit_code,
                reason=f"max runtime {config.max_runtime_seconds}s reached; stopped with "
                f"{config.stop_grace_seconds}s grace",
                cause=TIMEOUT,
            )
        if outcome.exit_code == 0:
            return self._finish(scene, run, SUCCEEDED, exit_code=0)
        reason = "out of memory (OOM killed)" if outcome.oom_killed else f"exit code {outcome.exit_code}"
        if outcome.oom_killed and run.usage is not None:
            reason += f" after a peak of {run.usage.memory_text()}"
        return self._finish(scene, run, FAILED, exit_code=outcome.exit_code, reason=reason, cause=EXIT_CODE)

    def _interrupted(self, scene: _Scene, config: JobConfig, run: Run, outcome: engine.Outcome) -> Run | None:
        """The job was stopped because EC2 is taking the machine (a Spot interruption notice)."""
        notice = outcome.interruption
        assert notice is not None
        reason = f"interruption: Spot {notice.action} notice for {notice.time_text}; the job was sent SIGTERM"
        log.warning(
            "run interrupted: EC2 is taking the machine",
            extra=fields(run_id=run.run_id, action=notice.action, time=notice.time_text, exit_code=outcome.exit_code),
        )
        # The attempt ends INTERRUPTED; the retry policy gives the run another attempt (on the market its
        # `retry.market` says) or ends it FAILED. Logs go out now: the machine has seconds left.
        ended = self._finish(scene, run, INTERRUPTED, exit_code=outcome.exit_code, reason=reason, cause=INTERRUPTION)
        self._flush_logs()
        return ended

    def _start(
        self,
        clients: Clients,
        docker: Any,
        ledger: Ledger,
        config: JobConfig,
        run: Run,
        identity: Identity,
        credentials: dict[str, str],
    ) -> tuple[Any, datetime]:
        engine.remove_old_containers(docker, config.job, run.run_id, run.attempt)
        self.timings.mark("old containers (list)")
        digest, pulled = self._begin_image(clients, config).result()
        self.timings.mark("image (ECR login, registry, inspect)")
        # Secrets Manager's client only for a job that has secrets there: it costs ~5 ms on the way to the start.
        secretsmanager = clients.secretsmanager if any(r.source != "ssm" for r in config.secrets.values()) else None
        secrets = resolve_secrets(clients.ssm, secretsmanager, config.secrets)
        self.timings.mark("secrets")
        self.redact.add(secrets)
        environment = {
            **config.env,
            **run.env,
            **secrets,
            **self._job_environment(config, run, identity),
            **credentials,
        }
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
            network=self.settings.job_network or config.network,
            cgroup_parent=self.settings.job_cgroup_parent,
            attempt=run.attempt,
        )
        self.timings.mark("docker run")
        self._connect_logs(clients)  # after the start: its client is not made on the way to the job's first line
        log.info(
            "container started",
            extra=fields(
                run_id=run.run_id,
                container=container.name,
                digest=digest,
                pulled=pulled,
                start_seconds=self.timings.take(),  # claim -> container started, step by step (`make bench`)
            ),
        )
        begun = engine.started_at(container) or self.clock()
        ledger.update_fields(
            config.job, run.run_id, container_started_at=iso(begun), image_digest=digest, log_stream=stream
        )
        return container, begun

    def _job_environment(self, config: JobConfig, run: Run, identity: Identity) -> dict[str, str]:
        """What every job is told about its run (docs/agent.md lists it); these win over the config's env."""
        environment = {
            "EC2BATCH_JOB": config.job,
            "EC2BATCH_RUN_ID": run.run_id,
            "EC2BATCH_TRIGGER": run.trigger,
            "EC2BATCH_ATTEMPT": str(run.attempt),
            "AWS_REGION": identity.region,
            "AWS_DEFAULT_REGION": identity.region,
            "EC2BATCH_INTERRUPTION_FILE": engine.INTERRUPTION_FILE,
        }
        if run.scheduled_at:
            environment["EC2BATCH_SCHEDULED_TIME"] = run.scheduled_at
        if self.settings.job_aws_endpoint_url:
            environment["AWS_ENDPOINT_URL"] = self.settings.job_aws_endpoint_url
        return environment

    def _serve_credentials(
        self, clients: Clients, config: JobConfig, run: Run, found: dict[str, str] | None
    ) -> tuple[CredentialsEndpoint | None, dict[str, str]]:
        """The job role's credentials endpoint for this run, with the variables that point the job's SDK at it.

        A restarted agent (`found`: the container's environment) serves the same URI and token again.
        """
        if config.job_role_arn is None:
            return None, {}
        source = self._role
        if source is None or source.session_name != session_name(run.run_id):
            source = self._job_credentials(clients, config, run.run_id)
        # A role the machine may not assume fails the run now, naming the role (the early try's answer, if it
        # worked; if it failed, this asks STS again and raises).
        source.current()
        previous = from_container_environment(found) if found else None
        token = previous[1] if previous else new_token()
        self.redact.add({"token": token})
        host, port = self.settings.credentials_listen
        if previous and self.settings.credentials_uri is None:
            port = urlsplit(previous[0]).port or port  # the container keeps the address it was given
        try:
            endpoint = CredentialsEndpoint(source, token, host, port).start()
        except OSError as exc:
            raise CredentialsError(f"credentials: cannot listen on {host}:{port} for the job: {exc}") from exc
        uri = previous[0] if previous else (self.settings.credentials_uri or endpoint.loopback_uri)
        log.info("job credentials served", extra=fields(run_id=run.run_id, role=config.job_role_arn, uri=uri))
        return endpoint, {URI_VARIABLE: uri, TOKEN_VARIABLE: token}

    def _reattach(
        self, docker: Any, ledger: Ledger, config: JobConfig, run: Run, container: Any
    ) -> tuple[Any, datetime]:
        # The secrets are in the container's environment already; the redactor still needs to know them.
        self.redact.add(_secret_values(container, config))
        started = engine.ensure_started(container)
        log.info(
            "re-attached to the run's container",
            extra=fields(run_id=run.run_id, container=container.name, status=container.status, started_now=started),
        )
        begun = engine.started_at(container) or self.clock()
        if started or run.container_started_at is None:
            # The previous agent died before recording the start: record it now.
            ledger.update_fields(
                config.job,
                run.run_id,
                container_started_at=iso(begun),
                image_digest=run.image_digest or engine.local_digest(docker, config.image),
                log_stream=config.names.run_log_stream(run.run_id),
            )
        return container, begun

    # ---------------------------------------------------------------- the outcome
    def _finish(self, scene: _Scene, run: Run, status: str, **changes: Any) -> Run | None:
        # The machine powers off right after this: the attempt's billed time ends about now. Both ends of the
        # billed time come from this machine's clock (the claim stamped instance_running_at with it).
        ended = self.clock()
        current = _quietly(lambda: scene.ledger.get(run.job, run.run_id)) or run
        started = parse_time(current.instance_running_at) if current.instance_running_at else self.began
        cost = run_cost(current, ended, self.region, started=started, market=current.market)
        if run.usage is not None:
            changes["usage"] = run.usage
        recorded = self._record(scene, current, status, ended, cost=cost, **changes)
        self._publish_metrics(replace(current, ended_at=iso(ended)), status, run.usage, cost.get("cost_usd"))
        return recorded

    def _publish_metrics(self, run: Run, status: str, usage: Usage | None, cost_usd: float | None) -> None:
        """The attempt's figures as one EMF line in the agent's stream: CloudWatch makes them metrics (no call)."""
        if self.cloudwatch is None:
            return
        values = figures(run, status, usage, cost_usd)
        document = emf_document(run.job, run.run_id, status, values, self.clock())
        self.cloudwatch.put_raw(json.dumps(document), int(time.time() * 1000))

    def _record(
        self,
        scene: _Scene,
        run: Run,
        status: str,
        ended: datetime,
        *,
        cause: str | None = None,
        cost: dict[str, Any] | None = None,
        **changes: Any,
    ) -> Run | None:
        """The final ledger write of this attempt, retried with backoff; if it stays impossible, the outcome goes
        on the instance's tags.

        With the config, the retry policy decides between another attempt and the run's end
        (`attempts.end_attempt`). Returns the recorded run, or None if someone else ended the attempt first
        (theirs stands) or it could not be recorded (the reconciler records it from the `ec2batch:outcome` tag).
        """
        delays = backoff(self.settings.record_budget_seconds)
        for attempt in range(1, len(delays) + 2):
            try:
                final = self._write_end(scene, run, status, ended, cause, cost or {}, changes)
            except TransitionRejected as exc:
                log.warning("outcome not recorded: run already ended", extra=fields(run_id=run.run_id, error=str(exc)))
                return None
            except Exception as exc:
                delay = delays[attempt - 1] if attempt <= len(delays) else None
                log.warning(
                    "could not record the outcome",
                    extra=fields(
                        run_id=run.run_id, attempt=attempt, error=self.redact(describe_error(exc)), retry_in=delay
                    ),
                )
                if delay is None:
                    break
                self.sleep(delay)
                continue
            log.info(
                "attempt ended",
                extra=fields(run_id=run.run_id, status=final.status, exit_code=final.exit_code, reason=final.reason),
            )
            return final
        self._leave_outcome(scene, run.run_id, status, {**changes, "ended_at": iso(ended), "cause": cause})
        return None

    def _write_end(
        self,
        scene: _Scene,
        run: Run,
        status: str,
        ended: datetime,
        cause: str | None,
        cost: dict[str, Any],
        changes: dict[str, Any],
    ) -> Run:
        if scene.config is None:  # no config, no policy: the run ends here (a bad config is not retried)
            return self._end_without_policy(scene, run, status, ended, cost, changes)
        return attempts.end_attempt(
            scene.clients,
            scene.config,
            scene.ledger,
            run,
            status=status,
            cause=cause,
            reason=changes.get("reason"),
            ended_at=ended,
            exit_code=changes.get("exit_code"),
            cost=cost,
            usage=changes.get("usage"),
            now=self.clock(),
            publish=False,  # the agent publishes after the container is removed (`_run`)
        )

    def _end_without_policy(
        self, scene: _Scene, run: Run, status: str, ended: datetime, cost: dict[str, Any], changes: dict[str, Any]
    ) -> Run:
        stamp = iso(ended)  # the same on every try, so our own applied write is recognisable
        try:
            return scene.ledger.transition(
                scene.job, run.run_id, status, attempt=run.attempt, ended_at=stamp, **cost, **changes
            )
        except TransitionRejected:
            current = scene.ledger.get(scene.job, run.run_id)
            if current and (current.status, current.ended_at) == (status, stamp):
                return current  # an earlier try was applied and its answer lost
            raise

    def _leave_outcome(self, scene: _Scene, run_id: str, status: str, changes: dict[str, Any]) -> None:
        tag = OutcomeTag(
            run_id=run_id,
            status=status,
            ended_at=changes["ended_at"],
            exit_code=changes.get("exit_code"),
            reason=changes.get("reason"),
            cause=changes.get("cause"),
        )
        try:
            scene.clients.ec2.create_tags(
                Resources=[scene.identity.instance_id], Tags=[{"Key": TAG_OUTCOME, "Value": tag.encode()}]
            )
        except Exception as exc:
            log.error(
                "outcome lost: neither the ledger nor the instance's tags could be written",
                extra=fields(run_id=run_id, status=status, error=self.redact(describe_error(exc))),
            )
            return
        log.warning(
            "ledger unreachable: outcome left on the instance for the reconciler",
            extra=fields(run_id=run_id, status=status, tag=TAG_OUTCOME),
        )

    def _fail_before_claim(self, scene: _Scene, run_id: str | None, reason: str) -> Run | None:
        reason = self.redact(reason)
        log.error("cannot run", extra=fields(job=scene.job, run_id=run_id, reason=reason))
        if not run_id:
            return None
        run = _quietly(lambda: scene.ledger.get(scene.job, run_id))
        if run is None:
            # Unreadable (the fault that failed the claim) or absent: the write below still names the attempt
            # the machine was tagged for, so it can only end that one.
            run = Run(
                job=scene.job, run_id=run_id, status=PENDING, trigger="?", triggered_at="", attempt=self.tagged_attempt
            )
        # Not retried: the machine could not even claim its run (a bad config, no access), which another
        # attempt on the same config would only repeat.
        without_policy = replace(scene, config=None)
        return self._record(
            without_policy, run, FAILED, self.clock(), reason=reason, instance_id=scene.identity.instance_id
        )

    # ---------------------------------------------------------------- logs
    def _attach_cloudwatch(self, clients: Clients, config: JobConfig) -> None:
        """The agent's stream: lines are kept from now on, and sent once the run is claimed (the stream's name)
        and `_connect_logs` has made the client."""
        handler = CloudWatchHandler(config.names.log_group)
        handler.setFormatter(JsonFormatter(self.redact))
        logging.getLogger("ec2batch").addHandler(handler)
        self.cloudwatch = handler
        self._logs_client = lambda: clients.logs

    def _detach_cloudwatch(self) -> None:
        """No run for this boot: nothing goes to CloudWatch (the journal has every line)."""
        if self.cloudwatch is not None:
            logging.getLogger("ec2batch").removeHandler(self.cloudwatch)
            self.cloudwatch = None

    def _connect_logs(self, clients: Clients) -> None:
        # Made here, on the agent's main thread: botocore's sessions make clients one thread at a time.
        if self.cloudwatch is not None and not self.cloudwatch.connected:
            self.cloudwatch.connect(clients.logs)

    def _flush_logs(self) -> None:
        handler = self.cloudwatch
        if handler is not None and handler.stream and not handler.connected and self._logs_client is not None:
            with contextlib.suppress(Exception):  # no client, no CloudWatch: the journal still has every line
                handler.connect(self._logs_client())
        for each in logging.getLogger("ec2batch").handlers:
            each.flush()


@dataclass(frozen=True)
class _Scene:
    """Where an outcome is written: the ledger, and failing that the instance's tags."""

    clients: Clients
    ledger: Ledger
    job: str
    identity: Identity
    config: JobConfig | None = None  # None until read: then no retry policy applies


def _quietly(read: Callable[[], Run | None]) -> Run | None:
    try:
        return read()
    except Exception:
        return None


def _environment_of(container: Any) -> dict[str, str]:
    return dict(item.split("=", 1) for item in (container.attrs.get("Config", {}).get("Env") or []) if "=" in item)


def _secret_values(container: Any, config: JobConfig) -> dict[str, str]:
    env = _environment_of(container)
    return {name: env[name] for name in config.secrets if name in env}


def agent_clients(region: str) -> Clients:
    """A new session whose EC2 and SSM clients know only the operations the agent calls (`service_models`)."""
    clients = Clients(region=region)
    use_lean_models(clients.session)
    return clients


def _docker_from_env() -> Any:
    import docker

    return docker.from_env(timeout=30)
