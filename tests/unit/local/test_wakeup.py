"""moto_server's nudge wakes the EC2 emulator at once; without one it waits its half second as before."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from ec2batch.local.wakeup import Wakeup, changes_instances, nudge


def test_only_calls_that_start_or_stop_an_instance_nudge() -> None:
    assert changes_instances(b"Action=StartInstances&Version=2016-11-15&InstanceId.1=i-0abc")
    assert changes_instances(b"Action=TerminateInstances&InstanceId.1=i-0abc")
    assert not changes_instances(b"Action=DescribeInstances&Version=2016-11-15")
    assert not changes_instances(b'{"TableName": "ec2batch-x-runs"}')  # DynamoDB's JSON protocol
    assert not changes_instances(b"")


def test_a_nudge_ends_the_wait_early_and_a_quiet_wait_lasts_its_timeout(tmp_path: Path) -> None:
    path = tmp_path / "ec2-wakeup.sock"
    with Wakeup(path) as wakeup:
        began = time.monotonic()
        wakeup.wait(0.2)
        assert time.monotonic() - began >= 0.19  # nobody nudged: the old polling interval

        threading.Timer(0.05, nudge, args=(path,)).start()
        began = time.monotonic()
        wakeup.wait(5.0)
        assert time.monotonic() - began < 2.0  # woken by the nudge, not the timeout

        nudge(path)
        nudge(path)
        wakeup.wait(5.0)  # two nudges, one look: both drained
        began = time.monotonic()
        wakeup.wait(0.2)
        assert time.monotonic() - began >= 0.19
    assert not path.exists()


def test_nudging_with_nobody_listening_is_harmless(tmp_path: Path) -> None:
    nudge(tmp_path / "nobody.sock")
