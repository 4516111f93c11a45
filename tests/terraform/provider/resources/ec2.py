"""EC2 instances: aws_instance, aws_ec2_instance_state."""

from __future__ import annotations

import base64

from botocore.exceptions import ClientError

from tests.terraform.provider.resources.base import (
    Aws,
    Resource,
    Value,
    arn,
    drop_none,
    fill,
    first,
    is_not_found,
    refresh,
    register_resource,
    split_tags,
    tag_map,
    tags_to_send,
)
from tests.terraform.provider.resources.ec2_common import METADATA, from_aws, sync_tags, tag_spec, to_aws, wait_for

# --- instances -----------------------------------------------------------------------------------------------


def describe_instance(aws: Aws, instance_id: str) -> dict[str, Value] | None:
    try:
        reservations = aws.client("ec2").describe_instances(InstanceIds=[instance_id])["Reservations"]
    except ClientError as err:
        if is_not_found(err, "InvalidInstanceID.NotFound"):
            return None
        raise
    instances = [i for r in reservations for i in r["Instances"]]
    return instances[0] if instances else None


def wait_state(aws: Aws, instance_id: str, target: str) -> dict[str, Value]:
    def probe() -> dict[str, Value] | None:
        instance = describe_instance(aws, instance_id)
        if instance is None and target == "terminated":
            return {"State": {"Name": "terminated"}}
        return instance if instance and instance["State"]["Name"] == target else None

    return dict(wait_for(f"instance {instance_id} {target}", probe))


def template_data(aws: Aws, spec: dict[str, Value]) -> dict[str, Value]:
    request = drop_none(
        LaunchTemplateId=spec.get("LaunchTemplateId"), LaunchTemplateName=spec.get("LaunchTemplateName")
    )
    version = str(spec.get("Version") or "$Default")
    got = aws.client("ec2").describe_launch_template_versions(**request, Versions=[version])["LaunchTemplateVersions"]
    if not got:
        raise ValueError(f"launch_template: version {version} not found")
    return dict(got[0]["LaunchTemplateData"])


def root_device_name(aws: Aws, image_id: str) -> str:
    images = aws.client("ec2").describe_images(ImageIds=[image_id])["Images"]
    if not images:
        raise ValueError(f"ami: image {image_id} not found")
    image = images[0]
    name = image.get("RootDeviceName")
    mapped = [m["DeviceName"] for m in image.get("BlockDeviceMappings", [])]
    # As the provider: a root device name absent from the mappings means the first mapping is the root.
    if name not in mapped and mapped:
        name = mapped[0]
    if not name:
        raise ValueError(f"ami: image {image_id} has no root device name")
    return str(name)


def run_request(aws: Aws, planned: dict[str, Value]) -> dict[str, Value]:
    """RunInstances as the provider builds it (buildInstanceOpts)."""
    request: dict[str, Value] = {
        "MinCount": 1,
        "MaxCount": 1,
        # Sent whether set or not (false when unset), as the provider does.
        "EbsOptimized": bool(planned.get("ebs_optimized")),
        "DisableApiTermination": bool(planned.get("disable_api_termination")),
        "Monitoring": {"Enabled": bool(planned.get("monitoring"))},
    }
    data: dict[str, Value] = {}
    if lt := first(planned.get("launch_template")):
        spec = drop_none(LaunchTemplateId=lt.get("id"), LaunchTemplateName=lt.get("name") if not lt.get("id") else None)
        spec["Version"] = str(lt.get("version") or "$Default")
        request["LaunchTemplate"] = spec
        data = template_data(aws, spec)
    request.update(instance_arguments(planned))
    request.update(network_arguments(planned))
    if root := first(planned.get("root_block_device")):
        image_id = planned.get("ami") or data.get("ImageId")
        if not image_id:
            raise ValueError("ami: must be set or provided via launch_template")
        request["BlockDeviceMappings"] = [{"DeviceName": root_device_name(aws, str(image_id)), "Ebs": root_ebs(root)}]
    specs = tag_spec("instance", tags_to_send(planned))
    if planned.get("volume_tags"):
        specs += tag_spec("volume", dict(planned["volume_tags"]))
    if specs:
        request["TagSpecifications"] = specs
    check_network_combination(request, data)
    return request


