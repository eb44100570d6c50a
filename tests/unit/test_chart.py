"""The Helm chart lints and renders with the real (pinned) helm; its RBAC is least-privilege."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT

CHART = ROOT / "charts" / "mysql-operator"


def render(helm: str, *sets: str, namespace: str = "mysql-operator") -> list[dict[str, Any]]:
    args = [helm, "template", "mysql-operator", str(CHART), "--namespace", namespace]
    for s in sets:
        args += ["--set", s]
    out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def test_helm_lint_passes(helm: str) -> None:
    result = subprocess.run([helm, "lint", str(CHART), "--strict"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


def test_values_schema_refuses_bad_values(helm: str) -> None:
    result = subprocess.run(
        [helm, "template", "x", str(CHART), "--set", "logLevel=LOUD"], capture_output=True, text=True
    )
    assert result.returncode != 0 and "logLevel" in result.stderr


def _rules(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [rule for doc in docs if doc["kind"] in ("ClusterRole", "Role") for rule in doc["rules"]]


def test_cluster_wide_install_renders_least_privilege_rbac(helm: str) -> None:
    docs = render(helm)
    kinds = sorted(doc["kind"] for doc in docs)
    assert kinds == [
        "ClusterKopfPeering",
        "ClusterRole",
        "ClusterRoleBinding",
        "Deployment",
        "Service",
        "ServiceAccount",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    ]
    rules = _rules(docs)
    for rule in rules:
        assert "*" not in rule["verbs"] and "*" not in rule["resources"] and "*" not in rule["apiGroups"], (
            rule
        )
        assert not {"deletecollection", "escalate", "bind", "impersonate"} & set(rule["verbs"]), rule
    secrets = next(r for r in rules if "secrets" in r["resources"])
    assert "list" not in secrets["verbs"] and "watch" not in secrets["verbs"]


def test_admission_policy_scopes_the_operators_writes_to_its_labels(helm: str) -> None:
    docs = render(helm)
    (policy,) = [d for d in docs if d["kind"] == "ValidatingAdmissionPolicy"]
    (binding,) = [d for d in docs if d["kind"] == "ValidatingAdmissionPolicyBinding"]
    assert binding["spec"] == {"policyName": policy["metadata"]["name"], "validationActions": ["Deny"]}
    (condition,) = policy["spec"]["matchConditions"]
    assert "system:serviceaccount:mysql-operator:mysql-operator" in condition["expression"]
    written = {r for rule in policy["spec"]["matchConstraints"]["resourceRules"] for r in rule["resources"]}
    rbac_writes = {
        r
        for rule in _rules(docs)
        if {"create", "patch", "delete"} & set(rule["verbs"])
        for r in rule["resources"]
        if not {"mysql.operator.dev", "kopf.dev"} & set(rule["apiGroups"]) and r != "events"
    }
    assert rbac_writes <= written, "every kind the operator may write is scoped by the policy"
    assert "kube-system" in policy["spec"]["validations"][1]["expression"]
    assert not [d for d in render(helm, "admissionPolicy.enabled=false") if "Admission" in d["kind"]]


def test_namespaced_install_renders_roles_only_in_watched_namespaces(helm: str) -> None:
    docs = render(helm, "watchNamespaces={shop,orders}")
    roles = [doc for doc in docs if doc["kind"] == "Role"]
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["orders", "shop"]
    (cluster_role,) = [doc for doc in docs if doc["kind"] == "ClusterRole"]
    assert cluster_role["rules"] == [
        {
            "apiGroups": ["apiextensions.k8s.io"],
            "resources": ["customresourcedefinitions"],
            "verbs": ["get", "list", "watch"],
        },
        {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]},
    ], "namespaced: nothing cluster-wide but reading CRDs and whether a node is cordoned (drains)"
    deployment = next(doc for doc in docs if doc["kind"] == "Deployment")
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--namespace=shop" in args and "--namespace=orders" in args


def test_deployment_is_non_root_read_only_with_kopf_liveness(helm: str) -> None:
    deployment = next(doc for doc in render(helm) if doc["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    ctr = pod["containers"][0]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert ctr["securityContext"]["readOnlyRootFilesystem"] is True
    assert ctr["securityContext"]["allowPrivilegeEscalation"] is False
    assert ctr["command"] == ["python", "-m", "mysql_operator", "run"]
    assert "--liveness=http://$(POD_IP):8080/healthz" in ctr["args"]
    assert ctr["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert ctr["resources"]["limits"]["memory"]
    assert ctr["image"] == "mysql-operator:0.1.0"


def test_standalone_when_peering_disabled(helm: str) -> None:
    docs = render(helm, "peering.enabled=false")
    deployment = next(doc for doc in docs if doc["kind"] == "Deployment")
    assert "--standalone" in deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert not [doc for doc in docs if "KopfPeering" in doc["kind"]]


def test_service_monitor_when_enabled(helm: str) -> None:
    assert not [d for d in render(helm) if d["kind"] == "ServiceMonitor"]
    (monitor,) = [
        d for d in render(helm, "metrics.serviceMonitor.enabled=true") if d["kind"] == "ServiceMonitor"
    ]
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    deployment = next(doc for doc in render(helm, "logFormat=json") if doc["kind"] == "Deployment")
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--metrics=$(POD_IP):9090" in args and "--log-format=json" in args


def test_prometheus_rule_holds_the_documented_alerts(helm: str) -> None:
    assert not [d for d in render(helm) if d["kind"] == "PrometheusRule"]
    (rule,) = [
        d for d in render(helm, "metrics.prometheusRule.enabled=true") if d["kind"] == "PrometheusRule"
    ]
    alerts = [r["alert"] for r in rule["spec"]["groups"][0]["rules"]]
    readme = (ROOT / "README.md").read_text()
    assert alerts and all(f"`{alert}`" in readme for alert in alerts), "every alert is documented"
    assert "{{ $labels.cluster }}" in rule["spec"]["groups"][0]["rules"][0]["annotations"]["summary"]


def test_values_schema_is_valid_json() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert set(values) <= set(schema["properties"])


@pytest.mark.parametrize("path", sorted((ROOT / "examples").glob("*.yaml")), ids=lambda p: Path(p).name)
def test_examples_are_valid_clusters_with_a_comment(path: Path) -> None:
    from mysql_operator.api.models import MysqlClusterSpec

    text = path.read_text()
    assert text.startswith("#"), "each example starts with a comment saying what it shows"
    clusters = [doc for doc in yaml.safe_load_all(text) if doc and doc["kind"] == "MysqlCluster"]
    assert clusters
    for doc in clusters:
        MysqlClusterSpec.model_validate(doc["spec"])
