"""Install the provider double for Terraform: a filesystem mirror and a CLI configuration file, both in a directory
the caller owns (a test's temporary directory), never in the user's home.

`terraform init` then installs hashicorp/aws from the mirror and writes a lock file, as with the real registry.
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

from tests.terraform.provider.schema import load

LAUNCHER = Path(__file__).with_name("terraform-provider-aws")
SOURCE = "registry.terraform.io/hashicorp/aws"


def provider_version() -> str:
    """The double announces the version of the real provider whose schema it has."""
    return str(load()["provider_version"])


def install(where: Path, python: str | None = None) -> dict[str, str]:
    """Write `where`/mirror and `where`/terraform.rc; return the environment Terraform needs to use them."""
    version = provider_version()
    platform = "linux_amd64" if sys.platform.startswith("linux") else f"{sys.platform}_amd64"
    target = where / "mirror" / SOURCE / version / platform
    target.mkdir(parents=True, exist_ok=True)
    wrapper = target / f"terraform-provider-aws_v{version}"
    # A copy of the launcher would lose the repository it finds by its own path, so the mirror holds a wrapper.
    wrapper.write_text(f'#!/bin/sh\nexec "{LAUNCHER}" "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    rc = where / "terraform.rc"
    rc.write_text(
        "provider_installation {\n"
        "  filesystem_mirror {\n"
        f'    path    = "{where / "mirror"}"\n'
        f'    include = ["{SOURCE}"]\n'
        "  }\n"
        "}\n"
    )
    return {
        "TF_CLI_CONFIG_FILE": str(rc),
        "EC2BATCH_TF_PYTHON": python or sys.executable,
        "TF_IN_AUTOMATION": "1",
        "TF_INPUT": "0",
        "CHECKPOINT_DISABLE": "1",
    }


def terraform_env(where: Path, base: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    env.update(install(where))
    return env
