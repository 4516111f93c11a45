from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).parents[2]


def build(tmp_path: Path) -> Path:
    out = tmp_path / "launcher.zip"
    subprocess.run(
        [sys.executable, str(ROOT / "launcher_lambda" / "build.py"), "--out", str(out)], check=True, capture_output=True
    )
    return out


def test_the_zip_is_small_and_holds_only_the_launcher(tmp_path: Path) -> None:
    out = build(tmp_path)
    names = zipfile.ZipFile(out).namelist()
    assert "ec2batch/launcher/core.py" in names
    assert not [n for n in names if n.startswith(("ec2batch/agent", "ec2batch/cli", "ec2batch/local"))]
    assert out.stat().st_size < 60_000


def test_the_handler_imports_from_the_zip_without_cron_docker_or_click(tmp_path: Path) -> None:
    out = build(tmp_path)
    probe = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "import ec2batch.launcher as l; assert l.__file__.startswith(sys.argv[1]), l.__file__;"
        "assert callable(l.handler);"
        "bad = [m for m in ('aws_croniter', 'docker', 'click') if m in sys.modules]; assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", probe, str(out)], check=True)


def test_the_build_is_reproducible(tmp_path: Path) -> None:
    first = build(tmp_path).read_bytes()
    assert build(tmp_path).read_bytes() == first
