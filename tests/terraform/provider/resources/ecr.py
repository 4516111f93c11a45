"""ECR: aws_ecr_repository, aws_ecr_lifecycle_policy."""

from __future__ import annotations

from tests.terraform.provider.resources.base import (
    Aws,
    Resource,
    Value,
    fill,
    first,
    is_not_found,
    json_kept,
    refresh,
    register_resource,
    split_tags,
    tag_list,
    tag_map,
    tags_to_send,
)


class Repository(Resource):
    type_name = "aws_ecr_repository"
    replace_on = frozenset({"name", "encryption_configuration"})

    def create(self, aws: Aws, planned: dict[str, Value]) -> dict[str, Value]:
        ecr = aws.client("ecr")
        request: dict[str, Value] = {"repositoryName": planned["name"]}
        if planned.get("image_tag_mutability"):
            request["imageTagMutability"] = planned["image_tag_mutability"]
        if scanning := first(planned.get("image_scanning_configuration")):
            request["imageScanningConfiguration"] = {"scanOnPush": bool(scanning["scan_on_push"])}
        encryption = first(planned.get("encryption_configuration"))
        if encryption:
            request["encryptionConfiguration"] = {"encryptionType": encryption.get("encryption_type") or "AES256"}
            if encryption.get("kms_key"):
                request["encryptionConfiguration"]["kmsKey"] = encryption["kms_key"]
        if tags := tag_list(tags_to_send(planned)):
            request["tags"] = tags
        repo = ecr.create_repository(**request)["repository"]
        out = fill(
            planned,
            id=repo["repositoryName"],
            arn=repo["repositoryArn"],
            registry_id=repo["registryId"],
            repository_url=repo["repositoryUri"],
            region=aws.region,
        )
        if planned.get("encryption_configuration"):
            out["encryption_configuration"] = self._encryption(repo, planned["encryption_configuration"])
        return out

    def _encryption(self, repo: dict[str, Value], configured: list[dict[str, Value]] | None) -> list[dict[str, Value]]:
        got = repo.get("encryptionConfiguration") or {"encryptionType": "AES256"}
        prior = first(configured) or {}
        # kms_key is optional+computed: AWS names the key it chose when none was given.
        kms_key = prior.get("kms_key") or got.get("kmsKey") or ""
        return [{"encryption_type": got["encryptionType"], "kms_key": kms_key}]

    def read(self, aws: Aws, state: dict[str, Value]) -> dict[str, Value] | None:
        ecr = aws.client("ecr")
        try:
            repo = ecr.describe_repositories(repositoryNames=[state["id"]])["repositories"][0]
        except Exception as err:
            if is_not_found(err, "RepositoryNotFoundException"):
                return None
            raise
        tags = tag_map(ecr.list_tags_for_resource(resourceArn=repo["repositoryArn"]).get("tags"))
        scanning = repo.get("imageScanningConfiguration", {})
        observed = {
            "name": repo["repositoryName"],
            "arn": repo["repositoryArn"],
            "registry_id": repo["registryId"],
            "repository_url": repo["repositoryUri"],
            "image_tag_mutability": repo.get("imageTagMutability"),
            "image_scanning_configuration": [{"scan_on_push": bool(scanning.get("scanOnPush", False))}],
            "encryption_configuration": self._encryption(repo, state.get("encryption_configuration")),
            **split_tags(aws, state, tags),
        }
        # A block the configuration leaves out stays out of the state (the double has no legacy type system leeway).
        for block in ("image_scanning_configuration", "encryption_configuration"):
            if not state.get(block):
                observed.pop(block)
        return refresh(state, observed, computed=("arn", "registry_id", "repository_url", "tags_all"))

    def update(self, aws: Aws, prior: dict[str, Value], planned: dict[str, Value]) -> dict[str, Value]:
        ecr = aws.client("ecr")
        name = prior["id"]
        if planned.get("image_tag_mutability") != prior.get("image_tag_mutability"):
            ecr.put_image_tag_mutability(
                repositoryName=name, imageTagMutability=planned.get("image_tag_mutability") or "MUTABLE"
            )
        if planned.get("image_scanning_configuration") != prior.get("image_scanning_configuration"):
            scanning = first(planned.get("image_scanning_configuration")) or {}
            ecr.put_image_scanning_configuration(
                repositoryName=name, imageScanningConfiguration={"scanOnPush": bool(scanning.get("scan_on_push"))}
            )
        old, new = prior.get("tags_all") or {}, tags_to_send(planned)
        if gone := [k for k in old if k not in new]:
            ecr.untag_resource(resourceArn=prior["arn"], tagKeys=gone)
        if new and new != old:
            ecr.tag_resource(resourceArn=prior["arn"], tags=tag_list(new))
        out = fill(planned, **{k: prior.get(k) for k in ("id", "arn", "registry_id", "repository_url", "region")})
        out["encryption_configuration"] = prior.get("encryption_configuration")
        return out

    def delete(self, aws: Aws, state: dict[str, Value]) -> None:
        try:
            aws.client("ecr").delete_repository(repositoryName=state["id"], force=bool(state.get("force_delete")))
        except Exception as err:
            if not is_not_found(err, "RepositoryNotFoundException"):
                raise


class LifecyclePolicy(Resource):
    type_name = "aws_ecr_lifecycle_policy"
    replace_on = frozenset({"repository"})

    def create(self, aws: Aws, planned: dict[str, Value]) -> dict[str, Value]:
        got = aws.client("ecr").put_lifecycle_policy(
            repositoryName=planned["repository"], lifecyclePolicyText=planned["policy"]
        )
        return fill(planned, id=got["repositoryName"], registry_id=got["registryId"], region=aws.region)

    def read(self, aws: Aws, state: dict[str, Value]) -> dict[str, Value] | None:
        try:
            got = aws.client("ecr").get_lifecycle_policy(repositoryName=state["id"])
        except Exception as err:
            if is_not_found(err, "LifecyclePolicyNotFoundException", "RepositoryNotFoundException"):
                return None
            raise
        observed = {
            "repository": got["repositoryName"],
            "registry_id": got["registryId"],
            "policy": json_kept(state.get("policy"), got["lifecyclePolicyText"]),
        }
        return refresh(state, observed, computed=("registry_id",))

    def update(self, aws: Aws, prior: dict[str, Value], planned: dict[str, Value]) -> dict[str, Value]:
        aws.client("ecr").put_lifecycle_policy(repositoryName=prior["id"], lifecyclePolicyText=planned["policy"])
        return fill(planned, id=prior["id"], registry_id=prior.get("registry_id"), region=prior.get("region"))

    def delete(self, aws: Aws, state: dict[str, Value]) -> None:
        try:
            aws.client("ecr").delete_lifecycle_policy(repositoryName=state["id"])
        except Exception as err:
            if not is_not_found(err, "LifecyclePolicyNotFoundException", "RepositoryNotFoundException"):
                raise


register_resource(Repository())
register_resource(LifecyclePolicy())
