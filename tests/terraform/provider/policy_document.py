"""data "aws_iam_policy_document", rendered as the real provider renders it (hashicorp/aws 6.x).

What the provider does, as its registry page and source describe it (reimplemented here, not copied):
- Document keys in the order Version, Id, Statement; statement keys Sid, Effect, Action, NotAction, Resource,
  NotResource, Principal, NotPrincipal, Condition; empty ones are left out. `version` defaults to 2012-10-17 and
  `effect` to Allow (schema defaults the bindings do not carry, so they are applied here).
- A set of strings with one element becomes a string; with more, a list sorted in *reverse* order. Principal
  identifiers likewise, grouped by type (`{"*": "*"}` alone becomes `"*"`); condition values keep their order and
  collapse to a string when single; principal and condition maps are keyed in sorted order (Go's JSON).
- `&{` in resources, principals and condition values becomes `${` (the way to write an IAM policy variable).
- `source_policy_documents` come first, the statements next, `override_policy_documents` last; a later statement
  with the Sid of an earlier one replaces it.
- `json` is indented by two spaces, `minified_json` compact; both escape `<`, `>` and `&` as Go does. `id` is the
  CRC-32 of `json`.
"""

from __future__ import annotations

import json
import zlib
from typing import Any

_STATEMENT_KEYS = ("Sid", "Effect", "Action", "NotAction", "Resource", "NotResource", "Principal", "NotPrincipal")


def _strings(values: list[str] | None) -> Any:
    values = list(values or [])
    if len(values) == 1:
        return values[0]
    return sorted(values, reverse=True)


def _vars(value: Any) -> Any:
    if isinstance(value, list):
        return [v.replace("&{", "${") for v in value]
    return value.replace("&{", "${") if isinstance(value, str) else value


def _principals(blocks: list[dict[str, Any]]) -> Any:
    """[(type, identifiers)] as the provider marshals them; identifiers a str or list."""
    pairs = [(b["type"], _vars(_strings(b.get("identifiers")))) for b in blocks]
    return _marshal_principals(pairs)


def _marshal_principals(pairs: list[tuple[str, Any]]) -> Any:
    if len(pairs) == 1 and pairs[0][0] == "*" and pairs[0][1] in ("*", ["*"]):
        return "*"
    out: dict[str, Any] = {}
    for kind, ids in pairs:
        have = out.get(kind)
        if isinstance(ids, list):
            merged = [] if have is None else ([have] if isinstance(have, str) else have)
            out[kind] = merged + sorted(ids, reverse=True)
        elif have is None:
            out[kind] = ids
        else:
            out[kind] = ([have] if isinstance(have, str) else have) + [ids]
    return dict(sorted(out.items()))


def _conditions(blocks: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, dict[str, list[str]]] = {}
    for block in blocks:
        values = _vars(list(block.get("values") or []))
        out.setdefault(block["test"], {}).setdefault(block["variable"], []).extend(values)
    return {
        test: {var: (vals[0] if len(vals) == 1 else vals) for var, vals in sorted(variables.items())}
        for test, variables in sorted(out.items())
    }


def _statement(block: dict[str, Any]) -> dict[str, Any]:
    stmt: dict[str, Any] = {"Sid": block.get("sid") or "", "Effect": block.get("effect") or "Allow"}
    if block.get("actions"):
        stmt["Action"] = _strings(block["actions"])
    if block.get("not_actions"):
        stmt["NotAction"] = _strings(block["not_actions"])
    if block.get("resources"):
        stmt["Resource"] = _vars(_strings(block["resources"]))
    if block.get("not_resources"):
        stmt["NotResource"] = _vars(_strings(block["not_resources"]))
    if block.get("principals"):
        stmt["Principal"] = _principals(block["principals"])
    if block.get("not_principals"):
        stmt["NotPrincipal"] = _principals(block["not_principals"])
    if block.get("condition"):
        stmt["Condition"] = _conditions(block["condition"])
    return stmt


