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

from .scenarios import BOUND, SCENARIOS, stage
from .world import follow_clock, silence_agent_logs

Site = tuple[str, str, int]


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
def call_sites(name: str) -> tuple[Site, ...]:
    """Play the scenario without faults and list its calls, in order."""
    scenario = SCENARIOS[name]
    with _aws_here() as aws, tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as patch:
        world = stage(scenario, aws, Path(tmp))
        follow_clock(patch, world.clock)
        recorder = Faults()
        MOTO.interceptor = recorder
        try:
            scenario.act(world)
            world.run_for(BOUND)
        finally:
            MOTO.interceptor = None
            silence_agent_logs()
        counts: dict[tuple[str, str], int] = {}
        sites = []
        for service, operation in recorder.seen:
            counts[service, operation] = counts.get((service, operation), 0) + 1
            sites.append((service, operation, counts[service, operation]))
        return tuple(sites)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "fault_case" not in metafunc.fixturenames:
        return
    cases, ids = [], []
    for name in SCENARIOS:
        for site in call_sites(name):
            for fault in FAULTS:
                cases.append((name, site, fault))
                ids.append(f"{name}:{site[0]}.{site[1]}#{site[2]}:{fault}")
    metafunc.parametrize("fault_case", cases, ids=ids)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    sites = {name: len(call_sites(name)) for name in SCENARIOS} if _collected(terminalreporter) else {}
    if sites:
        total = sum(sites.values())
        terminalreporter.write_line(
            f"fault matrix: {total} call sites in {len(sites)} scenarios x {len(FAULTS)} faults "
            f"({', '.join(FAULTS)}) = {total * len(FAULTS)} cases; "
            + ", ".join(f"{name} {count}" for name, count in sites.items())
        )


def _collected(reporter: pytest.TerminalReporter) -> bool:
    return any("fault_case" in getattr(item, "fixturenames", ()) for item in getattr(reporter.config, "_items", []))
