"""Everything the agent asks of the Docker engine, through the Docker SDK.

The SDK (with `requests`) is imported where it is first needed, not with this module: the agent imports it
in the background at boot, while its AWS calls wait on the network (`Agent.run`), so the ~40 ms it takes are
not spent before the run is claimed (decision 54).
"""

from __future__ import annotations

import base64
import io
import logging
import tarfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ..config import JobConfig
from ..errors import Ec2BatchError, describe_error
from ..jsonlog import fields
from ..names import LABEL_ATTEMPT, LABEL_INSTANCE, LABEL_JOB, LABEL_RUN_ID
from .interruption import InterruptionWatcher, Notice

log = logging.getLogger(__name__)

# In the job's container: a small per-run volume where the agent drops files for the job to read.
RUN_DIR = "/run/ec2batch"
INTERRUPTION_FILE = f"{RUN_DIR}/interruption"
# After a Spot interruption notice the agent still has to record the outcome and flush its logs before
# EC2 takes the machine: the job gets until the notice's time less this much (less on a shorter warning).
AGENT_MARGIN_SECONDS = 20.0
# With an interruption watcher the container is polled this often, so the job hears of a notice promptly.
REACTION_SECONDS = 2.0


class PullError(Ec2BatchError):
    pass


class EngineError(Ec2BatchError):
    pass


@dataclass(frozen=True)
class Outcome:
    exit_code: int | None
    timed_out: bool
    oom_killed: bool
    started_at: str | None
    interruption: Notice | None = None  # the job was stopped for this Spot interruption notice


def import_sdk() -> None:
    """Load the Docker SDK (the background warm-up at boot calls this; everything below imports it itself)."""
    import docker.errors
    import docker.types  # noqa: F401


def wait_for_engine(make_client: Callable[[], Any], timeout: float, sleep: Callable[[float], None] = time.sleep) -> Any:
    """dockerd may still be starting when the agent does (the unit orders after it, but ready ≠ started)."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            client = make_client()
            client.ping()
            return client
        except Exception as exc:
            last = exc
            sleep(1)
    raise EngineError(f"engine: the Docker engine did not answer within {timeout:.0f}s: {last}")


def registry_of(image: str) -> str:
    from docker.auth import resolve_repository_name
    from docker.utils import parse_repository_tag

    return resolve_repository_name(parse_repository_tag(image)[0])[0]


def ecr_auth(ecr: Any) -> dict[str, str]:
    """Credentials from GetAuthorizationToken (valid 12 h); they work for the account's ECR registry."""
    data = ecr.get_authorization_token()["authorizationData"][0]
    username, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
    return {"username": username, "password": password}


def local_digest(client: Any, image: str) -> str | None:
    """The repo digest of the image already on disk (reuse keeps its cache between runs)."""
    import docker.errors
    from docker.utils import parse_repository_tag

    try:
        found = client.images.get(image)
    except docker.errors.ImageNotFound:
        return None
    repo = parse_repository_tag(image)[0]
    for digest in found.attrs.get("RepoDigests") or []:
        if digest.split("@")[0] == repo:
            return digest.split("@")[1]
    return None


