"""`make bench`: what ec2batch adds on top of running the container, measured on the local stack.

1. Trigger -> the job's first log line, and the job's exit -> the instance stopped, for a run through
   ec2batch, beside a bare `docker run` of the same image on the same engine (the floor); where the time
   goes, step by step, from the moments each part records; the agent's resident memory during a 20 s job.
2. The launcher's AWS calls and latency per run (reuse path: start the stopped instance).
3. Timer precision: 50 one-off runs planned 5-120 s ahead; error = launcher invocation - due time.
4. The reconciler's cost per planner tick, for a job with 1,000 runs and 10 live (`bench_reconciler`).
5. Shards on AWS Batch (moto's, children as containers on the same engine): SubmitJob -> every child
   started, and -> every child ended, for 1, 4 and 16 shards, beside the single-machine path of 1.
6. Usage sampling: the agent's and the engine's CPU per sample, and a CPU-bound job with and without it
   (`bench_sampler`).
Figures are printed, never asserted: the machine's load changes them. `python -m ec2batch.local.bench 1 2`
runs only those sections.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from .. import timers
from ..agent.container import parse_docker_time
from ..launcher import Launcher
from ..ledger import Ledger, parse_time, utcnow
from ..runlogs import read_stream
from .ec2 import CONTAINER_PREFIX
from .stack import Stack

RUNS = 3
# Section 1's runs: its figures move by tens of milliseconds from one run to the next on a shared 2-core machine,
# so its median is taken over more of them.
FIRST_LINE_RUNS = 7
SECTIONS = 6
MEMORY_JOB_SECONDS = 20
TIMERS = 50
SHARD_COUNTS = (1, 4, 16)
STARTED = ("RUNNING", "SUCCEEDED", "FAILED")


def floor(stack: Stack, image: str) -> tuple[float, float]:
    """Bare docker run: start -> first line, exit -> `docker wait` returns."""
    client = stack.docker()
    began = utcnow()
    container = client.containers.run(image, environment={"REPORT_ROWS": "1000"}, network_mode="host", detach=True)
    container.wait()
    waited = utcnow()
    first = container.logs(timestamps=True).decode().splitlines()[0].split(" ", 1)[0]
    container.reload()
    finished = parse_docker_time(container.attrs["State"]["FinishedAt"])
    container.remove()
    return (parse_docker_time(first) - began).total_seconds(), max(0.0, (waited - finished).total_seconds())


@dataclass(frozen=True)
class Timeline:
    """One run through ec2batch, as the moments each part recorded (all on this host's clock)."""

    triggered: datetime  # the launcher was handed the event
    launcher_done: datetime  # ... and returned (the instance is started in EC2)
    instance_booted: datetime | None  # the instance's container started (the EC2 emulator's doing)
    agent_started: datetime | None  # the agent's process was exec'd (its "run claimed" line says when)
    claimed: datetime | None  # the agent moved the run to RUNNING (`instance_running_at`)
    container_started: datetime | None  # the job's container started (`container_started_at`, docker's)
    first_line: datetime  # the job's first log line (its CloudWatch timestamp)
    exited: datetime  # the job's exit: its recorded end
    stopped: datetime  # the instance reached `stopped`
    agent_steps: dict[str, float]  # agent start -> claim, step by step (its own record)
    start_steps: dict[str, float]  # claim -> container started, step by step (its own record)

    def steps(self) -> dict[str, float | None]:
        points = [
            ("launcher (trigger -> instance started in EC2)", self.triggered, self.launcher_done),
            ("EC2 start -> instance booted", self.launcher_done, self.instance_booted),
            ("instance booted -> agent started", self.instance_booted, self.agent_started),
            ("agent started -> run claimed", self.agent_started, self.claimed),
            ("run claimed -> container started", self.claimed, self.container_started),
            ("container started -> first log line", self.container_started, self.first_line),
        ]
        return {label: _seconds(a, b) for label, a, b in points}


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    return (end - start).total_seconds() if start is not None and end is not None else None


def _time(text: str | None) -> datetime | None:
    return parse_time(text) if text else None


def through_ec2batch(stack: Stack, job: str, launcher: Launcher, env: dict[str, str] | None = None) -> Timeline:
    """One run, handed to a launcher that has served one before (a warm Lambda: its clients are made)."""
    clients = stack.clients()
    ledger = Ledger(clients.dynamodb, f"ec2batch-{job}-runs")
    began = utcnow()
    run_id = launcher.handle({"action": "run", "job": job, **({"env": env} if env else {})})["run_id"]
    launched = utcnow()
    while not (run := ledger.require(job, run_id)).terminal:
        time.sleep(0.05)
    while True:
        state = clients.ec2.describe_instances(InstanceIds=[run.instance_id])["Reservations"][0]["Instances"][0]
        if state["State"]["Name"] == "stopped":
            stopped = utcnow()
            break
        time.sleep(0.05)
    lines, _ = read_stream(clients.logs, f"/ec2batch/{job}", f"{run_id}/job")
    claimed = _agent_line(clients, job, run_id, "run claimed")
    started = _agent_line(clients, job, run_id, "container started")
    return Timeline(
        triggered=began,
        launcher_done=launched,
        instance_booted=_instance_started(stack, run.instance_id or ""),
        agent_started=_time(claimed.get("agent_started_at")),
        agent_steps=claimed.get("startup_seconds") or {},
        start_steps=started.get("start_seconds") or {},
        claimed=_time(run.instance_running_at),
        container_started=_time(run.container_started_at),
        first_line=datetime.fromtimestamp(lines[0].timestamp_ms / 1000, tz=began.tzinfo),
        # The job's container is removed once its outcome is recorded (decision 24), so its exit is the
        # recorded end: the agent writes it within milliseconds of the exit, on this same host's clock.
        exited=parse_time(run.ended_at or ""),
        stopped=stopped,
    )


def _instance_started(stack: Stack, instance_id: str) -> datetime | None:
    """The instance container's last start (it is kept, stopped, for the next run: its disk is the volume)."""
    try:
        attrs = stack.docker().containers.get(CONTAINER_PREFIX + instance_id).attrs
    except Exception:
        return None
    return parse_docker_time(attrs["State"]["StartedAt"])


def _agent_line(clients: Any, job: str, run_id: str, message: str) -> dict[str, Any]:
    """One of the agent's lines: "run claimed" (when its process started, what each start-up step took) or
    "container started" (what each step from the claim to the job's container took)."""
    lines, _ = read_stream(clients.logs, f"/ec2batch/{job}", f"{run_id}/agent")
    for line in lines:
        record = json.loads(line.message) if line.message.startswith("{") else {}
        if record.get("msg") == message:
            return record
    return {}


def breakdown(timelines: list[Timeline]) -> None:
    """Where the time from trigger to first line goes: the median of each step over the runs."""
    print("   where it goes (median per step):")
    per_step: dict[str, list[float]] = {}
    for timeline in timelines:
        for label, seconds in timeline.steps().items():
            if seconds is not None:
                per_step.setdefault(label, []).append(seconds)
    for label, values in per_step.items():
        print(f"     {label:<46} {statistics.median(values):7.3f} s")
        parts = {"agent started": "agent_steps", "run claimed": "start_steps"}
        for prefix, attribute in parts.items():
            if label.startswith(prefix):
                for step in getattr(timelines[0], attribute):
                    seconds = [getattr(t, attribute)[step] for t in timelines if step in getattr(t, attribute)]
                    print(f"       {step:<44} {statistics.median(seconds):7.3f} s")


def agent_memory(stack: Stack, job: str = "bench") -> None:
    """The agent's resident memory (VmRSS) while a 20 s job runs: memory the job's machine pays for."""
    clients = stack.clients()
    ledger = Ledger(clients.dynamodb, f"ec2batch-{job}-runs")
    env = {"JOB_SECONDS": str(MEMORY_JOB_SECONDS), "REPORT_ROWS": "1000"}
    run_id = Launcher(clients).handle({"action": "run", "job": job, "env": env})["run_id"]
    while not (run := ledger.require(job, run_id)).container_started_at and not run.terminal:
        time.sleep(0.2)
    instance = stack.docker().containers.get(CONTAINER_PREFIX + (run.instance_id or ""))
    samples: list[int] = []
    peak = 0
    while not ledger.require(job, run_id).terminal:
        status = _agent_status(instance)
        if status:
            samples.append(status["VmRSS"])
            peak = max(peak, status.get("VmHWM", 0))
        time.sleep(2)
    _wait_stopped(clients, run.instance_id or "")
    if not samples:
        print("   agent memory: no sample (the agent was not found in the instance)")
        return
    print(
        f"   agent memory while a {MEMORY_JOB_SECONDS} s job runs: VmRSS max {max(samples) / 1024:.1f} MB, "
        f"median {statistics.median(samples) / 1024:.1f} MB ({len(samples)} samples); "
        f"peak since its start (VmHWM) {peak / 1024:.1f} MB"
    )


def _agent_status(instance: Any) -> dict[str, int]:
    """VmRSS and VmHWM (kB) of the agent's main process, read inside the instance (as root there)."""
    script = "cat /proc/$(systemctl show --property MainPID --value ec2batch-agent.service)/status"
    try:
        code, output = instance.exec_run(["sh", "-c", script])
    except Exception:
        return {}
    if code != 0:
        return {}
    found = {}
    for line in output.decode().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0])
    return found


