"""The launcher Lambda: `ec2batch.launcher.handler` is its entry point."""

from __future__ import annotations

from functools import cache
from typing import Any

from .. import jsonlog
from .core import Launcher
from .port import Result

__all__ = ["Launcher", "Result", "handler"]


@cache
def _launcher() -> Launcher:
    # Lambda keeps the process between invocations: clients are made on the first one and reused.
    jsonlog.configure()
    return Launcher.from_environment()


def handler(event: dict[str, Any], context: Any) -> Any:
    return _launcher().handle(event)
