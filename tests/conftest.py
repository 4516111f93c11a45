"""Shared fixtures: in-process moto (state fresh per test), a provisioned example job, fault injection."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from ec2batch.aws import Clients
from ec2batch.config import JobConfig, parse_config
from ec2batch.local.idempotency import Reply, TokenCache
from ec2batch.local.provision import Provisioned, provision_job

EVENTS = Path(__file__).parent / "events"
REGION = "eu-central-1"


def load_event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / f"{name}.json").read_text())


class MotoAsAws:
    """In-process moto made to answer as AWS does where ec2batch's guarantees depend on it.

    - Each request is atomic, as each request to AWS is: moto's backends are plain Python objects without
      locks, so two threads racing a conditional write could both pass the condition, which DynamoDB never
      allows (the race tests need the service's per-request atomicity).
    - Idempotency tokens are honoured (`ec2batch.local.idempotency`, the same layer the local stack's
      moto_server has): a retried RunInstances or TransactWriteItems finds its first effect.
    - `interceptor`, when set, sees every request first (the fault-injection suite uses it).
    """

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.tokens = TokenCache()
        self.interceptor: Callable[[Any, Callable[[], Any]], Any] | None = None


MOTO = MotoAsAws()


def install_moto_as_aws() -> Callable[[], None]:
    """Put `MOTO` in front of in-process moto (and make its StartInstances set LaunchTime, as on the local
    stack's moto_server); returns the undo."""
    from moto.core.botocore_stubber import BotocoreStubber

    from ec2batch.local.motoserver import instance_starts_as_on_aws

    original = BotocoreStubber.process_request
    undo_starts = instance_starts_as_on_aws()

    def process_request(self: BotocoreStubber, request: Any) -> Any:
        def send() -> Any:
            body = request.body or b""
            body = body.encode() if isinstance(body, str) else body

            def forward() -> Reply:
                response = original(self, request)
                if response is None:  # not a mocked URL: let botocore go on (never happens with mock_aws)
                    return Reply(-1, (), b"")
                status, headers, content = response
                content = content.encode() if isinstance(content, str) else content
                return Reply(status, tuple(headers.items()), content)

            with MOTO.lock:
                reply = MOTO.tokens.handle(dict(request.headers.items()), body, forward)
            return None if reply.status == -1 else (reply.status, dict(reply.headers), reply.body)

        if MOTO.interceptor is not None:
            return MOTO.interceptor(request, send)
        return send()

    BotocoreStubber.process_request = process_request  # type: ignore[method-assign]

    def undo() -> None:
        BotocoreStubber.process_request = original  # type: ignore[method-assign]
        undo_starts()

    return undo


@pytest.fixture(scope="session", autouse=True)
def moto_as_aws() -> Iterator[MotoAsAws]:
    undo = install_moto_as_aws()
    yield MOTO
    undo()


@pytest.fixture(scope="session")
def boto_session() -> boto3.Session:
    # One botocore session for the whole run: it caches the service models that take ~0.1 s per client to load.
    return boto3.Session(region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing")


AWS_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": REGION,
    # moto's catalogue of public AMIs makes every EC2 call slow; we register our own image like the local stack.
    "MOTO_EC2_LOAD_DEFAULT_AMIS": "false",
}
AWS_UNSET = ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN", "EC2BATCH_JOB")


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, boto_session: boto3.Session) -> Iterator[Clients]:
    for var in AWS_UNSET:
        monkeypatch.delenv(var, raising=False)
    for var, value in AWS_ENVIRONMENT.items():
        monkeypatch.setenv(var, value)
    with mock_aws():
        yield Clients(boto_session)


class Job:
    """The example job, provisioned in moto, with a queue subscribed to its notifications."""

    def __init__(self, clients: Clients, config: JobConfig, provisioned: Provisioned, inbox_url: str) -> None:
        self.clients = clients
        self.config = config
        self.provisioned = provisioned
        self.inbox_url = inbox_url

    @property
    def name(self) -> str:
        return self.config.job

    def notifications(self) -> list[dict[str, Any]]:
        messages = self.clients.sqs.receive_message(QueueUrl=self.inbox_url, MaxNumberOfMessages=10).get("Messages", [])
        return [json.loads(json.loads(m["Body"])["Message"]) for m in messages]

    def instances(self, *states: str) -> list[dict[str, Any]]:
        filters = [{"Name": "tag:ec2batch:job", "Values": [self.name]}]
        if states:
            filters.append({"Name": "instance-state-name", "Values": list(states)})
        response = self.clients.ec2.describe_instances(Filters=filters)
        return [i for r in response["Reservations"] for i in r["Instances"]]


def make_job(clients: Clients, **overrides: Any) -> Job:
    ec2 = clients.ec2
    vpc_id = ec2.describe_vpcs()["Vpcs"][0]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc_id, CidrBlock=f"172.31.{200 + i}.0/24", AvailabilityZone=f"{REGION}{zone}")[
            "Subnet"
        ]["SubnetId"]
        for i, zone in enumerate("ab")
    ]
    topic_arn = f"arn:aws:sns:{REGION}:123456789012:ec2batch-{overrides.get('job', 'daily-report')}"
    doc = {
        "job": "daily-report",
        "image": "123456789012.dkr.ecr.eu-central-1.amazonaws.com/ec2batch/daily-report:latest",
        "command": ["python", "-m", "report"],
        "instance_types": ["m7i.large", "m6i.large"],
        "subnet_ids": subnets,
        "notifications": {"topic_arn": topic_arn, "on": ["FAILED", "TIMED_OUT", "SKIPPED"]},
        **overrides,
    }
    config = parse_config(doc)
    image_id = ec2.register_image(
        Name="ec2batch-instance-test",
        RootDeviceName="/dev/xvda",
        Architecture="x86_64",
        VirtualizationType="hvm",
        BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 30}}],
    )["ImageId"]
    provisioned = provision_job(clients, config, image_id=image_id, subnet_id=subnets[0])
    inbox = clients.sqs.create_queue(QueueName=f"inbox-{config.job}")["QueueUrl"]
    inbox_arn = clients.sqs.get_queue_attributes(QueueUrl=inbox, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    clients.sns.subscribe(TopicArn=provisioned.topic_arn, Protocol="sqs", Endpoint=inbox_arn)
    return Job(clients, config, provisioned, inbox)


@pytest.fixture
def job(aws: Clients) -> Job:
    return make_job(aws)


class Outbox:
    """The ledger streams' event source mapping in a test: hands every stream record written since it was made
    (and every record of a table made after it) to a launcher, which publishes the run events in them, as
    Terraform's mapping does on AWS and `ec2batch.local.streams` on the local stack."""

    def __init__(self, clients: Clients, launcher: Any = None) -> None:
        from ec2batch.launcher import Launcher
        from ec2batch.local.streams import StreamPoller

        self.launcher = launcher or Launcher(clients, event_bus="default")
        self.poller = StreamPoller(clients, self.launcher.handle, interval=0)
        self.poller.discover(at_start=True)  # the mapping's LATEST: only what is written from now on

    def drain(self) -> int:
        """Hand on every record there is (a failed batch stays for the next drain); returns how many went."""
        self.poller.discover()
        total = 0
        while True:
            handed = sum(self.poller.poll(shard) for shard in list(self.poller.shards.values()))
            total += handed
            if not handed or any(shard.failures for shard in self.poller.shards.values()):
                return total


@pytest.fixture
def outbox(aws: Clients) -> Outbox:
    return Outbox(aws)


@pytest.fixture
def calls(aws: Clients) -> Counter[str]:
    """Counts every AWS API call made through the shared clients, as `service.Operation`."""
    counter: Counter[str] = Counter()

    def count(model: Any, **_: Any) -> None:
        counter[f"{model.service_model.service_name}.{model.name}"] += 1

    for service in ("ec2", "dynamodb", "ssm", "sns", "events"):
        getattr(aws, service).meta.events.register("before-call", count)
    return counter


def inject_error(client: Any, operation: str, codes: list[str]) -> list[str]:
    """Make the next len(codes) calls of `operation` fail with these error codes (moto never raises them)."""
    remaining = list(codes)
    seen: list[str] = []

    def fail(**kwargs: Any) -> None:
        if remaining:
            code = remaining.pop(0)
            seen.append(code)
            raise ClientError({"Error": {"Code": code, "Message": f"injected {code}"}}, operation)

    client.meta.events.register(f"before-call.{client.meta.service_model.endpoint_prefix}.{operation}", fail)
    return seen


@pytest.fixture
def injector() -> Callable[[Any, str, list[str]], list[str]]:
    return inject_error


# ---------------------------------------------------------------- faults at the wire
class Killed(BaseException):
    """The process died right after a call AWS applied (a BaseException: no `except Exception` catches it)."""


FAULTS = ("error", "lost", "kill")


class Faults:
    """Inject faults into AWS calls as they cross the wire, by (service, operation, nth call of it).

    - `error`: the call fails before AWS applies it (a ClientError reaches the caller, after botocore's retries);
    - `lost`: AWS applies it, the response is lost, botocore sends the same request again (same tokens) and the
      caller sees the second answer;
    - `kill`: AWS applies it, then the calling process dies (`Killed`).
    Calls are counted per logical call (botocore's invocation id), so retries of one call count once.
    """

    def __init__(self) -> None:
        self.planned: dict[tuple[str, str, int], str] = {}
        self.planned_sites: dict[str, str] = {}
        self.seen: list[tuple[str, str]] = []
        self.sites: list[str] = []  # call sites in order of first use: see `call_site`
        self._invocations: dict[str, tuple[str, str, int]] = {}
        self._counts: Counter[tuple[str, str]] = Counter()
        self.fired: list[tuple[str, str, int, str]] = []

    def at_site(self, site: str, fault: str) -> Faults:
        """Fault the first call made from this call site (`call_site`)."""
        assert fault in FAULTS, fault
        self.planned_sites[site] = fault
        return self

    def reset(self) -> None:
        """Forget the calls seen so far (a test's setup is not part of the life under test)."""
        self.seen.clear()
        self.sites.clear()
        self._invocations.clear()
        self._counts.clear()

    def at(self, service: str, operation: str, fault: str, nth: int = 1) -> Faults:
        assert fault in FAULTS, fault
        self.planned[service, operation, nth] = fault
        return self

    def __call__(self, request: Any, send: Callable[[], Any]) -> Any:
        from ec2batch.local.idempotency import operation_of

        body = request.body or b""
        body = body.encode() if isinstance(body, str) else body
        found = operation_of(dict(request.headers.items()), body) or ("?", "?")
        if found[1] == "":
            found = (found[0], _rest_operation(request))
        invocation = request.headers.get("amz-sdk-invocation-id")
        invocation = invocation.decode() if isinstance(invocation, bytes) else str(invocation or id(request))
        if invocation not in self._invocations:
            self._counts[found] += 1
            self._invocations[invocation] = (*found, self._counts[found])
            self.seen.append(found)
        key = self._invocations[invocation]
        site = call_site(*key[:2])
        if site not in self.sites:
            self.sites.append(site)
        fault = self.planned.pop(key, None) or self.planned_sites.pop(site, None)
        if fault is None:
            return send()
        self.fired.append((*key, fault))
        if fault == "error":
            raise ClientError({"Error": {"Code": "InternalError", "Message": f"injected before {key[1]}"}}, key[1])
        first = send()
        if fault == "kill":
            raise Killed(f"killed after {key[0]}.{key[1]}")
        return send() if first is not None else first  # lost: botocore's retry of the very same request


def call_site(service: str, operation: str) -> str:
    """Where in ec2batch an AWS call is made: the chain of ec2batch functions on the stack, outermost first,
    and the operation, e.g. `launcher/core.py:handle > ... > ledger.py:_update > dynamodb.UpdateItem`.
    Line numbers are left out so that a site keeps its name when the code around it changes."""
    import sys

    frames = []
    frame = sys._getframe(1)
    while frame is not None:
        path = frame.f_code.co_filename
        marker = path.rfind("/ec2batch/")
        if marker != -1 and "/tests/" not in path:
            frames.append(f"{path[marker + 10 :]}:{frame.f_code.co_name}")
        frame = frame.f_back
    return " > ".join([*reversed(frames), f"{service}.{operation}"])


def _rest_operation(request: Any) -> str:
    """REST services (Logs is JSON; SSM, SNS, SQS JSON/query) are covered above; this names the rest by path."""
    from urllib.parse import urlsplit

    return f"{request.method} {urlsplit(request.url).path}"


@pytest.fixture
def faults(moto_as_aws: MotoAsAws) -> Iterator[Faults]:
    plan = Faults()
    moto_as_aws.interceptor = plan
    yield plan
    moto_as_aws.interceptor = None