def launcher_calls(stack: Stack, job: str) -> tuple[dict[str, float], list[float]]:
    """AWS calls the launcher makes per run (its own clients, counted) and its latency."""
    counted, polling = stack.clients(), stack.clients()
    counter: Counter[str] = Counter()

    def count(model: Any, **_: Any) -> None:
        counter[f"{model.service_model.service_name}.{model.name}"] += 1

    for service in ("ec2", "dynamodb", "ssm", "sns", "sqs", "events"):
        getattr(counted, service).meta.events.register("before-call", count)
    launcher = Launcher(counted)
    ledger = Ledger(polling.dynamodb, f"ec2batch-{job}-runs")
    latencies = []
    for _ in range(RUNS):
        started = time.perf_counter()
        run_id = launcher.handle({"action": "run", "job": job})["run_id"]
        latencies.append(time.perf_counter() - started)
        while not ledger.require(job, run_id).terminal:
            time.sleep(0.05)
        _wait_stopped(polling, ledger.require(job, run_id).instance_id)
    return {name: n / RUNS for name, n in sorted(counter.items())}, latencies


def _wait_stopped(clients: Any, instance_id: str) -> None:
    while (
        clients.ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]["State"]["Name"]
        != "stopped"
    ):
        time.sleep(0.05)


def timer_precision(stack: Stack, job: str, config: Any) -> list[float]:
    clients = stack.clients()
    rng = random.Random(20261124)
    now = utcnow()
    planned = [timers.plan_run(clients, config, now + timedelta(seconds=rng.uniform(5, 120))) for _ in range(TIMERS)]
    ledger = Ledger(clients.dynamodb, config.names.ledger_table)
    deadline = time.monotonic() + 150
    errors: dict[str, float] = {}
    while len(errors) < len(planned) and time.monotonic() < deadline:
        for run in planned:
            if run.run_id in errors:
                continue
            current = ledger.require(job, run.run_id)
            if current.status != "PLANNED":
                errors[run.run_id] = (
                    parse_time(current.triggered_at) - parse_time(current.scheduled_at)
                ).total_seconds()
        time.sleep(0.5)
    return sorted(errors.values())


