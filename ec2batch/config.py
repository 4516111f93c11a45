"""The job config: one JSON document in SSM at `/ec2batch/<job>/config`, one schema, here.

Terraform writes the same document with `jsonencode` (terraform/modules/scheduled-job/config.tf);
the launcher and the agent read it with `load_config`; `ec2batch validate FILE` runs `parse_config`.
Every error names the field (`config.instance_types[1]`) and what would be accepted.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from .errors import ConfigError, UnknownJob
from .names import JOB_NAME_PATTERN, JobNames

STRATEGIES = ("reuse", "ephemeral")
CONCURRENCY_POLICIES = ("forbid", "allow")
NOTIFY_STATUSES = ("SUCCEEDED", "FAILED", "TIMED_OUT", "SKIPPED")
BOOT_WITHOUT_RUN = ("run", "poweroff")
NETWORKS = ("bridge", "host")  # the job container's network; docs/config.md says what each can reach
MARKETS = ("on-demand", "spot", "spot-then-on-demand")
# What can end an attempt and be retried besides an exit code (docs/config.md "Retries" says what each is).
RETRY_CAUSES = ("start-failure", "interruption", "instance-lost", "agent-lost")
MAX_ATTEMPTS = 10  # AWS Batch's limit for retryStrategy.attempts
MAX_SHARDS = 10000  # AWS Batch's largest array job
BATCH_COMPUTE = ("ec2", "fargate")
# Fargate's vCPU sizes and, for each, the memory (MiB) it allows (AWS Batch user guide, "Fargate" job definitions).
FARGATE_MEMORY = {
    0.25: (512, 1024, 2048),
    0.5: tuple(range(1024, 4097, 1024)),
    1.0: tuple(range(2048, 8193, 1024)),
    2.0: tuple(range(4096, 16385, 1024)),
    4.0: tuple(range(8192, 30721, 1024)),
    8.0: tuple(range(16384, 61441, 4096)),
    16.0: tuple(range(32768, 122881, 8192)),
}
# What an `after` entry may wait for: a run's ending (SKIPPED is no run of the job, so nothing to follow).
AFTER_STATUSES = ("SUCCEEDED", "FAILED", "TIMED_OUT", "CANCELLED")
MAX_AFTER = 5  # upstream jobs of one job: an EventBridge pattern's list, kept short enough to read
# EventBridge's event bus names (CreateEventBus): letters, digits and . - _ (no / : a partner bus is not ours).
_EVENT_BUS = re.compile(r"^[A-Za-z0-9._-]{1,256}$")
MAX_RUNTIME_LIMIT = 14 * 24 * 3600  # two weeks: longer than any batch job we want to keep paying for
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")  # also checks run overrides
_INSTANCE_TYPE = re.compile(r"^[a-z][a-z0-9-]*\.[a-z0-9]+$")
_SUBNET = re.compile(r"^subnet-[0-9a-f]{8,17}$")
_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::[0-9]{12}:role/[\w+=,.@/-]{1,512}$")


@dataclass(frozen=True)
class SecretRef:
    """Where a secret's value lives; the value itself is never stored in the config."""

    source: str  # "ssm" (SecureString parameter) or "secretsmanager"
    name: str  # parameter name, or secret id/ARN
    key: str | None = None  # for a JSON secret in Secrets Manager: the key to take

    def to_document(self) -> dict[str, str]:
        doc = {self.source: self.name}
        if self.key is not None:
            doc["key"] = self.key
        return doc


@dataclass(frozen=True)
class Limits:
    memory_mb: int | None = None
    cpus: float | None = None
    shm_size_mb: int | None = None


@dataclass(frozen=True)
class Notifications:
    topic_arn: str | None = None
    on: tuple[str, ...] = ("FAILED", "TIMED_OUT")


@dataclass(frozen=True)
class After:
    """The job runs after `job`'s runs that end with `status` (docs/events.md: with several, after all of them)."""

    job: str
    status: str = "SUCCEEDED"


