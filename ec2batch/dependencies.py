"""Jobs that run after other jobs: the graph across jobs, and the EventBridge rule of a downstream job.

A job's config says `after: [{"job": "extract", "status": "SUCCEEDED"}, ...]`. Each config is validated on its
own (`ec2batch.config`); what needs every job (an upstream that does not exist, a cycle) is checked here, by
`ec2batch graph` and `ec2batch validate --jobs` over the configs in SSM, before a deploy. The launcher refuses a
cycle at run time too (an event whose lineage already holds the job), so one that slips through stops after
one lap instead of running forever.

The rule Terraform creates for a downstream job (terraform/modules/scheduled-job/events.tf) and the local stack's
(ec2batch.local.provision) both come from `rule_pattern` and `target_input`; tests compare them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from graphlib import CycleError, TopologicalSorter
from typing import Any

from .config import JobConfig
from .run_events import DETAIL_TYPE, SOURCE

# A run ends with one of these; the rule matches them all (not only the wanted one), so an upstream run that
# ended otherwise withdraws that upstream's arrival and the downstream waits for a run that matches.
ENDINGS = ("SUCCEEDED", "FAILED", "TIMED_OUT", "CANCELLED")


@dataclass(frozen=True)
class Graph:
    """Every job and what it runs after; `order` upstream first."""

    after: Mapping[str, tuple[tuple[str, str], ...]]  # job -> ((upstream job, status), ...)

    @classmethod
    def of(cls, configs: Mapping[str, JobConfig]) -> Graph:
        return cls({job: tuple((a.job, a.status) for a in config.after) for job, config in configs.items()})

    def downstream(self, job: str) -> tuple[str, ...]:
        return tuple(sorted(j for j, ups in self.after.items() if any(u == job for u, _ in ups)))

    def problems(self) -> list[str]:
        """Upstream jobs that do not exist, and cycles, each named; [] when the graph is sound."""
        found = [
            f"{job}: config.after[{i}].job: {upstream!r} is not a known job (known: {', '.join(sorted(self.after))})"
            for job, ups in sorted(self.after.items())
            for i, (upstream, _) in enumerate(ups)
            if upstream not in self.after
        ]
        cycle = self.cycle()
        if cycle:
            found.append(f"a cycle: {' -> '.join(cycle)}; a job cannot (even indirectly) run after itself")
        return found

    def cycle(self) -> tuple[str, ...]:
        try:
            self.order()
        except CycleError as exc:
            # graphlib names the cycle's nodes, the first repeated at the end, each a predecessor (an upstream)
            # of the next: it reads "upstream -> downstream".
            return tuple(exc.args[1])
        return ()

    def order(self) -> tuple[str, ...]:
        """Upstream before downstream, ties by name; raises graphlib.CycleError on a cycle."""
        known = set(self.after)
        sorter = TopologicalSorter({job: sorted(u for u, _ in ups if u in known) for job, ups in self.after.items()})
        sorter.prepare()
        ordered: list[str] = []
        while sorter.is_active():
            ready = sorted(sorter.get_ready())
            ordered.extend(ready)
            sorter.done(*ready)
        return tuple(ordered)

    def as_dict(self) -> dict[str, Any]:
        return {
            "jobs": [
                {
                    "job": job,
                    "after": [{"job": u, "status": s} for u, s in self.after[job]],
                    "downstream": list(self.downstream(job)),
                }
                for job in self.order()
            ]
        }


def rule_pattern(config: JobConfig) -> dict[str, Any]:
    """The downstream job's rule: its upstream jobs' run endings that chain (not a plain `run-now`)."""
    return {
        "source": [SOURCE],
        "detail-type": [DETAIL_TYPE],
        "detail": {
            "job": sorted({a.job for a in config.after}),
            "status": list(ENDINGS),
            "downstream": [True],
        },
    }


def rule_pattern_json(config: JobConfig) -> str:
    return json.dumps(rule_pattern(config), separators=(",", ":"), sort_keys=True)


def target_input(job: str) -> str:
    """The rule target's input template: the launcher's `after` action, with EventBridge's event inside."""
    return '{"action": "after", "job": "' + job + '", "event": <aws.events.event.json>}'
