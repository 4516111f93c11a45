"""DynamoDB: aws_dynamodb_table."""

from __future__ import annotations

import time

from tests.terraform.provider.resources.base import (
    Aws,
    Resource,
    Value,
    fill,
    first,
    is_not_found,
    refresh,
    register_resource,
    split_tags,
    tag_list,
    tag_map,
    tags_to_send,
)


def key_schema(hash_key: str | None, range_key: str | None) -> list[dict[str, str]]:
    keys = [{"AttributeName": hash_key, "KeyType": "HASH"}] if hash_key else []
    if range_key:
        keys.append({"AttributeName": range_key, "KeyType": "RANGE"})
    return keys


def throughput(block: dict[str, Value]) -> dict[str, int]:
    return {
        "ReadCapacityUnits": int(block.get("read_capacity") or 0),
        "WriteCapacityUnits": int(block.get("write_capacity") or 0),
    }


def gsi_request(gsi: dict[str, Value], provisioned: bool) -> dict[str, Value]:
    projection: dict[str, Value] = {"ProjectionType": gsi["projection_type"]}
    if gsi.get("non_key_attributes"):
        projection["NonKeyAttributes"] = list(gsi["non_key_attributes"])
    index: dict[str, Value] = {
        "IndexName": gsi["name"],
        "KeySchema": key_schema(gsi.get("hash_key"), gsi.get("range_key")),
        "Projection": projection,
    }
    if provisioned:
        index["ProvisionedThroughput"] = throughput(gsi)
    return index


def wait_active(aws: Aws, name: str) -> dict[str, Value]:
    ddb = aws.client("dynamodb")
    for _ in range(100):
        table = ddb.describe_table(TableName=name)["Table"]
        if table["TableStatus"] == "ACTIVE":
            return dict(table)
        time.sleep(0.1)
    raise RuntimeError(f"table {name} did not become ACTIVE")


