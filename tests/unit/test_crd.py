"""The committed CRDs are what the models generate, and the chart ships the same files."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import yaml

from mysql_operator.api.crd import crd_files, mysqlcluster_crd, render_crds
from mysql_operator.api.models import OPERATOR_OWNED_CONFIG_KEYS
from tests.conftest import ROOT


def _spec_schema() -> dict[str, Any]:
    schema: dict[str, Any] = mysqlcluster_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema["properties"]["spec"]


def test_committed_crds_match_the_models() -> None:
    generated = subprocess.run(
        [sys.executable, "-m", "mysql_operator", "crd", "all"],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    ).stdout
    default = subprocess.run(
        [sys.executable, "-m", "mysql_operator", "crd"], check=True, capture_output=True, text=True, cwd=ROOT
    ).stdout
    assert default == (ROOT / "crds" / "mysqlclusters.yaml").read_text(), (
        "crd | diff - crds/mysqlclusters.yaml"
    )
    assert generated == render_crds()
    files = crd_files()
    assert sorted(files) == [
        "mysqlbackups.yaml",
        "mysqlclusters.yaml",
        "mysqldatabases.yaml",
        "mysqlusers.yaml",
    ]
    assert set(files) <= {p.name for p in (ROOT / "crds").glob("*.yaml")}
    for name, text in files.items():
        assert (ROOT / "crds" / name).read_text() == text, "run `make crd`"
    assert [doc["spec"]["names"]["kind"] for doc in yaml.safe_load_all(generated)] == [
        "MysqlCluster",
        "MysqlBackup",
        "MysqlDatabase",
        "MysqlUser",
    ]


def test_restore_from_is_immutable_and_backup_is_optional() -> None:
    spec = _spec_schema()
    assert "backup" in spec["properties"] and "restoreFrom" in spec["properties"]
    assert "backup" not in spec.get("required", []) and "restoreFrom" not in spec.get("required", [])
    rule = next(r for r in spec["x-kubernetes-validations"] if r.get("fieldPath") == ".restoreFrom")
    assert "oldSelf.restoreFrom" in rule["rule"]
    assert spec["properties"]["backup"]["properties"]["storage"]["x-kubernetes-validations"]


def test_chart_crds_are_the_top_level_crds() -> None:
    top = sorted(p.name for p in (ROOT / "crds").glob("*.yaml"))
    chart = sorted(p.name for p in (ROOT / "charts" / "mysql-operator" / "crds").glob("*.yaml"))
    assert top == chart
    for name in top:
        assert (ROOT / "crds" / name).read_text() == (
            ROOT / "charts" / "mysql-operator" / "crds" / name
        ).read_text()


def test_crd_names_and_columns() -> None:
    crd = mysqlcluster_crd()
    assert crd["metadata"]["name"] == "mysqlclusters.mysql.operator.dev"
    names = crd["spec"]["names"]
    assert (names["kind"], names["plural"], names["shortNames"]) == (
        "MysqlCluster",
        "mysqlclusters",
        ["mysql"],
    )
    version = crd["spec"]["versions"][0]
    assert version["name"] == "v1alpha1" and version["subresources"] == {"status": {}}
    columns = [col["name"] for col in version["additionalPrinterColumns"]]
    assert columns[:1] == ["Ready"] and {"Primary", "Instances", "Version", "Age"} <= set(columns)


def test_schema_is_structural() -> None:
    """No $ref, anyOf-with-null or title survives; every node says its type."""

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            assert "$ref" not in node and "title" not in node, path
            if "properties" in node or "items" in node:
                assert "type" in node, path
            for key, value in node.items():
                if key not in ("default", "enum", "x-kubernetes-validations"):
                    walk(value, f"{path}.{key}")
        elif isinstance(node, list):
            for item in node:
                walk(item, path)

    walk(_spec_schema(), "spec")


def test_schema_carries_constraints_and_defaults() -> None:
    spec = _spec_schema()["properties"]
    assert (spec["instances"]["minimum"], spec["instances"]["maximum"], spec["instances"]["default"]) == (
        1,
        9,
        3,
    )
    assert spec["flavor"]["enum"] == ["mysql", "mariadb"]
    assert "pattern" in spec["version"]
    assert spec["storage"]["properties"]["size"]["pattern"].startswith("^[0-9]")
    assert spec["storage"]["default"]["size"] == "10Gi"
    assert spec["application"]["required"] == ["database", "user"]
    assert spec["podTemplate"]["properties"]["affinity"]["x-kubernetes-preserve-unknown-fields"] is True


def test_cel_rules_cover_immutable_and_cross_field_rules() -> None:
    spec = _spec_schema()
    rules = [r["rule"] for r in spec["x-kubernetes-validations"]]
    assert "self.flavor == oldSelf.flavor" in rules
    assert any("switchoverTo < self.instances" in r for r in rules)
    owned_rule = next(r for r in rules if "replace('-', '_')" in r)
    assert all(f"'{key}'" in owned_rule for key in OPERATOR_OWNED_CONFIG_KEYS)
    storage_rules = [r["rule"] for r in spec["properties"]["storage"]["x-kubernetes-validations"]]
    assert any("quantity(self.size).compareTo(quantity(oldSelf.size)) >= 0" in r for r in storage_rules)


def test_readme_reference_is_generated_from_the_models() -> None:
    from mysql_operator.api.reference import render_reference

    assert render_reference() in (ROOT / "README.md").read_text(), (
        "regenerate: python -m mysql_operator reference"
    )


def test_no_category_shadows_the_mysqlcluster_short_name() -> None:
    from mysql_operator.api.backup import mysqlbackup_crd

    # kubectl resolves a category before a short name: `kubectl get mysql NAME` must name one kind
    assert "mysql" in mysqlcluster_crd()["spec"]["names"]["shortNames"]
    assert "mysql" not in mysqlbackup_crd()["spec"]["names"]["categories"]
