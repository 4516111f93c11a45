"""Issue 13: a Spot interruption notice in instance metadata reaches the job (a file, SIGTERM) in time, and the
run is recorded as interrupted. The watcher is tested against the local stack's IMDS emulator on loopback."""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from ec2batch.agent.container import INTERRUPTION_FILE, remove_container, stop_for_interruption, wait_with_deadline
from ec2batch.agent.imds import Imds
from ec2batch.agent.interruption import INSTANCE_ACTION_PATH, REBALANCE_PATH, InterruptionWatcher, Notice
from ec2batch.ledger import FAILED
from ec2batch.local.imds_emulator import ImdsEmulator, InstanceInfo
from tests.conftest import Job
from tests.unit.agent.conftest import BOOTED, launch, ledger, machine_for
from tests.unit.agent.fakes import Clock, FakeContainer, FakeDocker, FakeImds

INFO = InstanceInfo(
    instance_id="i-0123456789abcdef0",
    region="eu-central-1",
    instance_type="m7i.large",
    account_id="123456789012",
    image_id="ami-12345678",
    tags={},
    lifecycle="spot",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def emulator() -> Iterator[ImdsEmulator]:
    served = ImdsEmulator(0, INFO)
    yield served
    served.close()


def watching(imds: Imds) -> InterruptionWatcher:
    return InterruptionWatcher(imds, poll_seconds=0.02).start()


def eventually(condition: Callable[[], object], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


# ---------------------------------------------------------------- the watcher, on the IMDS emulator


def test_a_notice_in_metadata_sets_the_event_and_is_parsed(emulator: ImdsEmulator) -> None:
    watcher = watching(Imds(emulator.url))
    try:
        assert not watcher.event.wait(0.3)  # 404: no notice yet, and nothing set
        emulator.serve_interruption("terminate", "2026-12-04T10:00:00Z")
        assert watcher.event.wait(5)
    finally:
        watcher.close()
    assert watcher.notice == Notice("terminate", datetime(2026, 12, 4, 10, 0, tzinfo=UTC))
    assert watcher.notice.as_json() == '{"action": "terminate", "time": "2026-12-04T10:00:00Z"}'
    assert watcher.lifecycle == "spot"


def test_a_rebalance_recommendation_is_logged_once_and_does_not_interrupt(
    emulator: ImdsEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ec2batch")
    emulator.serve_rebalance("2026-12-04T09:50:00Z")
    watcher = watching(Imds(emulator.url))
    try:
        eventually(lambda: watcher.rebalance_at is not None)
        time.sleep(0.3)  # a dozen more polls
    finally:
        watcher.close()
    assert watcher.rebalance_at == "2026-12-04T09:50:00Z"
    assert not watcher.event.is_set() and watcher.notice is None
    messages = [r.getMessage() for r in caplog.records]
    assert messages.count("rebalance recommendation: the instance is at elevated risk of interruption") == 1


def test_metadata_that_does_not_answer_is_logged_once_and_the_watcher_keeps_polling(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="ec2batch")
    port = free_port()
    watcher = watching(Imds(f"http://127.0.0.1:{port}"))  # nothing listens there: connection refused
    try:
        time.sleep(0.4)  # some 20 polls
        assert watcher._thread is not None and watcher._thread.is_alive()
        served = ImdsEmulator(port, INFO)  # metadata comes back, with a notice
    except BaseException:
        watcher.close()
        raise
    try:
        served.serve_interruption("stop", "2026-12-04T10:00:00Z")
        assert watcher.event.wait(5)
    finally:
        watcher.close()
        served.close()
    assert watcher.notice is not None and watcher.notice.action == "stop"
    errors = [r for r in caplog.records if r.getMessage().startswith("instance metadata: could not read")]
    assert [r.fields["kind"] for r in errors] == ["ConnectionRefusedError"]  # type: ignore[attr-defined]


def test_an_expired_token_is_fetched_again(emulator: ImdsEmulator) -> None:
    imds = Imds(emulator.url)
    assert imds.peek(INSTANCE_ACTION_PATH) is None
    emulator.server.token = "a-new-token"  # the old one is refused with 401 from now on
    emulator.serve_interruption("terminate", "2026-12-04T10:00:00Z")
    assert json.loads(imds.peek(INSTANCE_ACTION_PATH) or "") == {"action": "terminate", "time": "2026-12-04T10:00:00Z"}


# ---------------------------------------------------------------- the job, on the fake engine


def started_job(runtime: float, on_sigterm: float | None) -> tuple[Clock, FakeContainer]:
    clock = Clock(BOOTED)
    engine = FakeDocker(clock, runtime=runtime, on_sigterm=on_sigterm)
    container = engine.containers.run("job:1", name="ec2batch-j-r", labels={}, environment={})
    return clock, container


def notice_at(container: FakeContainer, imds: FakeImds, watcher: InterruptionWatcher, after: float, warning: float):
    """At the first wait `after` seconds into the job, EC2 serves a notice `warning` seconds ahead; the watcher
    polls right then (its thread would within its poll interval)."""
    seen: dict[str, Notice] = {}

    def hook(engine: FakeDocker, waited: FakeContainer) -> None:
        now = engine.clock.now()
        if seen or container.started is None or now - container.started < timedelta(seconds=after):
            return
        at = (now + timedelta(seconds=warning)).replace(microsecond=0)
        imds.metadata[INSTANCE_ACTION_PATH] = json.dumps({"action": "terminate", "time": f"{at:%Y-%m-%dT%H:%M:%SZ}"})
        watcher.check()
        assert watcher.notice is not None
        seen["notice"], seen["at_clock"] = watcher.notice, now  # type: ignore[assignment]

    container.engine.wait_hook = hook
    return seen


def test_a_notice_writes_the_file_sends_sigterm_at_once_and_the_job_exits_in_its_own_time() -> None:
    clock, container = started_job(runtime=600, on_sigterm=3)
    imds = FakeImds("i-1")
    watcher = InterruptionWatcher(imds, clock=clock.now)
    seen = notice_at(container, imds, watcher, after=60, warning=120)

    outcome = wait_with_deadline(
        container, BOOTED + timedelta(seconds=3600), 10, clock.now, interruption=watcher, sleep=clock.sleep
    )

    notice = seen["notice"]
    assert outcome.interruption == notice
    assert (outcome.exit_code, outcome.timed_out) == (143, False)
    assert container.files[INTERRUPTION_FILE] == (notice.as_json() + "\n").encode()
    assert [signal for signal, _ in container.signals] == ["SIGTERM"]
    sent = container.signals[0][1]
    assert (sent - seen["at_clock"]).total_seconds() <= 2  # within a couple of seconds of the watcher


@pytest.mark.parametrize(("warning", "agent_keeps"), [(120, 20.0), (20, 4.5)])
def test_a_job_that_outlives_the_warning_is_killed_leaving_the_agent_its_margin(
    warning: float, agent_keeps: float
) -> None:
    clock, container = started_job(runtime=600, on_sigterm=None)  # ignores SIGTERM
    imds = FakeImds("i-1")
    watcher = InterruptionWatcher(imds, clock=clock.now)
    seen = notice_at(container, imds, watcher, after=60, warning=warning)

    outcome = wait_with_deadline(
        container, BOOTED + timedelta(seconds=3600), 10, clock.now, interruption=watcher, sleep=clock.sleep
    )

    assert [signal for signal, _ in container.signals] == ["SIGTERM", "SIGKILL"]
    killed = container.signals[1][1]
    # 20 s of AWS's 120; a quarter of what is left of a shortened warning (the reaction took up to 2 s).
    assert (seen["notice"].time - killed).total_seconds() == pytest.approx(agent_keeps, abs=0.6)
    assert outcome.exit_code == 137 and outcome.interruption == seen["notice"]


def test_the_max_runtime_still_bounds_a_job_told_of_an_interruption() -> None:
    clock, container = started_job(runtime=600, on_sigterm=None)
    imds = FakeImds("i-1")
    watcher = InterruptionWatcher(imds, clock=clock.now)
    notice_at(container, imds, watcher, after=60, warning=120)
    deadline = BOOTED + timedelta(seconds=90)  # before the notice's time less the margin (~160 s in)

    outcome = wait_with_deadline(container, deadline, 10, clock.now, interruption=watcher, sleep=clock.sleep)

    assert [signal for signal, _ in container.signals] == ["SIGTERM", "SIGKILL"]
    assert container.signals[1][1] - deadline < timedelta(seconds=1)
    assert outcome.exit_code == 137


def test_a_job_that_exited_before_the_sigterm_keeps_its_own_outcome() -> None:
    clock, container = started_job(runtime=30, on_sigterm=3)
    clock.advance(31)  # it finished just as the notice was read
    notice = Notice("terminate", clock.now() + timedelta(seconds=118))

    outcome = stop_for_interruption(container, notice, BOOTED + timedelta(seconds=3600), clock.now)

    assert (outcome.exit_code, outcome.interruption) == (0, None)
    assert container.signals == []


def test_the_run_volume_goes_with_the_container() -> None:
    clock = Clock(BOOTED)
    engine = FakeDocker(clock)
    volume = engine.volumes.create(name="ec2batch-j-r-run")
    container = engine.containers.run("job:1", name="ec2batch-j-r", labels={}, environment={})

    remove_container(container)

    assert engine.all == [] and volume.name not in engine.volumes.all


# ---------------------------------------------------------------- the agent: what the run shows


def test_an_interrupted_run_is_failed_naming_the_notice_and_the_machine_powers_off(job: Job, tmp_path) -> None:
    run = launch(job)
    machine = machine_for(job, run, tmp_path, runtime=600, on_sigterm=3)
    at = BOOTED + timedelta(minutes=5)
    notice = json.dumps({"action": "terminate", "time": f"{at:%Y-%m-%dT%H:%M:%SZ}"})

    def ec2_serves_the_notice(engine: FakeDocker, container: FakeContainer) -> None:
        if engine.waits != 3:
            return
        machine.metadata[INSTANCE_ACTION_PATH] = notice
        asked = len(machine.peeked)

        def watcher_saw_it() -> bool:
            # It reads the notice, then the rebalance item: once it asked for that, the notice is its own.
            later = machine.peeked[asked:]
            return INSTANCE_ACTION_PATH in later and REBALANCE_PATH in later[later.index(INSTANCE_ACTION_PATH) :]

        eventually(watcher_saw_it)

    machine.docker.wait_hook = ec2_serves_the_notice

    assert machine.boot(interruption_poll_seconds=0.01) == 0

    done = ledger(job).require(job.name, run.run_id)
    assert done.status == FAILED
    assert done.exit_code == 143
    assert done.reason == (f"interruption: Spot terminate notice for {at:%Y-%m-%dT%H:%M:%SZ}; the job was sent SIGTERM")
    assert machine.is_off
    assert [n["status"] for n in job.notifications()] == [FAILED]
    assert machine.docker.volumes.all == {}  # the run's volume went with its container


def test_the_job_is_told_where_its_interruption_file_is_and_gets_its_run_volume_there(job: Job, tmp_path) -> None:
    run = launch(job)
    machine = machine_for(job, run, tmp_path, runtime=5)
    given: dict[str, object] = {}
    machine.docker.wait_hook = lambda engine, container: given.update(env=container.env, options=container.options)

    machine.boot()

    assert given["env"]["EC2BATCH_INTERRUPTION_FILE"] == "/run/ec2batch/interruption"  # type: ignore[index]
    volume = f"ec2batch-{job.name}-{run.run_id}-run"
    assert given["options"]["volumes"] == {volume: {"bind": "/run/ec2batch", "mode": "rw"}}  # type: ignore[index]
