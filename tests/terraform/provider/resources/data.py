"""Data sources: aws_region, aws_caller_identity, aws_partition, aws_subnet, aws_ami."""

from __future__ import annotations

import re
from functools import cache
from typing import Any

import botocore.session

from tests.terraform.provider.resources.base import Aws, Data, Value, register_data, tag_map


@cache
def _endpoint_data() -> dict[str, Any]:
    loader = botocore.session.get_session().get_component("data_loader")
    return dict(loader.load_data("endpoints"))


def partition_of(region: str) -> dict[str, Any]:
    """botocore's partition record for a region (the same data the provider's endpoints package carries)."""
    for partition in _endpoint_data()["partitions"]:
        if region in partition["regions"] or re.match(partition["regionRegex"], region):
            return dict(partition)
    raise ValueError(f"region: {region} is in no known partition")


class Region(Data):
    type_name = "aws_region"

    def read(self, aws: Aws, config: dict[str, Value]) -> dict[str, Value]:
        region = config.get("region") or config.get("name") or aws.region
        partition = partition_of(region)
        if config.get("endpoint") and config["endpoint"] != f"ec2.{region}.{partition['dnsSuffix']}":
            raise ValueError(f"endpoint: {config['endpoint']} is not the EC2 endpoint of {region}")
        description = partition["regions"].get(region, {}).get("description", "")
        return {
            **config,
            "id": region,
            "name": region,
            "region": region,
            "endpoint": f"ec2.{region}.{partition['dnsSuffix']}",
            "description": description,
        }


class CallerIdentity(Data):
    type_name = "aws_caller_identity"

    def read(self, aws: Aws, config: dict[str, Value]) -> dict[str, Value]:
        got = aws.client("sts").get_caller_identity()
        return {
            **config,
            "id": got["Account"],
            "account_id": got["Account"],
            "arn": got["Arn"],
            "user_id": got["UserId"],
        }


class Partition(Data):
    type_name = "aws_partition"

    def read(self, aws: Aws, config: dict[str, Value]) -> dict[str, Value]:
        partition = partition_of(aws.region)
        suffix = partition["dnsSuffix"]
        return {
            **config,
            "id": partition["partition"],
            "partition": partition["partition"],
            "dns_suffix": suffix,
            "reverse_dns_prefix": ".".join(reversed(suffix.split("."))),
        }


def filters(config: dict[str, Value], extra: dict[str, Value] | None = None) -> list[dict[str, Value]]:
    out = [{"Name": f["name"], "Values": list(f["values"])} for f in config.get("filter") or []]
    for name, value in (extra or {}).items():
        if value not in (None, "", []):
            out.append(
                {
                    "Name": name,
                    "Values": value
                    if isinstance(value, list)
                    else [str(value).lower() if isinstance(value, bool) else str(value)],
                }
            )
    return out


class Subnet(Data):
    type_name = "aws_subnet"

    def read(self, aws: Aws, config: dict[str, Value]) -> dict[str, Value]:
        request: dict[str, Value] = {}
        if config.get("id"):
            request["SubnetIds"] = [config["id"]]
        extra = {
            "availability-zone": config.get("availability_zone"),
            "availability-zone-id": config.get("availability_zone_id"),
            "cidr-block": config.get("cidr_block"),
            "default-for-az": config.get("default_for_az"),
            "ipv6-cidr-block-association.ipv6-cidr-block": config.get("ipv6_cidr_block"),
            "state": config.get("state"),
            "vpc-id": config.get("vpc_id"),
        }
        found = filters(config, extra) + [
            {"Name": f"tag:{k}", "Values": [v]} for k, v in (config.get("tags") or {}).items()
        ]
        if found:
            request["Filters"] = found
        subnets = aws.client("ec2").describe_subnets(**request)["Subnets"]
        if len(subnets) != 1:
            raise ValueError(f"id: the query matched {len(subnets)} subnets, not exactly one")
        s = subnets[0]
        ipv6 = [
            a
            for a in s.get("Ipv6CidrBlockAssociationSet", [])
            if a.get("Ipv6CidrBlockState", {}).get("State") == "associated"
        ]
        dns = s.get("PrivateDnsNameOptionsOnLaunch", {})
        return {
            **config,
            "id": s["SubnetId"],
            "arn": s.get(
                "SubnetArn", f"arn:aws:ec2:{aws.region}:{s.get('OwnerId', aws.account_id)}:subnet/{s['SubnetId']}"
            ),
            "assign_ipv6_address_on_creation": s.get("AssignIpv6AddressOnCreation", False),
            "availability_zone": s.get("AvailabilityZone"),
            "availability_zone_id": s.get("AvailabilityZoneId", ""),
            "available_ip_address_count": s.get("AvailableIpAddressCount", 0),
            "cidr_block": s.get("CidrBlock"),
            "customer_owned_ipv4_pool": s.get("CustomerOwnedIpv4Pool", ""),
            "default_for_az": s.get("DefaultForAz", False),
            "enable_dns64": s.get("EnableDns64", False),
            "enable_lni_at_device_index": s.get("EnableLniAtDeviceIndex", 0),
            "enable_resource_name_dns_a_record_on_launch": dns.get("EnableResourceNameDnsARecord", False),
            "enable_resource_name_dns_aaaa_record_on_launch": dns.get("EnableResourceNameDnsAAAARecord", False),
            "ipv6_cidr_block": ipv6[0]["Ipv6CidrBlock"] if ipv6 else "",
            "ipv6_cidr_block_association_id": ipv6[0]["AssociationId"] if ipv6 else "",
            "ipv6_native": s.get("Ipv6Native", False),
            "map_customer_owned_ip_on_launch": s.get("MapCustomerOwnedIpOnLaunch", False),
            "map_public_ip_on_launch": s.get("MapPublicIpOnLaunch", False),
            "outpost_arn": s.get("OutpostArn", ""),
            "owner_id": s.get("OwnerId", aws.account_id),
            "private_dns_hostname_type_on_launch": dns.get("HostnameType", "ip-name"),
            "region": aws.region,
            "state": s.get("State"),
            "tags": tag_map(s.get("Tags")),
            "vpc_id": s.get("VpcId"),
        }


