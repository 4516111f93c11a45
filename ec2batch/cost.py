"""What runs cost, and what acting on timed events costs with four designs.

Instance prices are built-in defaults for common types (on-demand: Linux list prices, approximate, checked
2026-11; Spot: rough estimates, see DEFAULT_SPOT_PRICES). Override or extend them with a JSON file
(`--prices FILE` or EC2BATCH_PRICES) of region -> {name: USD}, where a name is an instance type (its on-demand
price per hour), `<instance type>/spot` (its Spot price per hour) or `ebs_gp3_gb_month`:
    {"eu-central-1": {"m7i.large": 0.1159, "m7i.large/spot": 0.0421, "ebs_gp3_gb_month": 0.0952}}
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from .errors import Ec2BatchError
from .ledger import Run, parse_time

MARKETS = ("on-demand", "spot")  # the market an attempt's machine actually ran in (priced here)
SPOT_SUFFIX = "/spot"  # "m7i.large/spot": the Spot price of m7i.large in a price file and in the table
MINIMUM_BILLED_SECONDS = 60  # EC2 bills per second with a 60 s minimum per start
HOURS_PER_MONTH = 730  # AWS's convention for per-month prices

DEFAULT_PRICES: dict[str, dict[str, float]] = {
    "us-east-1": {
        "t3.micro": 0.0104,
        "t3.small": 0.0208,
        "t3.medium": 0.0416,
        "t3.large": 0.0832,
        "m6i.large": 0.096,
        "m6i.xlarge": 0.192,
        "m6i.2xlarge": 0.384,
        "m6i.4xlarge": 0.768,
        "m7i.large": 0.1008,
        "m7i.xlarge": 0.2016,
        "m7i.2xlarge": 0.4032,
        "m7i.4xlarge": 0.8064,
        "c7i.large": 0.08925,
        "c7i.xlarge": 0.1785,
        "c7i.2xlarge": 0.357,
        "c7i.4xlarge": 0.714,
        "r5.2xlarge": 0.504,
        "r6i.2xlarge": 0.504,
        "r7i.large": 0.1323,
        "r7i.xlarge": 0.2646,
        "r7i.2xlarge": 0.5292,
        "r7i.4xlarge": 1.0584,
        "ebs_gp3_gb_month": 0.08,
    },
    "eu-central-1": {
        "t3.micro": 0.012,
        "t3.small": 0.024,
        "t3.medium": 0.048,
        "t3.large": 0.096,
        "m6i.large": 0.115,
        "m6i.xlarge": 0.23,
        "m6i.2xlarge": 0.46,
        "m6i.4xlarge": 0.92,
        "m7i.large": 0.1159,
        "m7i.xlarge": 0.2318,
        "m7i.2xlarge": 0.4637,
        "m7i.4xlarge": 0.9274,
        "c7i.large": 0.10185,
        "c7i.xlarge": 0.2037,
        "c7i.2xlarge": 0.4074,
        "c7i.4xlarge": 0.8148,
        "r5.2xlarge": 0.608,
        "r6i.2xlarge": 0.608,
        "r7i.large": 0.1596,
        "r7i.xlarge": 0.3192,
        "r7i.2xlarge": 0.6384,
        "r7i.4xlarge": 1.2768,
        "ebs_gp3_gb_month": 0.0952,
    },
}

# Spot prices are set by EC2 per type and Availability Zone and move with supply and demand, so these are
# defaults, not quotes. They are estimates, written 2026-11: the on-demand price above times a share per family
# (t3 0.32, m6i 0.38, m7i 0.40, c7i 0.42, r5 0.33, r6i 0.36, r7i 0.38), in the range of a third to two fifths
# of on-demand where Linux Spot prices of these families usually sit; they were not read from a price
# history. For real figures, take `aws ec2 describe-spot-price-history --instance-types m7i.large
# --product-descriptions Linux/UNIX` and put them in a price file as "m7i.large/spot".
DEFAULT_SPOT_PRICES: dict[str, dict[str, float]] = {
    "us-east-1": {
        "t3.micro": 0.0033,
        "t3.small": 0.0067,
        "t3.medium": 0.0133,
        "t3.large": 0.0266,
        "m6i.large": 0.0365,
        "m6i.xlarge": 0.073,
        "m6i.2xlarge": 0.1459,
        "m6i.4xlarge": 0.2918,
        "m7i.large": 0.0403,
        "m7i.xlarge": 0.0806,
        "m7i.2xlarge": 0.1613,
        "m7i.4xlarge": 0.3226,
        "c7i.large": 0.0375,
        "c7i.xlarge": 0.075,
        "c7i.2xlarge": 0.1499,
        "c7i.4xlarge": 0.2999,
        "r5.2xlarge": 0.1663,
        "r6i.2xlarge": 0.1814,
        "r7i.large": 0.0503,
        "r7i.xlarge": 0.1005,
        "r7i.2xlarge": 0.2011,
        "r7i.4xlarge": 0.4022,
    },
    "eu-central-1": {
        "t3.micro": 0.0038,
        "t3.small": 0.0077,
        "t3.medium": 0.0154,
        "t3.large": 0.0307,
        "m6i.large": 0.0437,
        "m6i.xlarge": 0.0874,
        "m6i.2xlarge": 0.1748,
        "m6i.4xlarge": 0.3496,
        "m7i.large": 0.0464,
        "m7i.xlarge": 0.0927,
        "m7i.2xlarge": 0.1855,
        "m7i.4xlarge": 0.371,
        "c7i.large": 0.0428,
        "c7i.xlarge": 0.0856,
        "c7i.2xlarge": 0.1711,
        "c7i.4xlarge": 0.3422,
        "r5.2xlarge": 0.2006,
        "r6i.2xlarge": 0.2189,
        "r7i.large": 0.0606,
        "r7i.xlarge": 0.1213,
        "r7i.2xlarge": 0.2426,
        "r7i.4xlarge": 0.4852,
    },
}
# The instance catalogue: what each priced type is, (vCPUs, memory in GiB), from EC2's instance type pages.
# The right-sizing hint (ec2batch.rightsizing) and the memory alarm's suggestion (terraform, through
# instance_catalogue.json, `catalogue_document`) read the types from here and their prices from the table above.
INSTANCE_SIZES: dict[str, tuple[int, float]] = {
    "t3.micro": (2, 1),
    "t3.small": (2, 2),
    "t3.medium": (2, 4),
    "t3.large": (2, 8),
    "m6i.large": (2, 8),
    "m6i.xlarge": (4, 16),
    "m6i.2xlarge": (8, 32),
    "m6i.4xlarge": (16, 64),
    "m7i.large": (2, 8),
    "m7i.xlarge": (4, 16),
    "m7i.2xlarge": (8, 32),
    "m7i.4xlarge": (16, 64),
    "c7i.large": (2, 4),
    "c7i.xlarge": (4, 8),
    "c7i.2xlarge": (8, 16),
    "c7i.4xlarge": (16, 32),
    "r5.2xlarge": (8, 64),
    "r6i.2xlarge": (8, 64),
    "r7i.large": (2, 16),
    "r7i.xlarge": (4, 32),
    "r7i.2xlarge": (8, 64),
    "r7i.4xlarge": (16, 128),
}

# One table, as a price file writes it: "<type>/spot" beside "<type>".
for _region, _spot in DEFAULT_SPOT_PRICES.items():
    DEFAULT_PRICES[_region].update({f"{name}{SPOT_SUFFIX}": usd for name, usd in _spot.items()})


class PriceError(Ec2BatchError):
    pass


@dataclass(frozen=True)
class InstanceSize:
    """One entry of the catalogue: an instance type's size and its price per hour in one region and market."""

    name: str
    vcpus: int
    memory_gib: float
    hourly: float


