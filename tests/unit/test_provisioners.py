"""bootstrap/provisioners/install-job-network.sh, run for real in a private mount namespace.

/opt and /etc/systemd/system are fresh tmpfs mounts there, and iptables, sysctl and systemctl are stubs that
record what they are asked (the development machine's netfilter is not ours to change). The rules the AMI
applies at boot are then checked by validate.sh's own checks, and applied twice to prove they are idempotent.
Needs root and unshare(1), like the stack suite; without them this fails, it does not skip.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from ec2batch.agent.main import Settings

ROOT = Path(__file__).resolve().parents[2]
PROVISIONERS = ROOT / "bootstrap" / "provisioners"

STUBS = {
    # iptables: -C answers from the rules added so far; -I/-A add one. Every call is logged.
    "iptables": r"""#!/usr/bin/env bash
echo "iptables $*" >>"$STUB_LOG"
op=""; args=()
while (($#)); do case "$1" in -C|-I|-A) op=$1; args+=("$2"); shift 2;; *) args+=("$1"); shift;; esac; done
rule="${args[*]}"
if [[ $op == -C ]]; then grep -qxF -- "$rule" "$RULES" 2>/dev/null; exit; fi
echo "$rule" >>"$RULES"
""",
    "sysctl": '#!/usr/bin/env bash\necho "sysctl $*" >>"$STUB_LOG"\n',
    "systemctl": '#!/usr/bin/env bash\necho "systemctl $*" >>"$STUB_LOG"\n',
}


def run_in_namespace(tmp_path: Path, script: str, **env: str) -> subprocess.CompletedProcess[str]:
    stubs = tmp_path / "stubs"
    stubs.mkdir(exist_ok=True)
    for name, text in STUBS.items():
        (stubs / name).write_text(text)
        (stubs / name).chmod(0o755)
    inner = f"mount -t tmpfs ec2batch-test /opt && mount -t tmpfs ec2batch-test /etc/systemd/system && {script}"
    return subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "bash", "-c", inner],
        env={
            **os.environ,
            "PATH": f"{stubs}:{os.environ['PATH']}",
            "STUB_LOG": str(tmp_path / "calls.log"),
            "RULES": str(tmp_path / "rules"),
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
    )


def validate_checks() -> str:
    """validate.sh's job-network checks, as the AMI build runs them."""
    lines = (PROVISIONERS / "validate.sh").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if "The job's network" in line)
    end = next(i for i in range(start, len(lines)) if lines[i].strip() == "fi")
    body = "\n".join(line for line in lines[start:end] if "command -v iptables" not in line)
    return 'fail() { echo "validate: $*" >&2; exit 1; }\n' + body


def test_the_ami_routes_the_credentials_address_to_the_agent_and_blocks_imds_for_the_job(tmp_path) -> None:
    checks = tmp_path / "checks.sh"
    checks.write_text(validate_checks())
    result = run_in_namespace(
        tmp_path,
        f"bash {PROVISIONERS / 'install-job-network.sh'} && /opt/ec2batch/bin/job-network && "
        f"/opt/ec2batch/bin/job-network && bash {checks} && "
        "cat /etc/systemd/system/ec2batch-agent.service.d/40-job-network.conf",
    )
    assert result.returncode == 0, result.stderr

    rules = (tmp_path / "rules").read_text().splitlines()
    assert sorted(rules) == sorted(
        [
            "-t nat PREROUTING -d 169.254.170.2/32 -p tcp --dport 80 -j DNAT --to-destination 127.0.0.1:51679",
            "-t nat OUTPUT -d 169.254.170.2/32 -p tcp --dport 80 -j REDIRECT --to-ports 51679",
            "-t filter INPUT -d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP",
            "-t filter DOCKER-USER -d 169.254.169.254/32 -j DROP",
            "-t filter OUTPUT -d 169.254.169.254/32 -m cgroup --path ec2batch.slice/ec2batch-jobs.slice -j DROP",
        ]
    )  # each once, though applied twice (a restart of the unit changes nothing)
    calls = (tmp_path / "calls.log").read_text()
    assert "sysctl -q -w net.ipv4.conf.all.route_localnet=1" in calls
    assert "systemctl enable ec2batch-job-network.service" in calls
    assert "Environment=EC2BATCH_JOB_CGROUP_PARENT=ec2batch-jobs.slice" in result.stdout


def test_the_agent_listens_and_points_the_job_where_the_rules_route() -> None:
    settings = Settings()  # the AMI's defaults: no local.env
    assert settings.credentials_listen == ("127.0.0.1", 51679)
    assert settings.credentials_uri == "http://169.254.170.2/v1/credentials"


def test_the_local_instance_image_touches_no_netfilter(tmp_path) -> None:
    result = run_in_namespace(
        tmp_path,
        f"bash {PROVISIONERS / 'install-job-network.sh'} && test ! -e /opt/ec2batch",
        EC2BATCH_CONTAINER_ENGINE="host",
    )
    assert result.returncode == 0, result.stderr
    assert "host networking, no netfilter rules" in result.stdout
    assert not (tmp_path / "calls.log").exists()
