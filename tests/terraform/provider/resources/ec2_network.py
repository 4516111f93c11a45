"""EC2 networking: aws_security_group, aws_vpc_security_group_egress_rule."""

from __future__ import annotations

from botocore.exceptions import ClientError

from tests.terraform.provider.resources.base import (
    Aws,
    Resource,
    Value,
    arn,
    drop_none,
    fill,
    is_not_found,
    refresh,
    register_resource,
    resource_name,
    split_tags,
    tag_map,
    tags_to_send,
)
from tests.terraform.provider.resources.ec2_common import sync_tags, tag_spec

DEFAULT_SG_DESCRIPTION = "Managed by Terraform"


# --- security groups ---------------------------------------------------------------------------------------


def rule_blocks(permissions: list[dict[str, Value]], group_id: str) -> list[dict[str, Value]]:
    """IpPermissions as the provider's ingress/egress blocks (one block per permission)."""
    blocks = []
    for p in permissions:
        groups = [g["GroupId"] for g in p.get("UserIdGroupPairs", []) if g.get("GroupId") != group_id]
        descriptions = [r.get("Description") for r in p.get("IpRanges", []) if r.get("Description")]
        blocks.append(
            {
                "cidr_blocks": [r["CidrIp"] for r in p.get("IpRanges", [])],
                "ipv6_cidr_blocks": [r["CidrIpv6"] for r in p.get("Ipv6Ranges", [])],
                "prefix_list_ids": [r["PrefixListId"] for r in p.get("PrefixListIds", [])],
                "security_groups": groups,
                "self": any(g.get("GroupId") == group_id for g in p.get("UserIdGroupPairs", [])),
                "protocol": p.get("IpProtocol"),
                "from_port": p.get("FromPort", 0),
                "to_port": p.get("ToPort", 0),
                "description": descriptions[0] if descriptions else "",
            }
        )
    return blocks


def rule_permission(block: dict[str, Value], group_id: str) -> dict[str, Value]:
    permission: dict[str, Value] = {"IpProtocol": str(block.get("protocol") or "-1")}
    if permission["IpProtocol"] not in ("-1", "all"):
        permission.update(FromPort=int(block.get("from_port") or 0), ToPort=int(block.get("to_port") or 0))
    description = block.get("description") or None
    permission["IpRanges"] = [drop_none(CidrIp=c, Description=description) for c in block.get("cidr_blocks") or []]
    permission["Ipv6Ranges"] = [
        drop_none(CidrIpv6=c, Description=description) for c in block.get("ipv6_cidr_blocks") or []
    ]
    permission["PrefixListIds"] = [{"PrefixListId": p} for p in block.get("prefix_list_ids") or []]
    groups = list(block.get("security_groups") or []) + ([group_id] if block.get("self") else [])
    permission["UserIdGroupPairs"] = [{"GroupId": g} for g in groups]
    return permission


