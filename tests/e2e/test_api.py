"""The MysqlCluster API on a real apiserver: schema and CEL rejections, columns, owned objects, GC."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.e2e.conftest import Cluster, example_path, load_example, wait_for

pytestmark = pytest.mark.e2e

OWNED = [
    ("statefulset", "{n}"),
    ("service", "{n}"),
    ("service", "{n}-primary"),
    ("service", "{n}-replicas"),
    ("configmap", "{n}-config"),
    ("poddisruptionbudget", "{n}"),
    ("networkpolicy", "{n}"),
]


def cr(name: str, spec: dict[str, Any]) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "mysql.operator.dev/v1alpha1",
            "kind": "MysqlCluster",
            "metadata": {"name": name},
            "spec": spec,
        }
    )


# (name, spec, text the apiserver's message must contain: the field, and the rule)
INVALID = [
    ("too-many", {"instances": 10}, "spec.instances"),
    ("too-few", {"instances": 0}, "spec.instances"),
    ("bad-flavor", {"flavor": "postgres"}, "spec.flavor"),
    ("bad-version", {"version": "latest"}, "spec.version"),
    ("bad-size", {"storage": {"size": "lots"}}, "spec.storage.size"),
    ("bad-retention", {"storage": {"pvcRetention": "Keep"}}, "spec.storage.pvcRetention"),
    ("bad-mode", {"replication": {"mode": "sync"}}, "spec.replication.mode"),
    ("bad-grace", {"replication": {"failoverGraceSeconds": 0}}, "spec.replication.failoverGraceSeconds"),
    ("semi-single", {"instances": 1, "replication": {"mode": "semi-sync"}}, "semi-sync replication needs"),
    ("switch-range", {"instances": 2, "replication": {"switchoverTo": 3}}, "spec.replication.switchoverTo"),
    ("owned-key", {"mysqlConfig": {"server-id": "5"}}, "mysqlConfig may not set keys the operator owns"),
    ("key-name", {"mysqlConfig": {"Bad Key": "5"}}, "spec.mysqlConfig"),
    ("nodeport-clusterip", {"service": {"nodePort": 30001}}, "service.nodePort needs"),
    ("nodeport-range", {"service": {"type": "NodePort", "nodePort": 80}}, "spec.service.nodePort"),
    ("app-no-user", {"application": {"database": "shop"}}, "spec.application.user"),
    ("unknown-field", {"instancez": 3}, "instancez"),
]


def test_invalid_clusters_are_rejected_naming_the_field_and_nothing_is_created(operator: Cluster) -> None:
    ns = operator.create_namespace("invalid")
    for name, spec, expected in INVALID:
        result = operator.kubectl_result(
            "apply", "--validate=strict", "-n", ns, "-f", "-", input=cr(name, spec)
        )
        assert result.returncode != 0, f"{name} was accepted"
        assert expected in result.stderr, f"{name}: {result.stderr}"
    assert operator.items("mysqlclusters", ns) == []
    assert operator.items("statefulsets", ns) == []


def test_transition_rules_refuse_immutable_changes(operator: Cluster) -> None:
    ns = operator.create_namespace("immutable")
    operator.apply(cr("db", {"flavor": "mysql", "image": "mysql:9.7", "instances": 1,
                             "storage": {"size": "2Gi"}}), ns)
    for patch, expected in (
        ({"flavor": "mariadb"}, "flavor is immutable"),
        ({"storage": {"size": "1Gi"}}, "storage.size may grow but never shrink"),
        ({"replication": {"mode": "semi-sync"}}, "replication.mode cannot be changed"),
    ):
        result = operator.kubectl_result(
            "patch", "mysqlcluster", "db", "-n", ns, "--type=merge", "-p", yaml.safe_dump({"spec": patch})
        )
        assert result.returncode != 0 and expected in result.stderr, result.stderr
    # An image-only downgrade has no CEL rule: the operator refuses it, says why, and applies nothing.
    before = wait_for(
        lambda: operator.get("statefulset", "db", ns)["spec"]["template"]["spec"]["containers"][0]["image"],
        120, "the StatefulSet of the accepted spec",
    )
    operator.kubectl(
        "patch", "mysqlcluster", "db", "-n", ns, "--type=merge", "-p", '{"spec": {"image": "mysql:8.4"}}'
    )

    def refused() -> dict[str, Any] | None:
        cond = operator.condition("db", ns, "Valid")
        return cond if cond and cond["status"] == "False" else None

    assert "version change refused" in wait_for(refused, 60, "Valid=False for a downgrade")["message"]
    assert operator.status("db", ns)["phase"] == "Invalid"
    assert (
        operator.get("statefulset", "db", ns)["spec"]["template"]["spec"]["containers"][0]["image"] == before
    )
    assert "InvalidSpec" in {e["reason"] for e in operator.events(ns, "db")}
    # A later change still compares with what was accepted, not with the refused spec in between.
    operator.kubectl(
        "patch",
        "mysqlcluster",
        "db",
        "-n",
        ns,
        "--type=merge",
        "-p",
        '{"spec": {"image": "mysql:9.7", "instances": 2}}',
    )
    wait_for(
        lambda: (c := operator.condition("db", ns, "Valid")) and c["status"] == "True", 60, "Valid again"
    )
    grow = operator.kubectl_result(
        "patch",
        "mysqlcluster",
        "db",
        "-n",
        ns,
        "--type=merge",
        "-p",
        '{"spec": {"storage": {"size": "3Gi"}}}',
    )
    assert grow.returncode == 0, grow.stderr
    operator.kubectl("delete", "namespace", ns, "--wait=false")


def test_mysql_example_creates_owned_objects_and_reports_its_pods_not_runnable(operator: Cluster) -> None:
    """MySQL 8.4 (the default version) cannot run here (the sandbox has MySQL 9.7 only, and never
    pretends another version runs): objects appear, status says why."""
    ns = operator.create_namespace("shop")
    operator.kubectl("apply", "-n", ns, "-f", str(example_path("mysqlcluster.yaml")))
    name = load_example("mysqlcluster.yaml")[0]["metadata"]["name"]
    uid = operator.get("mysqlcluster", name, ns)["metadata"]["uid"]

    def all_owned() -> bool:
        for kind, pattern in OWNED:
            obj = operator.get(kind, pattern.format(n=name), ns)
            owners = obj["metadata"].get("ownerReferences") or []
            assert owners and owners[0]["uid"] == uid and owners[0]["controller"] is True, (kind, owners)
            assert obj["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "mysql-operator"
        return True

    wait_for(all_owned, 60, "every owned object with an owner reference")
    statefulset = operator.get("statefulset", name, ns)
    assert statefulset["spec"]["template"]["spec"]["containers"][0]["image"] == "mysql:8.4"

    def not_runnable() -> str | None:
        pod = operator.get("pod", f"{name}-0", ns)
        for status in pod["status"].get("containerStatuses") or []:
            waiting = (status.get("state") or {}).get("waiting") or {}
            if waiting.get("reason") == "ImageNotRunnable":
                return str(waiting.get("message"))
        return None

    assert "MySQL" in wait_for(not_runnable, 60, "the mysql pod reported as not runnable")
    status = operator.status(name, ns)
    assert status["phase"] in ("Creating", "Initializing") and status["instancesReady"] == "0/3"
    ready = operator.condition(name, ns, "Ready")
    assert ready is not None and ready["status"] == "False"
    reasons = {e["reason"] for e in operator.events(ns, name)}
    assert {"CredentialsGenerated", "Applied"} <= reasons
    secret = operator.secret(f"{name}-credentials", ns)
    assert {"root-password", "replication-password", "operator-password", "app-password"} <= set(secret)
    # Volumes retained (the default): the passwords that open them are not owned by the cluster.
    meta = operator.get("secret", f"{name}-credentials", ns)["metadata"]
    assert (
        "ownerReferences" not in meta and meta["labels"]["app.kubernetes.io/managed-by"] == "mysql-operator"
    )
    assert secret["app-user"] == "app" and secret["app-database"] == "shop"


def test_existing_secret_is_validated_and_used(operator: Cluster) -> None:
    ns = operator.create_namespace("orders")
    docs = load_example("mysqlcluster-existing-secret.yaml")
    secret = next(d for d in docs if d["kind"] == "Secret")
    cluster = next(d for d in docs if d["kind"] == "MysqlCluster")
    broken = {
        **secret,
        "stringData": {k: v for k, v in secret["stringData"].items() if k != "operator-password"},
    }
    operator.apply(broken, ns)
    operator.apply(cluster, ns)
    name = cluster["metadata"]["name"]

    def credentials_invalid() -> dict[str, Any] | None:
        cond = operator.condition(name, ns, "CredentialsReady")
        return cond if cond and cond["status"] == "False" else None

    cond = wait_for(credentials_invalid, 60, "CredentialsReady=False")
    assert "operator-password" in cond["message"]
    assert operator.status(name, ns)["phase"] == "Pending"
    assert operator.items("statefulsets", ns) == [], "nothing is created while the Secret is incomplete"
    assert "CredentialsInvalid" in {e["reason"] for e in operator.events(ns, name)}
    # Fixing the Secret is enough: the operator looks again on its own.
    operator.apply(secret, ns)

    def applied() -> bool:
        cond = operator.condition(name, ns, "CredentialsReady")
        return bool(cond and cond["status"] == "True" and operator.items("statefulsets", ns))

    wait_for(applied, 60, "the StatefulSet once the Secret is complete")
    assert operator.secret("orders-db-passwords", ns)["root-password"] == "change-me-root", "never rewritten"


def test_printer_columns_show_in_kubectl_get(operator: Cluster) -> None:
    out = operator.kubectl("get", "mysqlclusters", "-A")
    header = out.splitlines()[0].split()
    assert header[:7] == ["NAMESPACE", "NAME", "READY", "PHASE", "PRIMARY", "INSTANCES", "VERSION"], out
    assert "AGE" in header
    short = operator.kubectl("get", "mysql", "-n", "shop")
    assert "shop-db" in short and "0/3" in short


def test_deleting_a_cluster_garbage_collects_every_owned_object(operator: Cluster) -> None:
    ns = "shop"
    name = "shop-db"
    pvcs_before = operator.items("persistentvolumeclaims", ns)
    operator.kubectl("delete", "mysqlcluster", name, "-n", ns, "--wait=true", "--timeout=60s")

    def all_gone() -> bool:
        for kind, pattern in OWNED:
            result = operator.kubectl_result("get", kind, pattern.format(n=name), "-n", ns)
            if result.returncode == 0:
                return False
        return not operator.items("pods", ns)

    wait_for(all_gone, 120, "garbage collection of every owned object")
    # pvcRetention defaults to Retain: the data volumes stay for a later cluster of the same name.
    assert len(operator.items("persistentvolumeclaims", ns)) == len(pvcs_before) > 0
    assert operator.secret(f"{name}-credentials", ns), "and so do the credentials that open them"