@dataclass(frozen=True)
class RetryPolicy:
    """When a run gets another attempt: in the spirit of AWS Batch's retryStrategy with evaluateOnExit.

    An attempt that ended for one of the causes in `on`, or whose job exited with a code in `exit_codes`,
    is retried while attempts are left and the run is within its starting deadline; a timeout is never
    retried (the job used its whole max runtime: another try would only double the bill).
    """

    attempts: int = 1
    on: tuple[str, ...] = RETRY_CAUSES
    exit_codes: tuple[tuple[int, int], ...] = ()  # inclusive ranges; a single code is (n, n)
    interval_seconds: int = 30
    backoff_rate: float = 2.0
    max_delay_seconds: int = 900
    market: str = "on-demand"  # the market of every retry

    def retries_exit_code(self, code: int | None) -> bool:
        return code is not None and any(low <= code <= high for low, high in self.exit_codes)

    def delay_before(self, attempt: int) -> float:
        """Seconds to wait before attempt number `attempt` (2 for the first retry): interval x rate^(n-2)."""
        return float(min(self.max_delay_seconds, self.interval_seconds * self.backoff_rate ** max(0, attempt - 2)))

    def to_document(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["on"] = list(self.on)
        doc["exit_codes"] = [low if low == high else f"{low}-{high}" for low, high in self.exit_codes]
        return doc


@dataclass(frozen=True)
class BatchSettings:
    """How the shards of a run with `shards` > 1 run on AWS Batch (one array job per run)."""

    compute: str = "ec2"  # "ec2": a managed EC2 compute environment scaling to zero; "fargate"
    max_vcpus: int = 256  # the compute environment's ceiling: shards beyond it wait their turn
    vcpus: float = 1.0  # per shard
    memory_mb: int = 2048  # per shard


@dataclass(frozen=True)
class JobConfig:
    job: str
    image: str
    command: tuple[str, ...] | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    secrets: Mapping[str, SecretRef] = field(default_factory=dict)
    max_runtime_seconds: int = 3600
    stop_grace_seconds: int = 30
    strategy: str = "reuse"
    concurrency: str = "forbid"
    starting_deadline_seconds: int = 900
    instance_types: tuple[str, ...] = ()
    subnet_ids: tuple[str, ...] = ()
    limits: Limits = field(default_factory=Limits)
    notifications: Notifications = field(default_factory=Notifications)
    boot_without_run: str = "poweroff"
    keep_running_for_debug: bool = False
    deadline_slack_seconds: int = 300
    # The job's own role, served to its container by the agent's credentials endpoint (None: no AWS access).
    job_role_arn: str | None = None
    network: str = "bridge"
    market: str = "on-demand"
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    # 1: the run has its own machine. More: an AWS Batch array job of this many children (docs/shards.md).
    shards: int = 1
    batch: BatchSettings = field(default_factory=BatchSettings)
    # The jobs this one runs after (EventBridge: their run state change events start it) and the bus they use.
    after: tuple[After, ...] = ()
    event_bus: str = "default"

    @property
    def names(self) -> JobNames:
        return JobNames(self.job)

    def market_for(self, attempt: int) -> str:
        """The market the machine of attempt number `attempt` is asked for."""
        return self.market if attempt <= 1 else self.retry.market

    def to_document(self) -> dict[str, Any]:
        """The JSON document as stored in SSM (the inverse of `parse_config`)."""
        doc = asdict(self)
        doc["command"] = list(self.command) if self.command is not None else None
        doc["instance_types"] = list(self.instance_types)
        doc["subnet_ids"] = list(self.subnet_ids)
        doc["env"] = dict(self.env)
        doc["notifications"]["on"] = list(self.notifications.on)
        doc["secrets"] = {k: v.to_document() for k, v in self.secrets.items()}
        doc["limits"] = {k: v for k, v in asdict(self.limits).items() if v is not None}
        doc["retry"] = self.retry.to_document()
        doc["batch"] = asdict(self.batch)
        doc["after"] = [asdict(a) for a in self.after]
        return doc


class _Checker:
    """Collects every problem instead of stopping at the first, so one run of `validate` shows them all."""

    def __init__(self, doc: Mapping[str, Any]) -> None:
        self.doc = doc
        self.problems: list[str] = []

    def fail(self, path: str, message: str) -> None:
        self.problems.append(f"{path}: {message}")

    def unknown_keys(self, obj: Mapping[str, Any], known: set[str], path: str) -> None:
        for key in obj:
            if key not in known:
                self.fail(f"{path}.{key}", f"unknown field; known fields are {', '.join(sorted(known))}")

    def obj(self, value: Any, path: str) -> Mapping[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            self.fail(path, f"must be an object, got {type(value).__name__}")
            return {}
        return value

    def string(self, value: Any, path: str, *, pattern: re.Pattern[str] | None = None, hint: str = "") -> str | None:
        if not isinstance(value, str) or not value:
            self.fail(path, f"must be a non-empty string, got {value!r}")
            return None
        if pattern is not None and not pattern.match(value):
            self.fail(path, f"{value!r} is not valid{': ' + hint if hint else ''}")
            return None
        return value

    def choice(self, value: Any, path: str, allowed: tuple[str, ...]) -> str | None:
        if value not in allowed:
            self.fail(path, f"{value!r} is not one of {', '.join(allowed)}")
            return None
        return value

    def integer(self, value: Any, path: str, low: int, high: int) -> int | None:
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(path, f"must be a whole number from {low} to {high}, got {value!r}")
            return None
        if not low <= value <= high:
            self.fail(path, f"{value} is out of range: allowed {low} to {high}")
            return None
        return value

    def string_list(self, value: Any, path: str, *, pattern: re.Pattern[str], hint: str) -> tuple[str, ...]:
        if value is None:
            return ()
        if not isinstance(value, list):
            self.fail(path, f"must be a list of strings, got {type(value).__name__}")
            return ()
        items = [self.string(item, f"{path}[{i}]", pattern=pattern, hint=hint) for i, item in enumerate(value)]
        valid = tuple(item for item in items if item is not None)
        if len(set(valid)) != len(valid):  # only strings: a nested list or object is named above, not hashed
            self.fail(path, "has duplicates")
        return valid


_TOP_LEVEL = {f for f in JobConfig.__dataclass_fields__}


def parse_config(doc: Any) -> JobConfig:
    """Validate a config document; raise ConfigError listing every bad field."""
    c = _Checker(doc if isinstance(doc, Mapping) else {})
    if not isinstance(doc, Mapping):
        raise ConfigError([f"config: must be a JSON object, got {type(doc).__name__}"])
    c.unknown_keys(doc, _TOP_LEVEL, "config")
    job = c.string(
        doc.get("job"), "config.job", pattern=re.compile(JOB_NAME_PATTERN), hint="pattern " + JOB_NAME_PATTERN
    )
    image = c.string(doc.get("image"), "config.image")
    command = _command(c, doc.get("command"))
    env = _env(c, doc.get("env"))
    secrets = _secrets(c, doc.get("secrets"))
    for name in set(env) & set(secrets):
        c.fail(f"config.secrets.{name}", "also set in config.env; a variable comes from one place only")
    max_runtime = c.integer(doc.get("max_runtime_seconds", 3600), "config.max_runtime_seconds", 10, MAX_RUNTIME_LIMIT)
    grace = c.integer(doc.get("stop_grace_seconds", 30), "config.stop_grace_seconds", 0, 3600)
    strategy = c.choice(doc.get("strategy", "reuse"), "config.strategy", STRATEGIES)
    concurrency = c.choice(doc.get("concurrency", "forbid"), "config.concurrency", CONCURRENCY_POLICIES)
    deadline = c.integer(doc.get("starting_deadline_seconds", 900), "config.starting_deadline_seconds", 10, 86400)
    types = c.string_list(
        doc.get("instance_types"), "config.instance_types", pattern=_INSTANCE_TYPE, hint="expected like m7i.2xlarge"
    )
    if not types and "instance_types" in doc:
        c.fail("config.instance_types", "must list at least one instance type (the first is preferred)")
    subnets = c.string_list(doc.get("subnet_ids"), "config.subnet_ids", pattern=_SUBNET, hint="expected subnet-<hex>")
    limits = _limits(c, doc.get("limits"))
    notifications = _notifications(c, doc.get("notifications"))
    boot = c.choice(doc.get("boot_without_run", "poweroff"), "config.boot_without_run", BOOT_WITHOUT_RUN)
    slack = c.integer(doc.get("deadline_slack_seconds", 300), "config.deadline_slack_seconds", 0, 86400)
    role = doc.get("job_role_arn")
    if role is not None:
        role = c.string(
            role, "config.job_role_arn", pattern=_ROLE_ARN, hint="expected arn:aws:iam::<account>:role/<name>"
        )
    network = c.choice(doc.get("network", "bridge"), "config.network", NETWORKS)
    market = c.choice(doc.get("market", "on-demand"), "config.market", MARKETS)
    retry = _retry(c, doc.get("retry"), market)
    if strategy == "reuse":
        retry_doc = doc.get("retry") if isinstance(doc.get("retry"), Mapping) else {}
        chosen_markets = [("config.market", market)]
        if "market" in retry_doc:  # a default that follows config.market is not a second mistake to name
            chosen_markets.append(("config.retry.market", retry.market))
        for path, chosen in chosen_markets:
            if chosen not in (None, "on-demand"):
                c.fail(path, SPOT_NEEDS_EPHEMERAL)
    shards = c.integer(doc.get("shards", 1), "config.shards", 1, MAX_SHARDS)
    batch = _batch(c, doc.get("batch"))
    if shards and shards > 1 and command is None:
        c.fail("config.command", "is required with shards above 1: the job definition wraps it to pass the shard index")
    if shards == 1 and batch != BatchSettings():
        c.fail("config.batch", "only applies with shards above 1 (a run of one shard has its own machine)")
    after = _after(c, doc.get("after"), job)
    event_bus = c.string(doc.get("event_bus", "default"), "config.event_bus", pattern=_EVENT_BUS, hint="a bus name")
    debug = doc.get("keep_running_for_debug", False)
    if not isinstance(debug, bool):
        c.fail("config.keep_running_for_debug", f"must be true or false, got {debug!r}")
    if c.problems:
        raise ConfigError(c.problems)
    return JobConfig(
        job=job,  # type: ignore[arg-type]
        image=image,  # type: ignore[arg-type]
        command=command,
        env=env,
        secrets=secrets,
        max_runtime_seconds=max_runtime,  # type: ignore[arg-type]
        stop_grace_seconds=grace,  # type: ignore[arg-type]
        strategy=strategy,  # type: ignore[arg-type]
        concurrency=concurrency,  # type: ignore[arg-type]
        starting_deadline_seconds=deadline,  # type: ignore[arg-type]
        instance_types=types,
        subnet_ids=subnets,
        limits=limits,
        notifications=notifications,
        boot_without_run=boot,  # type: ignore[arg-type]
        keep_running_for_debug=bool(debug),
        deadline_slack_seconds=slack,  # type: ignore[arg-type]
        job_role_arn=role,
        network=network,  # type: ignore[arg-type]
        market=market,  # type: ignore[arg-type]
        retry=retry,
        shards=shards or 1,
        batch=batch,
        after=after,
        event_bus=event_bus or "default",
    )


def _after(c: _Checker, value: Any, job: str | None) -> tuple[After, ...]:
    """Each entry on its own; an upstream that does not exist and cycles need every job (ec2batch.dependencies)."""
    if value is None:
        return ()
    if not isinstance(value, list) or len(value) > MAX_AFTER:
        c.fail("config.after", f'must be a list of at most {MAX_AFTER} objects like {{"job": "extract"}}')
        return ()
    found: list[After] = []
    for i, raw in enumerate(value):
        path = f"config.after[{i}]"
        if not isinstance(raw, Mapping):
            c.fail(path, f'must be an object like {{"job": "extract", "status": "SUCCEEDED"}}, got {raw!r}')
            continue
        entry = c.obj(raw, path)
        c.unknown_keys(entry, {"job", "status"}, path)
        upstream = c.string(entry.get("job"), f"{path}.job", pattern=re.compile(JOB_NAME_PATTERN), hint="a job name")
        status = c.choice(entry.get("status", "SUCCEEDED"), f"{path}.status", AFTER_STATUSES)
        if upstream is not None and upstream == job:
            c.fail(f"{path}.job", f"{upstream!r} is this job: a job cannot run after itself")
        elif upstream is not None and any(a.job == upstream for a in found):
            c.fail(f"{path}.job", f"{upstream!r} is listed twice; a job follows another for one status")
        elif upstream is not None and status is not None:
            found.append(After(upstream, status))
    return tuple(found)


def _batch(c: _Checker, value: Any) -> BatchSettings:
    raw = c.obj(value, "config.batch")
    c.unknown_keys(raw, set(BatchSettings.__dataclass_fields__), "config.batch")
    default = BatchSettings()
    compute = c.choice(raw.get("compute", "ec2"), "config.batch.compute", BATCH_COMPUTE) or default.compute
    max_vcpus = c.integer(raw.get("max_vcpus", 256), "config.batch.max_vcpus", 1, 100000) or default.max_vcpus
    memory = c.integer(raw.get("memory_mb", 2048), "config.batch.memory_mb", 512, 24 * 1024 * 1024)
    vcpus = raw.get("vcpus", 1.0)
    if isinstance(vcpus, bool) or not isinstance(vcpus, int | float) or not 0 < vcpus <= 192:
        c.fail("config.batch.vcpus", f"must be a number above 0 and at most 192, got {vcpus!r}")
        vcpus = default.vcpus
    if compute == "fargate":
        allowed = FARGATE_MEMORY.get(float(vcpus))
        if allowed is None:
            sizes = ", ".join(f"{v:g}" for v in FARGATE_MEMORY)
            c.fail("config.batch.vcpus", f"{vcpus!r} is not a Fargate size: one of {sizes}")
        elif memory is not None and memory not in allowed:
            sizes = (
                ", ".join(map(str, allowed))
                if len(allowed) <= 4
                else f"{allowed[0]} to {allowed[-1]} in steps of {allowed[1] - allowed[0]}"
            )
            c.fail("config.batch.memory_mb", f"{memory} is not allowed with {vcpus:g} Fargate vCPUs: {sizes}")
    elif float(vcpus) != int(vcpus):
        c.fail("config.batch.vcpus", f"{vcpus!r}: on EC2 a shard has whole vCPUs (fractions are Fargate's)")
    return BatchSettings(compute=compute, max_vcpus=max_vcpus, vcpus=float(vcpus), memory_mb=memory or 2048)


SPOT_NEEDS_EPHEMERAL = (
    "Spot needs strategy ephemeral: a Spot instance is one-time and terminates when interrupted, so it "
    "cannot be the reusable instance that stops after a run and starts for the next"
)
_EXIT_RANGE = re.compile(r"^([0-9]{1,3})-([0-9]{1,3})$")


def _retry(c: _Checker, value: Any, market: str | None) -> RetryPolicy:
    raw = c.obj(value, "config.retry")
    known = {f for f in RetryPolicy.__dataclass_fields__}
    c.unknown_keys(raw, known, "config.retry")
    default = RetryPolicy()
    attempts = c.integer(raw.get("attempts", 1), "config.retry.attempts", 1, MAX_ATTEMPTS)
    on = raw.get("on", list(RETRY_CAUSES))
    causes: list[str] = []
    if not isinstance(on, list):
        c.fail("config.retry.on", f"must be a list of causes from {', '.join(RETRY_CAUSES)}")
    else:
        causes = [x for i, x in enumerate(on) if c.choice(x, f"config.retry.on[{i}]", RETRY_CAUSES)]
        if len(set(causes)) != len(causes):
            c.fail("config.retry.on", "has duplicates")
    interval = c.integer(raw.get("interval_seconds", 30), "config.retry.interval_seconds", 0, 900)
    rate = raw.get("backoff_rate", 2.0)
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not 1 <= rate <= 10:
        c.fail("config.retry.backoff_rate", f"must be a number from 1 to 10, got {rate!r}")
        rate = default.backoff_rate
    # At most SQS's longest delay: one delayed message starts the next attempt (ec2batch.attempts).
    max_delay = c.integer(raw.get("max_delay_seconds", 900), "config.retry.max_delay_seconds", 0, 900)
    if interval is not None and max_delay is not None and interval > max_delay:
        c.fail("config.retry.interval_seconds", f"{interval} is above retry.max_delay_seconds ({max_delay})")
    retry_market = raw.get("market", "on-demand" if market == "spot-then-on-demand" else market)
    retry_market = c.choice(retry_market, "config.retry.market", MARKETS)
    return RetryPolicy(
        attempts=attempts or 1,
        on=tuple(causes),
        exit_codes=_exit_codes(c, raw.get("exit_codes")),
        interval_seconds=interval if interval is not None else default.interval_seconds,
        backoff_rate=float(rate),
        max_delay_seconds=max_delay if max_delay is not None else default.max_delay_seconds,
        market=retry_market or "on-demand",
    )


def _exit_codes(c: _Checker, value: Any) -> tuple[tuple[int, int], ...]:
    """[3, "100-199"]: single codes and inclusive ranges, 1 to 255 (0 is success and never retried)."""
    if value is None:
        return ()
    if not isinstance(value, list):
        c.fail("config.retry.exit_codes", 'must be a list of exit codes and ranges, e.g. [3, "100-199"]')
        return ()
    ranges: list[tuple[int, int]] = []
    for i, item in enumerate(value):
        path = f"config.retry.exit_codes[{i}]"
        match = _EXIT_RANGE.match(item) if isinstance(item, str) else None
        if isinstance(item, int) and not isinstance(item, bool) and 1 <= item <= 255:
            ranges.append((item, item))
        elif match and 1 <= int(match[1]) <= int(match[2]) <= 255:
            ranges.append((int(match[1]), int(match[2])))
        else:
            c.fail(path, f'{item!r} is not an exit code from 1 to 255 or a range like "100-199" (0 is success)')
    return tuple(ranges)


def _command(c: _Checker, value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        c.fail("config.command", 'must be a non-empty list of strings (exec form, e.g. ["python", "job.py"])')
        return None
    return tuple(value)


def _env(c: _Checker, value: Any) -> dict[str, str]:
    env: dict[str, str] = {}
    for key, val in c.obj(value, "config.env").items():
        if not ENV_NAME.match(key):
            c.fail(
                f"config.env.{key}", "is not a valid variable name (letters, digits, '_', not starting with a digit)"
            )
        elif not isinstance(val, str):
            c.fail(f"config.env.{key}", f"must be a string, got {type(val).__name__}")
        else:
            env[key] = val
    return env


def _secrets(c: _Checker, value: Any) -> dict[str, SecretRef]:
    secrets: dict[str, SecretRef] = {}
    for key, ref in c.obj(value, "config.secrets").items():
        path = f"config.secrets.{key}"
        if not ENV_NAME.match(key):
            c.fail(path, "is not a valid variable name (letters, digits, '_', not starting with a digit)")
            continue
        ref = c.obj(ref, path)
        c.unknown_keys(ref, {"ssm", "secretsmanager", "key"}, path)
        sources = [s for s in ("ssm", "secretsmanager") if s in ref]
        if len(sources) != 1:
            c.fail(path, "must name exactly one of ssm (a SecureString parameter) or secretsmanager (a secret id)")
            continue
        name = c.string(ref[sources[0]], f"{path}.{sources[0]}")
        key_in_json = ref.get("key")
        if key_in_json is not None and (sources[0] != "secretsmanager" or not isinstance(key_in_json, str)):
            c.fail(f"{path}.key", "is only for a JSON secret in secretsmanager, and must be a string")
        if name:
            secrets[key] = SecretRef(source=sources[0], name=name, key=key_in_json)
    return secrets


def _limits(c: _Checker, value: Any) -> Limits:
    raw = c.obj(value, "config.limits")
    c.unknown_keys(raw, {"memory_mb", "cpus", "shm_size_mb"}, "config.limits")
    memory = (
        c.integer(raw["memory_mb"], "config.limits.memory_mb", 64, 24 * 1024 * 1024) if "memory_mb" in raw else None
    )
    shm = c.integer(raw["shm_size_mb"], "config.limits.shm_size_mb", 1, 1024 * 1024) if "shm_size_mb" in raw else None
    cpus = raw.get("cpus")
    if cpus is not None and (isinstance(cpus, bool) or not isinstance(cpus, int | float) or not 0 < cpus <= 448):
        c.fail("config.limits.cpus", f"must be a number above 0 and at most 448, got {cpus!r}")
        cpus = None
    return Limits(memory_mb=memory, cpus=float(cpus) if cpus is not None else None, shm_size_mb=shm)


def _notifications(c: _Checker, value: Any) -> Notifications:
    raw = c.obj(value, "config.notifications")
    c.unknown_keys(raw, {"topic_arn", "on"}, "config.notifications")
    topic = raw.get("topic_arn")
    if topic is not None and (not isinstance(topic, str) or not topic.startswith("arn:")):
        c.fail("config.notifications.topic_arn", f"must be an SNS topic ARN (arn:aws:sns:...), got {topic!r}")
        topic = None
    on = raw.get("on", ["FAILED", "TIMED_OUT"])
    statuses: list[str] = []
    if not isinstance(on, list):
        c.fail("config.notifications.on", f"must be a list of statuses from {', '.join(NOTIFY_STATUSES)}")
    else:
        statuses = [s for i, s in enumerate(on) if c.choice(s, f"config.notifications.on[{i}]", NOTIFY_STATUSES)]
    return Notifications(topic_arn=topic, on=tuple(statuses))


def parse_config_text(text: str, source: str = "config") -> JobConfig:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError([f"{source}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"]) from exc
    return parse_config(doc)


def load_config(ssm: Any, job: str) -> JobConfig:
    """Read and validate a job's config from SSM (one GetParameter call)."""
    name = JobNames(job).config_parameter
    try:
        response = ssm.get_parameter(Name=name, WithDecryption=True)  # Terraform stores it as a SecureString
    except ssm.exceptions.ParameterNotFound as exc:
        raise UnknownJob(f"unknown job {job!r}: no config at SSM parameter {name}") from exc
    config = parse_config_text(response["Parameter"]["Value"], source=name)
    if config.job != job:
        raise ConfigError([f"config.job: {config.job!r} does not match the parameter's job {job!r} ({name})"])
    return config


def store_config(ssm: Any, config: JobConfig, *, tags: bool = True) -> None:
    """Write the config document the way Terraform does (used by the local stack and tests)."""
    names = config.names
    ssm.put_parameter(
        Name=names.config_parameter,
        Value=json.dumps(config.to_document(), sort_keys=True),
        Type="SecureString",
        Overwrite=True,
    )
    if tags:
        ssm.add_tags_to_resource(
            ResourceType="Parameter",
            ResourceId=names.config_parameter,
            Tags=[{"Key": k, "Value": v} for k, v in names.tags().items()],
        )
