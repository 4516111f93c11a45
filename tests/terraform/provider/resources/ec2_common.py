"""What the EC2 handlers share: Terraform block values <-> EC2 structures (driven by small field tables), tags
through the EC2 tagging API, and waiting.

A table maps a Terraform attribute to (AWS key, kind). Kinds: "str", "int", "bool", "boolstr" (a Terraform
string "true"/"false", as the launch template schema has them, sent as a boolean), "list" (strings), "tags"
(a map sent as [{Key, Value}]), a nested table (a MaxItems=1 block) or ("blocks", table) (a list of blocks).
"""

from __future__ import annotations

import time
from typing import Any

from tests.terraform.provider.resources.base import Aws, Value, first, tag_list, tag_map, tags_to_send

Table = dict[str, tuple[str, Any]]


def _to_aws_value(value: Value, kind: Any) -> Value:
    if isinstance(kind, dict):
        block = first(value)
        return to_aws(block, kind) if block else None
    if isinstance(kind, tuple):
        return [to_aws(v, kind[1]) for v in value or []] or None
    if kind == "int":
        return int(value)
    if kind == "bool":
        return bool(value)
    if kind == "boolstr":
        return value if isinstance(value, bool) else str(value).lower() == "true"
    if kind == "list":
        return list(value) or None
    if kind == "tags":
        return tag_list(value) or None
    return str(value)


def to_aws(values: dict[str, Value] | None, table: Table) -> dict[str, Value]:
    """The request structure for the attributes that are set (unset and empty ones are left out)."""
    out: dict[str, Value] = {}
    for key, (aws_key, kind) in table.items():
        value = (values or {}).get(key)
        if value is None or value == "" or value == []:
            continue
        converted = _to_aws_value(value, kind)
        if converted is not None:
            out[aws_key] = converted
    return out


def _from_aws_value(value: Value, kind: Any, prior: Value) -> Value:
    if isinstance(kind, dict):
        return [from_aws(value, kind, first(prior) or {})]
    if isinstance(kind, tuple):
        priors = list(prior or [])
        return [from_aws(v, kind[1], priors[i] if i < len(priors) else {}) for i, v in enumerate(value)]
    if kind == "boolstr":
        # Keep the configuration's spelling when it means the same.
        return (
            prior if isinstance(prior, str) and (prior.lower() == "true") == bool(value) else str(bool(value)).lower()
        )
    if kind == "list":
        return list(value)
    if kind == "tags":
        return tag_map(value)
    return value


def from_aws(data: dict[str, Value], table: Table, prior: dict[str, Value]) -> dict[str, Value]:
    """Terraform values from AWS's structure. A key AWS leaves out keeps the prior value (moto echoes less)."""
    out: dict[str, Value] = dict(prior)
    for key, (aws_key, kind) in table.items():
        if aws_key in data:
            out[key] = _from_aws_value(data[aws_key], kind, prior.get(key))
        elif key not in out:
            out[key] = [] if isinstance(kind, (dict, tuple)) or kind == "list" else None
    return out


