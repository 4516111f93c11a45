#!/usr/bin/env bash
# The job's network on the AMI: the machine's role out of the job's reach, the job's own role within it.
#
#   - 169.254.170.2:80 (ECS's credentials address, which the AWS SDKs accept over HTTP) is DNAT'd to the
#     agent's credentials endpoint on 127.0.0.1:51679, for bridge containers (PREROUTING) and host-network
#     jobs (OUTPUT); loopback is reachable from outside only through that DNAT (the rule ECS uses).
#   - IMDS (169.254.169.254) is dropped for the job: bridge containers in DOCKER-USER (the hop limit of 1
#     already stops them; this is defence in depth), host-network jobs by their cgroup, ec2batch-jobs.slice,
#     where the agent puts every job container (EC2BATCH_JOB_CGROUP_PARENT).
# iptables rules do not survive a reboot, so a oneshot unit applies them at every boot, after dockerd has
# made DOCKER-USER and before the agent starts. docs/agent.md, "The job's identity and network".
#
# EC2BATCH_CONTAINER_ENGINE=host (the local instance image): the job shares the host's network and its
# endpoint listens on a loopback port; no rule may touch the development machine's netfilter.
set -o nounset -o errexit -o pipefail

ENGINE="${EC2BATCH_CONTAINER_ENGINE:-install}"
if [[ "$ENGINE" == "host" ]]; then
  echo "job network: local instance image, host networking, no netfilter rules (docs/local-stack.md)"
  exit 0
fi

if ! command -v iptables >/dev/null; then
  if command -v dnf >/dev/null; then
    dnf install -y iptables-nft
  else
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q iptables
  fi
fi

install -d -m 0755 /opt/ec2batch/bin /etc/systemd/system/ec2batch-agent.service.d
cat >/opt/ec2batch/bin/job-network <<'SCRIPT'
#!/usr/bin/env bash
# Applied at every boot by ec2batch-job-network.service (written by install-job-network.sh). Idempotent.
set -o nounset -o errexit -o pipefail
ensure() { local table=$1 chain=$2; shift 2; iptables -t "$table" -C "$chain" "$@" 2>/dev/null || iptables -t "$table" -I "$chain" "$@"; }

sysctl -q -w net.ipv4.conf.all.route_localnet=1
ensure nat PREROUTING -d 169.254.170.2/32 -p tcp --dport 80 -j DNAT --to-destination 127.0.0.1:51679
ensure nat OUTPUT -d 169.254.170.2/32 -p tcp --dport 80 -j REDIRECT --to-ports 51679
ensure filter INPUT -d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP
ensure filter DOCKER-USER -d 169.254.169.254/32 -j DROP
# The cgroup match resolves the path when the rule is added: the slice must exist (be started) first.
systemctl start ec2batch-jobs.slice
ensure filter OUTPUT -d 169.254.169.254/32 -m cgroup --path ec2batch.slice/ec2batch-jobs.slice -j DROP
SCRIPT
chmod 0755 /opt/ec2batch/bin/job-network

cat >/etc/systemd/system/ec2batch-jobs.slice <<'UNIT'
[Unit]
Description=ec2batch: the job's containers (matched by the IMDS block of ec2batch-job-network.service)
UNIT

cat >/etc/systemd/system/ec2batch-job-network.service <<'UNIT'
[Unit]
Description=ec2batch: the job's network (credentials endpoint DNAT, IMDS blocked for the job)
Requires=docker.service
After=docker.service
Before=ec2batch-agent.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/opt/ec2batch/bin/job-network

[Install]
WantedBy=multi-user.target
UNIT

# The agent starts only once the rules are in place, and runs every job container in the matched slice.
cat >/etc/systemd/system/ec2batch-agent.service.d/40-job-network.conf <<'UNIT'
[Unit]
Wants=ec2batch-job-network.service
After=ec2batch-job-network.service

[Service]
Environment=EC2BATCH_JOB_CGROUP_PARENT=ec2batch-jobs.slice
UNIT

chmod 0644 /etc/systemd/system/ec2batch-jobs.slice /etc/systemd/system/ec2batch-job-network.service \
  /etc/systemd/system/ec2batch-agent.service.d/40-job-network.conf
systemctl enable ec2batch-job-network.service
echo "job network: credentials DNAT and IMDS block installed (ec2batch-job-network.service)"
