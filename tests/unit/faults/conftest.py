"""The fault matrix is generated at collection: each scenario is played once without faults and every AWS call
it makes (service, operation, nth call of it) becomes a call site; each site meets each fault. A new call in
the code is therefore covered without a new test."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from ec2batch.aws import Clients
from tests.conftest import AWS_ENVIRONMENT, AWS_UNSET, FAULTS, MOTO, REGION, Faults, install_moto_as_aws

from .scenarios import SCENARIOS, stage
from .world import fresh_log_handlers, silence_agent_logs


@contextmanager
def _aws_here() -> Iterator[Clients]:
    saved = dict(os.environ)
    for var in AWS_UNSET:
        os.environ.pop(var, None)
    os.environ.update(AWS_ENVIRONMENT)
    undo = install_moto_as_aws()
    try:
        with mock_aws():
            yield Clients(boto3.Session(region_name=REGION))
    finally:
        undo()
        os.environ.clear()
        os.environ.update(saved)


@cache
def call_sites(name: str) -> tuple[str, ...]:
    """Play the scenario without faults and list the call sites it reaches, sorted: the agent makes some calls
    from background threads (its image is prepared while it claims the run), so the order of first use varies
    from one play to the next, and pytest-xdist's workers must collect the same cases."""
    scenario = SCENARIOS[name]
    with _aws_here() as aws, tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as patch:
        world = stage(scenario, aws, Path(tmp), patch)
        recorder = Faults()
        MOTO.interceptor = recorder
        try:
            scenario.act(world)
            world.run_for(scenario.bound)
        finally:
            MOTO.interceptor = None
            silence_agent_logs()
        return tuple(sorted(recorder.sites))


@cache
def matrix() -> tuple[tuple[str, str], ...]:
    """(scenario, call site) for every call site, each in the first scenario that reaches it."""
    seen: set[str] = set()
    cases = []
    for name in SCENARIOS:
        for site in call_sites(name):
            if site not in seen:
                seen.add(site)
                cases.append((name, site))
    return tuple(cases)


@pytest.fixture(autouse=True)
def _log_handlers() -> Iterator[None]:
    with fresh_log_handlers():
        yield


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "fault_case" not in metafunc.fixturenames:
        return
    cases = [(name, site, fault) for name, site in matrix() for fault in FAULTS]
    ids = [f"{name}:{_short(site)}:{fault}" for name, site, fault in cases]
    metafunc.parametrize("fault_case", cases, ids=ids)


def _short(site: str) -> str:
    """The last two ec2batch frames and the operation: enough to find it, short enough to read."""
    parts = site.split(" > ")
    return " > ".join(parts[-3:])


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    reports = [r for key in ("passed", "failed") for r in terminalreporter.stats.get(key, [])]
    if not any("test_the_invariants_hold" in getattr(r, "nodeid", "") for r in reports):
        return
    sites = matrix()
    per = {name: sum(1 for n, _ in sites if n == name) for name in SCENARIOS}
    terminalreporter.write_line(
        f"fault matrix: {len(sites)} call sites x {len(FAULTS)} faults ({', '.join(FAULTS)}) = "
        f"{len(sites) * len(FAULTS)} cases, from {len(SCENARIOS)} scenarios ("
        + ", ".join(f"{name} {count}" for name, count in per.items())
        + ")"
    )