class SecurityGroup(Resource):
    type_name = "aws_security_group"
    replace_on = frozenset({"name", "name_prefix", "description", "vpc_id"})

    def create(self, aws: Aws, planned: dict[str, Value]) -> dict[str, Value]:
        ec2 = aws.client("ec2")
        name = resource_name(planned)
        vpc_id = planned.get("vpc_id") or self._default_vpc(aws)
        group_id = ec2.create_security_group(
            GroupName=name,
            Description=planned.get("description") or DEFAULT_SG_DESCRIPTION,
            VpcId=vpc_id,
            TagSpecifications=tag_spec("security-group", tags_to_send(planned)),
        )["GroupId"]
        group = self._describe(aws, group_id)
        # The provider revokes AWS's default allow-all egress rule: egress is only what the configuration says.
        if group and group.get("IpPermissionsEgress"):
            ec2.revoke_security_group_egress(GroupId=group_id, IpPermissions=group["IpPermissionsEgress"])
        for key, authorize in (
            ("egress", ec2.authorize_security_group_egress),
            ("ingress", ec2.authorize_security_group_ingress),
        ):
            permissions = [rule_permission(b, group_id) for b in planned.get(key) or []]
            if permissions:
                authorize(GroupId=group_id, IpPermissions=permissions)
        group = self._describe(aws, group_id) or {}
        return fill(
            planned,
            id=group_id,
            arn=arn(aws, "ec2", f"security-group/{group_id}"),
            name=name,
            name_prefix="",
            owner_id=group.get("OwnerId", aws.account_id),
            vpc_id=vpc_id,
            egress=rule_blocks(group.get("IpPermissionsEgress", []), group_id),
            ingress=rule_blocks(group.get("IpPermissions", []), group_id),
            region=aws.region,
        )

    def _default_vpc(self, aws: Aws) -> str:
        vpcs = aws.client("ec2").describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"]
        if not vpcs:
            raise ValueError("vpc_id: not set and the account has no default VPC")
        return str(vpcs[0]["VpcId"])

    def _describe(self, aws: Aws, group_id: str) -> dict[str, Value] | None:
        try:
            groups = aws.client("ec2").describe_security_groups(GroupIds=[group_id])["SecurityGroups"]
        except ClientError as err:
            if is_not_found(err, "InvalidGroup.NotFound"):
                return None
            raise
        return groups[0] if groups else None

    def read(self, aws: Aws, state: dict[str, Value]) -> dict[str, Value] | None:
        group = self._describe(aws, state["id"])
        if group is None:
            return None
        tags = tag_map(group.get("Tags"))
        observed = {
            "name": group["GroupName"],
            "description": group.get("Description"),
            "vpc_id": group.get("VpcId"),
            "owner_id": group.get("OwnerId"),
            "egress": rule_blocks(group.get("IpPermissionsEgress", []), state["id"]),
            "ingress": rule_blocks(group.get("IpPermissions", []), state["id"]),
            **split_tags(aws, state, tags),
        }
        return refresh(state, observed, computed=("owner_id", "egress", "ingress", "tags_all"))

    def update(self, aws: Aws, prior: dict[str, Value], planned: dict[str, Value]) -> dict[str, Value]:
        ec2 = aws.client("ec2")
        group_id = prior["id"]
        directions = (
            ("egress", ec2.authorize_security_group_egress, ec2.revoke_security_group_egress),
            ("ingress", ec2.authorize_security_group_ingress, ec2.revoke_security_group_ingress),
        )
        for key, authorize, revoke in directions:
            if planned.get(key) is None or planned.get(key) == prior.get(key):
                continue  # left to AWS (computed) or unchanged
            if old := [rule_permission(b, group_id) for b in prior.get(key) or []]:
                revoke(GroupId=group_id, IpPermissions=old)
            if new := [rule_permission(b, group_id) for b in planned.get(key) or []]:
                authorize(GroupId=group_id, IpPermissions=new)
        sync_tags(aws, group_id, prior, planned)
        group = self._describe(aws, group_id) or {}
        return fill(
            planned,
            **{k: prior.get(k) for k in ("id", "arn", "name", "name_prefix", "owner_id", "vpc_id", "region")},
            egress=rule_blocks(group.get("IpPermissionsEgress", []), group_id),
            ingress=rule_blocks(group.get("IpPermissions", []), group_id),
        )

    def delete(self, aws: Aws, state: dict[str, Value]) -> None:
        ec2 = aws.client("ec2")
        group = self._describe(aws, state["id"])
        if group is None:
            return
        if state.get("revoke_rules_on_delete"):
            if group.get("IpPermissionsEgress"):
                ec2.revoke_security_group_egress(GroupId=state["id"], IpPermissions=group["IpPermissionsEgress"])
            if group.get("IpPermissions"):
                ec2.revoke_security_group_ingress(GroupId=state["id"], IpPermissions=group["IpPermissions"])
        ec2.delete_security_group(GroupId=state["id"])


# The rule itself (a change to any of them is a ModifySecurityGroupRules; tags alone are only retagged).
RULE_ARGUMENTS = (
    "ip_protocol",
    "from_port",
    "to_port",
    "cidr_ipv4",
    "cidr_ipv6",
    "prefix_list_id",
    "referenced_security_group_id",
    "description",
)


