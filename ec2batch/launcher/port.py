"""What the launcher's handlers need from the launcher, so they need not import it.

`core.Launcher` dispatches events to the final check (`final_check.fire`) and the reconciler, and both
call back into it to start a run. They type against `LauncherPort` and answer with `Result`, both
defined here, so the dependency runs one way: core -> reconciler -> final_check -> port.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from ..aws import Clients
from ..config import JobConfig
from ..ledger import Ledger, Run


@dataclass(frozen=True)
class Result:
    """The launcher's answer (the Lambda's return value, what `run-now` prints)."""

    job: str
    run_id: str
    status: str
    # started | duplicate | skipped | failed | retrying (another attempt is due); for timers also stopped | nothing
    outcome: str
    instance_id: str | None = None
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


class LauncherPort(Protocol):
    clients: Clients
    clock: Callable[[], datetime]
    sleep: Callable[[float], None]

    def ledger(self, job: str) -> Ledger: ...

    def lease_until(self) -> str: ...

    def start_run(self, config: JobConfig, run: Run) -> Result: ...

    def repeat_start(self, config: JobConfig, run: Run, instance: dict[str, Any]) -> Result | None: ...
