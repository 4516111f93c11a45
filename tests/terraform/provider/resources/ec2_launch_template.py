"""EC2: aws_launch_template."""

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
    tags_to_send,
)
from tests.terraform.provider.resources.ec2_common import (
    LAUNCH_TEMPLATE_DATA,
    ec2_tags,
    from_aws,
    sync_tags,
    tag_spec,
    to_aws,
)

# --- launch templates ----------------------------------------------------------------------------------------


class LaunchTemplate(Resource):
    type_name = "aws_launch_template"
    replace_on = frozenset({"name", "name_prefix"})
    # Every change is a new template version.
    update_unknown = frozenset({"latest_version", "default_version"})

    def create(self, aws: Aws, planned: dict[str, Value]) -> dict[str, Value]:
        name = resource_name(planned)
        template = aws.client("ec2").create_launch_template(
            **drop_none(
                LaunchTemplateName=name,
                VersionDescription=planned.get("description"),
                LaunchTemplateData=to_aws(planned, LAUNCH_TEMPLATE_DATA),
                TagSpecifications=tag_spec("launch-template", tags_to_send(planned)) or None,
            )
        )["LaunchTemplate"]
        template_id = template["LaunchTemplateId"]
        return fill(
            planned,
            id=template_id,
            arn=arn(aws, "ec2", f"launch-template/{template_id}"),
            name=name,
            name_prefix="",
            latest_version=template["LatestVersionNumber"],
            default_version=template["DefaultVersionNumber"],
            region=aws.region,
        )

    def _describe(self, aws: Aws, template_id: str) -> dict[str, Value] | None:
        try:
            found = aws.client("ec2").describe_launch_templates(LaunchTemplateIds=[template_id])["LaunchTemplates"]
        except ClientError as err:
            if is_not_found(err, "InvalidLaunchTemplateId.NotFound", "InvalidLaunchTemplateId.Malformed"):
                return None
            raise
        return found[0] if found else None

    def read(self, aws: Aws, state: dict[str, Value]) -> dict[str, Value] | None:
        template = self._describe(aws, state["id"])
        if template is None:
            return None
        # The provider reads the default version's data (so without update_default_version a change shows again).
        version = aws.client("ec2").describe_launch_template_versions(
            LaunchTemplateId=state["id"], Versions=[str(template["DefaultVersionNumber"])]
        )["LaunchTemplateVersions"][0]
        data = dict(version["LaunchTemplateData"])
        # moto 5.2 copies the template's own tags into its data as a "launch-template" tag specification.
        specs = [s for s in data.get("TagSpecifications", []) if s.get("ResourceType") != "launch-template"]
        if specs or "TagSpecifications" in data:
            data["TagSpecifications"] = specs
        prior_data = {k: state.get(k) for k in LAUNCH_TEMPLATE_DATA}
        observed = from_aws(data, LAUNCH_TEMPLATE_DATA, prior_data)
        tags = ec2_tags(aws, state["id"])
        observed.update(
            name=template["LaunchTemplateName"],
            description=version.get("VersionDescription"),
            latest_version=template["LatestVersionNumber"],
            default_version=template["DefaultVersionNumber"],
            **split_tags(aws, state, tags),
        )
        return refresh(state, observed, computed=("latest_version", "default_version", "tags_all"))

    def update(self, aws: Aws, prior: dict[str, Value], planned: dict[str, Value]) -> dict[str, Value]:
        ec2 = aws.client("ec2")
        template_id = prior["id"]
        latest, default = prior.get("latest_version"), prior.get("default_version")
        data_changed = any(planned.get(k) != prior.get(k) for k in LAUNCH_TEMPLATE_DATA)
        if data_changed or planned.get("description") != prior.get("description"):
            version = ec2.create_launch_template_version(
                **drop_none(
                    LaunchTemplateId=template_id,
                    VersionDescription=planned.get("description"),
                    LaunchTemplateData=to_aws(planned, LAUNCH_TEMPLATE_DATA),
                )
            )["LaunchTemplateVersion"]
            latest = version["VersionNumber"]
        wanted_default = latest if planned.get("update_default_version") else planned.get("default_version")
        if wanted_default is not None and wanted_default != default:
            ec2.modify_launch_template(LaunchTemplateId=template_id, DefaultVersion=str(wanted_default))
            default = wanted_default
        sync_tags(aws, template_id, prior, planned)
        out = fill(planned, **{k: prior.get(k) for k in ("id", "arn", "name", "name_prefix", "region")})
        out["latest_version"] = latest
        out["default_version"] = default
        return out

    def delete(self, aws: Aws, state: dict[str, Value]) -> None:
        try:
            aws.client("ec2").delete_launch_template(LaunchTemplateId=state["id"])
        except ClientError as err:
            if not is_not_found(err, "InvalidLaunchTemplateId.NotFound"):
                raise


register_resource(LaunchTemplate())
