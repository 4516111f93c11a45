"""An instance-metadata (IMDSv2) emulator on loopback, one per local instance.

169.254.169.254 is not ours to use here, so each instance container's agent is pointed at its own
port through AWS_EC2_METADATA_SERVICE_ENDPOINT (which botocore honours too). Like IMDSv2 it refuses
reads without a token obtained by PUT. `ec2batch local interrupt` makes it serve a Spot interruption
notice or a rebalance recommendation, at the paths and in the shapes EC2 uses
(ec2batch.agent.interruption cites the documentation).
"""

from __future__ import annotations

import json
import secrets
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .paths import LOOPBACK


@dataclass(frozen=True)
class InstanceInfo:
    instance_id: str
    region: str
    instance_type: str
    account_id: str
    image_id: str
    tags: dict[str, str]
    lifecycle: str = "on-demand"  # "spot" for a Spot instance (DescribeInstances' InstanceLifecycle)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        return  # quiet: the emulator logs what matters itself

    def do_PUT(self) -> None:
        if self.path != "/latest/api/token" or "X-aws-ec2-metadata-token-ttl-seconds" not in self.headers:
            self._send(400, "token requests need PUT /latest/api/token with a TTL header")
            return
        self._send(200, self.server.token)

    def do_GET(self) -> None:
        if self.headers.get("X-aws-ec2-metadata-token") != self.server.token:
            self._send(401, "IMDSv2: a session token is required")
            return
        body = self.server.lookup(self.path)
        self._send(200, body) if body is not None else self._send(404, "not found")

    def _send(self, status: int, body: str) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, info: InstanceInfo) -> None:
        super().__init__((LOOPBACK, port), _Handler)
        self.info = info
        self.token = secrets.token_urlsafe(32)
        # Not part of `info`, which every boot replaces: a notice stays until the instance is gone.
        self.instance_action: str | None = None
        self.rebalance: str | None = None

    def lookup(self, path: str) -> str | None:
        info = self.info
        document = {
            "instanceId": info.instance_id,
            "region": info.region,
            "availabilityZone": f"{info.region}a",
            "instanceType": info.instance_type,
            "accountId": info.account_id,
            "imageId": info.image_id,
            "architecture": "x86_64",
        }
        paths = {
            "/latest/dynamic/instance-identity/document": json.dumps(document),
            "/latest/meta-data/instance-id": info.instance_id,
            "/latest/meta-data/instance-type": info.instance_type,
            "/latest/meta-data/placement/region": info.region,
            "/latest/meta-data/instance-life-cycle": info.lifecycle,
            "/latest/meta-data/tags/instance": "\n".join(info.tags),
        }
        if self.instance_action is not None:
            paths["/latest/meta-data/spot/instance-action"] = self.instance_action
        if self.rebalance is not None:
            paths["/latest/meta-data/events/recommendations/rebalance"] = self.rebalance
        if path.startswith("/latest/meta-data/tags/instance/"):
            return info.tags.get(path.rsplit("/", 1)[1])
        return paths.get(path)


class ImdsEmulator:
    """One server thread; `url` goes into the instance's environment file."""

    def __init__(self, port: int, info: InstanceInfo) -> None:
        self.server = _Server(port, info)
        self.thread = threading.Thread(target=self.server.serve_forever, name=f"imds-{info.instance_id}", daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.server.server_address[1]}"

    def update(self, info: InstanceInfo) -> None:
        self.server.info = info

    def serve_interruption(self, action: str, time: str) -> None:
        """A Spot interruption notice: EC2 will `action` (terminate, stop, hibernate) the instance at `time`."""
        self.server.instance_action = json.dumps({"action": action, "time": time})

    def serve_rebalance(self, notice_time: str) -> None:
        self.server.rebalance = json.dumps({"noticeTime": notice_time})

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