def shards_latency(stack: Stack, config: Any, size: int) -> tuple[float, float]:
    """SubmitJob -> every child RUNNING (or past it), and -> every child ended, polled 10 times a second.

    1 shard is a plain job (an array job has 2 to 10,000 children)."""
    api = stack.clients().client("batch")
    names = config.names
    array = {"arrayProperties": {"size": size}} if size > 1 else {}
    began = time.perf_counter()
    parent = api.submit_job(
        jobName=f"bench-{size}",
        jobQueue=names.batch_job_queue,
        jobDefinition=names.batch_job_definition,
        containerOverrides={"environment": [{"name": "EC2BATCH_SHARD_COUNT", "value": str(size)}]},
        **array,
    )["jobId"]
    started = ended = None
    while ended is None:
        ids = [s["jobId"] for s in api.list_jobs(arrayJobId=parent)["jobSummaryList"]] if size > 1 else [parent]
        statuses = [j["status"] for j in api.describe_jobs(jobs=ids)["jobs"]] if len(ids) == size else []
        now = time.perf_counter() - began
        if statuses and started is None and all(s in STARTED for s in statuses):
            started = now
        if statuses and all(s in ("SUCCEEDED", "FAILED") for s in statuses):
            ended = now
        time.sleep(0.1)
    return started if started is not None else ended, ended


def shards(stack: Stack, images: dict[str, Any], single: float | None) -> None:
    print("\n5. shards on Batch (moto's, children as containers on this engine; no compute environment scale-up)")
    sharded = stack.example_config(
        images["runner_image"],
        job="bench-shards",
        shards=max(SHARD_COUNTS),
        command=["python3", "/app/report.py"],
        env={"REPORT_ROWS": "1000"},
    )
    stack.provision(sharded, images["instance_image"])
    if single is not None:
        print(f"   single machine (1. above): trigger -> first log line {single:7.3f} s")
    for size in SHARD_COUNTS:
        started, ended = shards_latency(stack, sharded, size)
        print(f"   {size:>2} shard(s): SubmitJob -> all started {started:7.3f} s   -> all ended {ended:7.3f} s")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def machine() -> str:
    """What the figures were measured on: they change with the machine and its load."""
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    models = [line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")]
    cpu = models[0] if models else platform.processor() or "unknown CPU"
    memory_kb = int(Path("/proc/meminfo").read_text().split()[1])
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{os.cpu_count()} cores ({cpu}), {memory_kb / 1024 / 1024:.0f} GiB, Linux {platform.release()}, "
        f"Python {platform.python_version()}; load average {load}"
    )


