"""What a run's job used of its machine: memory and CPU, as the agent sampled them (docs/metrics.md).

Stored on the run as one map (`Run.usage`); a run recorded before usage existed has none and still reads.
The memory figures are of the job's container: its peak against its limit when the config sets one
(`limits.memory_mb`), otherwise against the machine's memory. CPU is a share of the machine's vCPUs
(or of `limits.cpus`), so 100 % means every vCPU it may use was busy.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

GIB = 1024**3
MIB = 1024**2


@dataclass(frozen=True)
class Usage:
    peak_memory_bytes: int
    memory_limit_bytes: int  # what the percentage is of: the container's limit, or the machine's memory
    limited: bool  # True: the limit is the container's own (limits.memory_mb), not the machine's memory
    vcpus: float  # what the CPU percentages are of
    average_cpu_percent: float
    peak_cpu_percent: float
    samples: int
    sample_seconds: float  # the interval between samples
    oom_killed: bool = False  # the job was killed for memory: the peak is what preceded the kill

    @property
    def peak_memory_percent(self) -> float:
        if self.memory_limit_bytes <= 0:
            return 0.0
        return round(100.0 * self.peak_memory_bytes / self.memory_limit_bytes, 1)

    def as_item(self) -> dict[str, Any]:
        """The ledger's map (floats rounded: DynamoDB stores decimals, and nobody needs more digits)."""
        data = asdict(self)
        for name in ("vcpus", "average_cpu_percent", "peak_cpu_percent", "sample_seconds"):
            data[name] = round(float(data[name]), 3)
        return data

    def as_json(self) -> dict[str, Any]:
        """What `runs --json` and `status --json` show: the stored figures and the derived percentage."""
        return {**self.as_item(), "peak_memory_percent": self.peak_memory_percent}

    def memory_text(self) -> str:
        """`1.2 GiB of 16.0 GiB machine (7.5 %)`, or `... limit (...)` against the container's own limit."""
        of = "limit" if self.limited else "machine"
        return (
            f"{format_bytes(self.peak_memory_bytes)} of {format_bytes(self.memory_limit_bytes)} {of} "
            f"({self.peak_memory_percent:g} %)"
        )

    def describe(self) -> str:
        """`peak 1.2 GiB of 16.0 GiB machine (7.5 %), CPU avg 12 % peak 98 % of 4 vCPUs, 31 samples`."""
        text = (
            f"peak {self.memory_text()}, CPU avg {self.average_cpu_percent:.0f} % "
            f"peak {self.peak_cpu_percent:.0f} % of {self.vcpus:g} vCPUs, {self.samples} samples"
        )
        return text + (" (then OOM killed)" if self.oom_killed else "")


def usage_from_item(raw: Mapping[str, Any] | None) -> Usage | None:
    """The ledger's map back into a Usage; unknown keys (a newer agent's) are ignored, a broken map is None."""
    if not raw:
        return None
    try:
        return Usage(
            peak_memory_bytes=int(raw["peak_memory_bytes"]),
            memory_limit_bytes=int(raw["memory_limit_bytes"]),
            limited=bool(raw.get("limited", False)),
            vcpus=float(raw["vcpus"]),
            average_cpu_percent=float(raw["average_cpu_percent"]),
            peak_cpu_percent=float(raw["peak_cpu_percent"]),
            samples=int(raw["samples"]),
            sample_seconds=float(raw.get("sample_seconds", 0)),
            oom_killed=bool(raw.get("oom_killed", False)),
        )
    except (KeyError, TypeError, ValueError):
        return None


def format_bytes(value: float) -> str:
    """GiB with one decimal from 1 GiB up, MiB below: `14.2 GiB`, `312 MiB`."""
    if value >= GIB:
        return f"{value / GIB:.1f} GiB"
    return f"{value / MIB:.0f} MiB"