@dataclass(frozen=True)
class PriceTable:
    prices: Mapping[str, Mapping[str, float]] = field(default_factory=lambda: DEFAULT_PRICES)

    @classmethod
    def load(cls, path: str | Path | None = None) -> PriceTable:
        path = path or os.environ.get("EC2BATCH_PRICES")
        merged = {region: dict(values) for region, values in DEFAULT_PRICES.items()}
        if path:
            for region, values in _read_price_file(Path(path)).items():
                merged.setdefault(region, {}).update(values)
        return cls(merged)

    def hourly(self, region: str, instance_type: str, market: str = "on-demand") -> float:
        """USD per hour of `instance_type` in `region` in `market` ("on-demand" or "spot")."""
        if market not in MARKETS:
            raise ValueError(f"market must be one of {', '.join(MARKETS)}, not {market!r}")
        key = instance_type if market == "on-demand" else f"{instance_type}{SPOT_SUFFIX}"
        try:
            return self.prices[region][key]
        except KeyError:
            what = "price" if market == "on-demand" else "Spot price"
            raise PriceError(
                f"no {what} for {instance_type} in {region}: add it to a price file "
                f'(--prices FILE, {{"{region}": {{"{key}": 0.123}}}})'
            ) from None

    def catalogue(self, region: str, market: str = "on-demand") -> dict[str, InstanceSize]:
        """Every type with a known size and a price here (a price file's extra types have no size: left out)."""
        out: dict[str, InstanceSize] = {}
        for name, (vcpus, memory) in INSTANCE_SIZES.items():
            try:
                out[name] = InstanceSize(name, vcpus, memory, self.hourly(region, name, market))
            except PriceError:
                continue
        return out

    def gb_month(self, region: str) -> float:
        return self.prices.get(region, {}).get("ebs_gp3_gb_month", DEFAULT_PRICES["us-east-1"]["ebs_gp3_gb_month"])


