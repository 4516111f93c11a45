"""`make bench` section 6: what sampling a job's usage costs (ec2batch.agent.sampler), on the stack's engine.

- per sample: the agent's CPU (the sampler's own thread) and the engine's (dockerd's utime+stime from /proc),
  over back-to-back samples of a busy container, less dockerd's CPU over the same time without samples;
- at the AWS interval (5 s), as a share of one core;
- a CPU-bound job's wall time without sampling and with sampling every 0.5 s (the local stack's interval).
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path
from typing import Any

from ..agent.container import parse_docker_time
from ..agent.sampler import SAMPLE_SECONDS, UsageSampler
from .services import running_pid
from .stack import Stack

SAMPLES = 200
BUSY = ["python3", "-c", "import time\nend = time.time() + 60\nwhile time.time() < end: pass"]
WORK = ["python3", "-c", "sum(i * i for i in range(30_000_000))"]


def _dockerd_cpu(pid: int | None) -> float:
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def per_sample(stack: Stack, image: str) -> tuple[float, float]:
    """(agent ms, engine ms) per sample."""
    client = stack.docker()
    pid = running_pid(stack.paths, "dockerd")
    container = client.containers.run(image, command=BUSY, network_mode="host", detach=True)
    try:
        time.sleep(1)
        idle_began, idle_cpu = time.monotonic(), _dockerd_cpu(pid)
        time.sleep(2)
        idle_rate = (_dockerd_cpu(pid) - idle_cpu) / (time.monotonic() - idle_began)
        sampler = UsageSampler(container, interval=3600)
        began, engine_before, thread_before = time.monotonic(), _dockerd_cpu(pid), time.thread_time()
        for _ in range(SAMPLES):
            sampler.sample_once()
        agent = (time.thread_time() - thread_before) / SAMPLES
        engine = (_dockerd_cpu(pid) - engine_before - idle_rate * (time.monotonic() - began)) / SAMPLES
    finally:
        container.remove(force=True)
    return agent * 1000, max(engine, 0.0) * 1000


def job_time(stack: Stack, image: str, interval: float | None) -> float:
    client = stack.docker()
    container = client.containers.run(image, command=WORK, network_mode="host", detach=True)
    sampler: Any = UsageSampler(container, interval=interval).start() if interval else None
    container.wait()
    if sampler is not None:
        sampler.stop()
    container.reload()
    state = container.attrs["State"]
    seconds = (parse_docker_time(state["FinishedAt"]) - parse_docker_time(state["StartedAt"])).total_seconds()
    container.remove(force=True)
    return seconds


def main(stack: Stack, image: str) -> None:
    print(f"\n6. usage sampling (one stats read per sample, {SAMPLES} back to back on a busy container)")
    agent_ms, engine_ms = per_sample(stack, image)
    share = (agent_ms + engine_ms) / (SAMPLE_SECONDS * 1000) * 100
    print(f"   per sample: agent {agent_ms:.2f} ms CPU, engine {engine_ms:.2f} ms CPU")
    print(f"   every {SAMPLE_SECONDS:g} s (AWS): {share:.3f} % of one core")
    plain = [job_time(stack, image, None) for _ in range(3)]
    sampled = [job_time(stack, image, 0.5) for _ in range(3)]
    p, s = statistics.median(plain), statistics.median(sampled)
    print(
        f"   a CPU-bound job (median of 3): {p:.2f} s unsampled, {s:.2f} s sampled every 0.5 s "
        f"({(s / p - 1) * 100:+.1f} %)"
    )


if __name__ == "__main__":  # section 6 alone: python -m ec2batch.local.bench_sampler
    stack = Stack.default(progress=lambda message: None)
    main(stack, stack.up()["runner_image"])
