"""`ec2batch-agent` / `python -m ec2batch.agent`: what the systemd unit runs."""

from __future__ import annotations

import sys

from .. import jsonlog
from .main import Agent, Settings


def main() -> None:
    jsonlog.configure()  # JSON lines on stdout: journald keeps them, and they go to CloudWatch too
    sys.exit(Agent(Settings.from_environment()).run())


if __name__ == "__main__":
    main()
