"""Python values to DynamoDB attribute values and back, as boto3's `TypeSerializer`/`TypeDeserializer` do
(for every type but binary, which the ledger never stores).

Why not boto3's: importing `boto3.dynamodb.types` imports the `boto3` package, whose `compat` module imports
s3transfer's transfer manager: about 50 ms of every boot of the job's machine, for two small functions the
agent needs before it can claim its run (docs/decisions.md, row 54). boto3's stay the reference: a property
test (tests/unit/test_attribute_values.py) checks these give exactly what boto3's give, value for value.
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from decimal import Clamped, Context, Decimal, Inexact, Overflow, Rounded, Underflow
from typing import Any

# DynamoDB's number limits: 38 digits of precision, exponents -130..125 (boto3's DYNAMODB_CONTEXT).
NUMBER_CONTEXT = Context(Emin=-128, Emax=126, prec=38, traps=[Clamped, Overflow, Inexact, Rounded, Underflow])


def serialize(value: Any) -> dict[str, Any]:
    """One value as an attribute value: `{"S": "x"}`, `{"N": "1"}`, `{"M": {...}}`, ..."""
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool):  # before numbers: bool is an int
        return {"BOOL": value}
    if isinstance(value, int | Decimal):
        return {"N": _number(value)}
    if isinstance(value, float):
        raise TypeError("Float types are not supported. Use Decimal types instead.")
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, Set):
        return _set(value)
    if isinstance(value, Mapping):
        return {"M": {str(k): serialize(v) for k, v in value.items()}}
    if isinstance(value, list | tuple):
        return {"L": [serialize(v) for v in value]}
    raise TypeError(f"Unsupported type {type(value)!r} for value {value!r}")


def deserialize(attribute: Mapping[str, Any]) -> Any:
    """An attribute value as a Python value; numbers come back as `Decimal`, as from boto3."""
    if not attribute:
        raise TypeError("Value must be a nonempty dictionary whose key is a valid dynamodb type.")
    kind, value = next(iter(attribute.items()))
    if kind == "NULL":
        return None
    if kind in ("S", "BOOL"):
        return value
    if kind == "N":
        return NUMBER_CONTEXT.create_decimal(value)
    if kind == "SS":
        return set(value)
    if kind == "NS":
        return {NUMBER_CONTEXT.create_decimal(v) for v in value}
    if kind == "L":
        return [deserialize(v) for v in value]
    if kind == "M":
        return {k: deserialize(v) for k, v in value.items()}
    raise TypeError(f"Dynamodb type {kind} is not supported")


def _number(value: int | Decimal) -> str:
    number = str(NUMBER_CONTEXT.create_decimal(value))
    if number in ("Infinity", "NaN"):
        raise TypeError("Infinity and NaN not supported")
    return number


def _set(value: Set[Any]) -> dict[str, Any]:
    # boto3 decides by what every member is (True counts as a number there, a float is refused); an empty set
    # is a number set there too (and DynamoDB refuses it).
    if any(isinstance(v, float) for v in value):
        raise TypeError("Float types are not supported. Use Decimal types instead.")
    if all(isinstance(v, int | Decimal) for v in value):
        return {"NS": [_number(v) for v in value]}
    if all(isinstance(v, str) for v in value):
        return {"SS": list(value)}
    raise TypeError(f"Unsupported type {type(value)!r} for value {value!r}")
