#!/usr/bin/env bash
# Install and enable the Docker engine the agent drives.
# EC2BATCH_CONTAINER_ENGINE=host: the local twin uses the host's engine through a mounted socket,
# so nothing is installed (the step is still here, so both images go through the same scripts).
set -o nounset -o errexit -o pipefail

ENGINE="${EC2BATCH_CONTAINER_ENGINE:-install}"
if [[ "$ENGINE" == "host" ]]; then
  echo "container engine: using the host's engine through /var/run/docker.sock (local instance image)"
  exit 0
fi

if command -v dnf >/dev/null; then        # Amazon Linux 2023
  dnf install -y docker
elif command -v apt-get >/dev/null; then  # Debian / Ubuntu AMIs
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker.io
else
  echo "no dnf or apt-get: cannot install the Docker engine" >&2
  exit 1
fi
systemctl enable docker.service
