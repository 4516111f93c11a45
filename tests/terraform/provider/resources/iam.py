"""IAM: aws_iam_role, aws_iam_role_policy, aws_iam_role_policy_attachment, aws_iam_instance_profile."""

from __future__ import annotations

import json
from urllib.parse import unquote

from tests.terraform.provider.resources.base import (
    Aws,
    Resource,
    Value,
    drop_none,
    fill,
    is_not_found,
    refresh,
    register_resource,
    resource_name,
    same_json,
    split_tags,
    tag_list,
    tag_map,
    tags_to_send,
    unless_gone,
)


def document_text(document: Value) -> str:
    """A policy document as botocore hands it back (a dict, or URL-encoded JSON text) -> JSON text."""
    if isinstance(document, str):
        return unquote(document)
    return json.dumps(document)


def kept(configured: str | None, observed: Value) -> str:
    """The configured policy text when AWS's copy means the same (the provider does this too)."""
    text = document_text(observed)
    return configured if configured is not None and same_json(configured, text) else text


def role_name(value: str) -> str:
    """The role as a name: the provider accepts a role's name (its id) or its ARN."""
    return value.rsplit("/", 1)[-1] if value.startswith("arn:") else value


class Role(Resource):
    type_name = "aws_iam_role"
    replace_on = frozenset({"name", "name_prefix", "path"})

    def create(self, aws: Aws, planned: dict[str, Value]) -> dict[str, Value]:
        iam = aws.client("iam")
        name = resource_name(planned)
        tags = tag_list(tags_to_send(planned))
        role = iam.create_role(
            **drop_none(
                RoleName=name,
                AssumeRolePolicyDocument=planned["assume_role_policy"],
                Description=planned.get("description"),
                MaxSessionDuration=_int(planned.get("max_session_duration")),
                Path=planned.get("path"),
                PermissionsBoundary=planned.get("permissions_boundary"),
                Tags=tags or None,
            )
        )["Role"]
        for policy in planned.get("inline_policy") or []:
            if policy.get("name") and policy.get("policy"):
                iam.put_role_policy(RoleName=name, PolicyName=policy["name"], PolicyDocument=policy["policy"])
        for policy_arn in planned.get("managed_policy_arns") or []:
            iam.attach_role_policy(RoleName=name, PolicyArn=policy_arn)
        return fill(
            planned,
            id=name,
            name=name,
            name_prefix="",
            arn=role["Arn"],
            unique_id=role["RoleId"],
            create_date=_timestamp(role["CreateDate"]),
            managed_policy_arns=list(planned.get("managed_policy_arns") or []),
        )

    def read(self, aws: Aws, state: dict[str, Value]) -> dict[str, Value] | None:
        iam = aws.client("iam")
        try:
            role = iam.get_role(RoleName=state["id"])["Role"]
        except Exception as err:
            if is_not_found(err, "NoSuchEntity"):
                return None
            raise
        attached = [p["PolicyArn"] for p in iam.list_attached_role_policies(RoleName=state["id"])["AttachedPolicies"]]
        tags = tag_map(iam.list_role_tags(RoleName=state["id"]).get("Tags"))
        observed: dict[str, Value] = {
            "arn": role["Arn"],
            "name": role["RoleName"],
            "unique_id": role["RoleId"],
            "path": role.get("Path", "/"),
            "description": role.get("Description"),
            "max_session_duration": role.get("MaxSessionDuration"),
            "assume_role_policy": kept(state.get("assume_role_policy"), role["AssumeRolePolicyDocument"]),
            "managed_policy_arns": sorted(attached)
            if sorted(attached) != sorted(state.get("managed_policy_arns") or [])
            else state.get("managed_policy_arns"),
            **split_tags(aws, state, tags),
        }
        if state.get("inline_policy"):
            observed["inline_policy"] = self._inline(aws, state["id"], state["inline_policy"])
        return refresh(state, observed, computed=("arn", "unique_id", "managed_policy_arns", "tags_all"))

    def _inline(self, aws: Aws, name: str, prior: list[dict[str, Value]]) -> list[dict[str, Value]]:
        iam = aws.client("iam")
        configured = {p.get("name"): p.get("policy") for p in prior}
        out = []
        for policy_name in iam.list_role_policies(RoleName=name)["PolicyNames"]:
            doc = iam.get_role_policy(RoleName=name, PolicyName=policy_name)["PolicyDocument"]
            out.append({"name": policy_name, "policy": kept(configured.get(policy_name), doc)})
        return out

    def update(self, aws: Aws, prior: dict[str, Value], planned: dict[str, Value]) -> dict[str, Value]:
        iam = aws.client("iam")
        name = prior["id"]
        if not same_json(planned["assume_role_policy"], prior.get("assume_role_policy")):
            iam.update_assume_role_policy(RoleName=name, PolicyDocument=planned["assume_role_policy"])
        if planned.get("description") != prior.get("description"):
            iam.update_role_description(RoleName=name, Description=planned.get("description") or "")
        if planned.get("max_session_duration") != prior.get("max_session_duration") and planned.get(
            "max_session_duration"
        ):
            iam.update_role(RoleName=name, MaxSessionDuration=int(planned["max_session_duration"]))
        if planned.get("permissions_boundary") != prior.get("permissions_boundary"):
            if planned.get("permissions_boundary"):
                iam.put_role_permissions_boundary(RoleName=name, PermissionsBoundary=planned["permissions_boundary"])
            else:
                iam.delete_role_permissions_boundary(RoleName=name)
        old, new = prior.get("tags_all") or {}, tags_to_send(planned)
        if gone := [k for k in old if k not in new]:
            iam.untag_role(RoleName=name, TagKeys=gone)
        if new and new != old:
            iam.tag_role(RoleName=name, Tags=tag_list(new))
        if planned.get("managed_policy_arns") is not None:
            want, had = set(planned["managed_policy_arns"]), set(prior.get("managed_policy_arns") or [])
            for policy_arn in had - want:
                iam.detach_role_policy(RoleName=name, PolicyArn=policy_arn)
            for policy_arn in want - had:
                iam.attach_role_policy(RoleName=name, PolicyArn=policy_arn)
        keep = ("id", "name", "name_prefix", "arn", "unique_id", "create_date", "managed_policy_arns")
        return fill(planned, **{k: prior.get(k) for k in keep})

    def delete(self, aws: Aws, state: dict[str, Value]) -> None:
        iam = aws.client("iam")
        name = state["id"]
        # The provider always takes the role out of its instance profiles first; policies only when asked to.
        try:
            profiles = iam.list_instance_profiles_for_role(RoleName=name)["InstanceProfiles"]
        except Exception as err:
            if is_not_found(err, "NoSuchEntity"):
                return
            raise
        for profile in profiles:
            iam.remove_role_from_instance_profile(InstanceProfileName=profile["InstanceProfileName"], RoleName=name)
        if state.get("force_detach_policies"):
            for policy in iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]:
                iam.detach_role_policy(RoleName=name, PolicyArn=policy["PolicyArn"])
            for policy_name in iam.list_role_policies(RoleName=name)["PolicyNames"]:
                iam.delete_role_policy(RoleName=name, PolicyName=policy_name)
        for policy in state.get("inline_policy") or []:
            if policy.get("name"):
                iam.delete_role_policy(RoleName=name, PolicyName=policy["name"])
        with unless_gone("NoSuchEntity"):
            iam.delete_role(RoleName=name)