class Table(Resource):
    type_name = "aws_dynamodb_table"
    replace_on = frozenset({"name", "hash_key", "range_key", "local_secondary_index"})

    def create(self, aws: Aws, planned: dict[str, Value]) -> dict[str, Value]:
        ddb = aws.client("dynamodb")
        name = planned["name"]
        billing = planned.get("billing_mode") or "PROVISIONED"
        provisioned = billing == "PROVISIONED"
        request: dict[str, Value] = {
            "TableName": name,
            "BillingMode": billing,
            "AttributeDefinitions": [
                {"AttributeName": a["name"], "AttributeType": a["type"]} for a in planned.get("attribute") or []
            ],
            "KeySchema": key_schema(planned.get("hash_key"), planned.get("range_key")),
        }
        if provisioned:
            request["ProvisionedThroughput"] = throughput(planned)
        if gsis := planned.get("global_secondary_index"):
            request["GlobalSecondaryIndexes"] = [gsi_request(g, provisioned) for g in gsis]
        if lsis := planned.get("local_secondary_index"):
            request["LocalSecondaryIndexes"] = [
                {
                    "IndexName": lsi["name"],
                    "KeySchema": key_schema(planned.get("hash_key"), lsi["range_key"]),
                    "Projection": {"ProjectionType": lsi["projection_type"]},
                }
                for lsi in lsis
            ]
        sse = first(planned.get("server_side_encryption"))
        if sse and sse.get("enabled"):
            request["SSESpecification"] = {"Enabled": True, "SSEType": "KMS"}
            if sse.get("kms_key_arn"):
                request["SSESpecification"]["KMSMasterKeyId"] = sse["kms_key_arn"]
        if planned.get("stream_enabled"):
            request["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": planned["stream_view_type"]}
        if planned.get("table_class"):
            request["TableClass"] = planned["table_class"]
        if planned.get("deletion_protection_enabled") is not None:
            request["DeletionProtectionEnabled"] = bool(planned["deletion_protection_enabled"])
        if tags := tag_list(tags_to_send(planned)):
            request["Tags"] = tags
        ddb.create_table(**request)
        table = wait_active(aws, name)
        self._apply_ttl(aws, name, planned, None)
        self._apply_pitr(aws, name, planned, None)
        out = fill(
            planned,
            id=name,
            arn=table["TableArn"],
            hash_key=planned.get("hash_key"),
            read_capacity=table.get("ProvisionedThroughput", {}).get("ReadCapacityUnits", 0),
            write_capacity=table.get("ProvisionedThroughput", {}).get("WriteCapacityUnits", 0),
            stream_arn=table.get("LatestStreamArn", ""),
            stream_label=table.get("LatestStreamLabel", ""),
            stream_view_type=table.get("StreamSpecification", {}).get("StreamViewType", ""),
            region=aws.region,
        )
        out["server_side_encryption"] = self._sse(table, planned.get("server_side_encryption"))
        out["point_in_time_recovery"] = self._pitr_block(aws, name, planned.get("point_in_time_recovery"))
        return out

    def _apply_ttl(self, aws: Aws, name: str, planned: dict[str, Value], prior: dict[str, Value] | None) -> None:
        want = first(planned.get("ttl")) or {}
        had = first((prior or {}).get("ttl")) or {}
        if bool(want.get("enabled")) == bool(had.get("enabled")) and want.get("attribute_name") == had.get(
            "attribute_name"
        ):
            return
        if want.get("enabled"):
            spec = {"Enabled": True, "AttributeName": want["attribute_name"]}
        elif had.get("enabled"):
            spec = {"Enabled": False, "AttributeName": had["attribute_name"]}
        else:
            return
        aws.client("dynamodb").update_time_to_live(TableName=name, TimeToLiveSpecification=spec)

    def _apply_pitr(self, aws: Aws, name: str, planned: dict[str, Value], prior: dict[str, Value] | None) -> None:
        want = bool((first(planned.get("point_in_time_recovery")) or {}).get("enabled"))
        had = bool((first((prior or {}).get("point_in_time_recovery")) or {}).get("enabled"))
        if want != had:
            aws.client("dynamodb").update_continuous_backups(
                TableName=name, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": want}
            )

    def _sse(self, table: dict[str, Value], configured: list[dict[str, Value]] | None) -> list[dict[str, Value]]:
        if not configured:
            return []
        got = table.get("SSEDescription") or {}
        prior = first(configured) or {}
        enabled = got.get("Status") in ("ENABLED", "ENABLING")
        return [{"enabled": enabled, "kms_key_arn": prior.get("kms_key_arn") or got.get("KMSMasterKeyArn", "")}]

    def _pitr_block(self, aws: Aws, name: str, configured: list[dict[str, Value]] | None) -> list[dict[str, Value]]:
        if not configured:
            return []
        got = aws.client("dynamodb").describe_continuous_backups(TableName=name)["ContinuousBackupsDescription"]
        pitr = got.get("PointInTimeRecoveryDescription", {})
        return [
            {
                "enabled": pitr.get("PointInTimeRecoveryStatus") == "ENABLED",
                "recovery_period_in_days": pitr.get("RecoveryPeriodInDays", 35),
            }
        ]

    def read(self, aws: Aws, state: dict[str, Value]) -> dict[str, Value] | None:
        ddb = aws.client("dynamodb")
        name = state["id"]
        try:
            table = ddb.describe_table(TableName=name)["Table"]
        except Exception as err:
            if is_not_found(err, "ResourceNotFoundException"):
                return None
            raise
        keys = {k["KeyType"]: k["AttributeName"] for k in table["KeySchema"]}
        ttl = ddb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
        tags = tag_map(ddb.list_tags_of_resource(ResourceArn=table["TableArn"]).get("Tags"))
        billing = table.get("BillingModeSummary", {}).get("BillingMode", "PROVISIONED")
        observed: dict[str, Value] = {
            "arn": table["TableArn"],
            "name": table["TableName"],
            "hash_key": keys.get("HASH"),
            "range_key": keys.get("RANGE"),
            "billing_mode": billing,
            "attribute": [
                {"name": a["AttributeName"], "type": a["AttributeType"]} for a in table["AttributeDefinitions"]
            ],
            "deletion_protection_enabled": table.get("DeletionProtectionEnabled", False),
            "server_side_encryption": self._sse(table, state.get("server_side_encryption")),
            "point_in_time_recovery": self._pitr_block(aws, name, state.get("point_in_time_recovery")),
            "stream_arn": table.get("LatestStreamArn", ""),
            "stream_label": table.get("LatestStreamLabel", ""),
            **split_tags(aws, state, tags),
        }
        if state.get("ttl"):
            prior_ttl = first(state["ttl"]) or {}
            enabled = ttl.get("TimeToLiveStatus") in ("ENABLED", "ENABLING")
            observed["ttl"] = [
                {"enabled": enabled, "attribute_name": ttl.get("AttributeName", prior_ttl.get("attribute_name") or "")}
            ]
        # Attribute definitions come back in any order: keep the state's order when the set is the same.
        if state.get("attribute") and _same_set(state["attribute"], observed["attribute"]):
            observed["attribute"] = state["attribute"]
        return refresh(state, observed, computed=("arn", "hash_key", "stream_arn", "stream_label", "tags_all"))

    def update(self, aws: Aws, prior: dict[str, Value], planned: dict[str, Value]) -> dict[str, Value]:
        ddb = aws.client("dynamodb")
        name = prior["id"]
        request: dict[str, Value] = {}
        if planned.get("billing_mode") != prior.get("billing_mode"):
            request["BillingMode"] = planned.get("billing_mode") or "PROVISIONED"
        if planned.get("deletion_protection_enabled") != prior.get("deletion_protection_enabled"):
            request["DeletionProtectionEnabled"] = bool(planned.get("deletion_protection_enabled"))
        if planned.get("server_side_encryption") != prior.get("server_side_encryption"):
            sse = first(planned.get("server_side_encryption")) or {}
            spec: dict[str, Value] = {"Enabled": bool(sse.get("enabled"))}
            if sse.get("enabled"):
                spec["SSEType"] = "KMS"
                if sse.get("kms_key_arn"):
                    spec["KMSMasterKeyId"] = sse["kms_key_arn"]
            request["SSESpecification"] = spec
        if request:
            ddb.update_table(TableName=name, **request)
            wait_active(aws, name)
        self._apply_ttl(aws, name, planned, prior)
        self._apply_pitr(aws, name, planned, prior)
        old, new = prior.get("tags_all") or {}, tags_to_send(planned)
        if gone := [k for k in old if k not in new]:
            ddb.untag_resource(ResourceArn=prior["arn"], TagKeys=gone)
        if new and new != old:
            ddb.tag_resource(ResourceArn=prior["arn"], Tags=tag_list(new))
        keep = (
            "id",
            "arn",
            "hash_key",
            "read_capacity",
            "write_capacity",
            "stream_arn",
            "stream_label",
            "stream_view_type",
            "region",
        )
        out = fill(planned, **{k: prior.get(k) for k in keep})
        table = ddb.describe_table(TableName=name)["Table"]
        out["server_side_encryption"] = self._sse(table, planned.get("server_side_encryption"))
        out["point_in_time_recovery"] = self._pitr_block(aws, name, planned.get("point_in_time_recovery"))
        return out

    def delete(self, aws: Aws, state: dict[str, Value]) -> None:
        # No override of deletion protection: AWS refuses to delete a protected table, and so does the provider.
        try:
            aws.client("dynamodb").delete_table(TableName=state["id"])
        except Exception as err:
            if not is_not_found(err, "ResourceNotFoundException"):
                raise


def _same_set(a: list[dict[str, Value]], b: list[dict[str, Value]]) -> bool:
    return sorted((x["name"], x["type"]) for x in a) == sorted((x["name"], x["type"]) for x in b)


register_resource(Table())
