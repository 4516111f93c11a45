"""A right-sizing hint from a job's recent runs: is its instance type too small, too big, or right?

Never automatic: `ec2batch status` and `ec2batch runs` print it with its evidence (the peak, of what, over
how many runs) and a person changes `instance_types` if they agree. The sizes and prices come from the one
instance catalogue in `ec2batch.cost` (docs/metrics.md#the-right-sizing-hint).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .cost import InstanceSize
from .ledger import Run
from .usage import GIB, format_bytes

LAST_RUNS = 10  # the evidence: the newest runs with usage on the newest run's instance type
TOO_SMALL_PERCENT = 85.0  # the alarm's default threshold (terraform: memory_alarm_threshold_percent)
TOO_BIG_PERCENT = 40.0  # below this a type with half the memory would still leave room
# A suggested type must hold the peak at no more than this share of its memory, so it is not at once too small.
HEADROOM = 0.8
# Burstable types (t3...) sustain a fraction of their vCPUs: never suggested for a job on a fixed-performance type.
BURSTABLE_PREFIX = "t"


@dataclass(frozen=True)
class Hint:
    verdict: str  # "too-small", "too-big", "fits" or "unknown"
    text: str
    instance_type: str | None = None
    runs: int = 0
    peak_memory_bytes: int | None = None
    memory_bytes: int | None = None  # the instance type's memory
    peak_cpu_vcpus: float | None = None
    suggestion: str | None = None
    suggestion_memory_bytes: int | None = None
    usd_per_hour_change: float | None = None

    def as_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


def hint(
    runs: Iterable[Run],
    catalogue: Mapping[str, InstanceSize],
    *,
    last: int = LAST_RUNS,
    too_small_percent: float = TOO_SMALL_PERCENT,
) -> Hint:
    """The hint from `runs` (any order); the newest `last` runs with usage on one instance type are the evidence."""
    measured = sorted((r for r in runs if r.usage is not None and r.instance_type), key=lambda r: r.run_id)
    if not measured:
        return Hint("unknown", "no run with usage figures yet: nothing to suggest")
    current = measured[-1].instance_type
    assert current is not None
    evidence = [r for r in measured if r.instance_type == current][-last:]
    size = catalogue.get(current)
    peak = max(r.usage.peak_memory_bytes for r in evidence if r.usage)
    cpu = max(r.usage.peak_cpu_percent / 100 * r.usage.vcpus for r in evidence if r.usage)
    over = f"over the last {len(evidence)} run{'s' if len(evidence) != 1 else ''}"
    if size is None:
        return Hint(
            "unknown",
            f"peak {format_bytes(peak)} on {current} {over}: {current} is not in the instance catalogue "
            "(ec2batch.cost.INSTANCE_SIZES), so no size to compare with",
            current,
            len(evidence),
            peak,
            peak_cpu_vcpus=round(cpu, 2),
        )
    memory = int(size.memory_gib * GIB)
    percent = 100 * peak / memory
    oom = any(r.usage.oom_killed for r in evidence if r.usage)
    head = f"peak {peak / GIB:.1f} of {size.memory_gib:g} GiB ({percent:.0f} %) on {current} {over}"
    base = {
        "instance_type": current,
        "runs": len(evidence),
        "peak_memory_bytes": peak,
        "memory_bytes": memory,
        "peak_cpu_vcpus": round(cpu, 2),
    }
    if percent >= too_small_percent or oom:
        bigger = _cheapest(catalogue, peak, min_vcpus=size.vcpus, exclude=current, more_memory_than=size.memory_gib)
        why = " (an OOM kill among them)" if oom else ""
        if bigger is None:
            return Hint("too-small", f"{head}{why}: no bigger type in the catalogue", **base)  # type: ignore[arg-type]
        return _suggest("too-small", f"{head}{why}", size, bigger, base)
    if percent < TOO_BIG_PERCENT:
        smaller = _cheapest(catalogue, peak, min_vcpus=max(1, math.ceil(cpu)), exclude=current)
        if smaller is not None and smaller.hourly < size.hourly:
            return _suggest("too-big", head, size, smaller, base)
    return Hint("fits", f"{head}: {current} fits", **base)  # type: ignore[arg-type]


def _cheapest(
    catalogue: Mapping[str, InstanceSize],
    peak: int,
    *,
    min_vcpus: float,
    exclude: str,
    more_memory_than: float = 0.0,
) -> InstanceSize | None:
    burstable_ok = exclude.startswith(BURSTABLE_PREFIX)
    fitting = [
        s
        for s in catalogue.values()
        if s.name != exclude
        and (burstable_ok or not s.name.startswith(BURSTABLE_PREFIX))
        and s.memory_gib * GIB * HEADROOM >= peak
        and s.memory_gib > more_memory_than
        and s.vcpus >= min_vcpus
    ]
    return min(fitting, key=lambda s: (s.hourly, s.memory_gib, s.name), default=None)


def _suggest(verdict: str, head: str, size: InstanceSize, other: InstanceSize, base: dict[str, Any]) -> Hint:
    change = round(other.hourly - size.hourly, 4)
    sign = "+" if change >= 0 else "\u2212"
    money = f"{sign}${abs(change):.2f}/h"
    if verdict == "too-small":
        text = f"{head}: {other.name} has {other.memory_gib:g} GiB for {money}"
    else:
        text = f"{head}: {other.name} would do for {money}"
    return Hint(
        verdict,
        text,
        suggestion=other.name,
        suggestion_memory_bytes=int(other.memory_gib * GIB),
        usd_per_hour_change=change,
        **base,
    )
