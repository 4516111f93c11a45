"""What runs on the job's machine, on the real engine, registry and systemd instance containers."""

from __future__ import annotations

import hashlib
import json
import time

import docker
import pytest
from click.testing import CliRunner

from ec2batch.cli import main
from ec2batch.ledger import FAILED, RUNNING, SUCCEEDED, TIMED_OUT, parse_time
from ec2batch.local.ec2 import CONTAINER_PREFIX
from ec2batch.names import LABEL_RUN_ID

pytestmark = pytest.mark.stack


def test_success_ships_every_line_in_order_records_the_digest_and_powers_off(deploy, stack) -> None:
    job = deploy("t-success", env={"REPORT_ROWS": "1000", "JOB_LINES": "300"})
    # Not on disk: the agent must log into the registry and pull it (the next run finds it cached).
    stack.docker().images.remove(job.config.image, force=True)
    started = job.trigger()

    run = job.wait_run(started["run_id"])

    assert (run.status, run.exit_code) == (SUCCEEDED, 0)
    assert run.image_digest and run.image_digest.startswith("sha256:")
    assert run.container_started_at and run.instance_running_at
    assert job.wait_instance(run.instance_id) == "stopped"
    lines = job.job_lines(run.run_id)
    assert lines[:300] == [f"line {i} of 300" for i in range(1, 301)]
    assert lines[-1].startswith("report written: 1000 rows")
    agent = [json.loads(line)["msg"] for line in job.agent_lines(run.run_id)]
    # The image and the job role's credentials are got while the run is claimed (docs/agent.md): their lines may
    # come first; nothing else does, and the stream ends with the power-off.
    claimed = agent.index("run claimed")
    assert set(agent[:claimed]) <= {"image pulled", "image already on disk", "job credentials assumed"}
    assert agent[-1] == "powering off"
    assert "image pulled" in agent

    again = job.wait_run(job.trigger()["run_id"])
    assert again.status == SUCCEEDED and again.image_digest == run.image_digest
    job.wait_instance(again.instance_id)  # the agent sends its own lines just before powering off
    assert "image already on disk" in [json.loads(line)["msg"] for line in job.agent_lines(again.run_id)]


def test_a_failing_job_is_failed_with_its_exit_code_notified_and_powered_off(deploy) -> None:
    job = deploy("t-exit-three", env={"REPORT_ROWS": "10", "JOB_EXIT_CODE": "3"})
    inbox = job.inbox()
    run = job.wait_run(job.trigger()["run_id"])

    assert (run.status, run.exit_code, run.reason) == (FAILED, 3, "exit code 3")
    assert job.wait_instance(run.instance_id) == "stopped"
    messages = job.clients.sqs.receive_message(QueueUrl=inbox, MaxNumberOfMessages=10, WaitTimeSeconds=5)["Messages"]
    notice = json.loads(json.loads(messages[0]["Body"])["Message"])
    assert (notice["run_id"], notice["status"], notice["exit_code"]) == (run.run_id, FAILED, 3)


def test_a_job_that_ignores_sigterm_is_killed_at_max_runtime_and_powered_off(deploy) -> None:
    job = deploy(
        "t-timeout",
        max_runtime_seconds=10,
        stop_grace_seconds=3,
        env={"REPORT_ROWS": "10", "JOB_SECONDS": "300", "JOB_IGNORE_SIGTERM": "1"},
    )
    run = job.wait_run(job.trigger()["run_id"], timeout=90)
    stopped_at = time.time()

    assert run.status == TIMED_OUT
    assert run.exit_code == 137  # SIGKILL after the grace period: SIGTERM was ignored
    assert job.wait_instance(run.instance_id) == "stopped"

    ran = (parse_time(run.ended_at) - parse_time(run.container_started_at)).total_seconds()
    assert 10 <= ran <= 10 + 3 + 15  # killed after max runtime + grace, not at some later point
    assert time.time() - stopped_at < 60
    assert "ignoring SIGTERM" in job.job_lines(run.run_id)


def test_an_image_tag_that_does_not_exist_fails_after_bounded_retries_and_powers_off(deploy) -> None:
    job = deploy("t-bad-tag", image="127.0.0.1:5000/ec2batch/daily-report:no-such-tag")
    run = job.wait_run(job.trigger()["run_id"], timeout=90)

    assert run.status == FAILED
    assert run.reason.startswith("could not pull 127.0.0.1:5000/ec2batch/daily-report:no-such-tag after 4 attempts")
    assert job.wait_instance(run.instance_id) == "stopped"
    warnings = [json.loads(line) for line in job.agent_lines(run.run_id)]
    assert [w["attempt"] for w in warnings if w["msg"] == "pull failed"] == [1, 2, 3, 4]


