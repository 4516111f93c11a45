"""A run's whole life on in-process moto and one simulated clock: triggers, the launcher, SQS timers, the
instance booting its agent (fake Docker engine and instance metadata), power-off, and the planner's tick.

The world only does what AWS and the machine would do by themselves: deliver due SQS messages (and again,
after the visibility timeout, those whose handling failed), hand the ledger stream's new records to the launcher
(and again, a batch whose handling failed: the stream's event source mapping), deliver the run events EventBridge
gets to a consumer's queue, boot an instance's agent when it runs, restart a
killed agent (systemd's Restart=on-failure, three times, then power-off), power the instance off when the
agent is done, retry a failed asynchronous invocation (Lambda: twice), and tick the planner every 15 minutes.
Everything else is ec2batch's own code.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ec2batch.agent.main import Agent, Settings
from ec2batch.launcher import Launcher
from ec2batch.launcher.machines import Machines
from ec2batch.ledger import Ledger
from ec2batch.local.streams import StreamPoller
from ec2batch.names import LIFECYCLE_EPHEMERAL, TAG_ATTEMPT, TAG_LIFECYCLE, TAG_RUN_ID
from ec2batch.run_events import SOURCE
from tests.conftest import Job, Killed
from tests.unit.agent.fakes import Clock, FakeDocker, FakeImds

PLANNER_PERIOD = timedelta(minutes=15)
LAMBDA_RETRIES = (timedelta(minutes=1), timedelta(minutes=2))  # asynchronous invocation: two retries
AGENT_RESTARTS = 3  # the unit's StartLimitBurst: then OnFailure=poweroff.target
SQS_VISIBILITY = timedelta(minutes=6)


@dataclass
class Pending:
    """An invocation that failed and will be retried, as Lambda retries an asynchronous event."""

    at: datetime
    event: dict[str, Any]
    retries_left: int


@dataclass
class World:
    job: Job
    clock: Clock
    tmp: Path
    runtime: float = 30.0
    exit_code: int = 0
    hang: bool = False  # instances never boot their agent (a hung machine)
    on_wait: Callable[[World], None] | None = None  # once, when the job's container is first waited on
    engines: dict[str, FakeDocker] = field(default_factory=dict)
    booted: set[tuple[str, str]] = field(default_factory=set)  # (instance, run#attempt)
    retries: list[Pending] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # what crashed (not Killed: that is the fault itself)
    next_tick: datetime | None = None
    stream: StreamPoller | None = None  # the ledger stream's event source mapping
    events_queue: str | None = None  # a consumer's rule on the default bus delivers every run event here
    _faults: Any = field(default=None, repr=False)  # the fault injector, while the stream is delivered

    def follow_events(self) -> None:
        """The stage: the ledger stream's mapping (from LATEST) and a consumer of every run event."""
        self.stream = StreamPoller(self.job.clients, self._invoke_for_stream, interval=0)
        self.stream.discover(at_start=True)
        sqs, events = self.job.clients.sqs, self.job.clients.events
        self.events_queue = sqs.create_queue(QueueName="run-events-consumer")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=self.events_queue, AttributeNames=["QueueArn"])["Attributes"]
        events.put_rule(Name="run-events-consumer", EventPattern=json.dumps({"source": [SOURCE]}))
        events.put_targets(Rule="run-events-consumer", Targets=[{"Id": "q", "Arn": arn["QueueArn"]}])

    @property
    def ledger(self) -> Ledger:
        return Ledger(self.job.clients.dynamodb, self.job.config.names.ledger_table, clock=self.clock.now)

    def launcher(self) -> Launcher:
        machines = Machines(
            self.job.clients.ec2, stopping_wait_seconds=60, sleep=self.clock.sleep, clock=self.clock.now
        )
        # The Lambda's: its environment names the bus (EC2BATCH_EVENT_BUS), so a stream batch reads no config.
        return Launcher(
            self.job.clients, clock=self.clock.now, machines=machines, sleep=self.clock.sleep, event_bus="default"
        )

    # ---------------------------------------------------------------- what people and schedules do
    def invoke(self, event: dict[str, Any], retries: int = len(LAMBDA_RETRIES)) -> dict[str, Any] | None:
        """An asynchronous invocation of the launcher (the Scheduler's, or a run-now the user repeats)."""
        try:
            return self.launcher().handle(event)  # type: ignore[return-value]
        except Killed:
            pass
        except Exception as exc:
            self.errors.append(f"launcher: {type(exc).__name__}: {exc}")
        if retries:
            delay = LAMBDA_RETRIES[len(LAMBDA_RETRIES) - retries]
            self.retries.append(Pending(self.clock.now() + delay, event, retries - 1))
        return None

    def attempt(self, action: Callable[[], Any]) -> Any:
        """A user's command (run-at, cancel): its failure is the user's to see, not retried for them."""
        try:
            return action()
        except Killed:
            return None
        except Exception as exc:
            self.errors.append(f"command: {type(exc).__name__}: {exc}")
            return None

    # ---------------------------------------------------------------- time passing
    def run_for(self, span: timedelta) -> None:
        """Let time pass, jumping from one thing that happens to the next (a due message, a retry, a tick)."""
        end = self.clock.now() + span
        while True:
            self.step()
            upcoming = [t for t in self._upcoming() if t > self.clock.now()]
            if not upcoming or min(upcoming) > end:
                break
            self.clock.moment = min(upcoming)
        self.clock.moment = max(self.clock.now(), end)
        self.step()

    def _upcoming(self) -> list[datetime]:
        """When something will next happen by itself: a retry, a planner tick, an SQS message coming due."""
        from moto.sqs.models import sqs_backends

        times = [p.at for p in self.retries]
        if self.stream is not None and any(shard.failures for shard in self.stream.shards.values()):
            times.append(self.clock.now() + timedelta(seconds=1))  # the mapping retries a failed batch at once
        if self.next_tick is not None:
            times.append(self.next_tick)
        queue = sqs_backends["123456789012"][self.job.clients.region].queues.get(self.job.config.names.timer_queue)
        now = self.clock.now().timestamp() * 1000
        for message in queue._messages if queue else []:  # moto's own record of when each becomes visible
            at = max(message.delayed_until, message.visible_at, now) / 1000  # sent just now: deliverable at once
            times.append(datetime.fromtimestamp(at, UTC) + timedelta(milliseconds=1))
        return times

    def step(self) -> None:
        """Everything due now; an instance started by any of it boots at once (before any later timer)."""
        self._boot_machines()
        for pending in [p for p in self.retries if p.at <= self.clock.now()]:
            self.retries.remove(pending)
            self.invoke(pending.event, pending.retries_left)
            self._boot_machines()
        self.deliver_stream()
        self._deliver_timers()
        self._boot_machines()
        self.deliver_stream()
        if self.next_tick is None or self.next_tick - self.clock.now() > PLANNER_PERIOD:
            self.next_tick = self.clock.now() + PLANNER_PERIOD  # first look, or the stage moved the clock back
        if self.clock.now() >= self.next_tick:
            self.next_tick = self.clock.now() + PLANNER_PERIOD  # EventBridge's rate(15 minutes): no catching up
            self.invoke({"action": "plan", "job": self.job.name}, retries=0)
            self._boot_machines()

    def _deliver_timers(self) -> None:
        sqs = self.job.clients.sqs
        with self.quiet():  # the event source mapping's polling is AWS's, not ours
            url = sqs.get_queue_url(QueueName=self.job.config.names.timer_queue)["QueueUrl"]
            messages = sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=int(SQS_VISIBILITY.total_seconds())
            ).get("Messages", [])
        for message in messages:  # the event source mapping: one message per invocation
            event = {
                "Records": [{"messageId": message["MessageId"], "eventSource": "aws:sqs", "body": message["Body"]}]
            }
            try:
                result = self.launcher().handle(event)
            except Killed:
                continue  # not deleted: SQS delivers it again after the visibility timeout
            except Exception as exc:
                self.errors.append(f"timer: {type(exc).__name__}: {exc}")
                continue
            if not result["batchItemFailures"]:  # type: ignore[index]
                with self.quiet():
                    sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            self._boot_machines()

    def deliver_stream(self) -> None:
        """The ledger stream's mapping: every new record to the launcher, a failed batch again at the next step."""
        from tests.conftest import MOTO

        if self.stream is None:
            return
        self._faults = MOTO.interceptor
        with self.quiet():  # the mapping's reads of the stream are AWS's; the launcher's PutEvents are ours
            self.stream.discover()
            while sum(self.stream.poll(shard) for shard in list(self.stream.shards.values())):
                if any(shard.failures for shard in self.stream.shards.values()):
                    break

    def _invoke_for_stream(self, event: dict[str, Any]) -> Any:
        from tests.conftest import MOTO

        first = event["Records"][0]["dynamodb"]["SequenceNumber"]
        MOTO.interceptor, saved = self._faults, MOTO.interceptor  # inside quiet(): the launcher meets the faults
        try:
            return self.launcher().handle(event)
        except Killed:
            return {"batchItemFailures": [{"itemIdentifier": first}]}  # the invocation failed: Lambda retries it
        except Exception as exc:
            self.errors.append(f"stream: {type(exc).__name__}: {exc}")
            raise
        finally:
            MOTO.interceptor = saved

    def run_events(self) -> list[dict[str, Any]]:
        """Every run event a consumer's rule has received so far (drained from its queue)."""
        got: list[dict[str, Any]] = []
        with self.quiet():
            sqs = self.job.clients.sqs
            while messages := sqs.receive_message(QueueUrl=self.events_queue, MaxNumberOfMessages=10).get("Messages"):
                got += [json.loads(m["Body"])["detail"] for m in messages]
                for m in messages:
                    sqs.delete_message(QueueUrl=self.events_queue, ReceiptHandle=m["ReceiptHandle"])
        return got

    def _boot_machines(self) -> None:
        for instance in self.instances("running"):
            run_id = _tags(instance).get(TAG_RUN_ID, "")
            # One boot per start: a retry's attempt on the same (reused) instance is a new start.
            key = (instance["InstanceId"], f"{run_id}#{_tags(instance).get(TAG_ATTEMPT, '1')}")
            if key in self.booted:
                continue
            self.booted.add(key)
            if not self.hang:
                self._boot(instance)

    def _boot(self, instance: dict[str, Any]) -> None:
        instance_id = instance["InstanceId"]
        engine = self.engines.setdefault(instance_id, FakeDocker(self.clock, self.runtime, self.exit_code))
        if self.on_wait is not None:
            hook, self.on_wait = self.on_wait, None
            engine.wait_hook = lambda _engine, _container: hook(self)
        for _ in range(AGENT_RESTARTS):
            try:
                self._agent(instance_id, engine).run()
                break
            except Killed:
                continue  # systemd starts it again
        silence_agent_logs()  # the agent's CloudWatch handler goes with its machine, not on to the launcher's lines
        self._power_off(instance)

    def _agent(self, instance_id: str, engine: FakeDocker) -> Agent:
        settings = Settings(
            poweroff_command=["true"],
            keep_running_flag=self.tmp / "keep-running",
            credentials_listen=("127.0.0.1", 0),  # the job's credentials endpoint on a free loopback port
            credentials_uri=None,
        )
        return Agent(
            settings,
            imds=FakeImds(instance_id),
            make_clients=lambda region: self.job.clients,
            make_docker=lambda: engine,
            clock=self.clock.now,
            sleep=self.clock.sleep,
        )

    def _power_off(self, instance: dict[str, Any]) -> None:
        """`systemctl poweroff` on the instance: it stops, or terminates if it was made for one run."""
        ec2 = self.job.clients.ec2
        with self.quiet():  # the machine's own power-off, not an API call
            if _tags(instance).get(TAG_LIFECYCLE) == LIFECYCLE_EPHEMERAL:
                ec2.terminate_instances(InstanceIds=[instance["InstanceId"]])
            else:
                ec2.stop_instances(InstanceIds=[instance["InstanceId"]])

    # ---------------------------------------------------------------- looking
    def instances(self, *states: str) -> list[dict[str, Any]]:
        with self.quiet():
            return self.job.instances(*states)

    @contextmanager
    def quiet(self) -> Iterator[None]:
        """The world's own looks are not part of the run's life: no fault lands on them."""
        from tests.conftest import MOTO

        saved, MOTO.interceptor = MOTO.interceptor, None
        try:
            yield
        finally:
            MOTO.interceptor = saved


