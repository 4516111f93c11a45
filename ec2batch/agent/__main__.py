"""`ec2batch-agent` / `python -m ec2batch.agent`: what the systemd unit runs."""

from __future__ import annotations

import sys

from .. import jsonlog
from .main import Agent, Settings


def main() -> None:
    agent = Agent(Settings.from_environment())
    # JSON lines on stdout: journald keeps them, and they go to CloudWatch too; secrets never reach either.
    jsonlog.configure(redact=agent.redact)
    sys.exit(agent.run())


if __name__ == "__main__":
    main()
