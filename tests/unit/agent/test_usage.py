"""The agent's part of issue 16: the run's usage on the ledger, the OOM peak in the reason, one EMF line."""

from __future__ import annotations

import json

from ec2batch.ledger import FAILED, SUCCEEDED
from ec2batch.metrics import METRIC_NAMES, metric_data_from_emf
from ec2batch.runlogs import read_stream
from ec2batch.usage import GIB
from tests.unit.agent.conftest import launch, ledger, machine_for


def emf_lines(job, run_id: str) -> list[str]:
    names = job.config.names
    lines, _ = read_stream(job.clients.logs, names.log_group, names.agent_log_stream(run_id))
    return [line.message for line in lines if '"_aws"' in line.message]


def test_a_run_records_what_its_container_used_and_publishes_its_figures(job, tmp_path) -> None:
    run = launch(job)
    machine = machine_for(job, run, tmp_path, runtime=60)
    machine.docker.memory_bytes, machine.docker.busy_cores = 3 * GIB, 1.0

    machine.boot(usage_sample_seconds=0.01)

    done = ledger(job).require(job.name, run.run_id)
    assert done.status == SUCCEEDED and done.usage is not None
    usage = done.usage
    assert (usage.peak_memory_bytes, usage.memory_limit_bytes, usage.limited) == (3 * GIB, 8 * GIB, False)
    assert usage.vcpus == 2 and usage.samples >= 1 and not usage.oom_killed
    [line] = emf_lines(job, run.run_id)
    data = {d["MetricName"]: d["Value"] for _, d in metric_data_from_emf(line)}
    assert set(data) == METRIC_NAMES
    assert data["PeakMemoryPercent"] == 37.5 and data["Runs"] == 1.0
    assert data["RunDuration"] == done.duration_seconds() and data["Cost"] == done.cost_usd
    assert json.loads(line)["outcome"] == SUCCEEDED


def test_an_oom_kill_is_recorded_with_the_peak_before_it(job, tmp_path) -> None:
    run = launch(job)
    machine = machine_for(job, run, tmp_path, runtime=5, exit_code=137)
    machine.docker.memory_bytes = 2 * GIB
    machine.docker.oom_killed = True

    machine.boot()

    done = ledger(job).require(job.name, run.run_id)
    assert done.status == FAILED and done.usage is not None and done.usage.oom_killed
    assert done.reason == "out of memory (OOM killed) after a peak of 2.0 GiB of 8.0 GiB machine (25 %)"
    assert json.loads(emf_lines(job, run.run_id)[0])["outcome"] == FAILED


def test_sampling_can_be_turned_off_and_the_run_still_ends(job, tmp_path) -> None:
    run = launch(job)
    machine = machine_for(job, run, tmp_path, runtime=5)

    machine.boot(usage_sample_seconds=0)

    done = ledger(job).require(job.name, run.run_id)
    assert done.status == SUCCEEDED and done.usage is None and machine.docker.stats_calls == 0
    data = {d["MetricName"] for _, d in metric_data_from_emf(emf_lines(job, run.run_id)[0])}
    assert data == METRIC_NAMES - {"PeakMemoryPercent", "PeakCpuPercent"}
