"""Build dist/launcher.zip: the launcher Lambda's code and nothing else.

boto3 and botocore come with the Lambda Python runtime, so the zip holds only the modules the launcher
imports (no agent, CLI, local stack, cron library or Docker SDK). Entries are written in sorted order
with a fixed timestamp, so the same source gives the same zip (and Terraform sees no change).
"""

from __future__ import annotations

import argparse
import modulefinder
import sys
import zipfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "ec2batch"
# What the Lambda imports, besides the runtime's boto3: the launcher's import closure inside ec2batch, found
# by the standard library's ModuleFinder (which sees imports inside functions too), so a module the launcher
# starts to use cannot be left out of the zip. tests/unit/test_lambda_zip.py imports every one from the zip.
ENTRY = "ec2batch.launcher"


class _OwnModules(modulefinder.ModuleFinder):
    """Follows imports inside ec2batch only: the runtime brings boto3, and the rest must not be imported."""

    def import_module(self, partname: str, fqname: str, parent: modulefinder.Module | None) -> Any:
        if fqname != "ec2batch" and not fqname.startswith("ec2batch."):
            return None
        return super().import_module(partname, fqname, parent)


def launcher_modules() -> list[str]:
    """The launcher's modules as paths inside the package (`launcher/core.py`), sorted."""
    finder = _OwnModules(path=[str(ROOT), *sys.path[1:]])
    finder.import_hook(ENTRY)
    finder.import_hook(f"{ENTRY}.core")
    paths = {
        Path(module.__file__).resolve().relative_to(PACKAGE).as_posix()
        for name, module in finder.modules.items()
        if (name == "ec2batch" or name.startswith("ec2batch.")) and module.__file__
    }
    return sorted(paths)


FIXED_TIME = (2020, 1, 1, 0, 0, 0)


def build(out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for relative in launcher_modules():
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
