"""Lambda: aws_lambda_function, aws_lambda_function_event_invoke_config, aws_lambda_event_source_mapping,
aws_lambda_permission."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

from tests.terraform.provider.resources.base import (
    Aws,
    Resource,
    Value,
    drop_none,
    fill,
    first,
    is_not_found,
    refresh,
    register_resource,
    resource_name,
    split_tags,
    tags_to_send,
    unless_gone,
)

LATEST = "$LATEST"


def zip_bytes(filename: str) -> bytes:
    """The deployment package, read relative to Terraform's working directory as the provider does."""
    path = Path(filename)
    if not path.is_file():
        raise ValueError(f"filename: {filename} is not a file")
    return path.read_bytes()


def base64sha256(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def invoke_arn(aws: Aws, function_arn: str, streaming: bool = False) -> str:
    api = "2021-11-15" if streaming else "2015-03-31"
    tail = "response-streaming-invocations" if streaming else "invocations"
    return f"arn:aws:apigateway:{aws.region}:lambda:path/{api}/functions/{function_arn}/{tail}"


def code_request(planned: dict[str, Value]) -> dict[str, Value]:
    if planned.get("filename"):
        return {"ZipFile": zip_bytes(planned["filename"])}
    if planned.get("image_uri"):
        return {"ImageUri": planned["image_uri"]}
    if planned.get("s3_bucket"):
        return drop_none(
            S3Bucket=planned["s3_bucket"], S3Key=planned.get("s3_key"), S3ObjectVersion=planned.get("s3_object_version")
        )
    raise ValueError("filename: one of filename, image_uri or s3_bucket must be set")


def configuration(planned: dict[str, Value]) -> dict[str, Value]:
    """The function's configuration as CreateFunction / UpdateFunctionConfiguration take it."""
    request = drop_none(
        Role=planned["role"],
        Runtime=planned.get("runtime"),
        Handler=planned.get("handler"),
        Description=planned.get("description"),
        MemorySize=_int(planned.get("memory_size")),
        Timeout=_int(planned.get("timeout")),
        KMSKeyArn=planned.get("kms_key_arn"),
        Layers=list(planned["layers"]) if planned.get("layers") else None,
    )
    env = first(planned.get("environment"))
    request["Environment"] = {"Variables": dict((env or {}).get("variables") or {})}
    if dlq := first(planned.get("dead_letter_config")):
        request["DeadLetterConfig"] = {"TargetArn": dlq["target_arn"]}
    if tracing := first(planned.get("tracing_config")):
        request["TracingConfig"] = {"Mode": tracing["mode"]}
    if logging := first(planned.get("logging_config")):
        request["LoggingConfig"] = drop_none(
            LogFormat=logging["log_format"],
            LogGroup=logging.get("log_group"),
            ApplicationLogLevel=logging.get("application_log_level") or None,
            SystemLogLevel=logging.get("system_log_level") or None,
        )
    if vpc := first(planned.get("vpc_config")):
        request["VpcConfig"] = {
            "SubnetIds": list(vpc.get("subnet_ids") or []),
            "SecurityGroupIds": list(vpc.get("security_group_ids") or []),
        }
    if (storage := first(planned.get("ephemeral_storage"))) and storage.get("size"):
        request["EphemeralStorage"] = {"Size": int(storage["size"])}
    return request


class Function(Resource):
    type_name = "aws_lambda_function"
    replace_on = frozenset({"function_name", "package_type"})
    # The provider marks these new on an update (the function's code or configuration changes them).
    update_unknown = frozenset(
        {"last_modified", "code_sha256", "source_code_size", "version", "qualified_arn", "qualified_invoke_arn"}
    )

    def create(self, aws: Aws, planned: dict[str, Value]) -> dict[str, Value]:
        lam = aws.client("lambda")
        request = configuration(planned)
        request.update(FunctionName=planned["function_name"], Code=code_request(planned))
        if planned.get("package_type"):
            request["PackageType"] = planned["package_type"]
        if planned.get("architectures"):
            request["Architectures"] = list(planned["architectures"])
        if planned.get("publish"):
            request["Publish"] = True
        if tags := tags_to_send(planned):
            request["Tags"] = tags
        got = lam.create_function(**request)
        self._concurrency(aws, planned, None)
        return self._filled(aws, planned, got)

    def _filled(self, aws: Aws, planned: dict[str, Value], got: dict[str, Value]) -> dict[str, Value]:
        function_arn = got["FunctionArn"].removesuffix(f":{got.get('Version', LATEST)}")
        version = got.get("Version", LATEST)
        qualified = f"{function_arn}:{version}"
        out = fill(
            planned,
            id=planned["function_name"],
            arn=function_arn,
            invoke_arn=invoke_arn(aws, function_arn),
            response_streaming_invoke_arn=invoke_arn(aws, function_arn, streaming=True),
            qualified_arn=qualified,
            qualified_invoke_arn=invoke_arn(aws, qualified),
            version=version,
            last_modified=got.get("LastModified", ""),
            source_code_size=got.get("CodeSize", 0),
            code_sha256=got.get("CodeSha256", ""),
            source_code_hash=got.get("CodeSha256", ""),
            architectures=list(got.get("Architectures") or ["x86_64"]),
            signing_job_arn=got.get("SigningJobArn", ""),
            signing_profile_version_arn=got.get("SigningProfileVersionArn", ""),
            region=aws.region,
        )
        if out.get("logging_config"):
            logging = dict(first(out["logging_config"]) or {})
            group = got.get("LoggingConfig", {}).get("LogGroup") or f"/aws/lambda/{planned['function_name']}"
            out["logging_config"] = [fill(logging, log_group=group)]
        if out.get("vpc_config"):
            vpc = dict(first(out["vpc_config"]) or {})
            out["vpc_config"] = [fill(vpc, vpc_id=got.get("VpcConfig", {}).get("VpcId", ""))]
        return out

    def _concurrency(self, aws: Aws, planned: dict[str, Value], prior: dict[str, Value] | None) -> None:
        lam = aws.client("lambda")
        want = planned.get("reserved_concurrent_executions")
        had = (prior or {}).get("reserved_concurrent_executions")
        # -1 (the provider's default) and null both mean "no reservation".
        want = None if want is None or int(want) < 0 else int(want)
        had = None if had is None or int(had) < 0 else int(had)
        if want == had:
            return
        if want is None:
            lam.delete_function_concurrency(FunctionName=planned["function_name"])
        else:
            lam.put_function_concurrency(FunctionName=planned["function_name"], ReservedConcurrentExecutions=want)

    def read(self, aws: Aws, state: dict[str, Value]) -> dict[str, Value] | None:
        lam = aws.client("lambda")
        try:
            got = lam.get_function(FunctionName=state["id"])
        except Exception as err:
            if is_not_found(err, "ResourceNotFoundException"):
                return None
            raise
        conf = got["Configuration"]
        tags = dict(got.get("Tags") or {})
        reserved = got.get("Concurrency", {}).get("ReservedConcurrentExecutions")
        observed: dict[str, Value] = {
            "role": conf["Role"],
            "runtime": conf.get("Runtime"),
            "handler": conf.get("Handler"),
            "description": conf.get("Description"),
            "memory_size": conf.get("MemorySize"),
            "timeout": conf.get("Timeout"),
            "kms_key_arn": conf.get("KMSKeyArn"),
            "architectures": conf.get("Architectures"),
            "code_sha256": conf.get("CodeSha256"),
            "source_code_size": conf.get("CodeSize"),
            "last_modified": conf.get("LastModified"),
            "reserved_concurrent_executions": -1 if reserved is None else reserved,
            **split_tags(aws, state, tags),
        }
        if state.get("reserved_concurrent_executions") is None and reserved is None:
            observed.pop("reserved_concurrent_executions")
        if state.get("environment") is not None:
            variables = conf.get("Environment", {}).get("Variables", {})
            observed["environment"] = [{"variables": variables}] if variables or state["environment"] else []
        if state.get("tracing_config"):
            observed["tracing_config"] = [{"mode": conf.get("TracingConfig", {}).get("Mode", "PassThrough")}]
        # moto 5.2 echoes neither DeadLetterConfig nor LoggingConfig: the state's blocks stand when AWS is silent.
        if state.get("dead_letter_config") and "DeadLetterConfig" in conf:
            target = conf["DeadLetterConfig"].get("TargetArn")
            observed["dead_letter_config"] = [{"target_arn": target}] if target else []
        if state.get("logging_config") and "LoggingConfig" in conf:
            prior = first(state["logging_config"]) or {}
            got_logging = conf["LoggingConfig"]
            observed["logging_config"] = [
                {
                    **prior,
                    "log_format": got_logging.get("LogFormat", prior.get("log_format")),
                    "log_group": got_logging.get("LogGroup", prior.get("log_group")),
                }
            ]
        computed = ("code_sha256", "source_code_size", "last_modified", "architectures", "tags_all")
        return refresh(state, observed, computed=computed)

    def update(self, aws: Aws, prior: dict[str, Value], planned: dict[str, Value]) -> dict[str, Value]:
        lam = aws.client("lambda")
        name = prior["id"]
        code_keys = ("filename", "source_code_hash", "s3_bucket", "s3_key", "s3_object_version", "image_uri")
        got: dict[str, Value] | None = None
        if configuration(planned) != configuration(prior):
            got = lam.update_function_configuration(FunctionName=name, **configuration(planned))
        if any(planned.get(k) != prior.get(k) and planned.get(k) is not None for k in code_keys) or (
            planned.get("architectures") and planned.get("architectures") != prior.get("architectures")
        ):
            code = code_request(planned)
            extra = {"Architectures": list(planned["architectures"])} if planned.get("architectures") else {}
            got = lam.update_function_code(FunctionName=name, Publish=bool(planned.get("publish")), **code, **extra)
        self._concurrency(aws, planned, prior)
        old, new = prior.get("tags_all") or {}, tags_to_send(planned)
        if gone := [k for k in old if k not in new]:
            lam.untag_resource(Resource=prior["arn"], TagKeys=gone)
        if new and new != old:
            lam.tag_resource(Resource=prior["arn"], Tags=new)
        if got is None:
            got = lam.get_function(FunctionName=name)["Configuration"]
        keep = ("id", "arn", "invoke_arn", "response_streaming_invoke_arn", "signing_job_arn", "region")
        return self._filled(aws, fill(planned, **{k: prior.get(k) for k in keep}), got)

    def delete(self, aws: Aws, state: dict[str, Value]) -> None:
        if state.get("skip_destroy"):
            return
        try:
            aws.client("lambda").delete_function(FunctionName=state["id"])
        except Exception as err:
            if not is_not_found(err, "ResourceNotFoundException"):
                raise


def destination_request(block: dict[str, Value] | None) -> dict[str, Value]:
    out: dict[str, Value] = {}
    if on_failure := first((block or {}).get("on_failure")):
        out["OnFailure"] = {"Destination": on_failure["destination"]}
    if on_success := first((block or {}).get("on_success")):
        out["OnSuccess"] = {"Destination": on_success["destination"]}
    return out


class EventInvokeConfig(Resource):
    type_name = "aws_lambda_function_event_invoke_config"
    replace_on = frozenset({"function_name", "qualifier"})

    def _put(self, aws: Aws, planned: dict[str, Value]) -> None:
        aws.client("lambda").put_function_event_invoke_config(
            **drop_none(
                FunctionName=planned["function_name"],
                Qualifier=planned.get("qualifier") or None,
                MaximumRetryAttempts=_int(planned.get("maximum_retry_attempts")),
                MaximumEventAgeInSeconds=_int(planned.get("maximum_event_age_in_seconds")),
                DestinationConfig=destination_request(first(planned.get("destination_config"))),
            )
        )

    def create(self, aws: Aws, planned: dict[str, Value]) -> dict[str, Value]:
        self._put(aws, planned)
        qualifier = planned.get("qualifier")
        config_id = f"{planned['function_name']}:{qualifier}" if qualifier else planned["function_name"]
        return fill(planned, id=config_id, region=aws.region)

    def read(self, aws: Aws, state: dict[str, Value]) -> dict[str, Value] | None:
        try:
            got = aws.client("lambda").get_function_event_invoke_config(
                **drop_none(FunctionName=state["function_name"], Qualifier=state.get("qualifier") or None)
            )
        except Exception as err:
            if is_not_found(err, "ResourceNotFoundException"):
                return None
            raise
        observed: dict[str, Value] = {
            "maximum_retry_attempts": got.get("MaximumRetryAttempts"),
            "maximum_event_age_in_seconds": got.get("MaximumEventAgeInSeconds"),
        }
        if state.get("destination_config"):
            dest = got.get("DestinationConfig", {})
            block: dict[str, Value] = {"on_failure": [], "on_success": []}
            if dest.get("OnFailure", {}).get("Destination"):
                block["on_failure"] = [{"destination": dest["OnFailure"]["Destination"]}]
            if dest.get("OnSuccess", {}).get("Destination"):
                block["on_success"] = [{"destination": dest["OnSuccess"]["Destination"]}]
            observed["destination_config"] = [block]
        return refresh(state, observed)

    def update(self, aws: Aws, prior: dict[str, Value], planned: dict[str, Value]) -> dict[str, Value]:
        # AWS's Put replaces the configuration; moto 5.2 appends and keeps answering the first one.
        # Deleting first gives the same end state on both.
        self.delete(aws, prior)
        self._put(aws, planned)
        return fill(planned, id=prior["id"], region=prior.get("region"))

    def delete(self, aws: Aws, state: dict[str, Value]) -> None:
        try:
            aws.client("lambda").delete_function_event_invoke_config(
                **drop_none(FunctionName=state["function_name"], Qualifier=state.get("qualifier") or None)
            )
        except Exception as err:
            if not is_not_found(err, "ResourceNotFoundException"):
                raise


MAPPING_SCALARS = {
    "batch_size": "BatchSize",
    "maximum_batching_window_in_seconds": "MaximumBatchingWindowInSeconds",
    "enabled": "Enabled",
    "function_response_types": "FunctionResponseTypes",
    "bisect_batch_on_function_error": "BisectBatchOnFunctionError",
    "maximum_record_age_in_seconds": "MaximumRecordAgeInSeconds",
    "maximum_retry_attempts": "MaximumRetryAttempts",
    "parallelization_factor": "ParallelizationFactor",
    "tumbling_window_in_seconds": "TumblingWindowInSeconds",
    "kms_key_arn": "KMSKeyArn",
}


def mapping_request(planned: dict[str, Value]) -> dict[str, Value]:
    request: dict[str, Value] = {}
    for key, param in MAPPING_SCALARS.items():
        value = planned.get(key)
        if value is None or value == []:
            continue
        request[param] = list(value) if isinstance(value, list) else int(value) if isinstance(value, float) else value
    if (scaling := first(planned.get("scaling_config"))) and scaling.get("maximum_concurrency") is not None:
        request["ScalingConfig"] = {"MaximumConcurrency": int(scaling["maximum_concurrency"])}
    destination = first(planned.get("destination_config")) or {}
    if on_failure := first(destination.get("on_failure")):
        request["DestinationConfig"] = {"OnFailure": {"Destination": on_failure["destination_arn"]}}
    if criteria := first(planned.get("filter_criteria")):
        request["FilterCriteria"] = {
            "Filters": [drop_none(Pattern=f.get("pattern")) for f in criteria.get("filter") or []]
        }
    return request


class EventSourceMapping(Resource):
    type_name = "aws_lambda_event_source_mapping"
    replace_on = frozenset({"event_source_arn", "starting_position", "starting_position_timestamp", "queues", "topics"})
    update_unknown = frozenset({"last_modified", "state", "state_transition_reason"})

    def create(self, aws: Aws, planned: dict[str, Value]) -> dict[str, Value]:
        lam = aws.client("lambda")
        request = mapping_request(planned)
        request["FunctionName"] = planned["function_name"]
        if planned.get("event_source_arn"):
            request["EventSourceArn"] = planned["event_source_arn"]
        if planned.get("starting_position"):
            request["StartingPosition"] = planned["starting_position"]
        if tags := tags_to_send(planned):
            request["Tags"] = tags
        got = lam.create_event_source_mapping(**request)
        mapping_uuid = got["UUID"]
        mapping_arn = got.get("EventSourceMappingArn") or (
            f"arn:aws:lambda:{aws.region}:{aws.account_id}:event-source-mapping:{mapping_uuid}"
        )
        return fill(
            planned,
            id=mapping_uuid,
            uuid=mapping_uuid,
            arn=mapping_arn,
            function_arn=got["FunctionArn"],
            state=got.get("State", "Enabled"),
            state_transition_reason=got.get("StateTransitionReason", ""),
            last_modified=str(got.get("LastModified", "")),
            last_processing_result=got.get("LastProcessingResult", ""),
            region=aws.region,
        )

    def read(self, aws: Aws, state: dict[str, Value]) -> dict[str, Value] | None:
        try:
            got = aws.client("lambda").get_event_source_mapping(UUID=state["id"])
        except Exception as err:
            if is_not_found(err, "ResourceNotFoundException"):
                return None
            raise
        observed: dict[str, Value] = {
            "function_arn": got["FunctionArn"],
            "event_source_arn": got.get("EventSourceArn"),
            "state": got.get("State"),
        }
        for key, param in MAPPING_SCALARS.items():
            if param in got and key != "enabled":
                observed[key] = got[param]
        if state.get("scaling_config") and "ScalingConfig" in got:
            observed["scaling_config"] = [{"maximum_concurrency": got["ScalingConfig"].get("MaximumConcurrency")}]
        return refresh(state, observed, computed=("function_arn", "state"))

    def update(self, aws: Aws, prior: dict[str, Value], planned: dict[str, Value]) -> dict[str, Value]:
        request = mapping_request(planned)
        if request.get("KMSKeyArn") == prior.get("kms_key_arn"):
            request.pop("KMSKeyArn", None)  # only sent when it changes
        got = aws.client("lambda").update_event_source_mapping(
            UUID=prior["id"], FunctionName=planned["function_name"], **request
        )
        keep = ("id", "uuid", "arn", "function_arn", "last_processing_result", "region")
        return fill(
            planned,
            **{k: prior.get(k) for k in keep},
            state=got.get("State", "Enabled"),
            state_transition_reason=got.get("StateTransitionReason", ""),
            last_modified=str(got.get("LastModified", "")),
        )

    def delete(self, aws: Aws, state: dict[str, Value]) -> None:
        try:
            aws.client("lambda").delete_event_source_mapping(UUID=state["id"])
        except Exception as err:
            if not is_not_found(err, "ResourceNotFoundException"):
                raise


def _int(value: Value) -> int | None:
    return None if value is None else int(value)


register_resource(Function())
register_resource(EventInvokeConfig())
register_resource(EventSourceMapping())


class Permission(Resource):
    """aws_lambda_permission: one statement of the function's resource policy; its id is the statement id."""

    type_name = "aws_lambda_permission"
    replace_on = frozenset(
        {
            "action",
            "event_source_token",
            "function_name",
            "function_url_auth_type",
            "principal",
            "principal_org_id",
            "qualifier",
            "source_account",
            "source_arn",
            "statement_id",
            "statement_id_prefix",
        }
    )

    def create(self, aws: Aws, planned: dict[str, Value]) -> dict[str, Value]:
        statement_id = planned.get("statement_id") or resource_name({"name_prefix": planned.get("statement_id_prefix")})
        aws.client("lambda").add_permission(
            **drop_none(
                FunctionName=planned["function_name"],
                StatementId=statement_id,
                Action=planned["action"],
                Principal=planned["principal"],
                SourceArn=planned.get("source_arn"),
                SourceAccount=planned.get("source_account"),
                EventSourceToken=planned.get("event_source_token"),
                Qualifier=planned.get("qualifier"),
                PrincipalOrgID=planned.get("principal_org_id"),
                FunctionUrlAuthType=planned.get("function_url_auth_type"),
            )
        )
        return fill(planned, id=statement_id, statement_id=statement_id, statement_id_prefix="", region=aws.region)

    def read(self, aws: Aws, state: dict[str, Value]) -> dict[str, Value] | None:
        try:
            got = aws.client("lambda").get_policy(
                **drop_none(FunctionName=state["function_name"], Qualifier=state.get("qualifier"))
            )
        except Exception as err:
            if is_not_found(err, "ResourceNotFoundException"):
                return None
            raise
        policy = json.loads(got["Policy"])
        if not any(s.get("Sid") == state["statement_id"] for s in policy.get("Statement", [])):
            return None
        return dict(state)

    def update(self, aws: Aws, prior: dict[str, Value], planned: dict[str, Value]) -> dict[str, Value]:
        return fill(planned, **{k: prior.get(k) for k in ("id", "statement_id", "statement_id_prefix", "region")})

    def delete(self, aws: Aws, state: dict[str, Value]) -> None:
        with unless_gone("ResourceNotFoundException"):
            aws.client("lambda").remove_permission(
                **drop_none(
                    FunctionName=state["function_name"],
                    StatementId=state["statement_id"],
                    Qualifier=state.get("qualifier"),
                )
            )


register_resource(Permission())
