"""The EC2 emulator: moto's instances become systemd containers, and power-offs become stops.

moto keeps instance state but runs nothing. Every half second this loop reconciles the two:
- an ec2batch instance that moto says is pending/running and has no running container: start it
  (the same container again for a restarted instance, so its disk persists like an EBS root volume);
- a container that exited while moto says running: the machine powered itself off, so stop the
  instance in moto, or terminate it if its shutdown behaviour says so;
- moto says stopping/stopped/terminated but the container runs: stop the container (systemd halts
  on SIGRTMIN+3), as AWS would shut the machine down.
And what EC2 does to a Spot instance, on request (`ec2batch local interrupt`, through a request file in
the stack's run folder): an interruption notice in its metadata, then, when the warning is over, the
instance reclaimed (terminated, as a one-time Spot instance is) with its job's containers.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import docker.errors

from ..aws import Clients
from ..jsonlog import fields
from ..names import LABEL_INSTANCE, TAG_JOB
from .imds_emulator import ImdsEmulator, InstanceInfo
from .paths import ACCOUNT_ID, DUMMY_CREDENTIALS, IMDS_PORT_RANGE, LOOPBACK, MOTO_PORT, REGION, StackPaths
from .wakeup import Wakeup

log = logging.getLogger(__name__)

TAG_DOCKER_IMAGE = "ec2batch:docker-image"  # on the AMI registered for the local instance image
CONTAINER_PREFIX = "ec2batch-instance-"
INTERRUPT_REQUEST_GLOB = "interrupt-*.json"


@dataclass(frozen=True)
class InterruptRequest:
    """`ec2batch local interrupt`'s request to the emulator process, as a file it picks up and removes."""

    instance_id: str
    warning_seconds: float
    rebalance_only: bool = False

    def path(self, paths: StackPaths) -> Path:
        return paths.run / f"interrupt-{self.instance_id}.json"

    def write(self, paths: StackPaths) -> Path:
        target = self.path(paths)
        partial = target.with_suffix(".partial")  # renamed whole: the emulator never reads half a request
        partial.write_text(json.dumps(asdict(self)))
        partial.rename(target)
        return target

    @classmethod
    def read(cls, path: Path) -> InterruptRequest:
        return cls(**json.loads(path.read_text()))


def utc_text(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def instance_run_options(paths: StackPaths, env_file: str) -> dict[str, Any]:
    """How a systemd container is run as an "EC2 instance" (DESIGN.md §4)."""
    return {
        "network_mode": "host",
        "cap_add": ["SYS_ADMIN"],
        "security_opt": ["seccomp=unconfined"],
        "tmpfs": {"/run": "", "/run/lock": ""},
        "volumes": {
            "/sys/fs/cgroup": {"bind": "/sys/fs/cgroup", "mode": "ro"},
            str(paths.docker_socket): {"bind": "/run/docker.sock", "mode": "rw"},
            env_file: {"bind": "/etc/ec2batch/local.env", "mode": "ro"},
        },
        "environment": {"container": "docker"},
        "stop_signal": "SIGRTMIN+3",
        "detach": True,
    }


def register_instance_image(ec2: Any, docker_image: str) -> str:
    """Register the local instance image as an AMI (idempotent): the launch template points at it."""
    found = ec2.describe_images(
        Owners=["self"], Filters=[{"Name": f"tag:{TAG_DOCKER_IMAGE}", "Values": [docker_image]}]
    )
    if found["Images"]:
        return found["Images"][0]["ImageId"]
    image_id = ec2.register_image(
        Name=f"ec2batch-local-{docker_image.replace('/', '-').replace(':', '-')}",
        Description="ec2batch local instance image (a systemd container built by Packer's docker source)",
        RootDeviceName="/dev/xvda",
        Architecture="x86_64",
        VirtualizationType="hvm",
        BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 30, "VolumeType": "gp3"}}],
    )["ImageId"]
    ec2.create_tags(Resources=[image_id], Tags=[{"Key": TAG_DOCKER_IMAGE, "Value": docker_image}])
    return image_id


