"""`ec2batch local up | down | status | reset`: the whole local stack, idempotently.

up: Debian packages -> dockerd, registry, moto_server -> base image (debootstrap) -> agent wheels ->
instance image (Packer's docker source) -> runner image, pushed to the registry -> the example job
provisioned in moto like Terraform would -> the emulators (EC2 <-> containers, schedules, SQS).
Each step skips itself when its result exists, so a warm `up` takes seconds.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import __version__
from ..aws import Clients
from ..config import JobConfig, parse_config
from ..local import services
from ..names import TAG_JOB, JobNames
from .ec2 import CONTAINER_PREFIX, register_instance_image
from .images import BASE_IMAGE, build_base_image, image_exists
from .paths import ACCOUNT_ID, LOOPBACK, MOTO_PORT, REGION, REGISTRY_PORT, StackPaths, local_env, repo_root
from .provision import Provisioned, provision_job
from .services import StackError

APT_PACKAGES = {
    "dockerd": "docker.io",
    "docker-registry": "docker-registry",
    "packer": "packer",
    "debootstrap": "debootstrap",
}
INSTANCE_REPOSITORY = "ec2batch-local/instance"
RUNNER_REPOSITORY = "ec2batch/daily-report"
EXAMPLE_JOB = "daily-report"
EXAMPLE_SCHEDULE = ("cron(0 2 * * ? *)", "Europe/Berlin")

Progress = Callable[[str], None]


@dataclass
class Stack:
    paths: StackPaths
    progress: Progress = print

    @classmethod
    def default(cls, progress: Progress = print) -> Stack:
        return cls(StackPaths.default(), progress)

    # ---------------------------------------------------------------- clients
    def env(self) -> dict[str, str]:
        return local_env(self.paths)

    def clients(self) -> Clients:
        import boto3

        env = self.env()
        session = boto3.Session(
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
            region_name=REGION,
        )
        os.environ.setdefault("AWS_ENDPOINT_URL", env["AWS_ENDPOINT_URL"])
        return Clients(session)

    def docker(self) -> Any:
        import docker

        return docker.DockerClient(base_url=self.paths.docker_host, timeout=120)

    # ---------------------------------------------------------------- up
    def up(self, *, with_example: bool = True, before_provisioning: Callable[[], None] | None = None) -> dict[str, Any]:
        started = time.monotonic()
        self.preflight()
        self.paths.ensure()
        self.start_services()
        if before_provisioning is not None:
            before_provisioning()
        client = self.docker()
        self.step("base image", lambda: build_base_image(client, self.paths, self.progress))
        instance_image = self.step("instance image", lambda: self.build_instance_image(client))
        runner_image = self.step("runner image", lambda: self.build_runner_image(client))
        result: dict[str, Any] = {"instance_image": instance_image, "runner_image": runner_image}
        if with_example:
            provisioned = self.provision_example(instance_image, runner_image)
            result["job"] = provisioned.job
        self.start_emulators()
        self.progress(f"local stack up in {time.monotonic() - started:.0f}s")
        return result

    def step(self, name: str, action: Callable[[], Any]) -> Any:
        began = time.monotonic()
        value = action()
        self.progress(f"{name}: {value} ({time.monotonic() - began:.1f}s)")
        return value

    def preflight(self) -> None:
        if sys.platform != "linux":
            raise StackError("the local stack needs Linux (a Docker engine, debootstrap, systemd containers)")
        missing = [package for binary, package in APT_PACKAGES.items() if shutil.which(binary) is None]
        if not missing:
            return
        if os.geteuid() != 0:
            raise StackError(
                f"missing {', '.join(missing)}; run as root so they can be installed, "
                f"or install them: apt-get install {' '.join(missing)}"
            )
        if shutil.which("apt-get") is None:
            raise StackError(f"missing {', '.join(missing)} and there is no apt-get to install them")
        self.progress(f"installing Debian packages: {', '.join(missing)}")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for command in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", *missing]):
            done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise StackError(f"{' '.join(command)} failed: {done.stderr.strip().splitlines()[-1:]}")

    def start_services(self) -> None:
        if os.geteuid() != 0 and services.running_pid(self.paths, "dockerd") is None:
            raise StackError("starting dockerd needs root: run `ec2batch local up` as root")
        for make in (services.dockerd, services.registry, services.moto):
            service = make(self.paths)
            state = services.start(self.paths, service, self.progress)
            self.progress(f"{service.name}: {state}")

    # ---------------------------------------------------------------- images
    def build_wheels(self) -> Path:
        wheels = self.paths.wheels
        if wheels.exists():
            shutil.rmtree(wheels)
        self.progress("building the agent's wheels (ec2batch and its dependencies)")
        subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(wheels), str(repo_root())],
            check=True,
            capture_output=True,
        )
        return wheels

    def build_instance_image(self, client: Any) -> str:
        tag = inputs_hash()
        image = f"{INSTANCE_REPOSITORY}:{tag}"
        if image_exists(client, image):
            return image
        wheels = self.build_wheels()
        self.progress(f"building {image} with Packer (docker source; the same provisioners as the AMI)")
        command = [
            "packer", "build", "-only=docker.instance", "-color=false",
            "-var", f"agent_version={__version__}",
            "-var", f"wheels_dir={wheels}",
            "-var", f"docker_base_image={BASE_IMAGE}",
            "-var", f"docker_image_repository={INSTANCE_REPOSITORY}",
            "-var", f"docker_image_tag={tag}",
            "ec2batch.pkr.hcl",
        ]  # fmt: skip
        log = self.paths.logs / "packer.log"
        env = {**os.environ, "DOCKER_HOST": self.paths.docker_host, "PACKER_CACHE_DIR": str(self.paths.root / "packer")}
        with log.open("w") as out:
            process = subprocess.Popen(
                command,
                cwd=repo_root() / "packer",
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            assert process.stdout is not None
            for line in process.stdout:
                out.write(line)
                if line.startswith("==> docker.instance: Provisioning with shell script") or "validate:" in line:
                    self.progress("  packer: " + line.split(": ", 1)[-1].strip())
            if process.wait() != 0:
                raise StackError(f"packer build failed; see {log}")
        return image

    def build_runner_image(self, client: Any) -> str:
        context = repo_root() / "runner_image"
        digest = hashlib.sha256(b"".join(p.read_bytes() for p in sorted(context.iterdir()) if p.is_file()))
        tag = digest.hexdigest()[:12]
        local = f"{LOOPBACK}:{REGISTRY_PORT}/{RUNNER_REPOSITORY}"
        if not image_exists(client, f"{local}:{tag}"):
            self.progress(f"building the runner image {local}:{tag}")
            client.images.build(
                path=str(context),
                tag=f"{local}:{tag}",
                buildargs={"BASE_IMAGE": BASE_IMAGE},
                network_mode="host",
                rm=True,
            )
        client.images.get(f"{local}:{tag}").tag(local, "latest")
        for pushed_tag in (tag, "latest"):
            self.progress(f"pushing {local}:{pushed_tag} to the local registry")
            for line in client.images.push(local, tag=pushed_tag, stream=True, decode=True):
                if "error" in line:
                    raise StackError(f"push of {local}:{pushed_tag} failed: {line['error']}")
        return f"{local}:latest"

    # ---------------------------------------------------------------- provisioning
    def example_config(self, runner_image: str, **overrides: Any) -> JobConfig:
        doc = {
            "job": EXAMPLE_JOB,
            "image": runner_image,
            "env": {"REPORT_ROWS": "200000"},
            "max_runtime_seconds": 600,
            "stop_grace_seconds": 10,
            "strategy": "reuse",
            "instance_types": ["m7i.large", "m6i.large"],
            **overrides,
        }
        # The job role Terraform creates (moto's STS assumes a role by its ARN; IAM is left to Terraform).
        doc.setdefault("job_role_arn", f"arn:aws:iam::{ACCOUNT_ID}:role/{JobNames(doc['job']).job_role}")
        return parse_config(doc)

    def provision_example(self, instance_image: str, runner_image: str) -> Provisioned:
        return self.provision(self.example_config(runner_image), instance_image, schedule=EXAMPLE_SCHEDULE)

    def provision(self, config: JobConfig, instance_image: str, schedule: tuple[str, str] | None = None) -> Provisioned:
        clients = self.clients()
        image_id = register_instance_image(clients.ec2, instance_image)
        provisioned = provision_job(clients, config, image_id=image_id)
        self.retire_outdated_instances(clients, config.job, image_id)
        from .scheduler_emulator import put_job_schedule, put_planner_schedule

        put_planner_schedule(clients, config.job)
        if schedule is not None:
            put_job_schedule(clients, config.job, *schedule, starting_deadline_seconds=config.starting_deadline_seconds)
        return provisioned

    def retire_outdated_instances(self, clients: Clients, job: str, image_id: str) -> None:
        """A new instance image means a new AMI: the job's stopped instances built from an older one are
        terminated, as Terraform replaces the instance when its AMI changes. Running ones finish first."""
        response = clients.ec2.describe_instances(
            Filters=[
                {"Name": f"tag:{TAG_JOB}", "Values": [job]},
                {"Name": "instance-state-name", "Values": ["stopped"]},
            ]
        )
        outdated = [
            i["InstanceId"] for r in response["Reservations"] for i in r["Instances"] if i["ImageId"] != image_id
        ]
        if outdated:
            self.progress(f"terminating {job}'s instances from an older image: {', '.join(outdated)}")
            clients.ec2.terminate_instances(InstanceIds=outdated)

    # ---------------------------------------------------------------- emulators
    def start_emulators(self) -> None:
        service = services.Service(
            name="emulators",
            command=[sys.executable, "-m", "ec2batch.local.emulators", "--stack-dir", str(self.paths.root)],
            ready=lambda: (self.paths.run / "emulators.ready").exists(),
            env=self.env(),
        )
        # Always restarted: cheap, and a changed checkout must not keep running yesterday's emulator code.
        services.stop(self.paths, "emulators")
        (self.paths.run / "emulators.ready").unlink(missing_ok=True)
        self.progress(f"emulators: {services.start(self.paths, service, self.progress)}")

    # ---------------------------------------------------------------- down / status / reset
    def down(self) -> None:
        services.stop(self.paths, "emulators")
        if services.running_pid(self.paths, "dockerd") is not None:
            client = self.docker()
            for container in client.containers.list(filters={"name": CONTAINER_PREFIX}):
                self.progress(f"halting instance container {container.name}")
                container.stop(timeout=20)
        for name in ("moto", "registry", "dockerd"):
            if services.stop(self.paths, name):
                self.progress(f"{name}: stopped")
        self.unmount_leftovers()

    def unmount_leftovers(self) -> None:
        """dockerd leaves its network namespace mounted in its exec root; unmounted, the folder can be deleted."""
        root = str(self.paths.root)
        mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
        for mount in sorted((m for m in mounts if m.startswith(root + "/")), reverse=True):
            subprocess.run(["umount", mount], check=False, capture_output=True)

    def reset(self) -> None:
        """Wipe moto's state (runs, instances, logs, jobs) and provision the example again; images stay."""
        self.up(before_provisioning=self.wipe)

    def wipe(self) -> None:
        """Forget every instance and all AWS state: instance and job containers go, moto starts empty."""
        import urllib.request

        from ..names import LABEL_JOB

        services.stop(self.paths, "emulators")
        client = self.docker()
        doomed = client.containers.list(all=True, filters={"name": CONTAINER_PREFIX})
        doomed += client.containers.list(all=True, filters={"label": LABEL_JOB})
        for container in doomed:
            container.remove(force=True)
        # The runs' /run/ec2batch volumes, which their agents remove with the container when they can.
        client.volumes.prune(filters={"label": LABEL_JOB})
        for env_file in self.paths.run.glob("i-*.env"):
            env_file.unlink()
        request = urllib.request.Request(f"http://{LOOPBACK}:{MOTO_PORT}/moto-api/reset", method="POST")
        urllib.request.urlopen(request, timeout=10).close()
        self.progress(f"AWS state wiped; {len(doomed)} container(s) removed")

    def status(self) -> dict[str, Any]:
        info: dict[str, Any] = {"stack_dir": str(self.paths.root), "services": {}}
        ports = {
            "dockerd": self.paths.docker_host,
            "registry": f"{LOOPBACK}:{REGISTRY_PORT}",
            "moto": f"http://{LOOPBACK}:{MOTO_PORT}",
            "emulators": "-",
        }
        for name, where in ports.items():
            pid = services.running_pid(self.paths, name)
            info["services"][name] = {"pid": pid, "running": pid is not None, "address": where}
        if info["services"]["moto"]["running"]:
            from ..jobs import get_schedule, list_jobs
            from ..schedule import Schedule

            clients = self.clients()
            jobs = {}
            for job in list_jobs(clients.ssm):
                schedule = get_schedule(clients.scheduler, job)
                next_fire = None
                if schedule:
                    from ..ledger import utcnow

                    times = Schedule(schedule.expression, schedule.timezone).next_fire_times(utcnow(), 1)
                    next_fire = times[0].isoformat() if times else None
                jobs[job] = {
                    "schedule": f"{schedule.expression} {schedule.timezone}" if schedule else None,
                    "next_fire": next_fire,
                }
            info["jobs"] = jobs
        if info["services"]["dockerd"]["running"]:
            info["instances"] = [
                f"{c.name} {c.status}"
                for c in self.docker().containers.list(all=True, filters={"name": CONTAINER_PREFIX})
            ]
        return info


def inputs_hash() -> str:
    """A hash of everything that goes into the instance image: a change to any rebuilds it."""
    root = repo_root()
    files = [root / "pyproject.toml", root / "packer" / "ec2batch.pkr.hcl"]
    files += sorted(p for p in (root / "bootstrap").rglob("*") if p.is_file())
    files += sorted(p for p in (root / "ec2batch").rglob("*.py"))
    digest = hashlib.sha256()
    for path in files:
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]
