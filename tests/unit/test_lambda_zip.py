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
    assert out.stat().st_size < 100_000  # our modules only (~73 KB): no dependency is bundled


def test_the_handler_imports_from_the_zip_without_cron_docker_or_click(tmp_path: Path) -> None:
    out = build(tmp_path)
    # Every launcher module is imported, and each must come from the zip: the installed package is on the
    # path too, and would otherwise hide a module the zip lacks (an ImportError only on AWS).
    probe = (
        "import sys, importlib, pkgutil; sys.path.insert(0, sys.argv[1]);"
        "import ec2batch.launcher as l; assert callable(l.handler);"
        "[importlib.import_module('ec2batch.launcher.' + m.name) for m in pkgutil.iter_modules(l.__path__)];"
        "outside = sorted(n for n, m in sys.modules.items() if n.startswith('ec2batch')"
        " and not (getattr(m, '__file__', None) or '').startswith(sys.argv[1]));"
        "assert not outside, f'not in the zip: {outside}';"
        "bad = [m for m in ('aws_croniter', 'docker', 'click') if m in sys.modules]; assert not bad, bad"
    )
    result = subprocess.run([sys.executable, "-c", probe, str(out)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_the_build_is_reproducible(tmp_path: Path) -> None:
    first = build(tmp_path).read_bytes()
    assert build(tmp_path).read_bytes() == first