def pull(
    client: Any,
    image: str,
    auth: Mapping[str, str],
    *,
    attempts: int = 4,
    backoff: float = 2.0,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[str, bool]:
    """Make sure `image` is on disk at the registry's current digest; returns (digest, pulled)."""
    import docker.errors
    from docker.utils import parse_repository_tag

    last = ""
    for attempt in range(1, attempts + 1):
        try:
            remote = client.images.get_registry_data(image, auth_config=dict(auth))
            wanted = remote.id  # sha256:... of the manifest
            if local_digest(client, image) == wanted:
                log.info("image already on disk", extra=fields(image=image, digest=wanted))
                return wanted, False
            repo, tag = parse_repository_tag(image)
            started = time.monotonic()
            if tag and tag.startswith("sha256:"):
                client.images.pull(f"{repo}@{tag}", auth_config=dict(auth))
            else:
                client.images.pull(repo, tag=tag or "latest", auth_config=dict(auth))
            log.info(
                "image pulled", extra=fields(image=image, digest=wanted, seconds=round(time.monotonic() - started, 2))
            )
            return wanted, True
        except docker.errors.APIError as exc:
            last = str(exc.explanation or exc)
            log.warning("pull failed", extra=fields(image=image, attempt=attempt, error=last))
            if attempt < attempts:
                sleep(backoff**attempt)
    raise PullError(f"could not pull {image} after {attempts} attempts: {last}")


def find_run_container(client: Any, run_id: str, attempt: int = 1) -> Any | None:
    """The container of this attempt of the run, if an earlier agent process started it (running or exited).

    Never an earlier attempt's: on a reused instance that one may still be there (its agent died before
    removing it), and re-attaching to it would record its old outcome for the new attempt.
    """
    found = client.containers.list(all=True, filters={"label": f"{LABEL_RUN_ID}={run_id}"})
    return next((c for c in found if _attempt_of(c) == attempt), None)


def _attempt_of(container: Any) -> int:
    value = (container.labels or {}).get(LABEL_ATTEMPT, "1")
    return int(value) if str(value).isdigit() else 1


def container_name(job: str, run_id: str, attempt: int = 1) -> str:
    # A fixed name per attempt: a second `create` for the same attempt fails instead of starting it twice.
    return f"ec2batch-{job}-{run_id}" + (f"-attempt-{attempt}" if attempt > 1 else "")


def run_volume_name(name: str) -> str:
    """The run's volume (mounted at RUN_DIR), named after its container so removal finds it."""
    return f"{name}-run"


def start_container(
    client: Any,
    config: JobConfig,
    run_id: str,
    *,
    command: list[str] | None,
    environment: Mapping[str, str],
    log_stream: str,
    region: str,
    awslogs_endpoint: str | None,
    instance_id: str,
    network: str = "bridge",
    cgroup_parent: str | None = None,
    attempt: int = 1,
) -> Any:
    from docker.types import LogConfig

    log_options = {
        "awslogs-region": region,
        "awslogs-group": config.names.log_group,
        "awslogs-stream": log_stream,
        # blocking (the default): a line is never dropped, and a container whose stream cannot be
        # created fails to start, which the agent records, rather than running with its output lost.
        "mode": "blocking",
    }
    if awslogs_endpoint:
        log_options["awslogs-endpoint"] = awslogs_endpoint
    limits: dict[str, Any] = {}
    if config.limits.memory_mb:
        limits["mem_limit"] = f"{config.limits.memory_mb}m"
    if config.limits.cpus:
        limits["nano_cpus"] = int(config.limits.cpus * 1e9)
    if config.limits.shm_size_mb:
        limits["shm_size"] = f"{config.limits.shm_size_mb}m"
    if cgroup_parent:
        limits["cgroup_parent"] = cgroup_parent
    labels = {LABEL_JOB: config.job, LABEL_RUN_ID: run_id, LABEL_ATTEMPT: str(attempt), LABEL_INSTANCE: instance_id}
    name = container_name(config.job, run_id, attempt)
    # A volume, not a bind mount: the agent writes into it through the engine (put_archive), which works
    # whatever the agent's own filesystem is (on the local stack the agent is in another container).
    volume = client.volumes.create(name=run_volume_name(name), labels=labels)
    return client.containers.run(
        config.image,
        command=command,
        environment=dict(environment),
        labels=labels,
        name=name,
        volumes={volume.name: {"bind": RUN_DIR, "mode": "rw"}},
        log_config=LogConfig(type="awslogs", config=log_options),
        init=True,  # a real PID 1 reaps zombies and forwards SIGTERM to the job
        # bridge: the job's own network namespace, so IMDS's hop limit of 1 keeps the machine's role from it.
        network_mode=network,
        detach=True,
        **limits,
    )


def started_at(container: Any) -> datetime | None:
    container.reload()
    text = container.attrs["State"].get("StartedAt") or ""
    if not text or text.startswith("0001-"):
        return None
    return parse_docker_time(text)


def parse_docker_time(text: str) -> datetime:
    """Docker's RFC 3339 times carry nanoseconds; Python's parser takes at most microseconds."""
    head, _, rest = text.partition(".")
    fraction = "".join(ch for ch in rest if ch.isdigit())[:6]
    return datetime.fromisoformat(f"{head}.{fraction or '0'}+00:00")


def wait_with_deadline(
    container: Any,
    deadline: datetime,
    grace_seconds: int,
    now: Callable[[], datetime],
    poll: float = 5.0,
    *,
    reconnect_attempts: int = 5,
    reconnect_delay: float = 2.0,
    sleep: Callable[[float], None] = time.sleep,
    interruption: InterruptionWatcher | None = None,
) -> Outcome:
    """Wait for the container to exit; at the deadline stop it (SIGTERM, SIGKILL after the grace).

    An engine that stops answering (dockerd crashed, its socket gone) is retried `reconnect_attempts`
    times, `reconnect_delay` apart; then EngineError ("engine: ..."), so the run fails within seconds
    instead of the loop spinning until max runtime while the machine is billed.

    With an `interruption` watcher, a Spot interruption notice stops the job early (`stop_for_interruption`).
    """
    timed_out = False
    trouble = 0
    if interruption is not None:
        poll = min(poll, REACTION_SECONDS)
    while True:
        if interruption is not None and interruption.notice is not None:
            return stop_for_interruption(container, interruption.notice, deadline, now)
        remaining = (deadline - now()).total_seconds()
        if remaining <= 0:
            log.warning(
                "max runtime reached: stopping the container",
                extra=fields(container=container.name, grace_seconds=grace_seconds),
            )
            try:
                container.stop(timeout=grace_seconds)
                result = container.wait(timeout=grace_seconds + 30)
            except Exception as exc:
                raise EngineError(
                    f"engine: could not stop the container at max runtime: {describe_error(exc)}"
                ) from exc
            timed_out = True
            break
        asked = min(remaining, poll)
        began = now()
        try:
            result = container.wait(timeout=asked)
            break
        except Exception as exc:
            # When wait's timeout ends the SDK raises ReadTimeout, or over the unix socket a ConnectionError
            # saying "Read timed out": which one varies with versions, so the time it took decides. A timeout
            # took about as long as asked for; an engine that is gone (socket missing, connection refused)
            # answers at once, and retrying that without a pause is what kept a dead engine's machine up.
            if (now() - began).total_seconds() >= asked / 2:
                trouble = 0
                continue
            trouble += 1
            if trouble > reconnect_attempts:
                raise EngineError(
                    f"engine: the Docker engine stopped answering while the job ran "
                    f"({reconnect_attempts} reconnect attempts, {reconnect_delay:g}s apart): {describe_error(exc)}"
                ) from exc
            log.warning(
                "the Docker engine did not answer: trying again",
                extra=fields(container=container.name, attempt=trouble, error=describe_error(exc)),
            )
            sleep(reconnect_delay)
    state = _final_state(container)
    return Outcome(
        exit_code=result.get("StatusCode"),
        timed_out=timed_out,
        oom_killed=bool(state.get("OOMKilled")),
        started_at=state.get("StartedAt"),
    )


def interruption_margin(seconds_left: float) -> float:
    """What the agent keeps for itself of the warning: 20 s of AWS's 120, a quarter of a shortened one."""
    return max(0.0, min(AGENT_MARGIN_SECONDS, seconds_left / 4))


def stop_for_interruption(container: Any, notice: Notice, deadline: datetime, now: Callable[[], datetime]) -> Outcome:
    """The machine is about to be taken: tell the job (the file, then SIGTERM), give it what time there is,
    then SIGKILL. The max runtime still bounds it: the SIGKILL comes at the deadline if that is earlier.

    A job that had exited before the SIGTERM ended on its own: its outcome is its exit code, no interruption.
    """
    margin = interruption_margin((notice.time - now()).total_seconds())
    kill_at = min(notice.time - timedelta(seconds=margin), deadline)
    log.warning(
        "Spot interruption notice: the job is sent SIGTERM",
        extra=fields(
            container=container.name,
            action=notice.action,
            time=notice.time_text,
            kill_in_seconds=round((kill_at - now()).total_seconds(), 1),
        ),
    )
    _drop_notice(container, notice)  # first: a job reading it in its SIGTERM handler finds it whole
    try:
        told = _signal(container, "SIGTERM")
        result = _wait_until(container, kill_at, now)
        if result is None:
            log.warning(
                "the job outlived its time after the interruption notice: SIGKILL",
                extra=fields(container=container.name),
            )
            _signal(container, "SIGKILL")
            result = container.wait(timeout=30)
    except Exception as exc:
        raise EngineError(
            f"engine: could not stop the job for a Spot interruption notice: {describe_error(exc)}"
        ) from exc
    state = _final_state(container)
    return Outcome(
        exit_code=result.get("StatusCode"),
        timed_out=False,
        oom_killed=bool(state.get("OOMKilled")),
        started_at=state.get("StartedAt"),
        interruption=notice if told else None,
    )


def _drop_notice(container: Any, notice: Notice) -> None:
    data = (notice.as_json() + "\n").encode()
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        entry = tarfile.TarInfo(INTERRUPTION_FILE.rsplit("/", 1)[1])
        entry.size, entry.mode, entry.mtime = len(data), 0o644, int(time.time())
        tar.addfile(entry, io.BytesIO(data))
    try:
        container.put_archive(RUN_DIR, archive.getvalue())
    except Exception as exc:  # the SIGTERM still tells the job; the file is the detail
        log.warning(
            "could not write the interruption file", extra=fields(container=container.name, error=describe_error(exc))
        )


def _signal(container: Any, name: str) -> bool:
    """Send a signal; False if the job had exited already (409), which is what the signal was for."""
    import docker.errors

    try:
        container.kill(signal=name)
    except docker.errors.APIError as exc:
        if exc.status_code != 409:
            raise
        return False
    return True


def _wait_until(container: Any, moment: datetime, now: Callable[[], datetime]) -> dict[str, Any] | None:
    """The container's exit if it comes before `moment`; None if it still runs then."""
    asked = max((moment - now()).total_seconds(), 1.0)
    began = now()
    try:
        return dict(container.wait(timeout=asked))
    except Exception:
        if (now() - began).total_seconds() >= asked / 2:  # a timeout (see wait_with_deadline)
            return None
        raise


def _final_state(container: Any) -> dict[str, Any]:
    # The exit code is known; OOMKilled is a detail not worth failing the run over if the engine just went away.
    try:
        container.reload()
        return dict(container.attrs.get("State") or {})
    except Exception as exc:
        log.warning("could not read the container's final state", extra=fields(error=describe_error(exc)))
        return {}


def ensure_started(container: Any) -> bool:
    """A container the previous agent created but never started (killed in between) is started now.

    Docker's wait returns at once, exit code 0, for a container that never ran: without this a restarted
    agent would record SUCCEEDED for a job that did nothing. Returns True if it started it.
    """
    container.reload()
    if container.status != "created":
        return False
    try:
        container.start()
    except Exception as exc:
        raise EngineError(
            f"container: could not start {container.name} (created, never started): {describe_error(exc)}"
        ) from exc
    container.reload()
    return True


def remove_container(container: Any) -> None:
    """The run's container, once its outcome is recorded: its logs are in CloudWatch, its inspect has secrets."""
    try:
        container.remove(force=True)
    except Exception as exc:
        # The next run's start removes it (remove_old_containers); nothing to fail the run over.
        log.warning(
            "could not remove the run's container", extra=fields(container=container.name, error=describe_error(exc))
        )
        return
    _remove_run_volume(container.client, container.name)


def _remove_run_volume(client: Any, name: str) -> None:
    import docker.errors

    try:
        client.volumes.get(run_volume_name(name)).remove(force=True)
    except docker.errors.NotFound:
        return  # a container from before the run volume existed
    except Exception as exc:
        log.warning(
            "could not remove the run's volume", extra=fields(volume=run_volume_name(name), error=describe_error(exc))
        )


def remove_old_containers(client: Any, job: str, keep_run_id: str, keep_attempt: int = 1) -> None:
    """Containers of earlier runs and attempts (kept for `docker logs` on a debug box, or left by an agent that
    died) would fill a reused disk."""
    import docker.errors

    for old in client.containers.list(all=True, filters={"label": f"{LABEL_JOB}={job}", "status": "exited"}):
        if (old.labels.get(LABEL_RUN_ID), _attempt_of(old)) != (keep_run_id, keep_attempt):
            try:
                old.remove()
            except docker.errors.APIError:
                log.warning("could not remove an old container", extra=fields(container=old.name))
                continue
            _remove_run_volume(client, old.name)
