"""The agent's own copies of two AWS service models, cut down to the operations it calls.

botocore parses a service's whole model when a client is made. EC2's is 5.5 MB of JSON (~700 operations):
making the client took 0.45 s and kept ~25 MB resident for the agent's whole run, for the two calls the
agent makes (DescribeTags at boot, CreateTags when the ledger is out of reach); SSM's costs ~7 MB for one
(GetParameter). `python -m ec2batch.agent.service_models` writes these operations, and every shape they
reach, from the installed botocore's own models into `models/` (documentation left out), where botocore's
loader finds them first for the agent's sessions (`use_lean_models`); a unit test regenerates them and
compares, so a botocore upgrade that changes them is noticed. Other services keep botocore's own models.

The same goes for botocore's endpoint data (`endpoints.json`, 1.2 MB for ~400 services in every partition),
which the first client of a session parses: 57 ms of every boot. The agent's copy keeps every partition's
own data and only the entries of the agent's own services, so their endpoints resolve exactly as before.
"""

from __future__ import annotations

import gzip
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.session
from botocore.loaders import JSONFileLoader, Loader

MODELS_DIR = Path(__file__).with_name("models")
# Every operation the agent's code calls on these services (tests/unit/agent/test_service_models.py checks).
AGENT_OPERATIONS = {
    "ec2": ("DescribeTags", "CreateTags"),
    "ssm": ("GetParameter",),
}


# Every service the agent makes a client for (tests/unit/agent/test_service_models.py checks its code).
AGENT_SERVICES = ("dynamodb", "ec2", "ecr", "logs", "secretsmanager", "sns", "sqs", "ssm", "sts")


class AgentLoader(Loader):
    """botocore's loader, with the cut-down models first, and two costs of the first client gone:

    - listing every service botocore knows (about 900 directory reads, ~0.1 s at each boot) to check that a
      name is one: the agent's services are known;
    - JSON parsed into OrderedDicts (botocore's habit from before dicts kept their order), half as fast as
      plain dicts, for the endpoint data and every model."""

    def __init__(self) -> None:
        super().__init__(extra_search_paths=[str(MODELS_DIR)], file_loader=PlainJsonFiles())

    def list_available_services(self, type_name: str) -> list[str]:
        return sorted(AGENT_SERVICES)


class PlainJsonFiles(JSONFileLoader):
    def load_file(self, file_path: str) -> Any:
        for extension, opener in ((".json", open), (".json.gz", gzip.open)):
            path = Path(file_path + extension)
            if path.is_file():
                with opener(path, "rb") as stream:
                    return json.loads(stream.read().decode("utf-8"))
        return None


def use_lean_models(session: Any) -> None:
    """Give a boto3 (or botocore) session the agent's loader; call it before the session makes a client."""
    core = getattr(session, "_session", session)
    core.register_component("data_loader", AgentLoader())


def lean_model(full: dict[str, Any], operations: tuple[str, ...]) -> dict[str, Any]:
    """`full` with only `operations` and the shapes they reach (input, output, errors, members)."""
    shapes = full["shapes"]
    kept: dict[str, Any] = {}
    pending = [ref["shape"] for name in operations for ref in _operation_refs(full["operations"][name])]
    while pending:
        name = pending.pop()
        if name in kept:
            continue
        kept[name] = _undocumented(shapes[name])
        pending.extend(_shape_refs(shapes[name]))
    return {
        "version": full.get("version", "2.0"),
        "metadata": full["metadata"],
        "operations": {name: _undocumented(full["operations"][name]) for name in operations},
        "shapes": dict(sorted(kept.items())),
    }


def _operation_refs(operation: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for key in ("input", "output"):
        if key in operation:
            yield operation[key]
    yield from operation.get("errors", [])


def _shape_refs(shape: dict[str, Any]) -> Iterator[str]:
    for member in shape.get("members", {}).values():
        yield member["shape"]
    for key in ("member", "key", "value"):
        if key in shape:
            yield shape[key]["shape"]


def _undocumented(value: Any) -> Any:
    """Documentation changes with every botocore release and is never used at run time."""
    if isinstance(value, dict):
        return {k: _undocumented(v) for k, v in value.items() if k not in ("documentation", "documentationUrl")}
    if isinstance(value, list):
        return [_undocumented(v) for v in value]
    return value


def lean_endpoints(full: dict[str, Any], prefixes: set[str]) -> dict[str, Any]:
    """botocore's endpoint data with every partition kept whole but its services cut to `prefixes`."""
    partitions = [
        {**partition, "services": {k: v for k, v in partition["services"].items() if k in prefixes}}
        for partition in full["partitions"]
    ]
    return {**full, "partitions": partitions}


def generated() -> dict[Path, str]:
    """What `models/` must hold, from the installed botocore: relative path -> file text."""
    loader = botocore.session.get_session().get_component("data_loader")
    files = {}
    for service, operations in AGENT_OPERATIONS.items():
        version = loader.determine_latest_version(service, "service-2")
        full = loader.load_service_model(service, "service-2", version)
        text = json.dumps(lean_model(full, operations), indent=1, sort_keys=True) + "\n"
        files[Path(service) / version / "service-2.json"] = text
    # Endpoint data is keyed by a service's endpoint prefix (ECR's is `api.ecr`), not its name.
    prefixes = {loader.load_service_model(name, "service-2")["metadata"]["endpointPrefix"] for name in AGENT_SERVICES}
    endpoints = lean_endpoints(loader.load_data("endpoints"), prefixes)
    files[Path("endpoints.json")] = json.dumps(endpoints, indent=1, sort_keys=True) + "\n"
    return files


def main() -> None:
    for relative, text in generated().items():
        target = MODELS_DIR / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        print(f"wrote {target} ({len(text)} bytes)", file=sys.stderr)


if __name__ == "__main__":
    main()
