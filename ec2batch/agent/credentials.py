"""The job's own AWS identity: its role, assumed for each run, served over the container credentials protocol.

The job's container never sees the machine's role. The agent assumes the job role (`ec2batch-<job>-job`)
with a session name naming the run, so CloudTrail says which run did what, and serves the credentials the
way ECS serves a task role: `AWS_CONTAINER_CREDENTIALS_FULL_URI` + `AWS_CONTAINER_AUTHORIZATION_TOKEN`,
which every AWS SDK and the CLI read without any code in the job. A request without the run's token gets
401. Role chaining (instance role -> job role) caps a session at one hour, so the credentials are assumed
again once they are `refresh_after` old: whatever an SDK caches then has at least half an hour left, and
SDKs come back 5 to 15 minutes before expiry. See docs/agent.md, "The job's identity and network".
"""

from __future__ import annotations

import hmac
import json
import logging
import secrets
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from ..errors import Ec2BatchError, describe_error
from ..jsonlog import fields

log = logging.getLogger(__name__)

URI_VARIABLE = "AWS_CONTAINER_CREDENTIALS_FULL_URI"
TOKEN_VARIABLE = "AWS_CONTAINER_AUTHORIZATION_TOKEN"
PATH = "/v1/credentials"
# Role chaining's cap; AWS refuses a longer DurationSeconds for a chained session.
SESSION_SECONDS = 3600
REFRESH_AFTER_SECONDS = 1800
# Credentials closer to expiry than this are never served, whatever the refresh interval says.
MIN_REMAINING_SECONDS = 300


class CredentialsError(Ec2BatchError):
    pass


def session_name(run_id: str) -> str:
    # RoleSessionName: 2-64 characters of [\w+=,.@-]; run ids are time stamp, trigger and hex, all allowed.
    return f"ec2batch-{run_id}"[:64]


@dataclass(frozen=True)
class Served:
    """One set of credentials in the shape the SDKs' container provider reads."""

    access_key_id: str
    secret_access_key: str
    token: str
    expiration: datetime
    role_arn: str
    fetched_at: datetime

    def document(self) -> dict[str, str]:
        return {
            "AccessKeyId": self.access_key_id,
            "SecretAccessKey": self.secret_access_key,
            "Token": self.token,
            "Expiration": self.expiration.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "RoleArn": self.role_arn,
        }


class JobCredentials:
    """The job role's credentials for one run, assumed on first use and again when they grow old."""

    def __init__(
        self,
        sts: Any,
        role_arn: str,
        run_id: str,
        *,
        clock: Callable[[], datetime],
        refresh_after: float = REFRESH_AFTER_SECONDS,
        on_new: Callable[[Served], None] = lambda served: None,
    ) -> None:
        self.sts = sts
        self.role_arn = role_arn
        self.session_name = session_name(run_id)
        self.clock = clock
        self.refresh_after = timedelta(seconds=refresh_after)
        self.on_new = on_new  # the agent's redactor learns every secret key and token before anything logs
        self._lock = threading.Lock()
        self._current: Served | None = None

    def current(self) -> Served:
        with self._lock:
            now = self.clock()
            served = self._current
            if served is None or self._stale(served, now):
                try:
                    served = self._assume(now)
                except Exception as exc:
                    if served is not None and served.expiration - now > timedelta(seconds=MIN_REMAINING_SECONDS):
                        # STS hiccup: what we have still has minutes left, and the next request tries again.
                        log.warning("could not refresh the job's credentials", extra=fields(error=describe_error(exc)))
                        return served
                    raise CredentialsError(
                        f"credentials: could not assume the job role {self.role_arn}: {describe_error(exc)}"
                    ) from exc
                self._current = served
            return served

    def _stale(self, served: Served, now: datetime) -> bool:
        return now - served.fetched_at >= self.refresh_after or served.expiration - now < timedelta(
            seconds=MIN_REMAINING_SECONDS
        )

    def _assume(self, now: datetime) -> Served:
        response = self.sts.assume_role(
            RoleArn=self.role_arn, RoleSessionName=self.session_name, DurationSeconds=SESSION_SECONDS
        )
        found = response["Credentials"]
        served = Served(
            access_key_id=found["AccessKeyId"],
            secret_access_key=found["SecretAccessKey"],
            token=found["SessionToken"],
            expiration=found["Expiration"],
            role_arn=response["AssumedRoleUser"]["Arn"],
            fetched_at=now,
        )
        self.on_new(served)
        log.info(
            "job credentials assumed",
            extra=fields(role=self.role_arn, session=self.session_name, expires=served.document()["Expiration"]),
        )
        return served


class CredentialsEndpoint:
    """An HTTP server on loopback answering the SDKs' container credentials requests for one run."""

    def __init__(self, source: JobCredentials, token: str, host: str = "127.0.0.1", port: int = 0) -> None:
        self.source = source
        self.token = token
        self.server = ThreadingHTTPServer((host, port), _handler(self))
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, name="credentials", daemon=True)

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.server.server_address[:2]
        return str(host), int(port)

    @property
    def loopback_uri(self) -> str:
        host, port = self.address
        return f"http://{host}:{port}{PATH}"

    def start(self) -> CredentialsEndpoint:
        self._thread.start()
        return self

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def authorized(self, header: str | None) -> bool:
        return header is not None and hmac.compare_digest(header.encode(), self.token.encode())


def _handler(endpoint: CredentialsEndpoint) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if urlsplit(self.path).path != PATH:
                self._answer(404, {"message": f"not found; credentials are at {PATH}"})
            elif not endpoint.authorized(self.headers.get("Authorization")):
                self._answer(401, {"message": f"missing or wrong token: send the value of {TOKEN_VARIABLE}"})
            else:
                try:
                    self._answer(200, endpoint.source.current().document())
                except CredentialsError as exc:
                    log.error("job credentials unavailable", extra=fields(error=str(exc)))
                    self._answer(503, {"message": str(exc)})

        def _answer(self, status: int, body: Mapping[str, str]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            return  # the default writes every request line to stderr; the agent logs what matters itself

    return Handler


def new_token() -> str:
    return secrets.token_urlsafe(32)


def from_container_environment(environment: Mapping[str, str]) -> tuple[str, str] | None:
    """(uri, token) a restarted agent finds in its run's container, to serve the same endpoint again."""
    uri, token = environment.get(URI_VARIABLE), environment.get(TOKEN_VARIABLE)
    return (uri, token) if uri and token else None
