"""Build dist/launcher.zip: the launcher Lambda's code and nothing else.

boto3 and botocore come with the Lambda Python runtime, so the zip holds only the modules the launcher
imports (no agent, CLI, local stack, cron library or Docker SDK). Entries are written in sorted order
with a fixed timestamp, so the same source gives the same zip (and Terraform sees no change).
"""

from __future__ import annotations

import argparse
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "ec2batch"
# The launcher's import closure; tests/unit/test_lambda_zip.py proves it imports from the zip alone.
MODULES = [
    "__init__.py",
    "aws.py",
    "config.py",
    "cost.py",
    "errors.py",
    "jsonlog.py",
    "ledger.py",
    "names.py",
    "notify.py",
    "timers.py",
    "timeutil.py",
    "launcher/__init__.py",
    "launcher/core.py",
    "launcher/events.py",
    "launcher/machines.py",
    "launcher/timers.py",
]
FIXED_TIME = (2020, 1, 1, 0, 0, 0)


def build(out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for relative in sorted(MODULES):
            info = zipfile.ZipInfo(f"ec2batch/{relative}", date_time=FIXED_TIME)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, (PACKAGE / relative).read_bytes())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "dist" / "launcher.zip")
    out = build(parser.parse_args().out)
    print(f"{out}: {out.stat().st_size} bytes, handler ec2batch.launcher.handler")


if __name__ == "__main__":
    main()
