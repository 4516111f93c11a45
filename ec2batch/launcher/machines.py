"""Getting a machine for a run: start the job's stopped instance, or launch one from its template.

Capacity errors (the instance type has no capacity in that zone right now, an account limit, a type the
zone does not offer) are expected in real life and never raised by moto; on one of them we move on to
the next instance type and subnet. Any other error stops the attempt: retrying a permission error on
every type only hides it.

Every step is safe to repeat for the same run (a retried Lambda, the reconciler taking over an orphan):
RunInstances carries a client token derived from the run and the placement, so a repeat finds the first
instance; a reusable instance already started for this run (its run tag) is that run's machine; under
`allow` the reusable instance is claimed in the ledger before it is tagged and started, so two runs never
both place themselves on it. On the reuse path the run is recorded STARTING on the stopped instance before
it is started (`start_recorded`); whether a start happened is then read from the instance's LaunchTime
(`starts`), so every try is stamped with the launcher's clock (`clock`).
"""

from __future__ import annotations

import copy
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from ..config import JobConfig
from ..jsonlog import fields
from ..ledger import PlacementTry, iso, utcnow
from ..names import (
    LIFECYCLE_EPHEMERAL,
    LIFECYCLE_REUSE,
    TAG_ATTEMPT,
    TAG_JOB,
    TAG_LIFECYCLE,
    TAG_RUN_ID,
    tagged_attempt,
)

log = logging.getLogger(__name__)

CAPACITY_ERRORS = frozenset(
    {
        "InsufficientInstanceCapacity",
        "InsufficientCapacity",
        "InsufficientHostCapacity",
        "InsufficientReservedInstanceCapacity",
        "InsufficientFreeAddressesInSubnet",
        "InstanceLimitExceeded",
        "VcpuLimitExceeded",
        "Unsupported",
        # Spot: no Spot capacity for the type in the zone, a price cap below the Spot price, the account's
        # Spot quota (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/spot-request-status.html)
        "SpotMaxPriceTooLow",
        "MaxSpotInstanceCountExceeded",
        "InsufficientSpotCapacity",
    }
)
SPOT, ON_DEMAND = "spot", "on-demand"
# Spot launches: one-time, terminated when EC2 reclaims the capacity (a persistent request could restart the
# job outside any run); the agent watches for the two-minute notice.
SPOT_MARKET_OPTIONS = {
    "MarketType": "spot",
    "SpotOptions": {"SpotInstanceType": "one-time", "InstanceInterruptionBehavior": "terminate"},
}


def markets_of(market: str) -> list[str]:
    """The markets a run's machine is asked for, in order: spot-then-on-demand falls back to on-demand."""
    return {"spot": [SPOT], "spot-then-on-demand": [SPOT, ON_DEMAND]}.get(market, [ON_DEMAND])


def attempt_key(run_id: str, attempt: int) -> str:
    """What client tokens derive from: the run for its first attempt (as before attempts existed), else both."""
    return run_id if attempt <= 1 else f"{run_id}#attempt-{attempt}"


BUSY_STATES = ("pending", "running")
# A reusable instance in one of these is on its way to `stopped` (a previous run powering off) or just
# started by a previous run that will power it off: wait for it within the bound.
SETTLING_STATES = ("pending", "running", "stopping")
START_TRIES = 3  # StartInstances answering IncorrectInstanceState (still stopping): wait and try again


def client_token(run_id: str, *parts: str | None) -> str:
    """RunInstances' ClientToken for one placement of one run: a retry at any level finds the same instance."""
    digest = hashlib.sha256("|".join([run_id, *(p or "-" for p in parts)]).encode()).hexdigest()
    return digest[:48]  # AWS allows 64 ASCII characters


@dataclass(frozen=True)
class Placement:
    instance_id: str
    instance_type: str | None
    subnet_id: str | None
    action: str
    market: str = ON_DEMAND


class NoMachine(Exception):
    """Every attempt failed; `attempts` says how."""

    def __init__(self, reason: str, attempts: list[PlacementTry]) -> None:
        super().__init__(reason)
        self.reason = reason
        self.attempts = attempts


class InstanceBusy(Exception):
    """The job's reusable instance is running and no run owns it (for `forbid`, a reason to fail loudly)."""

    def __init__(self, instance_id: str, state: str) -> None:
        super().__init__(f"instance {instance_id} is {state}")
        self.instance_id = instance_id
        self.state = state


# `get_machine(observed=...)` default: the job's reusable instance has not been looked for yet.
NOT_LOOKED: Any = object()