class RolePolicy(Resource):
    type_name = "aws_iam_role_policy"
    replace_on = frozenset({"name", "name_prefix", "role"})

    def create(self, aws: Aws, planned: dict[str, Value]) -> dict[str, Value]:
        name = resource_name(planned)
        role = role_name(planned["role"])
        # The document goes to AWS exactly as rendered (no reformatting), as the provider sends it.
        aws.client("iam").put_role_policy(RoleName=role, PolicyName=name, PolicyDocument=planned["policy"])
        return fill(planned, id=f"{role}:{name}", name=name, name_prefix="")

    def read(self, aws: Aws, state: dict[str, Value]) -> dict[str, Value] | None:
        role, name = state["id"].split(":", 1)
        try:
            got = aws.client("iam").get_role_policy(RoleName=role, PolicyName=name)
        except Exception as err:
            if is_not_found(err, "NoSuchEntity"):
                return None
            raise
        observed = {"name": got["PolicyName"], "policy": kept(state.get("policy"), got["PolicyDocument"])}
        return refresh(state, observed)

    def update(self, aws: Aws, prior: dict[str, Value], planned: dict[str, Value]) -> dict[str, Value]:
        role, name = prior["id"].split(":", 1)
        aws.client("iam").put_role_policy(RoleName=role, PolicyName=name, PolicyDocument=planned["policy"])
        return fill(planned, id=prior["id"], name=name, name_prefix=prior.get("name_prefix"))

    def delete(self, aws: Aws, state: dict[str, Value]) -> None:
        role, name = state["id"].split(":", 1)
        try:
            aws.client("iam").delete_role_policy(RoleName=role, PolicyName=name)
        except Exception as err:
            if not is_not_found(err, "NoSuchEntity"):
                raise