def test_an_agent_killed_mid_run_is_restarted_and_re_attaches_to_the_one_container(deploy, stack) -> None:
    job = deploy("t-reattach", env={"REPORT_ROWS": "10", "JOB_SECONDS": "12"})
    run_id = job.trigger()["run_id"]
    running = job.wait_run(run_id, until=lambda r: r.status == RUNNING and r.container_started_at is not None)
    engine = stack.docker()
    instance = engine.containers.get(CONTAINER_PREFIX + running.instance_id)

    killed = instance.exec_run(["systemctl", "kill", "--signal=SIGKILL", "ec2batch-agent.service"])
    assert killed.exit_code == 0

    run = job.wait_run(run_id)
    assert (run.status, run.exit_code) == (SUCCEEDED, 0)
    assert job.wait_instance(run.instance_id) == "stopped"
    # One container ran the job (its start line once), and it is removed with the outcome recorded.
    assert job.job_lines(run_id).count("generating 10 rows") == 1
    assert engine.containers.list(all=True, filters={"label": f"{LABEL_RUN_ID}={run_id}"}) == []
    messages = [json.loads(line)["msg"] for line in job.agent_lines(run_id)]
    assert "re-attached to the run's container" in messages
    assert messages.count("run ended") == 1


def test_a_secret_reaches_the_container_and_nothing_else(deploy, stack) -> None:
    value = "s3cr3t-Value-4711-xyzzy"
    parameter = "/ec2batch/t-secret/db-password"
    clients = stack.clients()
    clients.ssm.put_parameter(Name=parameter, Value=value, Type="SecureString", Overwrite=True)
    job = deploy(
        "t-secret",
        secrets={"DB_PASSWORD": {"ssm": parameter}},
        env={"REPORT_ROWS": "10", "JOB_SHOW_SECRET_HASH": "DB_PASSWORD"},
    )

    run = job.wait_run(job.trigger()["run_id"])

    assert run.status == SUCCEEDED
    assert f"DB_PASSWORD sha256={hashlib.sha256(value.encode()).hexdigest()}" in job.job_lines(run.run_id)
    job.wait_instance(run.instance_id)  # the agent's own lines are all sent by then
    # The exited container's inspect would show the value: it is removed once the outcome is recorded.
    assert stack.docker().containers.list(all=True, filters={"label": f"{LABEL_RUN_ID}={run.run_id}"}) == []
    assert job.agent_lines(run.run_id)
    everything = "\n".join(job.job_lines(run.run_id) + job.agent_lines(run.run_id))
    item = clients.dynamodb.get_item(
        TableName=job.config.names.ledger_table, Key={"job": {"S": job.name}, "run_id": {"S": run.run_id}}
    )["Item"]
    assert value not in everything
    assert value not in json.dumps(item)
    assert value not in (stack.paths.logs / "emulators.log").read_text()


def test_a_missing_secret_fails_the_run_naming_it_and_powers_off(deploy) -> None:
    job = deploy("t-no-secret", secrets={"API_KEY": {"ssm": "/ec2batch/t-no-secret/absent"}})
    run = job.wait_run(job.trigger()["run_id"])
    assert run.status == FAILED
    assert run.reason == "secret API_KEY: could not read ssm /ec2batch/t-no-secret/absent: ParameterNotFound"
    assert job.wait_instance(run.instance_id) == "stopped"


def test_docker_sdk_is_the_one_talking_to_the_engine(stack) -> None:
    # The stack's engine answers on its own socket only: a guard against tests reaching another engine.
    assert docker.DockerClient(base_url=stack.paths.docker_host).ping()


def test_an_agent_that_keeps_dying_makes_the_unit_power_the_machine_off(deploy, stack) -> None:
    job = deploy("t-agent-dies", env={"REPORT_ROWS": "10", "JOB_SECONDS": "120"})
    run_id = job.trigger()["run_id"]
    running = job.wait_run(run_id, until=lambda r: r.status == RUNNING and r.container_started_at is not None)
    instance = stack.docker().containers.get(CONTAINER_PREFIX + running.instance_id)
    began = time.monotonic()

    for _ in range(3):  # StartLimitBurst=3: the third failure is final, and OnFailure powers off
        instance.exec_run(["systemctl", "kill", "--signal=SIGKILL", "ec2batch-agent.service"])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            instance.reload()
            if instance.status != "running":
                break
            state = instance.exec_run(["systemctl", "is-active", "ec2batch-agent.service"]).output.decode().strip()
            if state == "active":
                break
            time.sleep(0.2)
        time.sleep(1)

    assert job.wait_instance(running.instance_id, timeout=30) == "stopped"
    assert time.monotonic() - began < 90


def test_a_boot_with_no_run_waiting_is_recorded_and_powers_off(deploy) -> None:
    job = deploy("t-hand-start", env={"REPORT_ROWS": "10"})
    first = job.wait_run(job.trigger()["run_id"])
    job.wait_instance(first.instance_id)

    job.clients.ec2.start_instances(InstanceIds=[first.instance_id])  # someone starts it by hand

    assert job.wait_instance(first.instance_id, timeout=60) == "stopped"
    boot = next(r for r in job.ledger.list_runs(job.name) if r.trigger == "boot")
    assert boot.status == "SKIPPED"
    assert boot.reason == (
        f"booted with no run waiting (tag points at {first.run_id}, SUCCEEDED); boot_without_run is poweroff"
    )


