"""What CloudWatch Logs does with embedded metric format lines, for the local stack: moto does not do it.

Every second, read the new events of every agent stream (`<run id>/agent`) of every job's log group that has
taken in lines since the last look (its `lastIngestionTime`), and put the metrics of each EMF line into moto's
CloudWatch with PutMetricData, as CloudWatch Logs extracts them on AWS. The agent's code path is the one it
has on AWS: it only writes a log line. Reading only the streams that changed keeps the cost of a look at one
request per job's group on a stack with hundreds of past runs (every stream each second kept moto_server, which
serves one request at a time, a quarter busy, and slowed everything else on the stack).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from ..aws import Clients
from ..jsonlog import fields
from ..metrics import metric_data_from_emf
from ..names import PREFIX

log = logging.getLogger(__name__)

POLL_SECONDS = 1.0
AGENT_STREAM_SUFFIX = "/agent"  # JobNames.agent_log_stream's shape


class EmfExtractor:
    def __init__(self, clients: Clients) -> None:
        self.logs = clients.logs
        self.cloudwatch = clients.cloudwatch
        self.tokens: dict[tuple[str, str], str] = {}  # (group, stream) -> the forward token read up to
        # (group, stream) -> its lastIngestionTime and moto's upload sequence token when read: either moves with
        # every PutLogEvents (the time alone could repeat within a millisecond).
        self.ingested: dict[tuple[str, str], tuple[Any, Any]] = {}

    def run_forever(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.tick()
            except Exception as exc:  # moto restarting, a group deleted mid-read: next second
                log.warning("EMF extraction failed", extra=fields(error=str(exc)))
            stop.wait(POLL_SECONDS)

    def tick(self) -> int:
        """One pass over every agent stream; returns the number of metric data points put."""
        put = 0
        paginator = self.logs.get_paginator("describe_log_groups")
        for page in paginator.paginate(logGroupNamePrefix=f"/{PREFIX}/"):
            for group in page["logGroups"]:
                for stream in self._changed_agent_streams(group["logGroupName"]):
                    put += self._read(group["logGroupName"], stream)
        return put

    def _changed_agent_streams(self, group: str) -> list[str]:
        changed, kwargs = [], {"logGroupName": group}
        while True:
            page = self.logs.describe_log_streams(**kwargs)
            for stream in page["logStreams"]:
                name = stream["logStreamName"]
                ingested = (stream.get("lastIngestionTime"), stream.get("uploadSequenceToken"))
                if name.endswith(AGENT_STREAM_SUFFIX) and self.ingested.get((group, name)) != ingested:
                    self.ingested[group, name] = ingested
                    changed.append(name)
            if not page.get("nextToken"):
                return changed
            kwargs["nextToken"] = page["nextToken"]

    def _read(self, group: str, stream: str) -> int:
        key = (group, stream)
        kwargs: dict[str, Any] = {"logGroupName": group, "logStreamName": stream, "startFromHead": True}
        if key in self.tokens:
            kwargs["nextToken"] = self.tokens[key]
        page = self.logs.get_log_events(**kwargs)
        self.tokens[key] = page["nextForwardToken"]
        put = 0
        for event in page["events"]:
            if '"_aws"' not in event["message"]:
                continue
            by_namespace: dict[str, list[dict[str, Any]]] = {}
            for namespace, datum in metric_data_from_emf(event["message"]):
                by_namespace.setdefault(namespace, []).append(datum)
            for namespace, data in by_namespace.items():
                self.cloudwatch.put_metric_data(Namespace=namespace, MetricData=data)
                put += len(data)
        if put:
            log.info("EMF metrics extracted", extra=fields(group=group, stream=stream, data_points=put))
        return put
