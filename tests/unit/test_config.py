from __future__ import annotations

import json

import pytest

from ec2batch.config import JobConfig, load_config, parse_config, parse_config_text, store_config
from ec2batch.errors import ConfigError, UnknownJob

GOOD = {
    "job": "daily-report",
    "image": "123456789012.dkr.ecr.eu-central-1.amazonaws.com/ec2batch/daily-report:2026-11-24",
    "command": ["python", "-m", "report"],
    "env": {"ROWS": "1000000"},
    "secrets": {
        "DB_PASSWORD": {"ssm": "/ec2batch/daily-report/db-password"},
        "API_KEY": {"secretsmanager": "report/api", "key": "token"},
    },
    "max_runtime_seconds": 7200,
    "stop_grace_seconds": 60,
    "strategy": "ephemeral",
    "concurrency": "allow",
    "starting_deadline_seconds": 300,
    "instance_types": ["r7i.2xlarge", "r6i.2xlarge"],
    "subnet_ids": ["subnet-0123456789abcdef0"],
    "limits": {"memory_mb": 60000, "cpus": 7.5},
    "notifications": {"topic_arn": "arn:aws:sns:eu-central-1:123456789012:ec2batch-daily-report", "on": ["FAILED"]},
}


def test_a_full_config_round_trips_through_its_document() -> None:
    config = parse_config(GOOD)
    assert config.strategy == "ephemeral"
    assert config.secrets["API_KEY"].key == "token"
    assert parse_config(json.loads(json.dumps(config.to_document()))) == config


def test_defaults_are_the_safe_ones() -> None:
    config = parse_config({"job": "nightly", "image": "repo/nightly:1"})
    assert (config.strategy, config.concurrency, config.max_runtime_seconds) == ("reuse", "forbid", 3600)
    assert config.notifications.on == ("FAILED", "TIMED_OUT")
    assert config.boot_without_run == "poweroff"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"job": "Daily"}, "config.job: 'Daily' is not valid: pattern"),
        ({"image": ""}, "config.image: must be a non-empty string"),
        ({"strategy": "spot"}, "config.strategy: 'spot' is not one of reuse, ephemeral"),
        ({"concurrency": "replace"}, "config.concurrency: 'replace' is not one of forbid, allow"),
        ({"max_runtime_seconds": 5}, "config.max_runtime_seconds: 5 is out of range: allowed 10 to 1209600"),
        ({"max_runtime_seconds": "1h"}, "config.max_runtime_seconds: must be a whole number from 10 to 1209600"),
        ({"instance_types": ["m7i.large", "big"]}, "config.instance_types[1]: 'big' is not valid: expected like"),
        ({"instance_types": []}, "config.instance_types: must list at least one instance type"),
        ({"subnet_ids": ["sub-1"]}, "config.subnet_ids[0]: 'sub-1' is not valid: expected subnet-<hex>"),
        ({"command": "python -m report"}, "config.command: must be a non-empty list of strings"),
        ({"env": {"2FAST": "x"}}, "config.env.2FAST: is not a valid variable name"),
        ({"env": {"N": 3}}, "config.env.N: must be a string, got int"),
        ({"secrets": {"X": {"vault": "a"}}}, "config.secrets.X.vault: unknown field"),
        ({"secrets": {"ROWS": {"ssm": "/p"}}}, "config.secrets.ROWS: also set in config.env"),
        ({"secrets": {"X": {"ssm": "/p", "key": "k"}}}, "config.secrets.X.key: is only for a JSON secret"),
        ({"limits": {"memory_mb": 1}}, "config.limits.memory_mb: 1 is out of range"),
        ({"limits": {"cpus": 0}}, "config.limits.cpus: must be a number above 0"),
        ({"notifications": {"on": ["FAILED", "LOST"]}}, "config.notifications.on[1]: 'LOST' is not one of"),
        ({"notifications": {"topic_arn": "my-topic"}}, "config.notifications.topic_arn: must be an SNS topic ARN"),
        ({"boot_without_run": "ignore"}, "config.boot_without_run: 'ignore' is not one of run, poweroff"),
        ({"timeout": 5}, "config.timeout: unknown field; known fields are"),
        ({"keep_running_for_debug": "yes"}, "config.keep_running_for_debug: must be true or false"),
    ],
)
def test_every_bad_field_is_named_with_what_is_allowed(change: dict, expected: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config({**GOOD, **change})
    assert expected in str(raised.value)


def test_all_problems_are_reported_at_once() -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config({"job": "x", "strategy": "spot"})
    assert [p.split(":")[0] for p in raised.value.problems] == ["config.job", "config.image", "config.strategy"]


def test_invalid_json_names_line_and_column() -> None:
    with pytest.raises(ConfigError, match=r"job.json: not valid JSON \(Expecting .* at line 1 column"):
        parse_config_text('{"job": }', source="job.json")


def test_store_and_load_through_ssm(aws) -> None:
    config = parse_config(GOOD)
    store_config(aws.ssm, config)
    assert load_config(aws.ssm, "daily-report") == config
    with pytest.raises(UnknownJob, match="unknown job 'nightly'"):
        load_config(aws.ssm, "nightly")


def test_a_config_stored_under_another_jobs_name_is_refused(aws) -> None:
    aws.ssm.put_parameter(Name="/ec2batch/other/config", Value=json.dumps(GOOD), Type="String")
    with pytest.raises(ConfigError, match="'daily-report' does not match the parameter's job 'other'"):
        load_config(aws.ssm, "other")


def test_the_schema_fields_are_the_documented_ones() -> None:
    from pathlib import Path

    documented = Path(__file__).parents[2].joinpath("docs", "config.md").read_text()
    for name in JobConfig.__dataclass_fields__:
        assert f"`{name}`" in documented, f"docs/config.md does not document {name}"
