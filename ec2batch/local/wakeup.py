"""Nudges from moto_server to the emulators: "an instance was started or stopped", "a ledger item was written":
look now.

The EC2 emulator reconciles moto's instances with containers every half second; without a nudge a started
instance waited up to that long (0.25 s on average) before its container booted, which `make bench`
counted in the trigger -> first line figure. moto_server sends one datagram on a Unix socket in the
stack's run folder after each instance-changing EC2 call; the emulator wakes on it, or after the half
second as before (the nudge is a hint: a lost one costs only the old delay).

The ledger streams' poller is nudged the same way after each DynamoDB write: polling every stream five times a
second kept moto_server (which serves one request at a time) busy enough to slow every other caller, the
job's machine's start-up among them (`make bench`: the claim 0.019 -> 0.042 s); nudged, it looks when there
is something to read, and every few seconds otherwise.
"""

from __future__ import annotations

import contextlib
import select
import socket
from pathlib import Path
from types import TracebackType
from urllib.parse import parse_qs

# The EC2 actions after which an instance's container may have to boot or halt.
INSTANCE_ACTIONS = frozenset({"RunInstances", "StartInstances", "StopInstances", "TerminateInstances"})


def changes_instances(body: bytes) -> bool:
    """Whether a request body (EC2's query protocol: `Action=StartInstances&...`) changes an instance."""
    if not body.startswith(b"Action="):
        return False
    actions = parse_qs(body[:200].decode("ascii", "replace")).get("Action", [])
    return bool(actions) and actions[0] in INSTANCE_ACTIONS


# DynamoDB's writes (JSON protocol: the operation is in the X-Amz-Target header, `DynamoDB_20120810.PutItem`).
ITEM_WRITES = frozenset({"PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem"})


def writes_items(target: str | None) -> bool:
    """Whether a request's X-Amz-Target names a DynamoDB write (which a table's stream records)."""
    service, _, operation = (target or "").partition(".")
    return service.startswith("DynamoDB_") and operation in ITEM_WRITES


def nudge(path: Path) -> None:
    """Wake the emulator if it listens; nobody listening is fine (it polls anyway)."""
    with (
        contextlib.suppress(OSError),
        socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock,
    ):
        sock.setblocking(False)
        sock.sendto(b"!", str(path))


class Wakeup:
    """The emulator's end: `wait(timeout)` returns early when nudged."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock: socket.socket | None = None

    def __enter__(self) -> Wakeup:
        self.path.unlink(missing_ok=True)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            sock.bind(str(self.path))  # fails on a path longer than a socket address allows: then plain polling
        except OSError:
            sock.close()
            return self
        sock.setblocking(False)
        self.sock = sock
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        if self.sock is not None:
            self.sock.close()
            self.path.unlink(missing_ok=True)

    def wait(self, timeout: float) -> None:
        if self.sock is None:
            select.select([], [], [], timeout)
            return
        ready, _, _ = select.select([self.sock], [], [], timeout)
        if ready:
            with contextlib.suppress(BlockingIOError):
                while self.sock.recv(64):  # every nudge so far: one look covers them all
                    pass