def _read_price_file(path: Path) -> dict[str, dict[str, float]]:
    """{"<region>": {"<instance type>[/spot] or ebs_gp3_gb_month": <USD>, ...}, ...}; every bad entry is named."""
    try:
        doc = json.loads(path.read_bytes())  # bytes: a file that is not UTF-8 is a ValueError too
    except (OSError, ValueError) as exc:
        raise PriceError(f"price file {path}: not a readable JSON file ({exc})") from exc
    if not isinstance(doc, dict):
        raise PriceError(f"price file {path}: must be an object of region -> {{instance type: USD per hour}}")
    for region, values in doc.items():
        if not isinstance(values, dict):
            raise PriceError(f"price file {path}: {region}: must be an object of instance type -> USD per hour")
        for name, usd in values.items():
            base, slash, market = name.partition("/")
            if slash and (not base or f"/{market}" != SPOT_SUFFIX):
                raise PriceError(
                    f"price file {path}: {region}.{name}: a name with '/' must be <instance type>/spot, "
                    f'e.g. "m7i.large/spot"'
                )
            if isinstance(usd, bool) or not isinstance(usd, int | float) or not 0 <= usd < 1e6:
                raise PriceError(f"price file {path}: {region}.{name}: must be a price in USD, got {usd!r}")
    return {region: {name: float(usd) for name, usd in values.items()} for region, values in doc.items()}


def catalogue_document() -> dict[str, Any]:
    """terraform/modules/scheduled-job/instance_catalogue.json: the sizes and on-demand prices per region."""
    return {
        "sizes": {name: {"vcpus": v, "memory_gib": m} for name, (v, m) in INSTANCE_SIZES.items()},
        "prices": {
            region: {name: usd for name, usd in prices.items() if name in INSTANCE_SIZES}
            for region, prices in DEFAULT_PRICES.items()
        },
    }


def billed_seconds(started: datetime, ended: datetime) -> int:
    """Per second with the 60 s minimum; `started` and `ended` must be read on one clock.

    The launcher measures from the start request (the pending time, not billed, roughly offsets the
    shutdown time, billed); the agent from its claim, on the machine's clock (see `run_cost`)."""
    return max(MINIMUM_BILLED_SECONDS, math.ceil((ended - started).total_seconds()))


def run_cost(
    run: Run,
    ended: datetime,
    region: str,
    prices: PriceTable | None = None,
    *,
    started: datetime | None = None,
    market: str | None = None,
) -> dict[str, Any]:
    """The ledger fields for a run that ends at `ended` on its instance; empty if it never had one.

    `started` and `ended` must come from one clock. Without `started`, the start request is used, which
    the launcher stamped: right for the launcher (its own clock at both ends), wrong for the agent, whose
    clock may be minutes off the launcher's (the agent passes its own start instead).
    `market` is the market the machine ran in ("on-demand" or "spot"; None: on-demand): a Spot machine is
    priced at the table's Spot price. Without a price, only the billed seconds are returned.
    """
    if started is None:
        start = run.start_requested_at or run.instance_running_at
        started = parse_time(start) if start else None
    if started is None or not run.instance_type:
        return {}
    seconds = billed_seconds(started, ended)
    try:
        hourly = (prices or PriceTable.load()).hourly(region, run.instance_type, market or "on-demand")
    except PriceError:
        return {"billed_seconds": seconds}
    return {"billed_seconds": seconds, "cost_usd": round(seconds / 3600 * hourly, 6)}


# ---------------------------------------------------------------- four ways to act on timed events


@dataclass(frozen=True)
class Item:
    name: str
    quantity: float  # per hour
    unit_usd: float
    unit: str

    @property
    def usd(self) -> float:
        return self.quantity * self.unit_usd

    def as_dict(self) -> dict[str, Any]:
        return {
            "item": self.name,
            "quantity_per_hour": self.quantity,
            "unit": self.unit,
            "unit_usd": self.unit_usd,
            "usd_per_hour": self.usd,
        }


