"""Stand-ins for what the agent talks to besides AWS: instance metadata, the Docker engine, the clock.

The fake engine behaves like the Docker SDK for the calls the agent makes, on a fake clock: a container
runs for `runtime` seconds of that clock, `wait(timeout)` advances it and raises ReadTimeout like the SDK,
a container that was created but never started makes `wait` return at once with 0 (as Docker does), and
an engine that is `down` raises the ConnectionError a vanished socket gives. Signals are recorded; a job
exits `on_sigterm` seconds after SIGTERM (None: it ignores it), at once on SIGKILL (137). `put_archive`
unpacks into `files`, keyed by path in the container.
"""

from __future__ import annotations

import io
import tarfile
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import docker.errors
import requests.exceptions

from ec2batch.agent.imds import Identity
from tests.conftest import REGION

DIGEST = "sha256:" + "ab" * 32


class Clock:
    """The agent's clock and sleep: sleeping advances it, nothing waits for real."""

    def __init__(self, start: datetime) -> None:
        self.moment = start
        self.slept: list[float] = []

    def now(self) -> datetime:
        return self.moment

    def advance(self, seconds: float) -> None:
        self.moment += timedelta(seconds=seconds)

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.advance(seconds)


@dataclass
class FakeImds:
    instance_id: str
    tags: dict[str, str] = field(default_factory=dict)
    instance_type: str = "m7i.large"
    metadata: dict[str, str] = field(default_factory=dict)  # what `peek` serves, by path (none: 404)
    peeked: list[str] = field(default_factory=list)

    def peek(self, path: str) -> str | None:
        self.peeked.append(path)
        return self.metadata.get(path)

    def identity(self) -> Identity:
        return Identity(instance_id=self.instance_id, region=REGION, instance_type=self.instance_type, account_id=None)

    def tag(self, key: str) -> str | None:
        return self.tags.get(key)


class FakeContainer:
    def __init__(self, engine: FakeDocker, name: str, labels: dict[str, str], env: dict[str, str]) -> None:
        self.engine = engine
        self.name = name
        self.labels = labels
        self.env = env
        self.status = "created"
        self.exit_code: int | None = None
        self.started: datetime | None = None
        self.runtime = engine.runtime
        self.planned_exit = engine.exit_code
        self.fail_start: Exception | None = None
        self.options: dict[str, Any] = {}
        self.client = engine
        self.id = f"{abs(hash(name)):064x}"[:64]
        self.signals: list[tuple[str, datetime]] = []  # each signal, and when (the fake clock)
        self.on_sigterm: float | None = engine.on_sigterm
        self.files: dict[str, bytes] = {}

    @property
    def attrs(self) -> dict[str, Any]:
        started = self.started.strftime("%Y-%m-%dT%H:%M:%S.%f") + "123Z" if self.started else "0001-01-01T00:00:00Z"
        return {
            "State": {
                "Status": self.status,
                "StartedAt": started,
                "OOMKilled": self.engine.oom_killed and self.status == "exited",
                "ExitCode": self.exit_code,
            },
            "Config": {"Env": [f"{k}={v}" for k, v in self.env.items()]},
        }

    def reload(self) -> None:
        self.engine.check()
        self._settle()

    def start(self) -> None:
        self.engine.check()
        if self.fail_start:
            raise self.fail_start
        self.engine.started.append(self.name)
        self.status = "running"
        self.started = self.engine.clock.now()

    def _settle(self) -> None:
        if self.status == "running" and self.started and self.engine.clock.now() >= self._ends():
            self.status, self.exit_code = "exited", self.planned_exit

    def _ends(self) -> datetime:
        assert self.started is not None
        return self.started + timedelta(seconds=self.runtime)

    def wait(self, timeout: float | None = None) -> dict[str, Any]:
        self.engine.check()
        self.engine.on_wait(self)
        self.engine.check()
        if self.status == "created":
            return {"StatusCode": 0, "Error": None}  # Docker: a container that never ran is "not running"
        if self.status == "running":
            clock = self.engine.clock
            left = (self._ends() - clock.now()).total_seconds()
            if timeout is not None and left > timeout:
                clock.advance(timeout)
                raise requests.exceptions.ReadTimeout("UnixHTTPConnectionPool(host='localhost'): Read timed out.")
            clock.advance(max(0.0, left))
            self._settle()
        return {"StatusCode": self.exit_code, "Error": None}

    def kill(self, signal: str = "SIGKILL") -> None:
        self.engine.check()
        self._settle()
        if self.status != "running":
            raise docker.errors.APIError("409 Client Error: Conflict", response=_Conflict())  # type: ignore[arg-type]
        clock = self.engine.clock
        self.signals.append((signal, clock.now()))
        if signal == "SIGKILL":
            self.status, self.exit_code = "exited", 137
        elif signal == "SIGTERM" and self.on_sigterm is not None:
            assert self.started is not None
            self.runtime = min(self.runtime, (clock.now() - self.started).total_seconds() + self.on_sigterm)
            self.planned_exit = 143

    def put_archive(self, path: str, data: bytes) -> bool:
        self.engine.check()
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            for member in tar.getmembers():
                extracted = tar.extractfile(member)
                assert extracted is not None
                self.files[f"{path}/{member.name}"] = extracted.read()
        return True

    def stop(self, timeout: int = 10) -> None:
        self.engine.check()
        if self.status == "running":
            self.engine.clock.advance(1)
            self.status, self.exit_code = "exited", 143

    def remove(self, force: bool = False) -> None:
        self.engine.check()
        if self.status == "running" and not force:
            raise RuntimeError(f"cannot remove running container {self.name}")
        self.engine.all.remove(self)