def instance_arguments(planned: dict[str, Value]) -> dict[str, Value]:
    request: dict[str, Value] = {}
    for key, param in (
        ("ami", "ImageId"),
        ("instance_type", "InstanceType"),
        ("key_name", "KeyName"),
        ("instance_initiated_shutdown_behavior", "InstanceInitiatedShutdownBehavior"),
    ):
        if planned.get(key):
            request[param] = planned[key]
    if planned.get("iam_instance_profile"):
        request["IamInstanceProfile"] = {"Name": planned["iam_instance_profile"]}
    if planned.get("disable_api_stop") is not None:
        request["DisableApiStop"] = bool(planned["disable_api_stop"])
    if planned.get("user_data"):
        request["UserData"] = base64.b64encode(str(planned["user_data"]).encode()).decode()
    elif planned.get("user_data_base64"):
        request["UserData"] = planned["user_data_base64"]
    if metadata := first(planned.get("metadata_options")):
        request["MetadataOptions"] = to_aws(metadata, METADATA)
    placement = drop_none(
        AvailabilityZone=planned.get("availability_zone") or None, Tenancy=planned.get("tenancy") or None
    )
    if placement:
        request["Placement"] = placement
    return request


def network_arguments(planned: dict[str, Value]) -> dict[str, Value]:
    groups = list(planned.get("security_groups") or [])
    vpc_groups = list(planned.get("vpc_security_group_ids") or [])
    subnet_id = planned.get("subnet_id")
    explicit_public_ip = planned.get("associate_public_ip_address") is not None
    if subnet_id and (explicit_public_ip or planned.get("private_ip") or planned.get("secondary_private_ips")):
        # The provider moves subnet and groups into a request-level network interface whenever
        # associate_public_ip_address is set at all (true or false), or a private IP is given.
        interface: dict[str, Value] = {"DeviceIndex": 0, "SubnetId": subnet_id}
        if groups + vpc_groups:
            interface["Groups"] = groups + vpc_groups
        if explicit_public_ip:
            interface["AssociatePublicIpAddress"] = bool(planned["associate_public_ip_address"])
        if planned.get("private_ip"):
            interface["PrivateIpAddress"] = planned["private_ip"]
        return {"NetworkInterfaces": [interface]}
    request: dict[str, Value] = {}
    if subnet_id:
        request["SubnetId"] = subnet_id
        vpc_groups = groups + vpc_groups
    elif groups:
        request["SecurityGroups"] = groups
    if vpc_groups:
        request["SecurityGroupIds"] = vpc_groups
    if planned.get("private_ip"):
        request["PrivateIpAddress"] = planned["private_ip"]
    return request


def root_ebs(root: dict[str, Value]) -> dict[str, Value]:
    ebs: dict[str, Value] = {"DeleteOnTermination": root.get("delete_on_termination") is not False}
    if root.get("encrypted"):
        ebs["Encrypted"] = True
    for key, param in (("kms_key_id", "KmsKeyId"), ("volume_type", "VolumeType")):
        if root.get(key):
            ebs[param] = root[key]
    for key, param in (("volume_size", "VolumeSize"), ("iops", "Iops"), ("throughput", "Throughput")):
        if root.get(key):
            ebs[param] = int(root[key])
    return ebs


def check_network_combination(request: dict[str, Value], data: dict[str, Value]) -> None:
    """AWS's own rule, which moto does not enforce: a request-level network interface cannot be combined with
    instance-level security groups, from the request or from the launch template."""
    if not request.get("NetworkInterfaces"):
        return
    if request.get("SecurityGroupIds") or data.get("SecurityGroupIds") or data.get("SecurityGroups"):
        raise ValueError(
            "InvalidParameterCombination: Network interfaces and an instance-level security groups may not be "
            "specified on the same request (associate_public_ip_address or private_ip with subnet_id makes the "
            "provider send a network interface; the launch template sets vpc_security_group_ids)"
        )


