"""Base images for the local stack, made with debootstrap (no image can be pulled from a hub here).

One Debian bookworm root file system with Python and systemd serves both the runner image and the
instance image: one ~45 s debootstrap instead of two. It is imported into the stack's own engine, whose
data lives under the ignored `.cache/local`, so it is built once per checkout.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .paths import StackPaths
from .services import StackError

BASE_IMAGE = "ec2batch-local/debian:bookworm"
SUITE = "bookworm"
# python3-venv: the agent is installed into its own virtualenv; systemd*/dbus: the instance boots with systemd.
STAGES = (
    "Retrieving Packages",
    "Installing core packages...",
    "Unpacking the base system...",
    "Configuring the base system...",
    "Base system installed successfully.",
)
BASE_PACKAGES = ["python3", "python3-venv", "ca-certificates", "systemd", "systemd-sysv", "dbus"]


def debian_mirror(sources_dir: Path = Path("/etc/apt")) -> str:
    """The Debian mirror this machine's apt uses (never a hard-coded host)."""
    for path in sorted((sources_dir / "sources.list.d").glob("*.sources")):
        for stanza in path.read_text().split("\n\n"):
            fields = dict(re.findall(r"^(\w[\w-]*):\s*(.+)$", stanza, flags=re.MULTILINE))
            if SUITE in fields.get("Suites", "").split() and "main" in fields.get("Components", "").split():
                return fields["URIs"].split()[0]
    sources_list = sources_dir / "sources.list"
    if sources_list.exists():
        for line in sources_list.read_text().splitlines():
            parts = re.sub(r"\[[^\]]*\]", "", line).split()  # drop "[arch=amd64 signed-by=...]"
            if len(parts) >= 3 and parts[0] == "deb" and parts[2] == SUITE:
                return parts[1]
    raise StackError(f"no apt source for Debian {SUITE} in {sources_dir}: debootstrap needs a mirror")


def image_exists(client: Any, name: str) -> bool:
    import docker.errors

    try:
        client.images.get(name)
    except docker.errors.ImageNotFound:
        return False
    return True


def build_base_image(client: Any, paths: StackPaths, progress: Callable[[str], None] = print) -> str:
    if image_exists(client, BASE_IMAGE):
        return "cached"
    if shutil.which("debootstrap") is None:
        raise StackError("debootstrap is not installed: run `ec2batch local up` as root (it installs it)")
    target = paths.rootfs / SUITE
    if target.exists():
        shutil.rmtree(target)  # a half-made root from an interrupted build
    mirror = debian_mirror()
    progress(f"building {BASE_IMAGE} with debootstrap from {mirror} (about a minute, once)")
    command = ["debootstrap", "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}", SUITE, str(target), mirror]
    log = paths.logs / "debootstrap.log"
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        assert process.stdout is not None
        for raw in process.stdout:
            out.write(raw)
            line = raw.decode(errors="replace").strip()
            if line.startswith("I: ") and line.endswith(STAGES):
                progress(f"  debootstrap: {line[3:]}")
        if process.wait() != 0:
            raise StackError(f"debootstrap failed (exit {process.returncode}); see {log}")
    tarball = paths.rootfs / f"{SUITE}.tar"
    progress(f"importing {BASE_IMAGE}")
    subprocess.run(["tar", "-C", str(target), "-cf", str(tarball), "."], check=True)
    repository, tag = BASE_IMAGE.split(":")
    client.api.import_image_from_file(str(tarball), repository=repository, tag=tag)
    tarball.unlink()
    shutil.rmtree(target)
    return "built"
