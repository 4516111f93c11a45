"""Every AWS call of a run's life x every fault (`tests.conftest.FAULTS`), then the invariants.

The cases come from `conftest.pytest_generate_tests`; `pytest -q tests/unit/faults` prints the matrix size.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .scenarios import SCENARIOS, check, stage
from .world import silence_agent_logs


def test_the_invariants_hold_whatever_fault_meets_whichever_call(
    fault_case, aws, faults, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name, site, fault = fault_case
    scenario = SCENARIOS[name]
    world = stage(scenario, aws, tmp_path, monkeypatch)
    faults.reset()  # the stage's own calls are not call sites
    faults.at_site(site, fault)
    try:
        scenario.act(world)
        world.run_for(scenario.bound)
    finally:
        silence_agent_logs()

    assert faults.fired, f"{site} was never called this time"
    problems = check(world, scenario, faulted=fault)
    assert not problems, f"{fault} at {site}: " + "; ".join(problems)


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_each_scenario_without_faults_ends_as_expected(name: str, aws, tmp_path: Path, monkeypatch) -> None:
    scenario = SCENARIOS[name]
    world = stage(scenario, aws, tmp_path, monkeypatch)
    try:
        scenario.act(world)
        world.run_for(scenario.bound)
    finally:
        silence_agent_logs()

    assert check(world, scenario) == []
    assert world.errors == []
