"""`make bench`: what ec2batch adds on top of running the container, measured on the local stack.

1. Trigger -> the job's first log line, and the job's exit -> the instance stopped, for a run through
   ec2batch, beside a bare `docker run` of the same image on the same engine (the floor).
2. The launcher's AWS calls and latency per run (reuse path: start the stopped instance).
3. Timer precision: 50 one-off runs planned 5-120 s ahead; error = launcher invocation - due time.
4. The reconciler's cost per planner tick, for a job with 1,000 runs and 10 live (`bench_reconciler`).
5. Shards on AWS Batch (moto's, children as containers on the same engine): SubmitJob -> every child
   started, and -> every child ended, for 1, 4 and 16 shards, beside the single-machine path of 1.
6. Usage sampling: the agent's and the engine's CPU per sample, and a CPU-bound job with and without it
   (`bench_sampler`).
Figures are printed, never asserted: the machine's load changes them.
"""

from __future__ import annotations

import random
import statistics
import time
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from .. import timers
from ..agent.container import parse_docker_time
from ..launcher import Launcher
from ..ledger import Ledger, parse_time, utcnow
from ..runlogs import read_stream
from .stack import Stack

RUNS = 3
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


def through_ec2batch(stack: Stack, job: str) -> tuple[float, float]:
    clients = stack.clients()
    launcher = Launcher(clients)
    ledger = Ledger(clients.dynamodb, f"ec2batch-{job}-runs")
    began = utcnow()
    run_id = launcher.handle({"action": "run", "job": job})["run_id"]
    while not (run := ledger.require(job, run_id)).terminal:
        time.sleep(0.05)
    while True:
        state = clients.ec2.describe_instances(InstanceIds=[run.instance_id])["Reservations"][0]["Instances"][0]
        if state["State"]["Name"] == "stopped":
            stopped = utcnow()
            break
        time.sleep(0.05)
    lines, _ = read_stream(clients.logs, f"/ec2batch/{job}", f"{run_id}/job")
    first_line = datetime.fromtimestamp(lines[0].timestamp_ms / 1000, tz=began.tzinfo)
    # The job's container is removed once its outcome is recorded (decision 24), so its exit is the recorded
    # end: the agent writes it within milliseconds of the exit, on this same host's clock.
    exited = parse_time(run.ended_at or "")
    return (first_line - began).total_seconds(), (stopped - exited).total_seconds()


def launcher_calls(stack: Stack, job: str) -> tuple[dict[str, float], list[float]]:
    """AWS calls the launcher makes per run (its own clients, counted) and its latency."""
    counted, polling = stack.clients(), stack.clients()
    counter: Counter[str] = Counter()

    def count(model: Any, **_: Any) -> None:
        counter[f"{model.service_model.service_name}.{model.name}"] += 1

    for service in ("ec2", "dynamodb", "ssm", "sns", "sqs"):
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
    api = stack.clients().session.client("batch")
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


def shards(stack: Stack, images: dict[str, Any], single: float) -> None:
    print("\n5. shards on Batch (moto's, children as containers on this engine; no compute environment scale-up)")
    sharded = stack.example_config(
        images["runner_image"],
        job="bench-shards",
        shards=max(SHARD_COUNTS),
        command=["python3", "/app/report.py"],
        env={"REPORT_ROWS": "1000"},
    )
    stack.provision(sharded, images["instance_image"])
    print(f"   single machine (1. above): trigger -> first log line {single:7.3f} s")
    for size in SHARD_COUNTS:
        started, ended = shards_latency(stack, sharded, size)
        print(f"   {size:>2} shard(s): SubmitJob -> all started {started:7.3f} s   -> all ended {ended:7.3f} s")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    stack = Stack.default(progress=lambda message: None)
    print("bringing the local stack up (warm: seconds)...", flush=True)
    images = stack.up()
    config = stack.example_config(images["runner_image"], job="bench", env={"REPORT_ROWS": "1000"})
    stack.provision(config, images["instance_image"])

    print(f"\n1. trigger -> first log line, job exit -> machine stopped (median of {RUNS})")
    bare = [floor(stack, images["runner_image"]) for _ in range(RUNS)]
    ours = [through_ec2batch(stack, "bench") for _ in range(RUNS)]
    for index, label in enumerate(("trigger -> first log line", "job exit -> instance stopped")):
        floor_s = statistics.median(b[index] for b in bare)
        ours_s = statistics.median(o[index] for o in ours)
        ratio = f"{ours_s / floor_s:.1f}x" if floor_s > 0.001 else "n/a"
        print(f"   {label:<30} ec2batch {ours_s:7.3f} s   bare docker run {floor_s:7.3f} s   ratio {ratio}")

    print(f"\n2. launcher per run (reuse: start the stopped instance; {RUNS} runs)")
    per_run, latencies = launcher_calls(stack, "bench")
    print(f"   AWS calls per run: {sum(per_run.values()):g}  " + ", ".join(f"{k} {v:g}" for k, v in per_run.items()))
    print(f"   latency: median {statistics.median(latencies) * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms")

    print(f"\n3. timer precision: {TIMERS} one-off runs planned 5-120 s ahead (error = launcher invocation - due)")
    errors = timer_precision(stack, "bench", config)
    if len(errors) < TIMERS:
        print(f"   only {len(errors)} of {TIMERS} fired within the wait")
    print(
        f"   p50 {percentile(errors, 0.5):.3f} s   p99 {percentile(errors, 0.99):.3f} s   max {max(errors):.3f} s"
        f"   ({len(errors)} fired)"
    )
    from .bench_reconciler import main as reconciler

    reconciler()
    shards(stack, images, statistics.median(o[0] for o in ours))
    from .bench_sampler import main as sampling

    sampling(stack, images["runner_image"])


if __name__ == "__main__":
    main()
