"""A fake aws_ssm_parameter handler for the core's own tests: it keeps parameters in a JSON file, not in AWS.

Only tests/terraform/test_core.py loads it (through EC2BATCH_TF_EXTRA_HANDLERS, in the provider's process), so that
the protocol, plan and apply dispatch are tested apart from the real handlers in provider/resources/.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from tests.terraform.provider.resources.base import register_resource

STORE_ENV = "EC2BATCH_TF_FAKE_STORE"


def _load() -> dict[str, Any]:
    path = Path(os.environ[STORE_ENV])
    return json.loads(path.read_text()) if path.exists() else {}


def _save(store: dict[str, Any]) -> None:
    Path(os.environ[STORE_ENV]).write_text(json.dumps(store, indent=1, sort_keys=True))


class FakeParameter:
    type_name = "aws_ssm_parameter"
    replace_on = frozenset({"name"})

    def create(self, aws: Any, planned: dict[str, Any]) -> dict[str, Any]:
        name = planned["name"]
        state = {**planned, "id": name, "arn": f"arn:aws:ssm:{aws.region}:123456789012:parameter{name}", "version": 1}
        # As AWS and the real provider's schema defaults do: an unset description reads back as "".
        state["description"] = planned.get("description") or ""
        store = _load()
        store[name] = state
        _save(store)
        return state

    def read(self, aws: Any, state: dict[str, Any]) -> dict[str, Any] | None:
        return _load().get(state["id"])

    def update(self, aws: Any, prior: dict[str, Any], planned: dict[str, Any]) -> dict[str, Any]:
        store = _load()
        state = {**planned, "version": prior["version"] + 1}
        store[prior["id"]] = state
        _save(store)
        return state

    def delete(self, aws: Any, state: dict[str, Any]) -> None:
        store = _load()
        store.pop(state["id"], None)
        _save(store)


register_resource(FakeParameter())  # type: ignore[arg-type]
