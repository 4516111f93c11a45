"""What the job's container uses while it runs: memory and CPU, sampled by a thread of the agent.

Each sample is one `GET /containers/{id}/stats?stream=false&one-shot=true` to the local engine (no AWS
call), a few kB of JSON that is reduced at once to four numbers: nothing of it is kept. The peak memory is
the kernel's own where there is one (cgroup v1's `max_usage`, which the engine reports, or cgroup v2's
`memory.peak` when the agent finds the container's cgroup), else the highest sample; a job killed for
memory therefore records the peak that preceded the kill. CPU is the container's usage counter (ns)
between samples over the wall time, as a share of the vCPUs it may use.

Sampling must never disturb the run: any error is logged once and sampling goes on (or ends quietly).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..jsonlog import fields
from ..usage import Usage

log = logging.getLogger(__name__)

# Every 5 s on AWS: a day-long job is ~17,000 samples of a few ms each; a spike shorter than that is still
# caught by the kernel's peak. The local stack samples faster so its short test jobs get several samples.
SAMPLE_SECONDS = 5.0
CGROUP_ROOT = Path("/sys/fs/cgroup")
# Where a container's cgroup v2 directory is, for Docker's systemd and cgroupfs drivers, with or without the
# agent's cgroup_parent (the AMI's ec2batch-jobs.slice nests as ec2batch.slice/ec2batch-jobs.slice).
CGROUP_PATTERNS = ("*/docker-{id}.scope", "*/*/docker-{id}.scope", "*/*/*/docker-{id}.scope", "docker/{id}", "*/{id}")


@dataclass
class _Tally:
    """The running figures; the only state kept between samples."""

    samples: int = 0
    peak_bytes: int = 0
    limit_bytes: int = 0
    vcpus: float = 0.0
    first_cpu_ns: int | None = None
    first_at: float = 0.0
    last_cpu_ns: int = 0
    last_at: float = 0.0
    peak_cpu_percent: float = 0.0


class UsageSampler:
    """`start()` after the container starts, `stop()` once it has exited: the run's Usage (None: no sample)."""

    def __init__(
        self,
        container: Any,
        *,
        interval: float = SAMPLE_SECONDS,
        memory_limit_bytes: int | None = None,
        cpus: float | None = None,
        cgroup_root: Path = CGROUP_ROOT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.container = container
        self.interval = interval
        self.memory_limit_bytes = memory_limit_bytes  # the config's limit; None: the machine's memory
        self.cpus = cpus  # the config's limits.cpus; None: every vCPU of the machine
        self.cgroup_root = cgroup_root
        self.clock = clock
        self.tally = _Tally()
        self.cpu_seconds = 0.0  # this thread's own CPU time: what sampling cost the machine (make bench)
        self._peak_file: Path | None = None
        self._looked_for_cgroup = False
        self._complained = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> UsageSampler:
        # The first sample now, in the caller's thread: a job shorter than the interval still gets one.
        began = time.thread_time()
        self.sample_once()
        self.cpu_seconds = time.thread_time() - began
        self._thread = threading.Thread(target=self._loop, name="usage-sampler", daemon=True)
        self._thread.start()
        return self

    def stop(self, oom_killed: bool = False) -> Usage | None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.interval + 35)  # at most one stats call in flight (30 s client timeout)
        return self.usage(oom_killed)

    def usage(self, oom_killed: bool = False) -> Usage | None:
        t = self.tally
        if t.samples == 0 or t.limit_bytes <= 0:
            return None
        peak = t.peak_bytes
        if oom_killed and self.memory_limit_bytes:
            # The cgroup's OOM killer acts when a charge fails at the limit: the job had reached it. Its cgroup is
            # gone with it, so a kill between two samples is otherwise recorded below the peak it reached.
            peak = max(peak, self.memory_limit_bytes)
        return Usage(
            peak_memory_bytes=peak,
            memory_limit_bytes=t.limit_bytes,
            limited=self.memory_limit_bytes is not None,
            vcpus=t.vcpus,
            average_cpu_percent=self._average_cpu(),
            peak_cpu_percent=round(t.peak_cpu_percent, 1),
            samples=t.samples,
            sample_seconds=self.interval,
            oom_killed=oom_killed,
        )

    # ---------------------------------------------------------------- the thread
    def _loop(self) -> None:
        spent = self.cpu_seconds
        began = time.thread_time()
        while not self._stop.wait(self.interval):
            self.sample_once()
            self.cpu_seconds = spent + time.thread_time() - began

    def sample_once(self) -> None:
        try:
            stats = self._stats()
        except Exception as exc:  # the container has gone, the engine is busy: never the run's problem
            self._complain(exc)
            return
        self.record(stats, self.clock())

    def _stats(self) -> dict[str, Any]:
        import docker.errors  # loaded by the time a container runs; not at the agent's import (container.py)

        api = self.container.client.api
        try:
            return dict(api.stats(self.container.id, stream=False, one_shot=True))
        except docker.errors.InvalidVersion:  # an engine older than API 1.41: the two-cycle read (~1 s)
            return dict(api.stats(self.container.id, stream=False))

    def record(self, stats: dict[str, Any], now: float) -> None:
        """Fold one stats answer into the tally (public for tests: the answers are Docker's JSON)."""
        memory = stats.get("memory_stats") or {}
        cpu = (stats.get("cpu_stats") or {}).get("cpu_usage") or {}
        if "usage" not in memory or "total_usage" not in cpu:
            return  # the container is not running (an exited container's stats are empty)
        t = self.tally
        t.samples += 1
        current = int(memory["usage"]) - _inactive_file(memory.get("stats") or {})
        t.peak_bytes = max(t.peak_bytes, current, int(memory.get("max_usage") or 0), self._cgroup_peak())
        t.limit_bytes = self.memory_limit_bytes or int(memory.get("limit") or 0)
        online = (stats.get("cpu_stats") or {}).get("online_cpus") or len(cpu.get("percpu_usage") or []) or 1
        t.vcpus = min(self.cpus, float(online)) if self.cpus else float(online)
        used = int(cpu["total_usage"])
        if t.first_cpu_ns is None:
            t.first_cpu_ns, t.first_at = used, now
        elif now > t.last_at:
            share = (used - t.last_cpu_ns) / ((now - t.last_at) * 1e9) / t.vcpus * 100
            t.peak_cpu_percent = max(t.peak_cpu_percent, min(share, 100.0))
        t.last_cpu_ns, t.last_at = used, now

    def _average_cpu(self) -> float:
        t = self.tally
        if t.first_cpu_ns is None or t.last_at <= t.first_at:
            return round(t.peak_cpu_percent, 1)
        share = (t.last_cpu_ns - t.first_cpu_ns) / ((t.last_at - t.first_at) * 1e9) / t.vcpus * 100
        return round(min(share, 100.0), 1)

    def _cgroup_peak(self) -> int:
        """cgroup v2's memory.peak of the container (kernel 5.19+); 0 where there is none (v1: max_usage)."""
        if not self._looked_for_cgroup:
            self._looked_for_cgroup = True
            self._peak_file = find_peak_file(self.cgroup_root, str(self.container.id))
        if self._peak_file is None:
            return 0
        try:
            return int(self._peak_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return 0

    def _complain(self, exc: Exception) -> None:
        if not self._complained:
            self._complained = True
            log.warning("usage sample failed", extra=fields(container=self.container.name, error=str(exc)))


def _inactive_file(stats: dict[str, Any]) -> int:
    # What `docker stats` subtracts: page cache the kernel can drop at once is not the job's memory.
    return int(stats.get("inactive_file", stats.get("total_inactive_file", 0)) or 0)


def find_peak_file(root: Path, container_id: str) -> Path | None:
    if not container_id or not (root / "cgroup.controllers").exists():
        return None  # not cgroup v2 (v1 hosts report max_usage through the engine)
    for pattern in CGROUP_PATTERNS:
        for found in root.glob(pattern.format(id=container_id)):
            if (found / "memory.peak").is_file():
                return found / "memory.peak"
    return None
