"""A run's outcome as an instance tag: the agent's fallback when the ledger cannot be written.

The agent powers off whatever happens. If its final ledger write keeps failing, it leaves the outcome
on its instance (`ec2batch:outcome`), where the reconciler finds it and records it, so a run that
succeeded is never later recorded TIMED_OUT by its deadline. A tag value holds at most 256 characters:
the reason is cut to fit.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

TAG_VALUE_LIMIT = 256


@dataclass(frozen=True)
class OutcomeTag:
    run_id: str
    status: str
    ended_at: str
    exit_code: int | None = None
    reason: str | None = None
    cause: str | None = None  # why the attempt ended (ledger.Attempt.cause): the reconciler's retry needs it

    def encode(self) -> str:
        data = {k: v for k, v in asdict(self).items() if v is not None}
        text = json.dumps(data, separators=(",", ":"))
        if len(text) > TAG_VALUE_LIMIT and self.reason:
            room = len(self.reason) - (len(text) - TAG_VALUE_LIMIT) - 1
            data["reason"] = self.reason[: max(0, room)] + "…"
            text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
            while len(text) > TAG_VALUE_LIMIT:  # escapes can make the first cut too short
                data["reason"] = data["reason"][:-2] + "…"
                text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
        return text

    @classmethod
    def decode(cls, text: str | None) -> OutcomeTag | None:
        """The tag's value, or None if it is absent or not ours (a hand-written tag is ignored, not trusted)."""
        if not text:
            return None
        try:
            data: Any = json.loads(text)
            return cls(
                run_id=str(data["run_id"]),
                status=str(data["status"]),
                ended_at=str(data["ended_at"]),
                exit_code=int(data["exit_code"]) if data.get("exit_code") is not None else None,
                reason=str(data["reason"]) if data.get("reason") is not None else None,
                cause=str(data["cause"]) if data.get("cause") is not None else None,
            )
        except (ValueError, KeyError, TypeError):
            return None