@dataclass
class Ec2Emulator:
    clients: Clients
    docker: Any
    paths: StackPaths
    imds: dict[str, ImdsEmulator] = field(default_factory=dict)
    images: dict[str, str] = field(default_factory=dict)
    # Instances whose container we started for their current start; an exited one has powered off.
    booted: dict[str, str] = field(default_factory=dict)
    # Interrupted instances, and when EC2 takes them (the interruption notice's time).
    reclaims: dict[str, datetime] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    described_seconds: float = 0.0
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))

    def run_forever(self, stop: threading.Event, interval: float = 0.5) -> None:
        # moto_server nudges us when an instance starts or stops, so a started instance boots at once.
        with Wakeup(self.paths.ec2_wakeup) as wakeup:
            while not stop.is_set():
                try:
                    self.step()
                except Exception:
                    log.exception("ec2 emulator step failed")
                wakeup.wait(interval)

    def step(self) -> None:
        with self.lock:
            self._take_interrupt_requests()
            self._reclaim_due()
            began = time.monotonic()
            instances = self._instances()
            self.described_seconds = time.monotonic() - began  # logged with a boot: the emulator's own reaction
            for instance in instances:
                self._reconcile(instance)

    # ---------------------------------------------------------------- Spot interruptions
    def interrupt(self, instance_id: str, warning_seconds: float, *, rebalance_only: bool = False) -> datetime | None:
        """What EC2 does before it reclaims a Spot instance: a rebalance recommendation and an interruption
        notice in its metadata; the notice's time (now + the warning) is when `step` terminates it.

        `rebalance_only`: the recommendation alone (EC2 may send one long before, or without, a notice).
        Returns the notice's time, or None if nothing was interrupted.
        """
        emulator = self.imds.get(instance_id)
        if emulator is None:
            log.warning("interrupt: the instance is not running here", extra=fields(instance_id=instance_id))
            return None
        now = self.clock()
        emulator.serve_rebalance(utc_text(now))
        if rebalance_only:
            log.info("rebalance recommendation served", extra=fields(instance_id=instance_id))
            return None
        # EC2's notice times are whole seconds: round up, so the warning is never shorter than asked.
        at = datetime.fromtimestamp(math.ceil(now.timestamp() + warning_seconds), UTC)
        emulator.serve_interruption("terminate", utc_text(at))
        self.reclaims[instance_id] = at
        log.info(
            "Spot interruption notice served",
            extra=fields(
                instance_id=instance_id, action="terminate", time=utc_text(at), warning_seconds=warning_seconds
            ),
        )
        return at

    def _take_interrupt_requests(self) -> None:
        for path in sorted(self.paths.run.glob(INTERRUPT_REQUEST_GLOB)):
            try:
                request = InterruptRequest.read(path)
            except (OSError, ValueError, TypeError) as exc:
                log.warning("unreadable interrupt request: dropped", extra=fields(path=str(path), error=str(exc)))
            else:
                self.interrupt(request.instance_id, request.warning_seconds, rebalance_only=request.rebalance_only)
            path.unlink(missing_ok=True)  # picked up: the command that wrote it waits for this

    def _reclaim_due(self) -> None:
        now = self.clock()
        for instance_id, at in list(self.reclaims.items()):
            if now < at:
                continue
            del self.reclaims[instance_id]
            # A one-time Spot instance is terminated, whatever it was doing (even stopped by its agent).
            log.info("Spot instance reclaimed: terminating it", extra=fields(instance_id=instance_id))
            self.clients.ec2.terminate_instances(InstanceIds=[instance_id])
            self._halt_jobs_of(instance_id)

    def _instances(self) -> list[dict[str, Any]]:
        response = self.clients.ec2.describe_instances(Filters=[{"Name": "tag-key", "Values": [TAG_JOB]}])
        return [i for r in response["Reservations"] for i in r["Instances"]]

    def _reconcile(self, instance: dict[str, Any]) -> None:
        instance_id = instance["InstanceId"]
        state = instance["State"]["Name"]
        container = self._container(instance_id)
        running = container is not None and container.status in ("running", "restarting")
        if state in ("pending", "running"):
            if running:
                return
            if instance_id in self.booted:
                self._machine_powered_off(instance)  # we booted it for this start, and it has exited
            else:
                self._boot(instance, container)
            return
        self.booted.pop(instance_id, None)
        if running:
            log.info("instance stopped through the API: halting its container", extra=fields(instance_id=instance_id))
            container.stop(timeout=30)
            self._halt_jobs_of(instance_id)
        if state == "terminated":
            self._forget(instance_id, container)

    def _machine_powered_off(self, instance: dict[str, Any]) -> None:
        instance_id = instance["InstanceId"]
        behaviour = self.clients.ec2.describe_instance_attribute(
            InstanceId=instance_id, Attribute="instanceInitiatedShutdownBehavior"
        )["InstanceInitiatedShutdownBehavior"]["Value"]
        log.info("instance powered off", extra=fields(instance_id=instance_id, shutdown_behavior=behaviour))
        self.booted.pop(instance_id, None)
        self._halt_jobs_of(instance_id)
        if behaviour == "terminate":
            self.clients.ec2.terminate_instances(InstanceIds=[instance_id])
        else:
            self.clients.ec2.stop_instances(InstanceIds=[instance_id])

    def _halt_jobs_of(self, instance_id: str) -> None:
        """On EC2 a job's container dies with its machine; here it is a sibling on the host's engine."""
        for job in self.docker.containers.list(filters={"label": f"{LABEL_INSTANCE}={instance_id}"}):
            log.info(
                "halting a job container with its instance", extra=fields(instance_id=instance_id, container=job.name)
            )
            job.kill()

    def _boot(self, instance: dict[str, Any], container: Any | None) -> None:
        instance_id = instance["InstanceId"]
        imds = self._imds_for(instance)
        env_file = self.paths.run / f"{instance_id}.env"
        env_file.write_text(
            "\n".join(
                [
                    f"AWS_ENDPOINT_URL=http://{LOOPBACK}:{MOTO_PORT}",
                    f"AWS_EC2_METADATA_SERVICE_ENDPOINT={imds.url}",
                    f"EC2BATCH_AWSLOGS_ENDPOINT=http://{LOOPBACK}:{MOTO_PORT}",
                    # The job: host networking (no bridge here), moto for its SDK, and its credentials
                    # endpoint on a free loopback port (instances share the host's network).
                    "EC2BATCH_JOB_NETWORK=host",
                    f"EC2BATCH_JOB_AWS_ENDPOINT_URL=http://{LOOPBACK}:{MOTO_PORT}",
                    f"EC2BATCH_CREDENTIALS_LISTEN={LOOPBACK}:0",
                    "EC2BATCH_CREDENTIALS_URI=",
                    # Every run longer than this exercises the refresh (AWS: after 30 of the session's 60 min).
                    "EC2BATCH_CREDENTIALS_REFRESH_SECONDS=20",
                    # `ec2batch local interrupt` may give a warning far shorter than AWS's 120 s.
                    "EC2BATCH_INTERRUPTION_POLL_SECONDS=1",
                    # Test jobs run seconds, not hours: several samples each (AWS: every 5 s).
                    "EC2BATCH_USAGE_SAMPLE_SECONDS=0.5",
                    *(f"{k}={v}" for k, v in DUMMY_CREDENTIALS.items()),
                ]
            )
            + "\n"
        )
        if container is None:
            image = self._docker_image(instance["ImageId"])
            container = self.docker.containers.create(
                image,
                name=CONTAINER_PREFIX + instance_id,
                labels={LABEL_INSTANCE: instance_id},
                **instance_run_options(self.paths, str(env_file)),
            )
        began = time.monotonic()
        container.start()
        started = time.monotonic() - began
        container.reload()
        self.booted[instance_id] = container.attrs["State"]["StartedAt"]
        log.info(
            "instance booted",
            extra=fields(
                instance_id=instance_id,
                container=container.name,
                # What the emulator's reaction took: reading moto's instances, and the engine's start of the container.
                describe_seconds=round(self.described_seconds, 3),
                start_seconds=round(started, 3),
            ),
        )

    def _imds_for(self, instance: dict[str, Any]) -> ImdsEmulator:
        instance_id = instance["InstanceId"]
        info = InstanceInfo(
            instance_id=instance_id,
            region=REGION,
            instance_type=instance.get("InstanceType", "t3.micro"),
            account_id=ACCOUNT_ID,
            image_id=instance["ImageId"],
            tags={t["Key"]: t["Value"] for t in instance.get("Tags", [])},
            lifecycle=instance.get("InstanceLifecycle", "on-demand"),
        )
        if instance_id in self.imds:
            self.imds[instance_id].update(info)
            return self.imds[instance_id]
        used = {e.server.server_address[1] for e in self.imds.values()}
        for port in range(*IMDS_PORT_RANGE):
            if port in used:
                continue
            try:
                emulator = ImdsEmulator(port, info)
            except OSError:
                continue
            self.imds[instance_id] = emulator
            return emulator
        raise RuntimeError(f"no free port for instance metadata in {IMDS_PORT_RANGE}")

    def _docker_image(self, image_id: str) -> str:
        if image_id not in self.images:
            found = self.clients.ec2.describe_images(ImageIds=[image_id])["Images"]
            tags = {t["Key"]: t["Value"] for t in (found[0].get("Tags", []) if found else [])}
            if TAG_DOCKER_IMAGE not in tags:
                raise RuntimeError(f"AMI {image_id} is not a local instance image (no {TAG_DOCKER_IMAGE} tag)")
            self.images[image_id] = tags[TAG_DOCKER_IMAGE]
        return self.images[image_id]

    def _container(self, instance_id: str) -> Any | None:
        try:
            return self.docker.containers.get(CONTAINER_PREFIX + instance_id)
        except docker.errors.NotFound:
            return None

    def _forget(self, instance_id: str, container: Any | None) -> None:
        if container is not None:
            try:
                container.remove(force=True)
            except docker.errors.APIError:
                return
        emulator = self.imds.pop(instance_id, None)
        if emulator:
            emulator.close()
        (self.paths.run / f"{instance_id}.env").unlink(missing_ok=True)
