"""data "aws_iam_policy_document" renders the JSON the real provider renders (its documented behaviour)."""

from __future__ import annotations

import json

from tests.terraform.provider.policy_document import render


def _statement(**kw: object) -> dict[str, object]:
    base: dict[str, object] = {
        "sid": None,
        "effect": None,
        "actions": [],
        "not_actions": [],
        "resources": [],
        "not_resources": [],
        "principals": [],
        "not_principals": [],
        "condition": [],
    }
    return {**base, **kw}


def test_one_element_sets_become_strings_and_longer_ones_are_sorted_in_reverse() -> None:
    doc = render({"statement": [_statement(actions=["sqs:SendMessage", "sqs:GetQueueUrl", "sqs:DeleteMessage"])]})
    assert json.loads(doc["json"]) == {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": ["sqs:SendMessage", "sqs:GetQueueUrl", "sqs:DeleteMessage"]},
        ],
    }
    one = render({"statement": [_statement(actions=["sqs:SendMessage"], resources=["arn:aws:sqs:*:1:q"])]})
    assert json.loads(one["minified_json"])["Statement"][0] == {
        "Effect": "Allow",
        "Action": "sqs:SendMessage",
        "Resource": "arn:aws:sqs:*:1:q",
    }


def test_the_layout_is_go_json_indented_by_two_with_html_escapes_and_a_crc_id() -> None:
    doc = render({"statement": [_statement(sid="A", actions=["s3:GetObject"], resources=["arn:aws:s3:::b/<x>&"])]})
    assert doc["json"].startswith('{\n  "Version": "2012-10-17",\n  "Statement": [\n    {\n      "Sid": "A",')
    assert "\\u003cx\\u003e\\u0026" in doc["minified_json"]
    assert doc["minified_json"].startswith('{"Version":"2012-10-17","Statement":[{"Sid":"A","Effect":"Allow"')
    import zlib

    assert doc["id"] == str(zlib.crc32(doc["json"].encode()))


def test_principals_group_by_type_a_lone_star_collapses_and_conditions_keep_value_order() -> None:
    doc = render(
        {
            "statement": [
                _statement(
                    actions=["sts:AssumeRole"],
                    principals=[
                        {"type": "Service", "identifiers": ["scheduler.amazonaws.com", "events.amazonaws.com"]}
                    ],
                    condition=[
                        {"test": "StringEquals", "variable": "aws:SourceAccount", "values": ["2", "1"]},
                        {"test": "ArnLike", "variable": "aws:SourceArn", "values": ["arn:aws:scheduler:*:1:&{x}"]},
                    ],
                ),
                _statement(effect="Deny", actions=["*"], principals=[{"type": "*", "identifiers": ["*"]}]),
            ]
        }
    )
    first, second = json.loads(doc["json"])["Statement"]
    assert first["Principal"] == {"Service": ["scheduler.amazonaws.com", "events.amazonaws.com"]}
    assert first["Condition"] == {
        "ArnLike": {"aws:SourceArn": "arn:aws:scheduler:*:1:${x}"},
        "StringEquals": {"aws:SourceAccount": ["2", "1"]},
    }
    assert list(first["Condition"]) == ["ArnLike", "StringEquals"]
    assert second == {"Effect": "Deny", "Action": "*", "Principal": "*"}


def test_source_documents_come_first_and_a_later_sid_replaces_an_earlier_one() -> None:
    source = json.dumps({"Version": "2012-10-17", "Statement": [{"Sid": "Keep", "Effect": "Allow", "Action": "a:B"}]})
    override = json.dumps({"Statement": [{"Sid": "Mine", "Effect": "Deny", "Action": "c:D", "Resource": "*"}]})
    doc = render(
        {
            "source_policy_documents": [source],
            "override_policy_documents": [override],
            "statement": [_statement(sid="Mine", actions=["x:Y"])],
        }
    )
    assert json.loads(doc["json"])["Statement"] == [
        {"Sid": "Keep", "Effect": "Allow", "Action": "a:B"},
        {"Sid": "Mine", "Effect": "Deny", "Action": "c:D", "Resource": "*"},
    ]