class RolePolicyAttachment(Resource):
    type_name = "aws_iam_role_policy_attachment"
    replace_on = frozenset({"role", "policy_arn"})

    def create(self, aws: Aws, planned: dict[str, Value]) -> dict[str, Value]:
        role = role_name(planned["role"])
        aws.client("iam").attach_role_policy(RoleName=role, PolicyArn=planned["policy_arn"])
        return fill(planned, id=f"{role}/{planned['policy_arn']}")

    def read(self, aws: Aws, state: dict[str, Value]) -> dict[str, Value] | None:
        role = role_name(state["role"])
        try:
            pages = aws.client("iam").get_paginator("list_attached_role_policies").paginate(RoleName=role)
            attached = [p["PolicyArn"] for page in pages for p in page["AttachedPolicies"]]
        except Exception as err:
            if is_not_found(err, "NoSuchEntity"):
                return None
            raise
        return dict(state) if state["policy_arn"] in attached else None

    def update(self, aws: Aws, prior: dict[str, Value], planned: dict[str, Value]) -> dict[str, Value]:
        return fill(planned, id=prior["id"])  # both arguments force a new attachment: nothing to change in place

    def delete(self, aws: Aws, state: dict[str, Value]) -> None:
        try:
            aws.client("iam").detach_role_policy(RoleName=role_name(state["role"]), PolicyArn=state["policy_arn"])
        except Exception as err:
            if not is_not_found(err, "NoSuchEntity"):
                raise


class InstanceProfile(Resource):
    type_name = "aws_iam_instance_profile"
    replace_on = frozenset({"name", "name_prefix", "path"})

    def create(self, aws: Aws, planned: dict[str, Value]) -> dict[str, Value]:
        iam = aws.client("iam")
        name = resource_name(planned)
        tags = tag_list(tags_to_send(planned))
        profile = iam.create_instance_profile(
            **drop_none(InstanceProfileName=name, Path=planned.get("path"), Tags=tags or None)
        )["InstanceProfile"]
        if planned.get("role"):
            iam.add_role_to_instance_profile(InstanceProfileName=name, RoleName=role_name(planned["role"]))
        return fill(
            planned,
            id=name,
            name=name,
            name_prefix="",
            arn=profile["Arn"],
            unique_id=profile["InstanceProfileId"],
            create_date=_timestamp(profile["CreateDate"]),
        )

    def read(self, aws: Aws, state: dict[str, Value]) -> dict[str, Value] | None:
        iam = aws.client("iam")
        try:
            profile = iam.get_instance_profile(InstanceProfileName=state["id"])["InstanceProfile"]
        except Exception as err:
            if is_not_found(err, "NoSuchEntity"):
                return None
            raise
        roles = [r["RoleName"] for r in profile.get("Roles", [])]
        # GetInstanceProfile carries the tags (moto 5.2 has no ListInstanceProfileTags).
        tags = tag_map(profile.get("Tags"))
        observed = {
            "arn": profile["Arn"],
            "unique_id": profile["InstanceProfileId"],
            "path": profile.get("Path"),
            "role": roles[0] if roles else "",
            **split_tags(aws, state, tags),
        }
        return refresh(state, observed, computed=("arn", "unique_id", "tags_all"))

    def update(self, aws: Aws, prior: dict[str, Value], planned: dict[str, Value]) -> dict[str, Value]:
        iam = aws.client("iam")
        name = prior["id"]
        if planned.get("role") != prior.get("role"):
            if prior.get("role"):
                iam.remove_role_from_instance_profile(InstanceProfileName=name, RoleName=role_name(prior["role"]))
            if planned.get("role"):
                iam.add_role_to_instance_profile(InstanceProfileName=name, RoleName=role_name(planned["role"]))
        old, new = prior.get("tags_all") or {}, tags_to_send(planned)
        if gone := [k for k in old if k not in new]:
            iam.untag_instance_profile(InstanceProfileName=name, TagKeys=gone)
        if new and new != old:
            iam.tag_instance_profile(InstanceProfileName=name, Tags=tag_list(new))
        return fill(
            planned, **{k: prior.get(k) for k in ("id", "name", "name_prefix", "arn", "unique_id", "create_date")}
        )

    def delete(self, aws: Aws, state: dict[str, Value]) -> None:
        iam = aws.client("iam")
        try:
            profile = iam.get_instance_profile(InstanceProfileName=state["id"])["InstanceProfile"]
        except Exception as err:
            if is_not_found(err, "NoSuchEntity"):
                return
            raise
        for role in profile.get("Roles", []):
            iam.remove_role_from_instance_profile(InstanceProfileName=state["id"], RoleName=role["RoleName"])
        iam.delete_instance_profile(InstanceProfileName=state["id"])


def _int(value: Value) -> int | None:
    return None if value is None else int(value)


def _timestamp(value: Value) -> str:
    """RFC 3339, as the provider writes create_date."""
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if hasattr(value, "strftime") else str(value)


register_resource(Role())
register_resource(RolePolicy())
register_resource(RolePolicyAttachment())
register_resource(InstanceProfile())
