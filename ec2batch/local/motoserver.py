"""moto_server, with one request at a time, honouring idempotency tokens as AWS does.

moto's backends have no locks: two concurrent conditional writes to DynamoDB can both succeed, which
AWS never allows. The ledger's guarantees (one run per schedule event, one winner among racing
triggers) rest on per-request atomicity, so this server serves requests one at a time. The stack's
request rate is tiny; the lock costs nothing measurable. Requests that carry an idempotency token go
through `ec2batch.local.idempotency` (moto ignores the tokens). AWS Batch jobs run as containers on the
stack's engine (moto's own doing); their output goes where the job definition's log configuration says.
"""

from __future__ import annotations

import argparse
import copy
import io
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import run_simple

from .idempotency import Reply, TokenCache
from .wakeup import changes_instances, nudge, writes_items


class Serialized:
    def __init__(
        self, app: Callable[..., Iterable[bytes]], wakeup: Path | None = None, ledger_wakeup: Path | None = None
    ) -> None:
        self.app = app
        self.lock = threading.Lock()
        self.tokens = TokenCache()
        self.wakeup = wakeup  # the EC2 emulator's socket, nudged after an instance starts or stops
        self.ledger_wakeup = ledger_wakeup  # the ledger streams' poller's, nudged after a DynamoDB write

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        headers = {key[5:].replace("_", "-"): value for key, value in environ.items() if key.startswith("HTTP_")}

        def forward() -> Reply:
            environ["wsgi.input"] = io.BytesIO(body)
            captured: dict[str, Any] = {}

            def capture(status: str, response_headers: list[tuple[str, str]], exc_info: Any = None) -> None:
                captured["status"], captured["headers"] = status, response_headers

            # Drain the body inside the lock: moto may produce it lazily.
            content = b"".join(self.app(environ, capture))
            return Reply(int(captured["status"].split()[0]), tuple(captured["headers"]), content)

        with self.lock:
            reply = self.tokens.handle(headers, body, forward)
        if self.wakeup is not None and reply.status < 300 and changes_instances(body):
            nudge(self.wakeup)
        if self.ledger_wakeup is not None and reply.status < 300 and writes_items(headers.get("X-AMZ-TARGET")):
            nudge(self.ledger_wakeup)
        start_response(_status_line(reply.status), list(reply.headers))
        return [reply.body]


def _status_line(status: int) -> str:
    from http import HTTPStatus

    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"{status} Unknown"


def batch_jobs_as_on_aws() -> None:
    """Make moto write a Batch job's output where AWS does: the job definition's awslogs group and prefix.

    moto 5 puts every job's lines in `/aws/batch/job`, stream `<definition name>/default/<job id>`,
    whatever the definition's logConfiguration. AWS writes them to `awslogs-group`, stream
    `<awslogs-stream-prefix>/default/<ECS task id>`. Here the stream is `<prefix>/default/<job id>` with the
    child's ':' as '-' (a stream name cannot hold ':'). Either way DescribeJobs' container.logStreamName
    names it, which is what a reader must use: the stream is never derived from the job id on AWS.
    """
    from moto.batch import models

    original = models.Job.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        if not hasattr(self, "_log_group") or not hasattr(self, "_stream_name"):  # read against moto 5.2
            raise RuntimeError("moto's Batch Job changed shape: re-read moto/batch/models.py before patching it")
        # moto hands the children of an array job one overrides dict and appends each child's AWS_BATCH_JOB_ID
        # to its environment list: a child could start with a sibling's id, hence its index. One copy each.
        self.container_overrides = copy.deepcopy(self.container_overrides)
        properties = self.job_definition.container_properties or {}
        logging = properties.get("logConfiguration") or {}
        options = logging.get("options") or {}
        if logging.get("logDriver") == "awslogs" and options.get("awslogs-group"):
            self._log_group = options["awslogs-group"]
            prefix = options.get("awslogs-stream-prefix", self.job_definition.name)
            self._stream_name = f"{prefix}/default/{self.job_id.replace(':', '-')}"

    models.Job.__init__ = init  # type: ignore[method-assign]


def instance_starts_as_on_aws() -> Callable[[], None]:
    """Make moto's StartInstances update the instance's LaunchTime, as EC2 does; returns the undo.

    EC2's API reference for `Instance.LaunchTime`: "The time that the instance was last launched. To determine
    the time that instance was first launched, see the attachment time for the primary network interface."
    moto 5.2 sets it at RunInstances only. The launcher tells a start it recorded but never made from one that
    happened by this field (`ec2batch.launcher.starts`). The time is read through moto's own `utcnow` in its
    instances module, so a test that moves moto's clock moves this one too.
    """
    from moto.ec2.models import instances

    original = instances.Instance.start
    if getattr(original, "ec2batch_patched", False):
        return lambda: None

    def start(self: Any) -> Any:
        previous = original(self)
        if previous.name not in ("pending", "running"):  # a start of a running instance changes nothing
            self.launch_time = instances.utcnow()
        return previous

    start.ec2batch_patched = True  # type: ignore[attr-defined]
    instances.Instance.start = start  # type: ignore[method-assign]

    def undo() -> None:
        instances.Instance.start = original  # type: ignore[method-assign]

    return undo


def stream_records_shared_on_copy() -> None:
    """Make moto's backup of a table before a TransactWriteItems share the stream's records instead of copying them.

    moto deep-copies every table a transaction touches, to put it back if the transaction is cancelled; with the
    ledger's stream (decision 53) that copy took every stream record with it, two item images each, so each
    transaction cost more than the one before: `make bench` measured the launcher at 0.135 s per run, up to 0.6 s,
    on a stack that had served the test suite (0.04 s on a fresh one). A record never changes once written, so
    the copy's shard gets the same records in a new list: a cancelled transaction still takes back the records it
    added (they are not in the copy's list), and nothing else can tell the difference.
    """
    from moto.dynamodb.models.table import StreamShard

    if getattr(StreamShard, "ec2batch_patched", False):
        return

    def deepcopy(self: Any, memo: dict[int, Any]) -> Any:
        clone = copy.copy(self)
        memo[id(self)] = clone
        clone.table = copy.deepcopy(self.table, memo)  # the table's copy under way (in `memo`): no second copy
        clone.items = list(self.items)
        return clone

    StreamShard.__deepcopy__ = deepcopy  # type: ignore[attr-defined]
    StreamShard.ec2batch_patched = True  # type: ignore[attr-defined]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4566)
    parser.add_argument("--wakeup", type=Path, help="the EC2 emulator's socket, nudged when an instance changes")
    parser.add_argument("--ledger-wakeup", type=Path, help="the stream poller's socket, nudged after a DynamoDB write")
    args = parser.parse_args()
    batch_jobs_as_on_aws()
    instance_starts_as_on_aws()
    stream_records_shared_on_copy()
    run_simple(args.host, args.port, build_app(args.wakeup, args.ledger_wakeup), threaded=True, use_reloader=False)


def build_app(wakeup: Path | None = None, ledger_wakeup: Path | None = None) -> Serialized:
    return Serialized(DomainDispatcherApplication(create_backend_app), wakeup, ledger_wakeup)


if __name__ == "__main__":
    main()