INSTANCE_UNSET_DEFAULTS: dict[str, Value] = {
    "disable_api_stop": False,
    "disable_api_termination": False,
    "enable_primary_ipv6": False,
    "host_id": "",
    "host_resource_group_arn": "",
    "instance_lifecycle": "",
    "ipv6_address_count": 0,
    "ipv6_addresses": [],
    "key_name": "",
    "outpost_arn": "",
    "password_data": "",
    "placement_group": "",
    "placement_group_id": "",
    "placement_partition_number": 0,
    "secondary_private_ips": [],
    "security_groups": [],
    "spot_instance_request_id": "",
    "tenancy": "default",
}


def instance_attributes(aws: Aws, instance: dict[str, Value]) -> dict[str, Value]:
    """The instance's computed attributes as the provider reads them."""
    profile_arn = (instance.get("IamInstanceProfile") or {}).get("Arn", "")
    return {
        "ami": instance.get("ImageId"),
        "arn": arn(aws, "ec2", f"instance/{instance['InstanceId']}"),
        "associate_public_ip_address": bool(instance.get("PublicIpAddress")),
        "availability_zone": (instance.get("Placement") or {}).get("AvailabilityZone"),
        "ebs_optimized": bool(instance.get("EbsOptimized")),
        "iam_instance_profile": profile_arn.rsplit("/", 1)[-1] if profile_arn else "",
        "instance_state": instance["State"]["Name"],
        "instance_type": instance.get("InstanceType"),
        "monitoring": (instance.get("Monitoring") or {}).get("State") in ("enabled", "pending"),
        "primary_network_interface_id": next(
            (
                n["NetworkInterfaceId"]
                for n in instance.get("NetworkInterfaces", [])
                if n.get("Attachment", {}).get("DeviceIndex") == 0
            ),
            "",
        ),
        "private_dns": instance.get("PrivateDnsName", ""),
        "private_ip": instance.get("PrivateIpAddress", ""),
        "public_dns": instance.get("PublicDnsName", ""),
        "public_ip": instance.get("PublicIpAddress", ""),
        "subnet_id": instance.get("SubnetId", ""),
        "vpc_security_group_ids": [g["GroupId"] for g in instance.get("SecurityGroups", [])],
    }


def root_block(aws: Aws, instance: dict[str, Value], prior: dict[str, Value]) -> dict[str, Value]:
    root_name = instance.get("RootDeviceName")
    mapping = next((m for m in instance.get("BlockDeviceMappings", []) if m["DeviceName"] == root_name), None)
    mapping = mapping or (instance.get("BlockDeviceMappings") or [None])[0]
    if not mapping:
        return prior
    volume = aws.client("ec2").describe_volumes(VolumeIds=[mapping["Ebs"]["VolumeId"]])["Volumes"][0]
    got = {
        "device_name": mapping["DeviceName"],
        "volume_id": volume["VolumeId"],
        "delete_on_termination": mapping["Ebs"].get("DeleteOnTermination", True),
        "encrypted": volume.get("Encrypted", False),
        "kms_key_id": volume.get("KmsKeyId", ""),
        "iops": volume.get("Iops", 0),
        "throughput": volume.get("Throughput", 0),
        "volume_size": volume.get("Size"),
        "volume_type": volume.get("VolumeType"),
        "tags_all": tag_map(volume.get("Tags")),
    }
    out = dict(prior)
    for key, value in got.items():
        # A key named by alias or id in the configuration stays as written; AWS answers its ARN.
        if not (key == "kms_key_id" and prior.get(key)):
            out[key] = value
    return out


# In aws_instance's metadata_options these are optional only (the provider's schema defaults them; the double has no
# defaults): unset in the configuration, they stay null rather than take AWS's value.
INSTANCE_METADATA_OPTIONAL = ("http_endpoint", "http_protocol_ipv6")


def instance_metadata(instance: dict[str, Value], prior: dict[str, Value]) -> dict[str, Value]:
    got = from_aws(instance.get("MetadataOptions") or {}, METADATA, {})
    out = dict(prior)
    for key, value in got.items():
        if key not in INSTANCE_METADATA_OPTIONAL or prior.get(key) is not None:
            out[key] = value
    return out


# Arguments the real provider changes in place that this double does not (it says so rather than ignore them).
UNSUPPORTED_INSTANCE_UPDATES = (
    "user_data",
    "user_data_base64",
    "root_block_device",
    "ebs_block_device",
    "credit_specification",
    "cpu_options",
    "capacity_reservation_specification",
    "maintenance_options",
    "private_dns_name_options",
    "secondary_private_ips",
    "volume_tags",
)