EBS: Table = {
    "delete_on_termination": ("DeleteOnTermination", "boolstr"),
    "encrypted": ("Encrypted", "boolstr"),
    "iops": ("Iops", "int"),
    "kms_key_id": ("KmsKeyId", "str"),
    "snapshot_id": ("SnapshotId", "str"),
    "throughput": ("Throughput", "int"),
    "volume_size": ("VolumeSize", "int"),
    "volume_type": ("VolumeType", "str"),
    "volume_initialization_rate": ("VolumeInitializationRate", "int"),
}
METADATA: Table = {
    "http_endpoint": ("HttpEndpoint", "str"),
    "http_tokens": ("HttpTokens", "str"),
    "http_put_response_hop_limit": ("HttpPutResponseHopLimit", "int"),
    "http_protocol_ipv6": ("HttpProtocolIpv6", "str"),
    "instance_metadata_tags": ("InstanceMetadataTags", "str"),
}
LAUNCH_TEMPLATE_DATA: Table = {
    "image_id": ("ImageId", "str"),
    "instance_type": ("InstanceType", "str"),
    "instance_initiated_shutdown_behavior": ("InstanceInitiatedShutdownBehavior", "str"),
    "ebs_optimized": ("EbsOptimized", "boolstr"),
    "key_name": ("KeyName", "str"),
    "kernel_id": ("KernelId", "str"),
    "ram_disk_id": ("RamDiskId", "str"),
    "user_data": ("UserData", "str"),
    "disable_api_termination": ("DisableApiTermination", "bool"),
    "disable_api_stop": ("DisableApiStop", "bool"),
    "vpc_security_group_ids": ("SecurityGroupIds", "list"),
    "security_group_names": ("SecurityGroups", "list"),
    "iam_instance_profile": ("IamInstanceProfile", {"arn": ("Arn", "str"), "name": ("Name", "str")}),
    "metadata_options": ("MetadataOptions", METADATA),
    "monitoring": ("Monitoring", {"enabled": ("Enabled", "bool")}),
    "credit_specification": ("CreditSpecification", {"cpu_credits": ("CpuCredits", "str")}),
    "enclave_options": ("EnclaveOptions", {"enabled": ("Enabled", "bool")}),
    "hibernation_options": ("HibernationOptions", {"configured": ("Configured", "bool")}),
    "maintenance_options": ("MaintenanceOptions", {"auto_recovery": ("AutoRecovery", "str")}),
    "cpu_options": (
        "CpuOptions",
        {
            "core_count": ("CoreCount", "int"),
            "threads_per_core": ("ThreadsPerCore", "int"),
            "amd_sev_snp": ("AmdSevSnp", "str"),
        },
    ),
    "placement": (
        "Placement",
        {
            "affinity": ("Affinity", "str"),
            "availability_zone": ("AvailabilityZone", "str"),
            "group_name": ("GroupName", "str"),
            "host_id": ("HostId", "str"),
            "tenancy": ("Tenancy", "str"),
            "partition_number": ("PartitionNumber", "int"),
        },
    ),
    "block_device_mappings": (
        "BlockDeviceMappings",
        (
            "blocks",
            {
                "device_name": ("DeviceName", "str"),
                "no_device": ("NoDevice", "str"),
                "virtual_name": ("VirtualName", "str"),
                "ebs": ("Ebs", EBS),
            },
        ),
    ),
    "network_interfaces": (
        "NetworkInterfaces",
        (
            "blocks",
            {
                "associate_public_ip_address": ("AssociatePublicIpAddress", "boolstr"),
                "delete_on_termination": ("DeleteOnTermination", "boolstr"),
                "description": ("Description", "str"),
                "device_index": ("DeviceIndex", "int"),
                "interface_type": ("InterfaceType", "str"),
                "network_card_index": ("NetworkCardIndex", "int"),
                "network_interface_id": ("NetworkInterfaceId", "str"),
                "private_ip_address": ("PrivateIpAddress", "str"),
                "security_groups": ("Groups", "list"),
                "subnet_id": ("SubnetId", "str"),
                "ipv4_address_count": ("SecondaryPrivateIpAddressCount", "int"),
            },
        ),
    ),
    "tag_specifications": (
        "TagSpecifications",
        ("blocks", {"resource_type": ("ResourceType", "str"), "tags": ("Tags", "tags")}),
    ),
}


def tag_spec(resource_type: str, tags: dict[str, str]) -> list[dict[str, Value]]:
    return [{"ResourceType": resource_type, "Tags": tag_list(tags)}] if tags else []


def sync_tags(aws: Aws, resource_id: str, prior: dict[str, Value], planned: dict[str, Value]) -> None:
    ec2 = aws.client("ec2")
    old, new = prior.get("tags_all") or {}, tags_to_send(planned)
    if gone := [k for k in old if k not in new]:
        ec2.delete_tags(Resources=[resource_id], Tags=[{"Key": k} for k in gone])
    if new and new != old:
        ec2.create_tags(Resources=[resource_id], Tags=tag_list(new))


def ec2_tags(aws: Aws, resource_id: str) -> dict[str, str]:
    """A resource's tags through DescribeTags, as the provider's tagging reads them for EC2 (moto 5.2's
    DescribeLaunchTemplates does not show tags changed by CreateTags)."""
    pages = (
        aws.client("ec2")
        .get_paginator("describe_tags")
        .paginate(Filters=[{"Name": "resource-id", "Values": [resource_id]}])
    )
    return tag_map([t for page in pages for t in page["Tags"]])


def wait_for(what: str, probe: Any, timeout: float = 60.0) -> Any:
    """Poll `probe` until it returns something truthy (the provider's waiters, on moto's fast clock)."""
    deadline = time.monotonic() + timeout
    while True:
        got = probe()
        if got:
            return got
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.1)
