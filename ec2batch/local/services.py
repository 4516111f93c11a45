"""The local stack's long-running processes: dockerd, the registry, moto_server.

Each is started detached (it outlives the command that started it), with a pid file and a log file
under the stack's folder, and is ready when its own health check answers. Starting twice is a no-op;
a port held by something that is not ours is refused with a clear message.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import Ec2BatchError
from .paths import DUMMY_CREDENTIALS, LOOPBACK, MOTO_PORT, REGION, REGISTRY_PORT, StackPaths


class StackError(Ec2BatchError):
    """The local stack cannot do something here; the message says what to do."""


@dataclass(frozen=True)
class Service:
    name: str
    command: list[str]
    ready: Callable[[], bool]
    env: dict[str, str]
    port: int | None = None
    ready_timeout: float = 60.0


def pid_file(paths: StackPaths, name: str) -> Path:
    return paths.run / f"{name}.pid"


def running_pid(paths: StackPaths, name: str) -> int | None:
    try:
        pid = int(pid_file(paths, name).read_text())
        os.kill(pid, 0)
    except (FileNotFoundError, ValueError, ProcessLookupError, PermissionError):
        return None
    return pid


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((LOOPBACK, port)) == 0


def http_ok(url: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.status < 500
        except Exception:
            return False

    return check


def start(paths: StackPaths, service: Service, progress: Callable[[str], None] = print) -> str:
    """Start `service` unless it already runs; returns 'running' or 'started'."""
    if running_pid(paths, service.name) and service.ready():
        return "running"
    if service.port is not None and port_in_use(service.port):
        raise StackError(
            f"port {LOOPBACK}:{service.port} is taken by another program, so {service.name} cannot start; "
            f"stop it (see `ss -ltnp 'sport = :{service.port}'`)"
        )
    paths.logs.mkdir(parents=True, exist_ok=True)
    log = (paths.logs / f"{service.name}.log").open("ab")
    progress(f"starting {service.name} (log: {paths.logs / (service.name + '.log')})")
    process = subprocess.Popen(
        service.command,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env={**os.environ, **service.env},
        start_new_session=True,  # survives the CLI that started it
    )
    pid_file(paths, service.name).write_text(str(process.pid))
    deadline = time.monotonic() + service.ready_timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = (paths.logs / f"{service.name}.log").read_text(errors="replace").splitlines()[-5:]
            raise StackError(f"{service.name} exited at start (code {process.returncode}): " + " | ".join(tail))
        if service.ready():
            return "started"
        time.sleep(0.2)
    raise StackError(f"{service.name} did not become ready in {service.ready_timeout:.0f}s; see its log")


def stop(paths: StackPaths, name: str, timeout: float = 20) -> bool:
    pid = running_pid(paths, name)
    if pid is None:
        return False
    os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and running_pid(paths, name):
        time.sleep(0.2)
    if running_pid(paths, name):
        os.killpg(pid, signal.SIGKILL)
    pid_file(paths, name).unlink(missing_ok=True)
    return True


# ---------------------------------------------------------------- the three services


def dockerd(paths: StackPaths) -> Service:
    """Our own engine: its own socket, data and exec roots under the stack folder, no bridge, no iptables.

    Everything it runs uses the host network, so no traffic leaves loopback. dockerd gets dummy AWS
    credentials in its environment because the awslogs driver signs its calls with dockerd's own.
    """
    binary = shutil.which("dockerd")
    if binary is None:
        raise StackError("dockerd is not installed: run `ec2batch local up` as root (it installs docker.io)")
    command = [
        binary,
        "--host", paths.docker_host,
        "--data-root", str(paths.docker_data),
        "--exec-root", str(paths.docker_exec),
        "--pidfile", str(paths.run / "dockerd.engine.pid"),
        "--bridge=none",
        "--iptables=false",
        "--ip-masq=false",
        "--ip6tables=false",
        # moto gives Batch containers `host.docker.internal:host-gateway`; with no bridge there is no gateway,
        # so the name means loopback, where moto_server is (the containers share the host's network).
        f"--host-gateway-ip={LOOPBACK}",
    ]  # fmt: skip
    if len(str(paths.docker_socket)) > 100:
        raise StackError("the stack folder path is too long for a unix socket: set EC2BATCH_LOCAL_DIR shorter")

    def ready() -> bool:
        return paths.docker_socket.exists() and _docker_ping(paths)

    return Service("dockerd", command, ready, env={**DUMMY_CREDENTIALS, "AWS_REGION": REGION}, ready_timeout=90)


def _docker_ping(paths: StackPaths) -> bool:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(2)
            sock.connect(str(paths.docker_socket))
            sock.sendall(b"GET /_ping HTTP/1.0\r\n\r\n")
            return b"OK" in sock.recv(1024)
    except OSError:
        return False


def registry(paths: StackPaths) -> Service:
    binary = shutil.which("docker-registry")
    if binary is None:
        raise StackError("docker-registry is not installed: run `ec2batch local up` as root (it installs it)")
    config = paths.run / "registry.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: warn\n"
        f"storage:\n  filesystem:\n    rootdirectory: {paths.registry_data}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: {LOOPBACK}:{REGISTRY_PORT}\n"
    )
    return Service(
        "registry",
        [binary, "serve", str(config)],
        http_ok(f"http://{LOOPBACK}:{REGISTRY_PORT}/v2/"),
        env={},
        port=REGISTRY_PORT,
    )


def moto(paths: StackPaths) -> Service:
    """moto_server; it runs AWS Batch jobs as containers on the stack's engine (docs/local-stack.md#aws-batch)."""
    command = [sys.executable, "-m", "ec2batch.local.motoserver", "--host", LOOPBACK, "--port", str(MOTO_PORT)]
    command += ["--wakeup", str(paths.ec2_wakeup), "--ledger-wakeup", str(paths.ledger_wakeup)]
    env = {
        "MOTO_EC2_LOAD_DEFAULT_AMIS": "false",
        # moto's Batch: docker.from_env() finds our engine, not the machine's; children on the host network
        # (the engine has no bridge); MOTO_PORT is what moto tells a child moto listens on (its default is 5000).
        "DOCKER_HOST": paths.docker_host,
        "MOTO_DOCKER_NETWORK_MODE": "host",
        "MOTO_PORT": str(MOTO_PORT),
    }
    return Service("moto", command, http_ok(f"http://{LOOPBACK}:{MOTO_PORT}/moto-api/data.json"), env, MOTO_PORT)
