"""The launcher and the agent write the same run; either may be first."""

from __future__ import annotations

from ec2batch.launcher import Launcher
from ec2batch.ledger import RUNNING, Ledger, Run
from tests.conftest import Job


def test_an_agent_faster_than_the_launcher_keeps_its_status_and_gets_the_instance_details(job: Job) -> None:
    ledger = Ledger(job.clients.dynamodb, job.config.names.ledger_table)
    launcher = Launcher(job.clients)
    original = launcher.machines.get_machine

    def machine_then_agent(config, run_id, **kwargs):
        placement = original(config, run_id, **kwargs)
        ledger.transition(job.name, run_id, RUNNING)  # the instance booted and its agent reported in
        return placement

    launcher.machines.get_machine = machine_then_agent  # type: ignore[method-assign]
    result = launcher.handle({"action": "run", "job": job.name})

    run: Run = ledger.require(job.name, result["run_id"])
    assert run.status == RUNNING
    assert run.instance_id == result["instance_id"]
    assert run.placements[0].action == "launch"
