"""The MysqlCluster reference in Markdown, generated from the CRD (`python -m mysql_operator reference`)."""

from __future__ import annotations

import json
from typing import Any

from mysql_operator.api import mycnf
from mysql_operator.api.crd import mysqlcluster_crd

_CONSTRAINTS = ("minimum", "maximum", "pattern", "maxLength", "maxProperties", "enum")


def _type(node: dict[str, Any]) -> str:
    kind = str(node.get("type", "any"))
    if kind == "array":
        return f"[]{_type(node.get('items', {}))}"
    if kind == "object" and "additionalProperties" in node:
        return f"map[string]{_type(node['additionalProperties'])}"
    return kind


def _constraints(node: dict[str, Any]) -> str:
    parts = []
    for key in _CONSTRAINTS:
        if key in node:
            value = node[key]
            shown = " \\| ".join(value) if key == "enum" else "`" + str(value).replace("|", "\\|") + "`"
            parts.append(f"{key}: {shown}")
    return "; ".join(parts)


def _rows(node: dict[str, Any], prefix: str, required: set[str]) -> list[str]:
    rows = []
    for name, sub in node.get("properties", {}).items():
        path = f"{prefix}.{name}"
        default = (
            f"`{json.dumps(sub['default'])}`" if "default" in sub and sub.get("type") != "object" else ""
        )
        desc = " ".join(str(sub.get("description", "")).split())
        req = " (required)" if name in required else ""
        rows.append(f"| `{path}`{req} | {_type(sub)} | {default} | {desc} | {_constraints(sub)} |")
        if sub.get("type") == "object" and "properties" in sub:
            rows += _rows(sub, path, set(sub.get("required", [])))
    return rows


def _rules(node: dict[str, Any], prefix: str) -> list[str]:
    rules = [f"- `{prefix}`: {rule['message']}" for rule in node.get("x-kubernetes-validations", [])]
    for name, sub in node.get("properties", {}).items():
        rules += _rules(sub, f"{prefix}.{name}")
    return rules


def render_reference() -> str:
    version = mysqlcluster_crd()["spec"]["versions"][0]
    schema = version["schema"]["openAPIV3Schema"]["properties"]
    lines = [
        "| field | type | default | description | constraints |",
        "| --- | --- | --- | --- | --- |",
        *_rows(schema["spec"], "spec", set(schema["spec"].get("required", []))),
        "",
        "Rules the API server enforces on create and update (CEL):",
        "",
        *_rules(schema["spec"], "spec"),
        "",
        "Status fields: " + ", ".join(f"`status.{name}`" for name in schema["status"]["properties"]) + ".",
        "",
        *_refused_keys(),
    ]
    return "\n".join(lines)


def _refused_keys() -> list[str]:
    """The mysqlConfig keys refused, and why (from api/mycnf.py, the lists both checks use)."""
    owned = ", ".join(f"`{key}`" for key in mycnf.OPERATOR_OWNED_KEYS)
    return [
        "`spec.mysqlConfig` keys are compared the way mysqld reads them: `-` and `_` alike, after "
        "stripping any of the prefixes " + ", ".join(f"`{p}-`" for p in mycnf.OPTION_PREFIXES) + ", "
        "and as abbreviations (a key that is the start of a refused name is refused too, except the "
        "real options " + ", ".join(f"`{k}`" for k in mycnf.EXACT_NAMES) + "). Values may not hold "
        "control characters (a newline would start a new my.cnf line).",
        "",
        f"Owned by the operator: {owned}.",
        "",
        "| refused key | why |",
        "| --- | --- |",
        *(f"| `{key}` | {why} |" for key, why in mycnf.DANGEROUS_KEYS.items()),
        *(f"| `{prefix}*` | a refused family (Galera: runs commands, loads a provider library) |"
          for prefix in mycnf.DANGEROUS_PREFIXES),
        "",
    ]