class SecurityGroupEgressRule(Resource):
    type_name = "aws_vpc_security_group_egress_rule"
    replace_on = frozenset({"security_group_id"})

    def _permission(self, planned: dict[str, Value]) -> dict[str, Value]:
        protocol = str(planned["ip_protocol"])
        permission: dict[str, Value] = {"IpProtocol": protocol}
        if protocol not in ("-1", "all") and planned.get("from_port") is not None:
            permission.update(
                FromPort=int(planned["from_port"]), ToPort=int(planned.get("to_port") or planned["from_port"])
            )
        description = planned.get("description")
        if planned.get("cidr_ipv4"):
            permission["IpRanges"] = [drop_none(CidrIp=planned["cidr_ipv4"], Description=description)]
        if planned.get("cidr_ipv6"):
            permission["Ipv6Ranges"] = [drop_none(CidrIpv6=planned["cidr_ipv6"], Description=description)]
        if planned.get("prefix_list_id"):
            permission["PrefixListIds"] = [drop_none(PrefixListId=planned["prefix_list_id"], Description=description)]
        if planned.get("referenced_security_group_id"):
            permission["UserIdGroupPairs"] = [
                drop_none(GroupId=planned["referenced_security_group_id"], Description=description)
            ]
        return permission

    def create(self, aws: Aws, planned: dict[str, Value]) -> dict[str, Value]:
        got = aws.client("ec2").authorize_security_group_egress(
            GroupId=planned["security_group_id"],
            IpPermissions=[self._permission(planned)],
            TagSpecifications=tag_spec("security-group-rule", tags_to_send(planned)),
        )
        rule_id = got["SecurityGroupRules"][0]["SecurityGroupRuleId"]
        return fill(
            planned,
            id=rule_id,
            security_group_rule_id=rule_id,
            arn=arn(aws, "ec2", f"security-group-rule/{rule_id}"),
            region=aws.region,
        )

    def _describe(self, aws: Aws, rule_id: str) -> dict[str, Value] | None:
        try:
            rules = aws.client("ec2").describe_security_group_rules(SecurityGroupRuleIds=[rule_id])[
                "SecurityGroupRules"
            ]
        except ClientError as err:
            if is_not_found(err, "InvalidSecurityGroupRuleId.NotFound", "InvalidGroup.NotFound"):
                return None
            raise
        return rules[0] if rules else None

    def read(self, aws: Aws, state: dict[str, Value]) -> dict[str, Value] | None:
        rule = self._describe(aws, state["id"])
        if rule is None:
            return None
        tags = tag_map(rule.get("Tags"))
        protocol = rule.get("IpProtocol")
        observed = {
            "security_group_id": rule["GroupId"],
            "ip_protocol": state.get("ip_protocol") if str(state.get("ip_protocol")) == str(protocol) else protocol,
            "from_port": rule.get("FromPort"),
            "to_port": rule.get("ToPort"),
            "cidr_ipv4": rule.get("CidrIpv4"),
            "cidr_ipv6": rule.get("CidrIpv6"),
            "prefix_list_id": rule.get("PrefixListId"),
            "referenced_security_group_id": (rule.get("ReferencedGroupInfo") or {}).get("GroupId"),
            "description": rule.get("Description"),
            **split_tags(aws, state, tags),
        }
        if "Description" not in rule:
            # moto 5.2 drops the description of a rule that references a group; AWS keeps it.
            observed.pop("description")
        return refresh(state, observed, computed=("tags_all",))

    def update(self, aws: Aws, prior: dict[str, Value], planned: dict[str, Value]) -> dict[str, Value]:
        if any(planned.get(k) != prior.get(k) for k in RULE_ARGUMENTS):
            self._modify(aws, prior["id"], planned)
        sync_tags(aws, prior["id"], prior, planned)
        return fill(planned, **{k: prior.get(k) for k in ("id", "security_group_rule_id", "arn", "region")})

    def _modify(self, aws: Aws, rule_id: str, planned: dict[str, Value]) -> None:
        request: dict[str, Value] = {"IpProtocol": str(planned["ip_protocol"])}
        for key, param in (("from_port", "FromPort"), ("to_port", "ToPort")):
            if planned.get(key) is not None:
                request[param] = int(planned[key])
        if request["IpProtocol"] in ("-1", "all") and "FromPort" not in request:
            # -1/-1 means every port, which AWS takes too; moto 5.2 refuses a modification without ports.
            request.update(FromPort=-1, ToPort=-1)
        for key, param in (
            ("cidr_ipv4", "CidrIpv4"),
            ("cidr_ipv6", "CidrIpv6"),
            ("prefix_list_id", "PrefixListId"),
            ("referenced_security_group_id", "ReferencedGroupId"),
            ("description", "Description"),
        ):
            if planned.get(key):
                request[param] = planned[key]
        aws.client("ec2").modify_security_group_rules(
            GroupId=planned["security_group_id"],
            SecurityGroupRules=[{"SecurityGroupRuleId": rule_id, "SecurityGroupRule": request}],
        )

    def delete(self, aws: Aws, state: dict[str, Value]) -> None:
        try:
            aws.client("ec2").revoke_security_group_egress(
                GroupId=state["security_group_id"], SecurityGroupRuleIds=[state["id"]]
            )
        except ClientError as err:
            if not is_not_found(err, "InvalidSecurityGroupRuleId.NotFound", "InvalidGroup.NotFound"):
                raise


register_resource(SecurityGroup())
register_resource(SecurityGroupEgressRule())
