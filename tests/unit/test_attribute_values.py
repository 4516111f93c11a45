"""ec2batch.attribute_values gives what boto3's TypeSerializer / TypeDeserializer give, value for value.

boto3's are the reference (the agent avoids importing boto3 at boot, decision 53): thousands of generated
values, nested, with numbers at DynamoDB's limits and beyond, are turned into attribute values by both and
back again, and any value one refuses the other refuses with the same exception type.
"""

from __future__ import annotations

import random
from decimal import Decimal
from typing import Any

import pytest
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from ec2batch.attribute_values import deserialize, serialize

BOTO_SERIALIZER, BOTO_DESERIALIZER = TypeSerializer(), TypeDeserializer()
NUMBERS = [
    0,
    -1,
    2**63,
    10**37,
    10**38,  # 39 digits: refused (Rounded) by both unless it rounds exactly
    10**38 + 1,  # inexact
    Decimal("1.5"),
    Decimal("-0.000123"),
    Decimal("1E+125"),
    Decimal("1E+126"),  # overflow
    Decimal("1E-130"),
    Decimal("1E-131"),  # underflow
    Decimal("Infinity"),
    Decimal("NaN"),
    Decimal("12345678901234567890123456789012345678"),
    Decimal("123456789012345678901234567890123456789"),
]
TEXTS = ["", "x", "ümlaut ✓", "2026-12-07T02:00:00.000Z", "a" * 300]


def value(rng: random.Random, depth: int = 0) -> Any:
    kinds = ["none", "bool", "number", "text", "float"] + (["list", "tuple", "map", "set"] if depth < 3 else [])
    kind = rng.choice(kinds)
    if kind == "none":
        return None
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "number":
        return rng.choice(NUMBERS) if rng.random() < 0.5 else rng.randint(-(10**12), 10**12)
    if kind == "text":
        return rng.choice(TEXTS)
    if kind == "float":
        return rng.choice([0.5, 1.0])
    if kind == "set":
        member = rng.choice([lambda: rng.choice(TEXTS), lambda: rng.randint(-5, 5), lambda: value(rng, 3)])
        return {member() for _ in range(rng.randint(0, 3))} if member else set()
    items = [value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    if kind == "list":
        return items
    if kind == "tuple":
        return tuple(items)
    return {f"k{i}": item for i, item in enumerate(items)}


def outcome(function: Any, argument: Any) -> Any:
    try:
        return function(argument)
    except Exception as exc:  # the kind of refusal is compared, not its wording
        return type(exc)


@pytest.mark.parametrize("seed", range(5))
def test_serialize_and_deserialize_agree_with_boto3_for_generated_values(seed: int) -> None:
    rng = random.Random(seed)
    refused = accepted = 0
    for _ in range(2000):
        original = value(rng)
        ours, theirs = outcome(serialize, original), outcome(BOTO_SERIALIZER.serialize, original)
        if (isinstance(theirs, dict) and "NS" in theirs) or (isinstance(theirs, dict) and "SS" in theirs):
            # Set members come out in the set's iteration order: compare them as sets.
            kind = next(iter(theirs))
            assert isinstance(ours, dict) and set(ours[kind]) == set(theirs[kind]), original
        else:
            assert ours == theirs, original
        if isinstance(theirs, type):
            refused += 1
            continue
        accepted += 1
        assert deserialize(theirs) == BOTO_DESERIALIZER.deserialize(theirs)
    assert refused > 100 and accepted > 1000  # both sides of the comparison were exercised


def test_numbers_come_back_as_decimals_and_an_unknown_type_is_refused() -> None:
    assert deserialize({"N": "42"}) == Decimal(42) and isinstance(deserialize({"N": "42"}), Decimal)
    assert deserialize({"M": {"a": {"L": [{"NULL": True}, {"BOOL": False}]}}}) == {"a": [None, False]}
    with pytest.raises(TypeError):
        deserialize({"X": "1"})
    with pytest.raises(TypeError):
        serialize(object())