def _tags(instance: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in instance.get("Tags", [])}


def follow_clock(monkeypatch: pytest.MonkeyPatch, clock: Clock) -> None:
    """moto's SQS keeps delays and visibility on the wall clock, and its EC2 an instance's LaunchTime; make them
    keep the world's."""
    import moto.ec2.models.instances as ec2_instances
    import moto.sqs.models as sqs_models

    monkeypatch.setattr(sqs_models, "unix_time", lambda *a: clock.now().timestamp())
    monkeypatch.setattr(sqs_models, "unix_time_millis", lambda *a: clock.now().timestamp() * 1000)
    monkeypatch.setattr(ec2_instances, "utcnow", lambda: clock.now().astimezone(UTC).replace(tzinfo=None))


@contextmanager
def fresh_log_handlers() -> Iterator[None]:
    """The world's agents flush every handler of the `ec2batch` logger at power-off: one a test before left on a
    stream pytest has closed since (the launcher's handler logs to the captured stdout) would fail them. Such
    handlers are dropped first, and whatever the world adds is removed after."""
    logger = logging.getLogger("ec2batch")
    logger.handlers[:] = [h for h in logger.handlers if not getattr(getattr(h, "stream", None), "closed", False)]
    before = list(logger.handlers)
    try:
        yield
    finally:
        logger.handlers[:] = [h for h in logger.handlers if h in before]


def silence_agent_logs() -> None:
    logging.getLogger("ec2batch").handlers[:] = [
        h for h in logging.getLogger("ec2batch").handlers if type(h).__name__ != "CloudWatchHandler"
    ]


def decode(body: str) -> dict[str, Any]:
    return json.loads(body)