def section_one(stack: Stack, images: dict[str, Any]) -> float:
    print(f"\n1. trigger -> first log line, job exit -> machine stopped (median of {FIRST_LINE_RUNS})")
    bare = [floor(stack, images["runner_image"]) for _ in range(FIRST_LINE_RUNS)]
    # One launcher for every run, as one warm Lambda serves them; its cold start is measured on its own below.
    launcher = Launcher(stack.clients())
    through_ec2batch(stack, "bench", launcher)  # the first may launch the reusable instance; the next start it
    timelines = [through_ec2batch(stack, "bench", launcher) for _ in range(FIRST_LINE_RUNS)]
    ours = [((t.first_line - t.triggered).total_seconds(), (t.stopped - t.exited).total_seconds()) for t in timelines]
    for index, label in enumerate(("trigger -> first log line", "job exit -> instance stopped")):
        floor_s = statistics.median(b[index] for b in bare)
        ours_s = statistics.median(o[index] for o in ours)
        ratio = f"{ours_s / floor_s:.1f}x" if floor_s > 0.001 else "n/a"
        print(f"   {label:<30} ec2batch {ours_s:7.3f} s   bare docker run {floor_s:7.3f} s   ratio {ratio}")
        if index == 0:
            print(f"   our overhead to the first line (ec2batch - bare docker run): {ours_s - floor_s:.3f} s")
    breakdown(timelines)
    cold = [launcher_cold_start(stack) for _ in range(RUNS)]
    imports, made = statistics.median(c[0] for c in cold), statistics.median(c[1] for c in cold)
    print(
        f"   a cold launcher (a new process) first spends: importing its handler {imports:.3f} s, making its "
        f"clients {made:.3f} s (on AWS, plus Lambda's own start of the runtime)"
    )
    agent_memory(stack)
    return statistics.median(o[0] for o in ours)


COLD_START = """
import time
began = time.perf_counter()
import ec2batch.launcher as module
imported = time.perf_counter()
launcher = module._launcher()
clients = launcher.clients
clients.ssm, clients.dynamodb, clients.ec2
print(imported - began, time.perf_counter() - imported)
"""


def launcher_cold_start(stack: Stack) -> tuple[float, float]:
    """What a cold launcher does before its first event: import its handler, make the reuse path's clients."""
    env = {**os.environ, **stack.env(), "EC2BATCH_JOB": "bench", "AWS_DEFAULT_REGION": stack.clients().region}
    output = subprocess.run(
        [sys.executable, "-c", COLD_START], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    return float(output[0]), float(output[1])


def section_two(stack: Stack) -> None:
    print(f"\n2. launcher per run (reuse: start the stopped instance; {RUNS} runs)")
    per_run, latencies = launcher_calls(stack, "bench")
    print(f"   AWS calls per run: {sum(per_run.values()):g}  " + ", ".join(f"{k} {v:g}" for k, v in per_run.items()))
    print(f"   latency: median {statistics.median(latencies) * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms")


def section_three(stack: Stack, config: Any) -> None:
    print(f"\n3. timer precision: {TIMERS} one-off runs planned 5-120 s ahead (error = launcher invocation - due)")
    errors = timer_precision(stack, "bench", config)
    if len(errors) < TIMERS:
        print(f"   only {len(errors)} of {TIMERS} fired within the wait")
    print(
        f"   p50 {percentile(errors, 0.5):.3f} s   p99 {percentile(errors, 0.99):.3f} s   max {max(errors):.3f} s"
        f"   ({len(errors)} fired)"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="make bench: ec2batch's figures on the local stack")
    # No `choices`: argparse checks an empty list against them and refuses it (Python 3.11).
    parser.add_argument("sections", nargs="*", type=int, help=f"only these sections, 1 to {SECTIONS} (default: all)")
    wanted = set(parser.parse_args(argv).sections or range(1, SECTIONS + 1))
    if not wanted <= set(range(1, SECTIONS + 1)):
        parser.error(f"sections are 1 to {SECTIONS}, not {sorted(wanted - set(range(1, SECTIONS + 1)))}")
    stack = Stack.default(progress=lambda message: None)
    print(f"make bench, {utcnow():%Y-%m-%d %H:%M} UTC, on {machine()}")
    print("bringing the local stack up (warm: seconds)...", flush=True)
    images = stack.up()
    config = stack.example_config(images["runner_image"], job="bench", env={"REPORT_ROWS": "1000"})
    stack.provision(config, images["instance_image"])
    single = section_one(stack, images) if 1 in wanted else None
    if 2 in wanted:
        section_two(stack)
    if 3 in wanted:
        section_three(stack, config)
    if 4 in wanted:
        from .bench_reconciler import main as reconciler

        reconciler()
    if 5 in wanted:
        shards(stack, images, single)
    if 6 in wanted:
        from .bench_sampler import main as sampling

        sampling(stack, images["runner_image"])


if __name__ == "__main__":
    main()
