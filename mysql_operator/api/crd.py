"""Generate the CustomResourceDefinition from the pydantic models (`python -m mysql_operator crd`)."""

from __future__ import annotations

from typing import Any

import yaml
from pydantic import BaseModel

from mysql_operator import conventions as c
from mysql_operator.api.models import (
    CLUSTER_NAME_MAX_LENGTH,
    CLUSTER_NAME_PATTERN,
    MysqlClusterSpec,
    MysqlClusterStatus,
)

_DROP_KEYS = {"title"}


def _strip_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_strip_none(v) for v in value]
    return value


def _property_names_rule(names: dict[str, Any]) -> dict[str, Any]:
    """A CEL rule that holds every key of a map to a propertyNames schema (pattern, maxLength)."""
    checks = []
    parts = []
    if "maxLength" in names:
        checks.append(f"k.size() <= {int(names['maxLength'])}")
        parts.append(f"at most {names['maxLength']} characters")
    if "pattern" in names:
        pattern = str(names["pattern"]).replace("\\", "\\\\").replace("'", "\\'")
        checks.append(f"k.matches('{pattern}')")
        parts.append(f"matching {names['pattern']}")
    return {"rule": "self.all(k, " + " && ".join(checks) + ")", "message": "keys must be " + ", ".join(parts)}


def _structural(node: Any, defs: dict[str, Any]) -> Any:
    """Turn a pydantic JSON schema node into a Kubernetes structural schema node."""
    if isinstance(node, list):
        return [_structural(n, defs) for n in node]
    if not isinstance(node, dict):
        return node
    node = dict(node)
    if "$ref" in node:
        target = defs[node.pop("$ref").rsplit("/", 1)[1]]
        node = {**target, **node}
    if "allOf" in node and len(node["allOf"]) == 1:
        node = {**node.pop("allOf")[0], **node}
        return _structural(node, defs)
    if "anyOf" in node:
        # Optional[X] is X in the schema: an absent field is what None means.
        options = [o for o in node.pop("anyOf") if o.get("type") != "null"]
        if len(options) == 1:
            merged = {**_structural(options[0], defs), **node}
            return _structural(merged, defs)
        node["anyOf"] = options
    if "patternProperties" in node:
        # A map whose keys carry a pattern (dict[Annotated[str, pattern], V]): the values become
        # additionalProperties, the key pattern joins propertyNames (a CEL rule, below).
        ((key_pattern, value_schema),) = node.pop("patternProperties").items()
        node["additionalProperties"] = value_schema
        node["propertyNames"] = {**node.get("propertyNames", {}), "pattern": key_pattern}
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROP_KEYS:
            continue
        if key == "propertyNames":
            # Structural schemas have no propertyNames: the same limits become a CEL rule.
            rules = out.setdefault("x-kubernetes-validations", [])
            rules.append(_property_names_rule(value))
            continue
        if key == "x-kubernetes-validations":
            out.setdefault("x-kubernetes-validations", []).extend(value)
            continue
        if key == "default":
            if value is None:
                continue
            out[key] = _strip_none(value)
        elif key == "properties":
            out[key] = {name: _structural(sub, defs) for name, sub in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            sub = _structural(value, defs)
            if key == "additionalProperties" and sub == {}:
                out["x-kubernetes-preserve-unknown-fields"] = True
                continue
            out[key] = sub
        elif key == "additionalProperties" and value is True:
            out["x-kubernetes-preserve-unknown-fields"] = True
        elif key == "additionalProperties" and value is False:
            continue
        else:
            out[key] = value
    if "enum" in out and "type" not in out:
        out["type"] = "string"
    if out.get("x-kubernetes-preserve-unknown-fields") and "type" not in out:
        out["type"] = "object"
    if "properties" in out and "type" not in out:
        out["type"] = "object"
    return out


def schema_of(model: type[BaseModel]) -> dict[str, Any]:
    """The structural OpenAPI v3 schema of a model."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.pop("$defs", {})
    result: dict[str, Any] = _structural(raw, defs)
    return result


def printer_columns() -> list[dict[str, Any]]:
    return [
        {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
        {"name": "Primary", "type": "string", "jsonPath": ".status.primary"},
        {
            "name": "Instances",
            "type": "string",
            "jsonPath": ".status.instancesReady",
            "description": "ready/desired instances",
        },
        {"name": "Version", "type": "string", "jsonPath": ".status.version"},
        {"name": "Suspended", "type": "boolean", "jsonPath": ".spec.suspend"},
        {"name": "Flavor", "type": "string", "jsonPath": ".spec.flavor", "priority": 1},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]


def build_crd(
    *,
    kind: str,
    plural: str,
    singular: str,
    short_names: list[str],
    categories: list[str],
    description: str,
    spec_model: type[BaseModel],
    status_model: type[BaseModel],
    columns: list[dict[str, Any]],
    name_rules: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A namespaced CRD of our group: one served version, status subresource, generated schema."""
    spec_schema = schema_of(spec_model)
    spec_schema["description"] = spec_model.__doc__
    status_schema = schema_of(status_model)
    status_schema.pop("default", None)
    status_schema["x-kubernetes-preserve-unknown-fields"] = True
    root: dict[str, Any] = {
        "type": "object",
        "description": description,
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec_schema,
            "status": status_schema,
        },
    }
    if name_rules:
        root["x-kubernetes-validations"] = name_rules
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{c.API_GROUP}"},
        "spec": {
            "group": c.API_GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": singular,
                "shortNames": short_names,
                "categories": categories,
            },
            "versions": [
                {
                    "name": c.API_VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": columns,
                    "schema": {"openAPIV3Schema": root},
                }
            ],
        },
    }