class Instance(Resource):
    type_name = "aws_instance"
    replace_on = frozenset(
        {
            "ami",
            "launch_template",
            "subnet_id",
            "associate_public_ip_address",
            "availability_zone",
            "key_name",
            "private_ip",
        }
    )

    def create(self, aws: Aws, planned: dict[str, Value]) -> dict[str, Value]:
        ec2 = aws.client("ec2")
        instance_id = ec2.run_instances(**run_request(aws, planned))["Instances"][0]["InstanceId"]
        instance = wait_state(aws, instance_id, "running")
        out = fill(
            planned, id=instance_id, region=aws.region, **instance_attributes(aws, instance), **INSTANCE_UNSET_DEFAULTS
        )
        if lt := first(planned.get("launch_template")):
            out["launch_template"] = [fill(dict(lt), id=lt.get("id") or "", name=lt.get("name") or "")]
        if out.get("root_block_device"):
            out["root_block_device"] = [root_block(aws, instance, dict(first(out["root_block_device"]) or {}))]
        if out.get("metadata_options"):
            out["metadata_options"] = [instance_metadata(instance, first(out["metadata_options"]) or {})]
        return out

    def read(self, aws: Aws, state: dict[str, Value]) -> dict[str, Value] | None:
        instance = describe_instance(aws, state["id"])
        if instance is None or instance["State"]["Name"] in ("terminated", "shutting-down"):
            return None
        tags = tag_map(instance.get("Tags"))
        observed = {**instance_attributes(aws, instance), **split_tags(aws, state, tags)}
        if state.get("root_block_device"):
            observed["root_block_device"] = [root_block(aws, instance, dict(first(state["root_block_device"]) or {}))]
        if state.get("metadata_options") and instance.get("MetadataOptions"):
            observed["metadata_options"] = [instance_metadata(instance, first(state["metadata_options"]) or {})]
        computed = (
            "arn",
            "instance_state",
            "primary_network_interface_id",
            "private_dns",
            "public_dns",
            "public_ip",
            "tags_all",
        )
        return refresh(state, observed, computed=computed)

    def update(self, aws: Aws, prior: dict[str, Value], planned: dict[str, Value]) -> dict[str, Value]:
        ec2 = aws.client("ec2")
        instance_id = prior["id"]
        for key in UNSUPPORTED_INSTANCE_UPDATES:
            if planned.get(key) is not None and planned.get(key) != prior.get(key):
                raise ValueError(f"{key}: changing it in place is not supported by the provider double")
        if planned.get("monitoring") is not None and planned.get("monitoring") != prior.get("monitoring"):
            (ec2.monitor_instances if planned["monitoring"] else ec2.unmonitor_instances)(InstanceIds=[instance_id])
        if planned.get("metadata_options") and planned.get("metadata_options") != prior.get("metadata_options"):
            options = to_aws(first(planned["metadata_options"]), METADATA)
            ec2.modify_instance_metadata_options(InstanceId=instance_id, **options)
        for key, attribute in (
            ("disable_api_termination", "DisableApiTermination"),
            ("disable_api_stop", "DisableApiStop"),
        ):
            if planned.get(key) is not None and planned.get(key) != prior.get(key):
                ec2.modify_instance_attribute(InstanceId=instance_id, **{attribute: {"Value": bool(planned[key])}})
        groups = planned.get("vpc_security_group_ids")
        if groups and groups != prior.get("vpc_security_group_ids"):
            ec2.modify_instance_attribute(InstanceId=instance_id, Groups=list(groups))
        check = planned.get("source_dest_check")
        if check is not None and check != prior.get("source_dest_check"):
            ec2.modify_instance_attribute(InstanceId=instance_id, SourceDestCheck={"Value": bool(check)})
        behavior = planned.get("instance_initiated_shutdown_behavior")
        if behavior and behavior != prior.get("instance_initiated_shutdown_behavior"):
            ec2.modify_instance_attribute(InstanceId=instance_id, InstanceInitiatedShutdownBehavior={"Value": behavior})
        profile = planned.get("iam_instance_profile")
        if profile is not None and profile != prior.get("iam_instance_profile"):
            self._replace_profile(aws, instance_id, str(profile))
        if planned.get("instance_type") and planned.get("instance_type") != prior.get("instance_type"):
            self._resize(aws, instance_id, str(planned["instance_type"]))
        sync_tags(aws, instance_id, prior, planned)
        instance = describe_instance(aws, instance_id) or {}
        out = fill(planned, **{k: v for k, v in prior.items() if k not in planned or planned.get(k) is None})
        out.update(instance_state=instance.get("State", {}).get("Name", prior.get("instance_state")))
        return out

    def _replace_profile(self, aws: Aws, instance_id: str, profile: str) -> None:
        ec2 = aws.client("ec2")
        associations = ec2.describe_iam_instance_profile_associations(
            Filters=[{"Name": "instance-id", "Values": [instance_id]}]
        )["IamInstanceProfileAssociations"]
        current = [a for a in associations if a.get("State") in ("associating", "associated")]
        if current and profile:
            ec2.replace_iam_instance_profile_association(
                IamInstanceProfile={"Name": profile}, AssociationId=current[0]["AssociationId"]
            )
        elif current:
            ec2.disassociate_iam_instance_profile(AssociationId=current[0]["AssociationId"])
        elif profile:
            ec2.associate_iam_instance_profile(IamInstanceProfile={"Name": profile}, InstanceId=instance_id)

    def _resize(self, aws: Aws, instance_id: str, instance_type: str) -> None:
        ec2 = aws.client("ec2")
        running = (describe_instance(aws, instance_id) or {}).get("State", {}).get("Name") == "running"
        if running:
            ec2.stop_instances(InstanceIds=[instance_id])
            wait_state(aws, instance_id, "stopped")
        ec2.modify_instance_attribute(InstanceId=instance_id, InstanceType={"Value": instance_type})
        if running:
            ec2.start_instances(InstanceIds=[instance_id])
            wait_state(aws, instance_id, "running")

    def delete(self, aws: Aws, state: dict[str, Value]) -> None:
        try:
            aws.client("ec2").terminate_instances(InstanceIds=[state["id"]])
        except ClientError as err:
            if is_not_found(err, "InvalidInstanceID.NotFound"):
                return
            raise
        wait_state(aws, state["id"], "terminated")


