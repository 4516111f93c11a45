"""KMS: aws_kms_key, aws_kms_alias."""

from __future__ import annotations

import uuid

from tests.terraform.provider.resources.base import (
    Aws,
    Resource,
    Value,
    arn,
    drop_none,
    fill,
    is_not_found,
    json_kept,
    refresh,
    register_resource,
    split_tags,
    tag_list,
    tag_map,
    tags_to_send,
)


class Key(Resource):
    type_name = "aws_kms_key"
    replace_on = frozenset(
        {"customer_master_key_spec", "key_usage", "multi_region", "custom_key_store_id", "xks_key_id"}
    )

    def create(self, aws: Aws, planned: dict[str, Value]) -> dict[str, Value]:
        kms = aws.client("kms")
        tags = tag_list(tags_to_send(planned), key="TagKey", value="TagValue")
        meta = kms.create_key(
            **drop_none(
                Description=planned.get("description"),
                KeyUsage=planned.get("key_usage"),
                KeySpec=planned.get("customer_master_key_spec"),
                Policy=planned.get("policy"),
                MultiRegion=planned.get("multi_region"),
                BypassPolicyLockoutSafetyCheck=planned.get("bypass_policy_lockout_safety_check") or None,
                CustomKeyStoreId=planned.get("custom_key_store_id"),
                Tags=tags or None,
            )
        )["KeyMetadata"]
        key_id = meta["KeyId"]
        if planned.get("enable_key_rotation"):
            kms.enable_key_rotation(
                **drop_none(KeyId=key_id, RotationPeriodInDays=_int(planned.get("rotation_period_in_days")))
            )
        if planned.get("is_enabled") is False:
            kms.disable_key(KeyId=key_id)
        policy = kms.get_key_policy(KeyId=key_id, PolicyName="default")["Policy"]
        return fill(
            planned,
            id=key_id,
            key_id=key_id,
            arn=meta["Arn"],
            description=meta.get("Description", ""),
            multi_region=meta.get("MultiRegion", False),
            policy=policy,
            rotation_period_in_days=365 if planned.get("enable_key_rotation") else 0,
            region=aws.region,
        )

    def read(self, aws: Aws, state: dict[str, Value]) -> dict[str, Value] | None:
        kms = aws.client("kms")
        try:
            meta = kms.describe_key(KeyId=state["id"])["KeyMetadata"]
        except Exception as err:
            if is_not_found(err):
                return None
            raise
        # The provider treats a key scheduled for deletion as gone.
        if meta.get("KeyState") == "PendingDeletion":
            return None
        policy = kms.get_key_policy(KeyId=state["id"], PolicyName="default")["Policy"]
        rotation = kms.get_key_rotation_status(KeyId=state["id"])
        tags = tag_map(kms.list_resource_tags(KeyId=state["id"]).get("Tags"), key="TagKey", value="TagValue")
        observed = {
            "arn": meta["Arn"],
            "key_id": meta["KeyId"],
            "description": meta.get("Description", ""),
            "is_enabled": meta.get("Enabled"),
            "key_usage": meta.get("KeyUsage"),
            "customer_master_key_spec": meta.get("KeySpec", meta.get("CustomerMasterKeySpec")),
            "multi_region": meta.get("MultiRegion", False),
            "enable_key_rotation": rotation.get("KeyRotationEnabled", False),
            "policy": json_kept(state.get("policy"), policy),
            **split_tags(aws, state, tags),
        }
        return refresh(state, observed, computed=("arn", "key_id", "description", "multi_region", "policy", "tags_all"))

    def update(self, aws: Aws, prior: dict[str, Value], planned: dict[str, Value]) -> dict[str, Value]:
        kms = aws.client("kms")
        key_id = prior["id"]
        if planned.get("description") is not None and planned.get("description") != prior.get("description"):
            kms.update_key_description(KeyId=key_id, Description=planned["description"])
        if planned.get("policy") is not None and planned.get("policy") != prior.get("policy"):
            kms.put_key_policy(KeyId=key_id, PolicyName="default", Policy=planned["policy"])
        if bool(planned.get("enable_key_rotation")) != bool(prior.get("enable_key_rotation")):
            if planned.get("enable_key_rotation"):
                kms.enable_key_rotation(KeyId=key_id)
            else:
                kms.disable_key_rotation(KeyId=key_id)
        if planned.get("is_enabled") is not None and planned.get("is_enabled") != prior.get("is_enabled"):
            (kms.enable_key if planned["is_enabled"] else kms.disable_key)(KeyId=key_id)
        old, new = prior.get("tags_all") or {}, tags_to_send(planned)
        if gone := [k for k in old if k not in new]:
            kms.untag_resource(KeyId=key_id, TagKeys=gone)
        if new and new != old:
            kms.tag_resource(KeyId=key_id, Tags=tag_list(new, key="TagKey", value="TagValue"))
        keep = ("id", "key_id", "arn", "description", "multi_region", "policy", "rotation_period_in_days", "region")
        return fill(planned, **{k: prior.get(k) for k in keep})

    def delete(self, aws: Aws, state: dict[str, Value]) -> None:
        window = _int(state.get("deletion_window_in_days")) or 30
        try:
            aws.client("kms").schedule_key_deletion(KeyId=state["id"], PendingWindowInDays=window)
        except Exception as err:
            if not is_not_found(err, "KMSInvalidStateException"):
                raise