@dataclass(frozen=True)
class Scenario:
    events_per_hour: int
    work_ms: int
    memory_mb: int
    due_second: int


PUBLISHED = {
    "scheduled_event": 1.00 / 1e6,
    "lambda_request": 0.20 / 1e6,
    "lambda_100ms_128mb": 0.0000002083,
    "transition": 0.025 / 1000,
    "sqs_request": 0.40 / 1e6,
}
CURRENT = {
    "scheduled_event": 1.00 / 1e6,  # EventBridge Scheduler invocations, beyond the free tier
    "lambda_request": 0.20 / 1e6,
    "lambda_gb_second": 0.0000166667,
    "transition": 0.025 / 1000,
    "sqs_request": 0.40 / 1e6,
}
ASSUMPTIONS = {
    "published": [
        "a scheduled rule costs its events only, $1.00 per million; the planner's own invocations are not counted",
        "Lambda: $0.20 per million requests; duration in whole 100 ms steps at $0.0000002083 per 100 ms for "
        "128 MB, scaled by memory",
        "Step Functions: $0.025 per 1,000 state transitions, one transition per event, nothing else",
        "SQS: one $0.40-per-million request per message",
    ],
    "current": [
        "scheduled events: EventBridge Scheduler, $1.00 per million invocations (free tier not deducted)",
        "Lambda: $0.20 per million requests; duration billed per 1 ms at $0.0000166667 per GB-second",
        "Step Functions (standard): a wait and a task transition per event ($0.025 per 1,000) plus the task's "
        "Lambda invocation of W ms",
        "SQS: a send, a receive and a delete per message, $0.40 per million requests",
        "the planner runs 4 times an hour and its invocation is counted like a W ms invocation",
        "lambda-wait sleeps from the start of the minute until second S, billed as duration",
    ],
}


def _duration_published(ms: float, memory_mb: int) -> float:
    return math.ceil(ms / 100) * PUBLISHED["lambda_100ms_128mb"] * memory_mb / 128


def _duration_current(ms: float, memory_mb: int) -> float:
    return ms / 1000 * memory_mb / 1024 * CURRENT["lambda_gb_second"]


def compare(s: Scenario, assumptions: str = "published") -> dict[str, list[Item]]:
    """Per-hour cost items of cron, lambda-wait, step-functions and cron-sqs for scenario `s`."""
    if assumptions not in ASSUMPTIONS:
        raise ValueError(f"assumptions must be published or current, not {assumptions!r}")
    published = assumptions == "published"
    p = PUBLISHED if published else CURRENT
    d = _duration_published if published else _duration_current
    n, w, m = s.events_per_hour, s.work_ms, s.memory_mb
    minute_rule = Item("schedule events (every minute)", 60, p["scheduled_event"], "event")
    requests = Item("Lambda requests (one per event)", n, p["lambda_request"], "request")
    work = Item(f"Lambda duration ({w} ms, {m} MB)", n, d(w, m), "invocation")
    planner = [Item("planner schedule events (every 15 minutes)", 4, p["scheduled_event"], "event")]
    if published:
        step_functions = [Item("state transitions (one per event)", n, p["transition"], "transition")]
        messages = Item("SQS requests (one per message)", n, p["sqs_request"], "request")
    else:
        step_functions = [
            Item("state transitions (wait + task per event)", 2 * n, p["transition"], "transition"),
            Item("Lambda requests (the task)", n, p["lambda_request"], "request"),
            work,
        ]
        planner += [
            Item("planner Lambda requests", 4, p["lambda_request"], "request"),
            Item(f"planner Lambda duration ({w} ms, {m} MB)", 4, d(w, m), "invocation"),
        ]
        messages = Item("SQS requests (send, receive, delete per message)", 3 * n, p["sqs_request"], "request")
    return {
        "cron": [
            minute_rule,
            Item("Lambda requests", 60, p["lambda_request"], "request"),
            Item(f"Lambda duration ({w} ms batch, {m} MB)", 60, d(w, m), "invocation"),
        ],
        "lambda-wait": [
            minute_rule,
            requests,
            Item(
                f"Lambda duration (wait {s.due_second} s + {w} ms, {m} MB)",
                n,
                d(s.due_second * 1000 + w, m),
                "invocation",
            ),
        ],
        "step-functions": step_functions,
        "cron-sqs": [*planner, messages, requests, work],
    }


def total(items: list[Item]) -> float:
    return sum(item.usd for item in items)