def test_the_unit_verifies_and_its_exposure_is_low(stack) -> None:
    image = stack.images["instance_image"]  # type: ignore[attr-defined]
    out = stack.docker().containers.run(
        image,
        entrypoint=["systemd-analyze"],
        command=["verify", "/etc/systemd/system/ec2batch-agent.service"],
        remove=True,
        stderr=True,
        network_mode="host",
    )
    assert out.decode().strip() == ""
    score = (
        stack.docker()
        .containers.run(
            image,
            entrypoint=["sh"],
            remove=True,
            network_mode="host",
            command=[
                "-c",
                "systemd-analyze security --offline=true /etc/systemd/system/ec2batch-agent.service | tail -1",
            ],
        )
        .decode()
    )
    exposure = float(score.split("ec2batch-agent.service: ")[1].split()[0])
    assert exposure <= 2.0, score


def test_the_job_is_the_job_role_named_after_its_run_and_sees_fresh_credentials(deploy, aws_job_image) -> None:
    """Issue 11: boto3's default chain in the container finds the agent's endpoint, never the machine's role.

    The local stack assumes the role again every 20 s (EC2BATCH_CREDENTIALS_REFRESH_SECONDS in the instance's
    local.env; an hour's session is refreshed after 30 min on AWS): a 45 s job sees at least two sets.
    """
    job = deploy("t-identity", image=aws_job_image, env={"JOB_SECONDS": "45"}, max_runtime_seconds=300)

    run = job.wait_run(job.trigger()["run_id"], timeout=180)

    assert run.status == SUCCEEDED, run.reason
    seen = [json.loads(line) for line in job.job_lines(run.run_id) if line.startswith("{")]
    assert len(seen) >= 10
    role = f"arn:aws:sts::123456789012:assumed-role/ec2batch-t-identity-job/ec2batch-{run.run_id}"
    assert {entry["arn"] for entry in seen} == {role}
    assert {entry["method"] for entry in seen} == {"container-role"}
    assert len({entry["key"] for entry in seen}) >= 2  # refreshed while the job ran
    assert min(entry["left"] for entry in seen) > 600  # never near expiry, let alone past it


def test_a_spot_attempt_interrupted_mid_run_is_retried_on_demand_and_the_run_succeeds(deploy) -> None:
    """Issue 13: a spot-then-on-demand job with two attempts. The notice in the Spot instance's metadata reaches
    the job (its file, then SIGTERM) with time to stop; the agent records attempt 1 INTERRUPTED, with its cost,
    before EC2 takes the machine; the retry timer starts attempt 2 on-demand, which succeeds. One log stream
    holds both attempts' lines, and no machine is left running."""
    job = deploy(
        "t-spot",
        strategy="ephemeral",
        market="spot-then-on-demand",
        instance_types=["m7i.large"],
        retry={"attempts": 2, "interval_seconds": 2},
        env={"REPORT_ROWS": "10", "JOB_SECONDS": "20"},
    )
    run_id = job.trigger()["run_id"]
    running = job.wait_run(run_id, until=lambda r: r.status == RUNNING and r.container_started_at is not None)
    assert running.market == "spot" and running.attempt == 1
    time.sleep(3)  # mid-run

    told = CliRunner().invoke(main, ["local", "interrupt", job.name, "--warning", "20"])

    assert told.exit_code == 0, told.output
    assert told.output.startswith(f"{running.instance_id} (t-spot): Spot interruption notice served now;")
    run = job.wait_run(run_id, timeout=180)
    assert run.status == SUCCEEDED, run.reason
    first, second = run.all_attempts()
    assert (first.status, first.cause, first.market, first.exit_code) == ("INTERRUPTED", "interruption", "spot", 143)
    assert first.reason.startswith("interruption: Spot terminate notice for ")
    assert first.billed_seconds and first.billed_seconds >= 60 and first.cost_usd and first.cost_usd > 0
    assert (second.status, second.market, second.exit_code) == (SUCCEEDED, None, 0)
    assert second.instance_id != first.instance_id and run.attempt == 2
    assert run.cost_usd == round(first.cost_usd + second.cost_usd, 6)  # the run's cost is the sum
    assert job.wait_instance(first.instance_id, states=("terminated",), timeout=60) == "terminated"
    assert job.wait_instance(second.instance_id, states=("terminated",), timeout=60) == "terminated"

    lines = job.job_lines(run_id)
    assert "SIGTERM received: finishing the current step and exiting" in lines  # attempt 1
    notice = json.loads(next(line for line in lines if line.startswith("interruption notice: ")).split(": ", 1)[1])
    assert notice["action"] == "terminate"
    assert parse_time(first.ended_at) < parse_time(notice["time"])  # recorded before EC2 took the machine
    assert f"attempt 2 of run {run_id}" in lines and lines[-1].startswith("report written: 10 rows")  # attempt 2
    agent = [json.loads(line)["msg"] for line in job.agent_lines(run_id)]
    assert "Spot interruption notice: the job is sent SIGTERM" in agent
    assert "rebalance recommendation: the instance is at elevated risk of interruption" in agent
    assert "attempt ended: retrying" in agent