class _Conflict:
    status_code = 409
    reason = "Conflict"
    url = "http://docker/containers/kill"


class FakeVolume:
    def __init__(self, engine: FakeDocker, name: str, labels: dict[str, str]) -> None:
        self.engine = engine
        self.name = name
        self.labels = labels

    def remove(self, force: bool = False) -> None:
        self.engine.check()
        del self.engine.volumes.all[self.name]


class FakeVolumes:
    def __init__(self, engine: FakeDocker) -> None:
        self.engine = engine
        self.all: dict[str, FakeVolume] = {}

    def create(self, name: str, labels: dict[str, str] | None = None) -> FakeVolume:
        self.engine.check()
        return self.all.setdefault(name, FakeVolume(self.engine, name, labels or {}))

    def get(self, name: str) -> FakeVolume:
        self.engine.check()
        if name not in self.all:
            raise docker.errors.NotFound(f"no such volume: {name}")
        return self.all[name]


class FakeContainers:
    def __init__(self, engine: FakeDocker) -> None:
        self.engine = engine

    def list(self, all: bool = False, filters: dict[str, str] | None = None) -> list[FakeContainer]:
        self.engine.check()
        found = []
        for container in self.engine.all:
            container._settle()
            wanted = filters or {}
            if "label" in wanted:
                key, _, value = wanted["label"].partition("=")
                if container.labels.get(key) != value:
                    continue
            if "status" in wanted and container.status != wanted["status"]:
                continue
            if not all and container.status != "running":
                continue
            found.append(container)
        return found

    def create(
        self, image: str, *, name: str, labels: dict[str, str], environment: dict[str, str], **options: Any
    ) -> Any:
        self.engine.check()
        if self.engine.fail_run:
            raise self.engine.fail_run
        container = FakeContainer(self.engine, name, labels, environment)
        container.options = options  # network_mode, cgroup_parent, limits: what `docker run` was asked for
        self.engine.all.append(container)
        return container

    def run(self, image: str, **kwargs: Any) -> FakeContainer:
        container = self.create(image, **kwargs)
        container.start()
        return container


class FakeImage:
    attrs = {"RepoDigests": []}


class FakeRegistryData:
    id = DIGEST


class FakeImages:
    def __init__(self, engine: FakeDocker) -> None:
        self.engine = engine
        self.pulled: list[str] = []

    def get(self, image: str) -> FakeImage:
        self.engine.check()
        raise docker.errors.ImageNotFound(f"No such image: {image}")

    def get_registry_data(self, image: str, auth_config: dict[str, str] | None = None) -> FakeRegistryData:
        self.engine.check()
        return FakeRegistryData()

    def pull(self, repository: str, tag: str | None = None, auth_config: dict[str, str] | None = None) -> None:
        self.engine.check()
        self.pulled.append(f"{repository}:{tag}")


class FakeApi:
    """The low-level client's `stats`: what a running container uses, in Docker's JSON (cgroup v1's shape)."""

    def __init__(self, engine: FakeDocker) -> None:
        self.engine = engine

    def stats(self, container_id: str, stream: bool = True, one_shot: bool | None = None) -> dict[str, Any]:
        self.engine.check()
        self.engine.stats_calls += 1
        container = next(c for c in self.engine.all if c.id == container_id)
        container._settle()
        if container.status != "running" or container.started is None:
            return {"memory_stats": {}, "cpu_stats": {}}
        busy = (self.engine.clock.now() - container.started).total_seconds() * self.engine.busy_cores
        return {
            "memory_stats": {
                "usage": self.engine.memory_bytes,
                "max_usage": self.engine.memory_bytes,
                "limit": self.engine.memory_total,
                "stats": {"total_inactive_file": 0},
            },
            "cpu_stats": {"cpu_usage": {"total_usage": int(busy * 1e9)}, "online_cpus": self.engine.cpus},
        }


class FakeDocker:
    """One engine; `runtime` and `exit_code` apply to the containers it starts."""

    def __init__(self, clock: Clock, runtime: float = 30, exit_code: int = 0, on_sigterm: float | None = 1) -> None:
        self.clock = clock
        self.runtime = runtime
        self.exit_code = exit_code
        self.on_sigterm = on_sigterm
        self.up = True
        self.down_until: datetime | None = None  # a restart of dockerd: gone until then
        self.all: list[FakeContainer] = []
        self.started: list[str] = []
        self.waits = 0
        self.fail_run: Exception | None = None
        self.containers = FakeContainers(self)
        self.images = FakeImages(self)
        self.volumes = FakeVolumes(self)
        self.wait_hook: Any = None
        # What a running container uses (the `stats` answers): memory in bytes, busy vCPUs of `cpus`.
        self.api = FakeApi(self)
        self.stats_calls = 0
        self.memory_bytes = 512 * 1024**2
        self.memory_total = 8 * 1024**3
        self.cpus = 2
        self.busy_cores = 1.0
        self.oom_killed = False  # the kernel killed the containers' jobs for memory (State.OOMKilled)

    def ping(self) -> bool:
        self.check()
        return True

    def check(self) -> None:
        if self.down_until is not None and self.clock.now() >= self.down_until:
            self.down_until = None
        if not self.up or self.down_until is not None:
            # What the SDK raises once dockerd's socket is gone; a failing call takes a moment, not zero time.
            self.clock.advance(0.1)
            raise requests.exceptions.ConnectionError(
                "('Connection aborted.', FileNotFoundError(2, 'No such file or directory'))"
            )

    def on_wait(self, container: FakeContainer) -> None:
        self.waits += 1
        if self.wait_hook:
            self.wait_hook(self, container)
