#!/usr/bin/env bash
# Remove what must not be baked into an image: identity, keys, caches, the uploaded build inputs.
set -o nounset -o errexit -o pipefail

rm -rf /tmp/ec2batch
# Every machine must generate its own identity and SSH host keys at first boot.
truncate -s 0 /etc/machine-id
rm -f /var/lib/dbus/machine-id
rm -f /etc/ssh/ssh_host_*
# cloud-init must run again on the new instance.
rm -rf /var/lib/cloud/instances /var/lib/cloud/instance
# Package caches and logs from the build.
if command -v dnf >/dev/null; then dnf clean all; fi
if command -v apt-get >/dev/null; then apt-get clean; rm -rf /var/lib/apt/lists/*; fi
find /var/log -type f -name '*.log' -exec truncate -s 0 {} +
rm -rf /root/.cache /opt/ec2batch/lib/python*/site-packages/pip/_vendor/*/__pycache__
