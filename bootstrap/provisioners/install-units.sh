#!/usr/bin/env bash
# Copy bootstrap/rootfs onto / in one step and enable the agent's unit.
set -o nounset -o errexit -o pipefail

ROOTFS="${EC2BATCH_ROOTFS:?set EC2BATCH_ROOTFS to the uploaded bootstrap/rootfs folder}"
[[ -f "$ROOTFS/etc/systemd/system/ec2batch-agent.service" ]] || { echo "no unit under $ROOTFS" >&2; exit 1; }

cp -R --no-preserve=ownership "$ROOTFS"/. /
chmod 0644 /etc/systemd/system/ec2batch-agent.service
systemctl enable ec2batch-agent.service
# network-online.target must mean something: enable the wait-online service of the network manager in use
# (systemd-networkd on Amazon Linux 2023). None enabled (the local twin shares the host's network): skip.
if systemctl is-enabled --quiet systemd-networkd.service 2>/dev/null; then
  systemctl enable systemd-networkd-wait-online.service
elif systemctl is-enabled --quiet NetworkManager.service 2>/dev/null; then
  systemctl enable NetworkManager-wait-online.service
fi