def mysqlcluster_crd() -> dict[str, Any]:
    """The MysqlCluster CustomResourceDefinition as a dict."""
    return build_crd(
        kind=c.KIND,
        plural=c.PLURAL,
        singular=c.SINGULAR,
        short_names=list(c.SHORT_NAMES),
        categories=["all", "mysql"],
        description="A MySQL or MariaDB cluster managed by mysql-operator.",
        spec_model=MysqlClusterSpec,
        status_model=MysqlClusterStatus,
        columns=printer_columns(),
        name_rules=cluster_name_rules(),
    )


def cluster_name_rules() -> list[dict[str, Any]]:
    """CEL on metadata.name: every object named after the cluster must be a valid name (see
    models.check_cluster_name, which checks the same again)."""
    return [
        {
            "rule": f"self.metadata.name.size() <= {CLUSTER_NAME_MAX_LENGTH}",
            "message": f"metadata.name may have at most {CLUSTER_NAME_MAX_LENGTH} characters: its pods "
            "carry the label controller-revision-hash=<name>-<hash> (at most 63)",
        },
        {
            "rule": f"self.metadata.name.matches('{CLUSTER_NAME_PATTERN}')",
            "message": "metadata.name must be a DNS-1035 label (lower-case letters, digits and '-', "
            "starting with a letter): Services are named after it",
        },
    ]


def crd_files() -> dict[str, str]:
    """File name under crds/ -> its YAML, one CustomResourceDefinition per file."""
    from mysql_operator.api.backup import BACKUP_PLURAL, mysqlbackup_crd
    from mysql_operator.api.schema import DATABASE_PLURAL, USER_PLURAL, mysqldatabase_crd, mysqluser_crd

    header = "# Generated by `python -m mysql_operator crd` from mysql_operator/api/. Do not edit.\n"
    return {
        f"{c.PLURAL}.yaml": header + yaml.safe_dump(mysqlcluster_crd(), sort_keys=False, width=120),
        f"{BACKUP_PLURAL}.yaml": header + yaml.safe_dump(mysqlbackup_crd(), sort_keys=False, width=120),
        f"{DATABASE_PLURAL}.yaml": header + yaml.safe_dump(mysqldatabase_crd(), sort_keys=False, width=120),
        f"{USER_PLURAL}.yaml": header + yaml.safe_dump(mysqluser_crd(), sort_keys=False, width=120),
    }


def render_crds() -> str:
    """YAML of every CRD the operator serves (the files under crds/ as one multi-document stream)."""
    return "---\n".join(crd_files().values())
