"""Example ec2batch job: builds a daily sales report from generated data.

It stands for the heavy daily batch ec2batch exists for: it prints progress, writes its result,
and stops cleanly on SIGTERM (the agent sends one at max runtime, then SIGKILL after the grace period,
and at a Spot interruption notice, which it then finds in $EC2BATCH_INTERRUPTION_FILE and prints).

Knobs (environment variables), used by the tests and handy for trying things out:
  REPORT_ROWS          rows of generated data (default 200000)
  JOB_SECONDS          keep working for at least this many seconds (default 0)
  JOB_LINES            print this many numbered log lines ("line 1 of N") before the report
  JOB_EXIT_CODE        exit with this code at the end (default 0)
  JOB_IGNORE_SIGTERM   "1": ignore SIGTERM (to test the kill after the grace period)
  JOB_SHOW_SECRET_HASH name of a variable whose SHA-256 to print (proves a secret arrived, never its value)
  JOB_FAIL_SHARD       exit 3 in the shard with this index (a sharded run with one failing child)
  JOB_ALLOCATE_MB      hold this many MiB of memory (touched, so resident), allocated 16 MiB at a time
  JOB_ALLOCATE_SECONDS how long to hold it (default 3), so the agent's samples see it
  JOB_ALLOCATE_RAMP_SECONDS take this long to allocate it (default: as fast as it goes)

As one shard of N (EC2BATCH_SHARD_INDEX K and EC2BATCH_SHARD_COUNT N, from docs/shards.md's shim and the
launcher) it says `shard K of N` and reports on its part of the rows only: K, K+N, K+2N, ...
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import sys
import time
from collections import defaultdict
from pathlib import Path

stopping = False


def on_sigterm(signum: int, frame: object) -> None:
    global stopping
    stopping = True
    print("SIGTERM received: finishing the current step and exiting", flush=True)
    # The agent writes the notice before it sends SIGTERM: if the file is there, EC2 is taking the machine.
    notice = Path(os.environ.get("EC2BATCH_INTERRUPTION_FILE") or "/nonexistent")
    if notice.is_file():
        print(f"interruption notice: {notice.read_text().strip()}", flush=True)


def shard() -> tuple[int, int]:
    """(index, count) of this shard; (0, 1) for a run on its own machine."""
    index, count = os.environ.get("EC2BATCH_SHARD_INDEX"), os.environ.get("EC2BATCH_SHARD_COUNT")
    if index is None or count is None:
        return 0, 1
    return int(index), int(count)


def print_report(totals: dict[str, float], regions: list[str], rows: int, mine: int, index: int, count: int) -> None:
    if count == 1:
        for region in regions:
            print(f"total {region}: {totals[region]:.2f}", flush=True)
        print(f"report written: {rows} rows, total {sum(totals.values()):.2f}", flush=True)
        return
    for region in regions:
        if region in totals:  # a shard names only the regions its rows fell in
            print(f"total {region}: {totals[region]:.2f}", flush=True)
    total = sum(totals.values())
    print(f"partial report written: shard {index} of {count}, {mine} rows, total {total:.2f}", flush=True)


def allocate(megabytes: int, hold: float, ramp: float = 0.0) -> None:
    """Hold `megabytes` MiB resident for `hold` seconds: what the agent's usage figures must find (docs/metrics.md).

    Allocated in steps of 16 MiB, each page written, so the memory is really used (a zeroed bytearray may not be)
    and a job over its limit is killed partway, with its peak near the limit."""
    page, step = 4096, 16 * 1024 * 1024
    chunks: list[bytearray] = []
    steps = max(1, megabytes * 1024 * 1024 // step)
    for _ in range(steps):
        chunk = bytearray(step)
        chunk[::page] = b"\x01" * (step // page)
        chunks.append(chunk)
        time.sleep(ramp / steps if ramp else 0.01)
    print(f"holding {megabytes} MiB for {hold:g}s", flush=True)
    time.sleep(hold)
    chunks.clear()


def main() -> int:
    rows = int(os.environ.get("REPORT_ROWS", "200000"))
    index, count = shard()
    seconds = float(os.environ.get("JOB_SECONDS", "0"))
    lines = int(os.environ.get("JOB_LINES", "0"))
    exit_code = int(os.environ.get("JOB_EXIT_CODE", "0"))
    if os.environ.get("JOB_IGNORE_SIGTERM") == "1":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("ignoring SIGTERM", flush=True)
    else:
        signal.signal(signal.SIGTERM, on_sigterm)

    secret_name = os.environ.get("JOB_SHOW_SECRET_HASH")
    if secret_name:
        value = os.environ.get(secret_name, "")
        print(f"{secret_name} sha256={hashlib.sha256(value.encode()).hexdigest()}", flush=True)

    if os.environ.get("EC2BATCH_ATTEMPT", "1") != "1":  # a retry: say so, the same stream has the first try
        print(f"attempt {os.environ['EC2BATCH_ATTEMPT']} of run {os.environ.get('EC2BATCH_RUN_ID')}", flush=True)

    for i in range(1, lines + 1):
        print(f"line {i} of {lines}", flush=True)

    if os.environ.get("JOB_ALLOCATE_MB"):
        hold = float(os.environ.get("JOB_ALLOCATE_SECONDS", "3"))
        ramp = float(os.environ.get("JOB_ALLOCATE_RAMP_SECONDS", "0"))
        allocate(int(os.environ["JOB_ALLOCATE_MB"]), hold, ramp)

    if count > 1:
        print(f"shard {index} of {count}", flush=True)
        if os.environ.get("JOB_FAIL_SHARD") == str(index):
            print(f"failing on purpose: JOB_FAIL_SHARD={index}", flush=True)
            return 3

    mine = range(index, rows, count)
    print(f"generating {rows} rows" + (f", {len(mine)} of them this shard's" if count > 1 else ""), flush=True)
    rng = random.Random(20261124)
    totals: dict[str, float] = defaultdict(float)
    regions = ["north", "south", "east", "west"]
    started = time.monotonic()
    for row in range(rows):
        value = rng.uniform(1, 500)  # every shard draws every row, so the rows are the same whatever N is
        if row % count != index:
            continue
        totals[regions[row % 4]] += value
        if stopping:
            print(f"stopped early at row {row}", flush=True)
            return 143
        if row and row % 50000 == 0:
            print(f"progress: {row}/{rows} rows", flush=True)

    while time.monotonic() - started < seconds:
        if stopping:
            print("stopped while waiting", flush=True)
            return 143
        time.sleep(0.2)

    print_report(totals, regions, rows, len(mine), index, count)
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