def _parsed_statement(raw: dict[str, Any]) -> dict[str, Any]:
    """A statement of a source/override document, normalised as the provider's JSON round trip does."""
    stmt = {k: raw[k] for k in _STATEMENT_KEYS if raw.get(k) not in (None, "", [], {})}
    for key in ("Principal", "NotPrincipal"):
        if key in stmt:
            value = stmt[key]
            pairs = (
                [("*", ["*"])]
                if isinstance(value, str)
                else [(k, v if isinstance(v, str) else sorted(v)) for k, v in value.items()]
            )
            stmt[key] = _marshal_principals(pairs)
    if raw.get("Condition"):
        stmt["Condition"] = {
            test: {var: (vals if isinstance(vals, list) else [vals]) for var, vals in sorted(variables.items())}
            for test, variables in sorted(raw["Condition"].items())
        }
        stmt["Condition"] = {
            t: {k: (v[0] if len(v) == 1 else v) for k, v in variables.items()}
            for t, variables in stmt["Condition"].items()
        }
    return stmt


def _one_or_list(values: Any) -> Any:
    values = values if isinstance(values, list) else [values]
    return values[0] if len(values) == 1 else values


def _merge(doc: dict[str, Any], new: dict[str, Any]) -> None:
    if new.get("Id"):
        doc["Id"] = new["Id"]
    if new.get("Version", "") > doc.get("Version", ""):
        doc["Version"] = new["Version"]
    statements = doc.setdefault("Statement", [])
    for stmt in new.get("Statement") or []:
        sid = stmt.get("Sid")
        same = [i for i, s in enumerate(statements) if sid and s.get("Sid") == sid]
        if same:
            statements[same[0]] = stmt
        else:
            statements.append(stmt)


def _parsed(text: str) -> dict[str, Any]:
    raw = json.loads(text)
    statements = raw.get("Statement") or []
    return {
        "Version": raw.get("Version", ""),
        "Id": raw.get("Id", ""),
        "Statement": [_parsed_statement(s) for s in statements],
    }


def _ordered(doc: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("Version", "Id"):
        if doc.get(key):
            out[key] = doc[key]
    statements = [
        {k: s[k] for k in (*_STATEMENT_KEYS, "Condition") if s.get(k) not in (None, "", [], {})}
        for s in doc.get("Statement") or []
    ]
    if statements:
        out["Statement"] = statements
    return out


def _go_json(value: Any, indent: int | None) -> str:
    """json.dumps with Go's encoding/json escaping of <, > and & (HTML-safe) and its separators."""
    separators = (",", ": ") if indent else (",", ":")
    text = json.dumps(value, indent=indent, separators=separators, ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render(config: dict[str, Any]) -> dict[str, str]:
    """The computed attributes (json, minified_json, id) for a data source configuration."""
    doc: dict[str, Any] = {"Version": "", "Id": "", "Statement": []}
    for source in config.get("source_policy_documents") or []:
        if source is not None:
            _merge(doc, _parsed(source))
    own = {
        "Version": config.get("version") or "2012-10-17",
        "Id": config.get("policy_id") or "",
        "Statement": [_statement(b) for b in config.get("statement") or []],
    }
    _merge(doc, own)
    for override in config.get("override_policy_documents") or []:
        if override is not None:
            _merge(doc, _parsed(override))
    ordered = _ordered(doc)
    pretty = _go_json(ordered, indent=2)
    return {"json": pretty, "minified_json": _go_json(ordered, indent=None), "id": str(zlib.crc32(pretty.encode()))}


class PolicyDocument:
    """The data source handler (the DataHandler interface of resources/base.py); it calls no AWS API."""

    type_name = "aws_iam_policy_document"

    def read(self, aws: Any, config: dict[str, Any]) -> dict[str, Any]:
        # Only the computed attributes change: Terraform holds a data source's other attributes to its configuration.
        return {**config, **render(config)}
