"""Secrets from SSM SecureString parameters and Secrets Manager, resolved at run time.

Values only ever go into the container's environment. Errors name the variable and where it was
looked up, never the value; `Redactor` scrubs values out of any text we log or store.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ..config import SecretRef
from ..errors import Ec2BatchError


class SecretError(Ec2BatchError):
    pass


def resolve_secrets(ssm: Any, secretsmanager: Any | None, secrets: Mapping[str, SecretRef]) -> dict[str, str]:
    """Each secret's value; `secretsmanager` may be None for secrets that are all in SSM."""
    values: dict[str, str] = {}
    for name, ref in secrets.items():
        where = f"{ref.source} {ref.name}" + (f" (key {ref.key})" if ref.key else "")
        try:
            values[name] = _fetch(ssm, secretsmanager, ref)
        except SecretError:
            raise
        except Exception as exc:
            code = getattr(exc, "response", {}).get("Error", {}).get("Code", type(exc).__name__)
            raise SecretError(f"secret {name}: could not read {where}: {code}") from None
    return values


def _fetch(ssm: Any, secretsmanager: Any | None, ref: SecretRef) -> str:
    if ref.source == "ssm":
        return ssm.get_parameter(Name=ref.name, WithDecryption=True)["Parameter"]["Value"]
    assert secretsmanager is not None, "a Secrets Manager secret needs its client"
    secret = secretsmanager.get_secret_value(SecretId=ref.name)
    text = secret.get("SecretString")
    if text is None:
        raise SecretError(f"secret {ref.name} is binary; only string secrets can become variables")
    if ref.key is None:
        return text
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        raise SecretError(f"secret {ref.name} is not JSON, so key {ref.key} cannot be taken from it") from None
    if not isinstance(data, dict) or ref.key not in data:
        raise SecretError(f"secret {ref.name} has no key {ref.key}")
    return str(data[ref.key])


class Redactor:
    """Replaces secret values in text with `***`: applied to every reason the agent records or logs.

    One instance lives as long as the agent and learns the values once they are resolved (`add`), so the
    log formatter holding it redacts every line written after that, tracebacks included.
    """

    def __init__(self, values: Mapping[str, str] | None = None) -> None:
        self.values: list[str] = []
        self.add(values or {})

    def add(self, values: Mapping[str, str]) -> None:
        # Values shorter than 4 characters would turn ordinary words into stars and hide nothing worth hiding.
        known = set(self.values) | {v for v in values.values() if len(v) >= 4}
        self.values = sorted(known, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for value in self.values:
            text = text.replace(value, "***")
        return text