class Alias(Resource):
    type_name = "aws_kms_alias"
    replace_on = frozenset({"name", "name_prefix"})
    update_unknown = frozenset({"target_key_arn"})  # follows target_key_id

    def create(self, aws: Aws, planned: dict[str, Value]) -> dict[str, Value]:
        kms = aws.client("kms")
        name = planned.get("name") or f"{planned.get('name_prefix') or 'alias/terraform-'}{_suffix()}"
        kms.create_alias(AliasName=name, TargetKeyId=planned["target_key_id"])
        key_arn = kms.describe_key(KeyId=planned["target_key_id"])["KeyMetadata"]["Arn"]
        return fill(
            planned,
            id=name,
            name=name,
            name_prefix="",
            arn=arn(aws, "kms", name),
            target_key_arn=key_arn,
            region=aws.region,
        )

    def _find(self, aws: Aws, name: str) -> dict[str, Value] | None:
        for page in aws.client("kms").get_paginator("list_aliases").paginate():
            for alias in page["Aliases"]:
                if alias["AliasName"] == name and alias.get("TargetKeyId"):
                    return dict(alias)
        return None

    def read(self, aws: Aws, state: dict[str, Value]) -> dict[str, Value] | None:
        alias = self._find(aws, state["id"])
        if alias is None:
            return None
        kms = aws.client("kms")
        key_arn = kms.describe_key(KeyId=alias["TargetKeyId"])["KeyMetadata"]["Arn"]
        # The state keeps the key as configured (id or ARN) when it names the same key.
        target = state.get("target_key_id")
        if target not in (alias["TargetKeyId"], key_arn):
            target = alias["TargetKeyId"]
        observed = {"arn": alias["AliasArn"], "target_key_id": target, "target_key_arn": key_arn}
        return refresh(state, observed, computed=("arn", "target_key_arn"))

    def update(self, aws: Aws, prior: dict[str, Value], planned: dict[str, Value]) -> dict[str, Value]:
        kms = aws.client("kms")
        kms.update_alias(AliasName=prior["id"], TargetKeyId=planned["target_key_id"])
        key_arn = kms.describe_key(KeyId=planned["target_key_id"])["KeyMetadata"]["Arn"]
        out = fill(planned, **{k: prior.get(k) for k in ("id", "name", "name_prefix", "arn", "region")})
        out["target_key_arn"] = key_arn
        return out

    def delete(self, aws: Aws, state: dict[str, Value]) -> None:
        try:
            aws.client("kms").delete_alias(AliasName=state["id"])
        except Exception as err:
            if not is_not_found(err):
                raise


def _int(value: Value) -> int | None:
    return None if value is None else int(value)


def _suffix() -> str:
    return uuid.uuid4().hex[:26]


register_resource(Key())
register_resource(Alias())
