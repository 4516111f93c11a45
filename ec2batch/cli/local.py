"""`ec2batch local ...`: the local stack (filled in by ec2batch.local)."""

from __future__ import annotations

COMMANDS: list = []
