"""The local stack's emulator process: EC2 <-> containers, schedules, SQS -> launcher, ledger streams -> launcher
(run events), Batch events -> launcher, EMF log lines -> CloudWatch metrics.

Started detached by `ec2batch local up`; writes `run/emulators.ready` once every loop runs.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from pathlib import Path

from .. import jsonlog
from ..launcher import Launcher
from .batch_events import BatchEvents
from .ec2 import Ec2Emulator
from .emf_extractor import EmfExtractor
from .paths import StackPaths
from .scheduler_emulator import SchedulerEmulator
from .sqs import SqsPoller
from .streams import StreamPoller

log = logging.getLogger("ec2batch.local.emulators")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack-dir", type=Path, required=True)
    args = parser.parse_args()
    jsonlog.configure()
    from .stack import Stack

    stack = Stack(StackPaths(args.stack_dir), progress=lambda message: log.info(message))
    clients = stack.clients()
    launcher = Launcher(clients)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    loops = [
        Ec2Emulator(clients, stack.docker(), stack.paths).run_forever,
        SchedulerEmulator(clients, launcher.handle).run_forever,
        SqsPoller(clients, launcher.handle).run_forever,
        # The ledger stream's mapping (run events), woken by moto_server after each DynamoDB write.
        StreamPoller(clients, launcher.handle, wakeup=stack.paths.ledger_wakeup).run_forever,
        BatchEvents(clients, launcher.handle).run_forever,
        EmfExtractor(clients).run_forever,  # CloudWatch Logs' metric extraction, which moto lacks
    ]
    threads = [threading.Thread(target=loop, args=(stop,), daemon=True) for loop in loops]
    for thread in threads:
        thread.start()
    (stack.paths.run / "emulators.ready").write_text("ready\n")
    log.info("emulators running")
    stop.wait()
    (stack.paths.run / "emulators.ready").unlink(missing_ok=True)


if __name__ == "__main__":
    main()
