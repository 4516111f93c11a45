#!/usr/bin/env bash
# Assert the image is what the agent needs: fail the build here, not at 3 a.m. on the first run.
set -o nounset -o errexit -o pipefail

fail() { echo "validate: $*" >&2; exit 1; }

[[ -x /opt/ec2batch/bin/ec2batch-agent ]] || fail "agent entry point missing"
/opt/ec2batch/bin/python -c 'import ec2batch.agent.main, docker, boto3' || fail "agent cannot import its modules"
systemctl is-enabled ec2batch-agent.service >/dev/null || fail "ec2batch-agent.service is not enabled"
[[ ! -s /etc/machine-id ]] || fail "/etc/machine-id is baked in"
compgen -G '/etc/ssh/ssh_host_*' >/dev/null && fail "SSH host keys are baked in"
[[ ! -e /tmp/ec2batch ]] || fail "build inputs left in /tmp/ec2batch"
[[ ! -e /etc/ec2batch/keep-running ]] || fail "the debug switch /etc/ec2batch/keep-running is baked in"
if [[ "${EC2BATCH_CONTAINER_ENGINE:-install}" != "host" ]]; then
  command -v docker >/dev/null || fail "docker is not installed"
  systemctl is-enabled docker.service >/dev/null || fail "docker.service is not enabled"
  # The job's network (install-job-network.sh): its own role reachable, the machine's not.
  command -v iptables >/dev/null || fail "iptables is not installed (the job's IMDS block needs it)"
  systemctl is-enabled ec2batch-job-network.service >/dev/null || fail "ec2batch-job-network.service is not enabled"
  rules=/opt/ec2batch/bin/job-network
  bash -n "$rules" || fail "$rules does not parse"
  grep -q -- '-d 169.254.170.2/32 -p tcp --dport 80 -j DNAT --to-destination 127.0.0.1:51679' "$rules" \
    || fail "$rules does not route the credentials address to the agent"
  grep -q -- 'DOCKER-USER -d 169.254.169.254/32 -j DROP' "$rules" || fail "$rules does not block IMDS for bridge containers"
  grep -q -- '169.254.169.254/32 -m cgroup --path ec2batch.slice/ec2batch-jobs.slice -j DROP' "$rules" \
    || fail "$rules does not block IMDS for host-network jobs"
  grep -q 'EC2BATCH_JOB_CGROUP_PARENT=ec2batch-jobs.slice' /etc/systemd/system/ec2batch-agent.service.d/40-job-network.conf \
    || fail "the agent does not put the job's containers in ec2batch-jobs.slice"
fi
if command -v systemd-analyze >/dev/null; then
  systemd-analyze verify /etc/systemd/system/ec2batch-agent.service || fail "systemd-analyze verify found problems"
fi
free_mb=$(df --output=avail -m / | tail -1 | tr -d ' ')
(( free_mb > 1024 )) || fail "only ${free_mb} MiB free on /"
echo "validate: OK (agent $(/opt/ec2batch/bin/python -c 'import ec2batch; print(ec2batch.__version__)'), ${free_mb} MiB free)"