class InstanceState(Resource):
    type_name = "aws_ec2_instance_state"
    replace_on = frozenset({"instance_id"})

    def _converge(self, aws: Aws, planned: dict[str, Value]) -> str:
        ec2 = aws.client("ec2")
        instance_id = planned["instance_id"]
        instance = describe_instance(aws, instance_id)
        if instance is None:
            raise ValueError(f"instance_id: instance {instance_id} not found")
        current, target = instance["State"]["Name"], planned["state"]
        if target not in ("running", "stopped"):
            raise ValueError(f"state: {target!r} is not one of running, stopped")
        if current in ("pending", "stopping"):
            current = wait_state(aws, instance_id, "running" if current == "pending" else "stopped")["State"]["Name"]
        if current != target:
            if target == "stopped":
                ec2.stop_instances(InstanceIds=[instance_id], Force=bool(planned.get("force")))
            else:
                ec2.start_instances(InstanceIds=[instance_id])
            wait_state(aws, instance_id, target)
        return str(target)

    def create(self, aws: Aws, planned: dict[str, Value]) -> dict[str, Value]:
        self._converge(aws, planned)
        return fill(planned, id=planned["instance_id"], region=aws.region)

    def read(self, aws: Aws, state: dict[str, Value]) -> dict[str, Value] | None:
        instance = describe_instance(aws, state["id"])
        if instance is None or instance["State"]["Name"] == "terminated":
            return None
        return refresh(state, {"state": instance["State"]["Name"], "instance_id": instance["InstanceId"]})

    def update(self, aws: Aws, prior: dict[str, Value], planned: dict[str, Value]) -> dict[str, Value]:
        self._converge(aws, planned)
        return fill(planned, id=prior["id"], region=prior.get("region"))

    def delete(self, aws: Aws, state: dict[str, Value]) -> None:
        """The provider leaves the instance as it is: the state resource only drops out of Terraform's state."""


register_resource(Instance())
register_resource(InstanceState())
