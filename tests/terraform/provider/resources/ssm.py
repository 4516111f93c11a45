"""SSM Parameter Store: aws_ssm_parameter."""

from __future__ import annotations

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
    split_tags,
    tag_list,
    tag_map,
    tags_to_send,
)


def parameter_arn(aws: Aws, name: str) -> str:
    # A hierarchical name already starts with "/"; a flat one gets one.
    return arn(aws, "ssm", f"parameter{name}" if name.startswith("/") else f"parameter/{name}")


class Parameter(Resource):
    type_name = "aws_ssm_parameter"
    replace_on = frozenset({"name", "type"})
    update_unknown = frozenset({"version"})

    def _put(self, aws: Aws, planned: dict[str, Value], *, overwrite: bool) -> int:
        value = planned.get("value") if planned.get("value") is not None else planned.get("insecure_value")
        request = drop_none(
            Name=planned["name"],
            Type=planned["type"],
            Value=value,
            Description=planned.get("description"),
            KeyId=planned.get("key_id") if planned["type"] == "SecureString" else None,
            Tier=planned.get("tier"),
            AllowedPattern=planned.get("allowed_pattern"),
            DataType=planned.get("data_type"),
        )
        if overwrite:
            request["Overwrite"] = True
        else:
            # PutParameter refuses Tags together with Overwrite; the provider tags on create only here.
            tags = tag_list(tags_to_send(planned))
            if tags:
                request["Tags"] = tags
        return int(aws.client("ssm").put_parameter(**request)["Version"])

    def create(self, aws: Aws, planned: dict[str, Value]) -> dict[str, Value]:
        version = self._put(aws, planned, overwrite=False)
        got = self._describe(aws, planned["name"]) or {}
        return fill(
            planned,
            id=planned["name"],
            arn=parameter_arn(aws, planned["name"]),
            version=version,
            tier=got.get("Tier", "Standard"),
            key_id=got.get("KeyId", "alias/aws/ssm") if planned["type"] == "SecureString" else "",
            data_type=got.get("DataType", "text"),
            has_value_wo=False,
            insecure_value=None,
            region=aws.region,
        )

    def _describe(self, aws: Aws, name: str) -> dict[str, Value] | None:
        found = aws.client("ssm").describe_parameters(ParameterFilters=[{"Key": "Name", "Values": [name]}])
        return found["Parameters"][0] if found["Parameters"] else None

    def read(self, aws: Aws, state: dict[str, Value]) -> dict[str, Value] | None:
        ssm = aws.client("ssm")
        try:
            got = ssm.get_parameter(Name=state["id"], WithDecryption=True)["Parameter"]
        except Exception as err:
            if is_not_found(err, "ParameterNotFound"):
                return None
            raise
        meta = self._describe(aws, state["id"]) or {}
        tags = tag_map(ssm.list_tags_for_resource(ResourceType="Parameter", ResourceId=state["id"]).get("TagList"))
        observed: dict[str, Value] = {
            "name": got["Name"],
            "type": got["Type"],
            "version": int(got["Version"]),
            "arn": got.get("ARN", parameter_arn(aws, got["Name"])),
            "description": meta.get("Description"),
            "tier": meta.get("Tier", "Standard"),
            "allowed_pattern": meta.get("AllowedPattern"),
            "data_type": got.get("DataType", "text"),
            **split_tags(aws, state, tags),
        }
        if "KeyId" in meta:
            observed["key_id"] = meta["KeyId"]
        observed["insecure_value" if state.get("insecure_value") is not None else "value"] = got["Value"]
        return refresh(state, observed, computed=("version", "arn", "tier", "data_type", "key_id", "tags_all", "value"))

    def update(self, aws: Aws, prior: dict[str, Value], planned: dict[str, Value]) -> dict[str, Value]:
        ssm = aws.client("ssm")
        version = prior.get("version")
        watched = ("value", "insecure_value", "description", "key_id", "tier", "allowed_pattern", "data_type")
        if any(planned.get(k) != prior.get(k) and planned.get(k) is not None for k in watched) or (
            planned.get("description") != prior.get("description")
        ):
            version = self._put(aws, planned, overwrite=True)
        old, new = prior.get("tags_all") or {}, tags_to_send(planned)
        if gone := [k for k in old if k not in new]:
            ssm.remove_tags_from_resource(ResourceType="Parameter", ResourceId=prior["id"], TagKeys=gone)
        if new and new != old:
            ssm.add_tags_to_resource(ResourceType="Parameter", ResourceId=prior["id"], Tags=tag_list(new))
        out = fill(
            planned, **{k: prior.get(k) for k in ("id", "arn", "tier", "key_id", "data_type", "has_value_wo", "region")}
        )
        out["version"] = version
        return out

    def delete(self, aws: Aws, state: dict[str, Value]) -> None:
        try:
            aws.client("ssm").delete_parameter(Name=state["id"])
        except Exception as err:
            if not is_not_found(err, "ParameterNotFound"):
                raise


register_resource(Parameter())
