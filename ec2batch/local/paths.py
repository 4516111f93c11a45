"""Where the local stack keeps its state, and its fixed ports (all on 127.0.0.1)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

LOOPBACK = "127.0.0.1"
REGISTRY_PORT = 5000  # DESIGN.md: the stand-in for ECR's registry
MOTO_PORT = 4566  # the AWS APIs (moto_server)
IMDS_PORT_RANGE = (4600, 4700)  # one instance-metadata emulator per running instance
REGION = "eu-central-1"
ACCOUNT_ID = "123456789012"  # moto's default account
DUMMY_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "ec2batch-local", "AWS_SECRET_ACCESS_KEY": "ec2batch-local"}


def repo_root() -> Path:
    return Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class StackPaths:
    """Everything the local stack writes lives under one ignored folder (default `.cache/local`)."""

    root: Path

    @classmethod
    def default(cls) -> StackPaths:
        return cls(Path(os.environ.get("EC2BATCH_LOCAL_DIR", repo_root() / ".cache" / "local")).resolve())

    @property
    def docker_data(self) -> Path:
        return self.root / "docker" / "data"

    @property
    def docker_exec(self) -> Path:
        return self.root / "docker" / "exec"

    @property
    def docker_socket(self) -> Path:
        return self.root / "docker" / "docker.sock"

    @property
    def docker_host(self) -> str:
        return f"unix://{self.docker_socket}"

    @property
    def registry_data(self) -> Path:
        return self.root / "registry"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def run(self) -> Path:
        """Pid files and per-instance files (the instance containers' env files)."""
        return self.root / "run"

    @property
    def ec2_wakeup(self) -> Path:
        """moto_server nudges the EC2 emulator through this socket when an instance starts or stops."""
        return self.run / "ec2-wakeup.sock"

    @property
    def ledger_wakeup(self) -> Path:
        """moto_server nudges the ledger streams' poller through this socket after a DynamoDB write."""
        return self.run / "ledger-wakeup.sock"

    @property
    def rootfs(self) -> Path:
        return self.root / "rootfs"

    @property
    def wheels(self) -> Path:
        return self.root / "wheels"

    def ensure(self) -> None:
        for path in (self.docker_data, self.docker_exec, self.registry_data, self.logs, self.run, self.rootfs):
            path.mkdir(parents=True, exist_ok=True)


def local_env(paths: StackPaths) -> dict[str, str]:
    """The environment that points the CLI and the libraries at the local stack."""
    return {
        "AWS_ENDPOINT_URL": f"http://{LOOPBACK}:{MOTO_PORT}",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        **DUMMY_CREDENTIALS,
        "DOCKER_HOST": paths.docker_host,
        "EC2BATCH_LAUNCHER": "inprocess",
    }