class Ami(Data):
    type_name = "aws_ami"

    def read(self, aws: Aws, config: dict[str, Value]) -> dict[str, Value]:
        request: dict[str, Value] = {}
        if config.get("owners"):
            request["Owners"] = list(config["owners"])
        if config.get("executable_users"):
            request["ExecutableUsers"] = list(config["executable_users"])
        if config.get("include_deprecated"):
            request["IncludeDeprecated"] = True
        if found := filters(config):
            request["Filters"] = found
        images = aws.client("ec2").describe_images(**request)["Images"]
        if config.get("name_regex"):
            pattern = re.compile(config["name_regex"])
            images = [i for i in images if pattern.search(i.get("Name", ""))]
        if not images:
            raise ValueError("filter: your query returned no results; change your search criteria and try again")
        if len(images) > 1 and not config.get("most_recent"):
            raise ValueError("most_recent: your query returned more than one result; set most_recent or narrow it")
        image = max(images, key=lambda i: i.get("CreationDate", ""))
        return {**config, **image_attributes(aws, image)}


def image_attributes(aws: Aws, image: dict[str, Value]) -> dict[str, Value]:
    image_id = image["ImageId"]
    return {
        "id": image_id,
        "image_id": image_id,
        "arn": f"arn:aws:ec2:{aws.region}::image/{image_id}",
        "architecture": image.get("Architecture", ""),
        "block_device_mappings": [
            {
                "device_name": m.get("DeviceName", ""),
                "ebs": {k: str(v) for k, v in _ebs_snake(m.get("Ebs") or {}).items()},
                "no_device": m.get("NoDevice", ""),
                "virtual_name": m.get("VirtualName", ""),
            }
            for m in image.get("BlockDeviceMappings", [])
        ],
        "boot_mode": image.get("BootMode", ""),
        "creation_date": image.get("CreationDate", ""),
        "deprecation_time": image.get("DeprecationTime", ""),
        "description": image.get("Description", ""),
        "ena_support": image.get("EnaSupport", False),
        "hypervisor": image.get("Hypervisor", ""),
        "image_location": image.get("ImageLocation", ""),
        "image_owner_alias": image.get("ImageOwnerAlias", ""),
        "image_type": image.get("ImageType", ""),
        "imds_support": image.get("ImdsSupport", ""),
        "kernel_id": image.get("KernelId", ""),
        "last_launched_time": image.get("LastLaunchedTime", ""),
        "name": image.get("Name", ""),
        "owner_id": image.get("OwnerId", ""),
        "platform": image.get("Platform", ""),
        "platform_details": image.get("PlatformDetails", ""),
        "product_codes": [
            {"product_code_id": p.get("ProductCodeId", ""), "product_code_type": p.get("ProductCodeType", "")}
            for p in image.get("ProductCodes", [])
        ],
        "public": image.get("Public", False),
        "ramdisk_id": image.get("RamdiskId", ""),
        "region": aws.region,
        "root_device_name": image.get("RootDeviceName", ""),
        "root_device_type": image.get("RootDeviceType", ""),
        "root_snapshot_id": _root_snapshot(image),
        "sriov_net_support": image.get("SriovNetSupport", ""),
        "state": image.get("State", ""),
        "state_reason": _state_reason(image),
        "tags": tag_map(image.get("Tags")),
        "tpm_support": image.get("TpmSupport", ""),
        "usage_operation": image.get("UsageOperation", ""),
        "virtualization_type": image.get("VirtualizationType", ""),
    }


def _ebs_snake(ebs: dict[str, Value]) -> dict[str, Value]:
    names = {
        "DeleteOnTermination": "delete_on_termination",
        "Encrypted": "encrypted",
        "Iops": "iops",
        "SnapshotId": "snapshot_id",
        "Throughput": "throughput",
        "VolumeSize": "volume_size",
        "VolumeType": "volume_type",
    }
    return {names[k]: (str(v).lower() if isinstance(v, bool) else v) for k, v in ebs.items() if k in names}


def _root_snapshot(image: dict[str, Value]) -> str:
    root = image.get("RootDeviceName")
    for mapping in image.get("BlockDeviceMappings", []):
        if mapping.get("DeviceName") == root:
            return str((mapping.get("Ebs") or {}).get("SnapshotId", ""))
    return ""


def _state_reason(image: dict[str, Value]) -> dict[str, str]:
    # The provider writes UNSET when AWS gives no reason.
    reason = image.get("StateReason") or {}
    return {"code": str(reason.get("Code", "UNSET")), "message": str(reason.get("Message", "UNSET"))}


register_data(Region())
register_data(CallerIdentity())
register_data(Partition())
register_data(Subnet())
register_data(Ami())