class Machines:
    def __init__(
        self,
        ec2: Any,
        *,
        stopping_wait_seconds: int = 120,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], datetime] = utcnow,
    ):
        self.ec2 = ec2
        self.clock = clock  # stamps each try (`PlacementTry.at`): a recorded start is compared with LaunchTime
        self._attempt = 1  # of the get_machine call under way
        self._market = ON_DEMAND
        self.stopping_wait_seconds = stopping_wait_seconds
        self.sleep = sleep

    def get_machine(
        self,
        config: JobConfig,
        run_id: str,
        *,
        parallel_allowed: bool,
        claim_instance: Callable[[str], bool] | None = None,
        attempt: int = 1,
        observed: dict[str, Any] | None = NOT_LOOKED,
    ) -> tuple[Placement, list[PlacementTry]]:
        """Start or launch a machine for attempt `attempt` of `run_id`; returns where it runs and every try made.

        `claim_instance(instance_id)` takes the reusable instance for this run in the ledger (under `allow`,
        where the job's slot does not serialize runs); False means another live run has it. The market comes
        from the config (`JobConfig.market_for`); Spot is only ever launched (config refuses it with reuse).
        `observed`: the job's reusable instance (or None) as `find_reusable` just found it (a fresh trigger looks
        before recording its run), so it is not looked for twice.
        """
        # A copy per call carries the attempt and market through the steps below: one Machines serves many
        # runs at once (threads in a test, the reconciler's repairs), so they are never state on `self`.
        call = copy.copy(self)
        call._attempt, call._market = attempt, config.market_for(attempt)
        return call._get_machine(
            config, run_id, parallel_allowed=parallel_allowed, claim_instance=claim_instance, observed=observed
        )

    def _get_machine(
        self,
        config: JobConfig,
        run_id: str,
        *,
        parallel_allowed: bool,
        claim_instance: Callable[[str], bool] | None,
        observed: dict[str, Any] | None,
    ) -> tuple[Placement, list[PlacementTry]]:
        attempt = self._attempt
        attempts: list[PlacementTry] = []
        if config.strategy == "ephemeral" or self._market != ON_DEMAND:
            return self._launch_fallback(config, run_id, LIFECYCLE_EPHEMERAL, attempts), attempts
        instance = self.find_reusable(config.job) if observed is NOT_LOOKED else observed
        if instance is None:
            # First run (or the instance was deleted): the launched instance stays for the next runs.
            return self._launch_fallback(config, run_id, LIFECYCLE_REUSE, attempts), attempts
        instance_id, state = instance["InstanceId"], instance["State"]["Name"]
        if state in BUSY_STATES and _started_for(instance, run_id, attempt):
            # Started for this very attempt by an earlier try (the launcher died before recording it).
            placement = Placement(instance_id, instance.get("InstanceType"), instance.get("SubnetId"), "start")
            return placement, attempts
        if parallel_allowed and (state in BUSY_STATES or (claim_instance and not claim_instance(instance_id))):
            return self._launch_fallback(config, run_id, LIFECYCLE_EPHEMERAL, attempts), attempts
        placement = self._start_reusable(config, instance, state, run_id, attempts)
        if placement is not None:
            return placement, attempts
        skip = (instance.get("InstanceType"), instance.get("SubnetId"))
        return self._launch_fallback(config, run_id, LIFECYCLE_EPHEMERAL, attempts, skip=skip), attempts

    def start_recorded(
        self,
        config: JobConfig,
        run_id: str,
        instance: dict[str, Any],
        *,
        attempt: int = 1,
        before_fallback: Callable[[list[PlacementTry]], None] | None = None,
    ) -> tuple[Placement, list[PlacementTry]]:
        """Tag and start the stopped reusable instance a run was recorded STARTING on (the reuse path).

        The happy path is CreateTags + StartInstances and one error-free try. A start that does not happen goes
        on as `get_machine` would: an instance still stopping is waited for and started; on a capacity error (or
        an instance someone else started) an ephemeral instance is launched instead. `before_fallback(tries)` is
        called before that launch, so the ledger says the recorded start failed before another machine exists
        (a repeat of the recorded start could otherwise give the attempt two machines).
        """
        call = copy.copy(self)
        call._attempt, call._market = attempt, ON_DEMAND
        attempts: list[PlacementTry] = []
        placement = call._start(instance, run_id, attempts)
        if placement == "again":
            placement = call._start_reusable(config, instance, "stopping", run_id, attempts)
        if isinstance(placement, Placement):
            return placement, attempts
        if before_fallback is not None:
            before_fallback(list(attempts))
        skip = (instance.get("InstanceType"), instance.get("SubnetId"))
        return call._launch_fallback(config, run_id, LIFECYCLE_EPHEMERAL, attempts, skip=skip), attempts

    def _start_reusable(
        self, config: JobConfig, instance: dict[str, Any], state: str, run_id: str, attempts: list[PlacementTry]
    ) -> Placement | None:
        instance_id = instance["InstanceId"]
        for _ in range(START_TRIES):
            if state != "stopped":
                # The previous run is powering off; a stopped instance can be started again in seconds.
                state = self._wait_stopped(instance_id)
            if state == "terminated":  # deleted by hand meanwhile: make a new reusable one
                return self._launch_fallback(config, run_id, LIFECYCLE_REUSE, attempts)
            if state != "stopped":
                raise InstanceBusy(instance_id, state)
            placement = self._start(instance, run_id, attempts)
            if placement != "again":
                return placement
            state = "stopping"
        raise InstanceBusy(instance_id, "stopping")

    def find_reusable(self, job: str) -> dict[str, Any] | None:
        response = self.ec2.describe_instances(
            Filters=[
                {"Name": f"tag:{TAG_JOB}", "Values": [job]},
                {"Name": f"tag:{TAG_LIFECYCLE}", "Values": [LIFECYCLE_REUSE]},
                {"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]},
            ]
        )
        instances = [i for r in response["Reservations"] for i in r["Instances"]]
        # If several exist (a Terraform-made one and a launched one, say), prefer a stopped one, then the oldest.
        instances.sort(key=lambda i: (i["State"]["Name"] != "stopped", i.get("LaunchTime", 0)))
        return instances[0] if instances else None

    def _wait_stopped(self, instance_id: str) -> str:
        """Poll until the instance is stopped (or gone), through every state it may pass on the way."""
        polls = max(1, self.stopping_wait_seconds // 2)  # counted, not timed: `sleep` may be a test's fake
        for _ in range(polls):
            state = self.state(instance_id)
            if state not in SETTLING_STATES:
                return state
            self.sleep(2)
        return self.state(instance_id)

    def state(self, instance_id: str) -> str:
        """The instance's state; `terminated` for one EC2 no longer knows."""
        try:
            response = self.ec2.describe_instances(InstanceIds=[instance_id])
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "InvalidInstanceID.NotFound":
                return "terminated"
            raise
        found = [i for r in response["Reservations"] for i in r["Instances"]]
        return found[0]["State"]["Name"] if found else "terminated"

    def _start(self, instance: dict[str, Any], run_id: str, attempts: list[PlacementTry]) -> Placement | str | None:
        """Tag and start the stopped instance: a Placement, None on a capacity error, "again" if it was not
        stopped after all (IncorrectInstanceState: still stopping)."""
        instance_id = instance["InstanceId"]
        # The agent reads its run id (and attempt) from these tags at boot, so they are written before the start.
        self.ec2.create_tags(
            Resources=[instance_id],
            Tags=[{"Key": TAG_RUN_ID, "Value": run_id}, {"Key": TAG_ATTEMPT, "Value": str(self._attempt)}],
        )
        attempt = PlacementTry(
            action="start",
            instance_type=instance.get("InstanceType"),
            subnet_id=instance.get("SubnetId"),
            instance_id=instance_id,
            at=iso(self.clock()),
            attempt=self._attempt if self._attempt > 1 else None,
        )
        try:
            response = self.ec2.start_instances(InstanceIds=[instance_id])
        except ClientError as exc:
            code = exc.response["Error"]["Code"]
            if code == "IncorrectInstanceState":
                log.info("instance not stopped yet: waiting", extra=fields(run_id=run_id, instance_id=instance_id))
                return "again"
            attempts.append(
                PlacementTry(**{**attempt.__dict__, "error": f"{code}: {exc.response['Error'].get('Message', '')}"})
            )
            log.warning("start failed", extra=fields(run_id=run_id, instance_id=instance_id, error=code))
            if code not in CAPACITY_ERRORS:
                raise NoMachine(f"could not start {instance_id}: {code}", attempts) from exc
            return None
        previous = response["StartingInstances"][0].get("PreviousState", {}).get("Name")
        if previous not in (None, "stopped") and not self._tagged_for(instance_id, run_id, self._attempt):
            # Someone started it between our look and our call (by hand: every launcher takes the slot first).
            log.warning(
                "instance was already started by someone else: not ours",
                extra=fields(run_id=run_id, instance_id=instance_id, previous_state=previous),
            )
            attempts.append(PlacementTry(**{**attempt.__dict__, "error": f"already {previous} when started"}))
            return None
        attempts.append(attempt)
        return Placement(instance_id, attempt.instance_type, attempt.subnet_id, "start")

    def _tagged_for(self, instance_id: str, run_id: str, attempt: int) -> bool:
        """Started already, and for this attempt: our own StartInstances, applied before its response was lost."""
        response = self.ec2.describe_instances(InstanceIds=[instance_id])
        return _started_for(response["Reservations"][0]["Instances"][0], run_id, attempt)

    def _launch_fallback(
        self,
        config: JobConfig,
        run_id: str,
        lifecycle: str,
        attempts: list[PlacementTry],
        skip: tuple[str | None, str | None] | None = None,
    ) -> Placement:
        types: list[str | None] = list(config.instance_types) or [None]
        subnets: list[str | None] = list(config.subnet_ids) or [None]
        for market in markets_of(self._market):
            for instance_type in types:
                for subnet_id in subnets:
                    if skip and (instance_type, subnet_id) == skip and market == ON_DEMAND:
                        continue  # the same type in the same place just failed to start
                    placement = self._launch(config, run_id, lifecycle, instance_type, subnet_id, attempts, market)
                    if placement is not None:
                        return placement
        tried = ", ".join(
            f"{a.action} {a.market or ON_DEMAND} {a.instance_type or 'template type'} in "
            f"{a.subnet_id or 'template subnet'} ({a.error})"
            for a in attempts
        )
        raise NoMachine(f"no capacity after {len(attempts)} tries: {tried}", attempts)

    def _launch(
        self,
        config: JobConfig,
        run_id: str,
        lifecycle: str,
        instance_type: str | None,
        subnet_id: str | None,
        attempts: list[PlacementTry],
        market: str = ON_DEMAND,
    ) -> Placement | None:
        tags = [
            {"Key": TAG_JOB, "Value": config.job},
            {"Key": TAG_RUN_ID, "Value": run_id},
            {"Key": TAG_ATTEMPT, "Value": str(self._attempt)},
            {"Key": TAG_LIFECYCLE, "Value": lifecycle},
            {"Key": "Name", "Value": config.names.base},
        ]
        # One token per attempt, placement and market: a retry of this call finds this instance, and the
        # next attempt (or the on-demand fallback) never gets the instance an earlier one was given.
        token_parts = [lifecycle, instance_type, subnet_id] + ([SPOT] if market == SPOT else [])
        request: dict[str, Any] = {
            "ClientToken": client_token(attempt_key(run_id, self._attempt), *token_parts),
            "LaunchTemplate": {"LaunchTemplateName": config.names.launch_template, "Version": "$Latest"},
            "MinCount": 1,
            "MaxCount": 1,
            # An instance made for one run deletes itself at power-off; the reusable one stops and waits.
            "InstanceInitiatedShutdownBehavior": "terminate" if lifecycle == LIFECYCLE_EPHEMERAL else "stop",
            "TagSpecifications": [
                {"ResourceType": "instance", "Tags": tags},
                {"ResourceType": "volume", "Tags": tags[:1]},
            ],
        }
        if instance_type:
            request["InstanceType"] = instance_type
        if subnet_id:
            request["SubnetId"] = subnet_id
        if market == SPOT:
            request["InstanceMarketOptions"] = SPOT_MARKET_OPTIONS
        at = iso(self.clock())
        spot = market if market == SPOT else None
        number = self._attempt if self._attempt > 1 else None
        try:
            response = self.ec2.run_instances(**request)
        except ClientError as exc:
            code = exc.response["Error"]["Code"]
            attempts.append(
                PlacementTry(
                    action="launch",
                    instance_type=instance_type,
                    subnet_id=subnet_id,
                    error=f"{code}: {exc.response['Error'].get('Message', '')}",
                    at=at,
                    market=spot,
                    attempt=number,
                )
            )
            log.warning(
                "launch failed",
                extra=fields(
                    run_id=run_id, instance_type=instance_type, subnet_id=subnet_id, market=market, error=code
                ),
            )
            if code not in CAPACITY_ERRORS:
                raise NoMachine(
                    f"could not launch from template {config.names.launch_template}: {code}", attempts
                ) from exc
            return None
        instance = response["Instances"][0]
        placement = Placement(
            instance["InstanceId"], instance.get("InstanceType"), instance.get("SubnetId"), "launch", market
        )
        attempts.append(
            PlacementTry(
                action="launch",
                instance_type=placement.instance_type,
                subnet_id=placement.subnet_id,
                instance_id=placement.instance_id,
                at=at,
                market=spot,
                attempt=number,
            )
        )
        return placement


def _tags(instance: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in instance.get("Tags", [])}


def _started_for(instance: dict[str, Any], run_id: str, attempt: int) -> bool:
    tags = _tags(instance)
    return tags.get(TAG_RUN_ID) == run_id and tagged_attempt(tags) == attempt
