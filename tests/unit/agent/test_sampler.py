"""The usage sampler: Docker's stats answers (cgroup v1 and v2 shapes) folded into a run's Usage."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import docker.errors

from ec2batch.agent.sampler import UsageSampler, find_peak_file
from ec2batch.usage import GIB, MIB, usage_from_item


class Api:
    def __init__(self, answers: list[dict[str, Any]] | Exception) -> None:
        self.answers = answers
        self.calls: list[dict[str, Any]] = []

    def stats(self, container_id: str, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        if isinstance(self.answers, Exception):
            raise self.answers
        return self.answers.pop(0) if self.answers else {"memory_stats": {}, "cpu_stats": {}}


class Container:
    def __init__(self, api: Api) -> None:
        self.id = "c0ffee" * 10 + "abcd"
        self.name = "ec2batch-job-run"
        self.client = type("Client", (), {"api": api})()


def v1(usage: int, max_usage: int, cpu_seconds: float, limit: int = 16 * GIB, cpus: int = 4) -> dict[str, Any]:
    return {
        "memory_stats": {"usage": usage, "max_usage": max_usage, "limit": limit, "stats": {"total_inactive_file": 0}},
        "cpu_stats": {"cpu_usage": {"total_usage": int(cpu_seconds * 1e9)}, "online_cpus": cpus},
    }


def v2(usage: int, inactive_file: int, cpu_seconds: float, limit: int = 16 * GIB, cpus: int = 4) -> dict[str, Any]:
    # cgroup v2: no max_usage; `usage` is memory.current, which counts reclaimable page cache too.
    return {
        "memory_stats": {"usage": usage, "limit": limit, "stats": {"inactive_file": inactive_file}},
        "cpu_stats": {"cpu_usage": {"total_usage": int(cpu_seconds * 1e9)}, "online_cpus": cpus},
    }


def test_the_kernels_peak_between_samples_is_the_peak_and_cpu_is_a_share_of_the_vcpus() -> None:
    sampler = UsageSampler(Container(Api([])), interval=5)
    # 4 vCPUs: 2 busy for 10 s, then all 4 for 10 s; memory peaked at 3 GiB between the samples.
    sampler.record(v1(1 * GIB, 1 * GIB, 0.0), now=0.0)
    sampler.record(v1(2 * GIB, 3 * GIB, 20.0), now=10.0)
    sampler.record(v1(2 * GIB, 3 * GIB, 60.0), now=20.0)
    usage = sampler.usage()
    assert usage is not None
    assert (usage.peak_memory_bytes, usage.memory_limit_bytes, usage.limited) == (3 * GIB, 16 * GIB, False)
    assert usage.peak_memory_percent == 18.8
    assert (usage.peak_cpu_percent, usage.average_cpu_percent, usage.vcpus, usage.samples) == (100.0, 75.0, 4.0, 3)


def test_cgroup_v2_peak_is_sampled_without_page_cache_and_the_config_limit_is_the_reference() -> None:
    sampler = UsageSampler(Container(Api([])), memory_limit_bytes=512 * MIB, cpus=1.0)
    sampler.record(v2(300 * MIB, 100 * MIB, 0.0, limit=512 * MIB), now=0.0)
    sampler.record(v2(500 * MIB, 20 * MIB, 1.0, limit=512 * MIB), now=2.0)
    usage = sampler.usage(oom_killed=True)
    assert usage is not None
    assert (usage.memory_limit_bytes, usage.limited) == (512 * MIB, True)
    assert usage.vcpus == 1.0 and usage.peak_cpu_percent == 50.0  # half of the one CPU it may use
    assert usage.oom_killed and "then OOM killed" in usage.describe()
    # A cgroup's OOM kill comes at its limit: a kill between two samples still records the limit as its peak.
    assert sampler.usage(oom_killed=True).peak_memory_bytes == 512 * MIB  # type: ignore[union-attr]
    assert sampler.usage(oom_killed=False).peak_memory_bytes == 480 * MIB  # type: ignore[union-attr]


def test_memory_peak_of_the_containers_cgroup_v2_is_read_when_found(tmp_path: Path) -> None:
    container = Container(Api([v2(100 * MIB, 0, 0.0)]))
    (tmp_path / "cgroup.controllers").write_text("cpu memory\n")
    scope = tmp_path / "ec2batch.slice" / "ec2batch-jobs.slice" / f"docker-{container.id}.scope"
    scope.mkdir(parents=True)
    (scope / "memory.peak").write_text(f"{900 * MIB}\n")
    assert find_peak_file(tmp_path, container.id) == scope / "memory.peak"
    sampler = UsageSampler(container, cgroup_root=tmp_path)
    sampler.sample_once()
    usage = sampler.usage()
    assert usage is not None and usage.peak_memory_bytes == 900 * MIB  # the spike between samples


def test_an_exited_container_or_a_failing_engine_gives_no_usage_and_no_exception(caplog) -> None:
    assert UsageSampler(Container(Api([{"memory_stats": {}, "cpu_stats": {}}]))).start().stop() is None
    failing = UsageSampler(Container(Api(docker.errors.APIError("engine busy"))), interval=0.01).start()
    assert failing.stop() is None
    assert [r.getMessage() for r in caplog.records].count("usage sample failed") == 1  # said once, not per sample


def test_the_thread_samples_at_its_interval_and_stops_promptly() -> None:
    answers = [v1(i * MIB, i * MIB, i * 0.1, cpus=2) for i in range(1, 200)]
    api = Api(answers)
    sampler = UsageSampler(Container(api), interval=0.02).start()
    import time

    time.sleep(0.3)
    started = time.monotonic()
    usage = sampler.stop()
    assert time.monotonic() - started < 0.5
    assert usage is not None and 5 <= usage.samples <= 20
    assert all(call == {"stream": False, "one_shot": True} for call in api.calls)  # one cheap read each
    assert sampler.cpu_seconds < 0.3


def test_usage_round_trips_through_the_ledger_map_and_a_broken_map_is_none() -> None:
    sampler = UsageSampler(Container(Api([])))
    sampler.record(v1(GIB, GIB, 0.0), now=0.0)
    usage = sampler.usage()
    assert usage is not None and usage_from_item(usage.as_item()) == usage
    assert usage_from_item({"peak_memory_bytes": "x"}) is None and usage_from_item(None) is None
