"""A start recorded before it is made: the reuse path's STARTING record, and how to tell whether EC2 started it.

On the reuse path (a fresh trigger of a `reuse`, on-demand job whose instance is stopped) the launcher looks at
the instance first and records the run STARTING on it, with its placement and a start lease, in the one
transaction that creates the run; then it tags and starts the instance and writes nothing more. A launcher that
dies after the transaction and before StartInstances (or whose start never reached EC2) leaves a STARTING run
whose machine may never have started. Nothing in the ledger says which: the answer is in EC2.

EC2 updates an instance's `LaunchTime` at every start ("The time that the instance was last launched. To
determine the time that instance was first launched, see the attachment time for the primary network
interface": EC2's API reference for `Instance`, as botocore's model and boto3's `EC2.Instance.launch_time`
carry it, https://boto3.amazonaws.com/v1/documentation/api/latest/reference/services/ec2/instance/launch_time.html;
users see it reset by a restart, e.g. https://github.com/servian/aws-auto-cleanup/issues/129). A start
made for the recorded try has a LaunchTime at or after the try's time, which is written before the start; an
instance still showing an older LaunchTime has not been started since. Tags cannot tell: CreateTags comes
before StartInstances, so our run's tag on a stopped instance says nothing about the start.

| the run's recorded start (`recorded_start`) | its instance | verdict |
| --- | --- | --- |
| none (claimed, ended, not STARTING, no lease, last try failed or another machine) | any | None: the usual rules |
| unconfirmed | pending, running, stopping, gone, or stopped and started since the try | None: the usual rules |
| unconfirmed, lease live | stopped, not started since the try | `wait`: its launcher is at it |
| unconfirmed, lease lapsed | stopped, not started since the try | `repeat` (CreateTags + StartInstances again) |
| unconfirmed, lease lapsed, MAX_STARTS made | stopped, not started since the try | `give-up`: start-failure |

An agent that dies before claiming after a real start leaves a stopped instance that *was* started since the
try: the usual rules end that attempt (agent-lost), so a machine is never started twice for one try, and the
repeats are bounded by MAX_STARTS. LaunchTime has whole seconds on AWS and clocks differ a little, so a
LaunchTime within LAUNCH_TIME_SLACK before the try counts as started: the doubt goes to "started" (the attempt
ends and the retry policy decides) and never to a second start.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from ..ledger import STARTING, PlacementTry, Run, parse_time

# Starts tried per attempt on a recorded start: the launcher's and two repeats (each after a lapsed lease).
MAX_STARTS = 3
# LaunchTime is given in whole seconds; one more second for the launcher's clock against EC2's.
LAUNCH_TIME_SLACK = timedelta(seconds=2)
WAIT, REPEAT, GIVE_UP = "wait", "repeat", "give-up"


def recorded_start(run: Run) -> PlacementTry | None:
    """The start the run was recorded with and nobody has confirmed: STARTING under a start lease, never claimed
    by an agent, its last placement try an error-free start of its instance for its current attempt."""
    if run.status != STARTING or run.instance_running_at or not run.start_lease_until or not run.placements:
        return None
    last = run.placements[-1]
    if last.action != "start" or last.error or last.instance_id != run.instance_id or not last.at:
        return None
    return last if (last.attempt or 1) == run.attempt else None


def started_since(instance: dict[str, Any], at: str) -> bool:
    """Has EC2 started the instance since `at` (a try's time)? Unknown counts as yes: never start twice."""
    launched = instance.get("LaunchTime")
    if not isinstance(launched, datetime):
        return True
    launched = launched if launched.tzinfo else launched.replace(tzinfo=UTC)
    return launched >= parse_time(at).replace(microsecond=0) - LAUNCH_TIME_SLACK


def starts_tried(run: Run) -> int:
    return sum(
        1
        for p in run.placements
        if p.action == "start" and p.instance_id == run.instance_id and (p.attempt or 1) == run.attempt
    )


def verdict(run: Run, instance: dict[str, Any] | None, now: datetime) -> str | None:
    """What to do about a run's unconfirmed recorded start (see the table above); None: nothing special."""
    start = recorded_start(run)
    if start is None or instance is None or instance["State"]["Name"] != "stopped":
        return None
    if started_since(instance, start.at):
        return None
    if parse_time(run.start_lease_until or start.at) > now:
        return WAIT
    return REPEAT if starts_tried(run) < MAX_STARTS else GIVE_UP


def lease_lapsed(run: Run, now: datetime) -> bool:
    return run.start_lease_until is not None and parse_time(run.start_lease_until) <= now
