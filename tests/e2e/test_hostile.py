"""Hostile and invalid MysqlClusters on a real apiserver and operator: each is refused with a message
naming the field, and nothing is created or changed.

The findings of issue 11 (my.cnf injection through values and through every spelling of a refused
key, podTemplate reaching the operator's labels, names too long for derived objects, ...) plus our
own. The apiserver refuses most (CRD schema and CEL); the operator refuses what only it can judge (a
user's Secret whose passwords would break an option file; an object the API refuses, found by a
dry run before anything is created).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from mysql_operator.handlers.cluster import RETRY_SECONDS
from tests.e2e.conftest import FLAVORS, Cluster, cluster_spec, wait_for

pytestmark = pytest.mark.e2e

API = "mysql.operator.dev/v1alpha1"
Mutate = Callable[[dict[str, Any]], None]


def _config(key: str, value: str = "1") -> Mutate:
    return lambda cr: cr["spec"].__setitem__("mysqlConfig", {key: value})


def _pod_template(**fields: Any) -> Mutate:
    return lambda cr: cr["spec"].__setitem__("podTemplate", fields)


def _spec(**fields: Any) -> Mutate:
    return lambda cr: cr["spec"].update(fields)


def _name(name: str) -> Mutate:
    return lambda cr: cr["metadata"].__setitem__("name", name)


# (id, how the valid object is made hostile, text the refusal must contain: the field)
HOSTILE: list[tuple[str, Mutate, str]] = [
    # my.cnf injection through a value: a newline starts any line, a section, an include.
    ("value-newline-init-file", _config("max_connections", "100\ninit_file=/tmp/x.sql"), "spec.mysqlConfig"),
    ("value-crlf-client-section", _config("max_connections", "100\r\n[client]"), "spec.mysqlConfig"),
    ("value-newline-includedir", _config("sql_mode", "ANSI\n!includedir /tmp"), "spec.mysqlConfig"),
    ("value-escape-char", _config("sql_mode", "ANSI\x1b[2J"), "spec.mysqlConfig"),
    ("value-too-long", _config("sql_mode", "A" * 1025), "spec.mysqlConfig"),
    # refused keys, in the spellings mysqld accepts
    ("key-init-file", _config("init_file", "/tmp/x.sql"), "spec.mysqlConfig"),
    ("key-init-file-dashes", _config("init-file", "/tmp/x.sql"), "spec.mysqlConfig"),
    ("key-loose-init-file", _config("loose-init-file", "/tmp/x.sql"), "spec.mysqlConfig"),
    ("key-skip-grant-tables", _config("skip-grant-tables", "ON"), "spec.mysqlConfig"),
    ("key-loose-skip-grant-tables", _config("loose_skip_grant_tables", "ON"), "spec.mysqlConfig"),
    ("key-plugin-load-add", _config("plugin_load_add", "evil.so"), "spec.mysqlConfig"),
    ("key-plugin-dir", _config("plugin-dir", "/tmp"), "spec.mysqlConfig"),
    ("key-local-infile", _config("local_infile", "ON"), "spec.mysqlConfig"),
    ("key-enable-local-infile", _config("enable-local-infile", "1"), "spec.mysqlConfig"),
    ("key-secure-file-priv", _config("secure_file_priv", ""), "spec.mysqlConfig"),
    ("key-init-connect", _config("init_connect", "DROP DATABASE x"), "spec.mysqlConfig"),
    ("key-abbreviated-datadir", _config("datad", "/tmp"), "spec.mysqlConfig"),
    ("key-maximum-server-id", _config("maximum-server-id", "1"), "spec.mysqlConfig"),
    ("key-disable-read-only", _config("disable-read-only", "1"), "spec.mysqlConfig"),
    ("key-skip-networking", _config("skip-networking", "1"), "spec.mysqlConfig"),
    ("key-wsrep-notify-cmd", _config("wsrep_notify_cmd", "/bin/sh"), "spec.mysqlConfig"),
    ("key-log-error-path", _config("log_error", "/etc/passwd"), "spec.mysqlConfig"),
    ("key-general-log-file", _config("general-log-file", "/tmp/x"), "spec.mysqlConfig"),
    ("key-bang-include", _config("!include", "/tmp/x.cnf"), "spec.mysqlConfig"),
    ("key-too-long", _config("k" * 65), "spec.mysqlConfig"),
    # podTemplate reaching the operator's own labels, and malformed metadata
    (
        "label-role-primary",
        _pod_template(labels={"mysql.operator.dev/role": "primary"}),
        "spec.podTemplate.labels",
    ),
    (
        "label-instance",
        _pod_template(labels={"app.kubernetes.io/instance": "other"}),
        "spec.podTemplate.labels",
    ),
    (
        "label-revision-hash",
        _pod_template(labels={"controller-revision-hash": "x"}),
        "spec.podTemplate.labels",
    ),
    (
        "annotation-config-hash",
        _pod_template(annotations={"mysql.operator.dev/config-hash": "0"}),
        "spec.podTemplate.annotations",
    ),
    ("label-value-newline", _pod_template(labels={"team": "a\nb"}), "spec.podTemplate.labels"),
    ("node-selector-bad-key", _pod_template(nodeSelector={"bad key": "x"}), "spec.podTemplate.nodeSelector"),
    (
        "service-account-path",
        _pod_template(serviceAccountName="../kube-system/admin"),
        "spec.podTemplate.serviceAccountName",
    ),
    # names too long for, or invalid in, the objects derived from them
    ("name-too-long", _name("a" * 53), "metadata.name"),
    ("name-leading-digit", _name("1db"), "metadata.name"),
    ("name-with-dot", _name("db.shop"), "metadata.name"),
    # values that reach SQL identifiers, a shell or an image reference
    (
        "app-database-injection",
        _spec(application={"database": "shop`; DROP", "user": "app"}),
        "spec.application.database",
    ),
    ("app-user-quote", _spec(application={"database": "shop", "user": "app'@'%"}), "spec.application.user"),
    ("image-with-argument", _spec(image="mariadb:10.11 --init-file=/tmp/x"), "spec.image"),
    (
        "exporter-image-newline",
        _spec(monitoring={"exporter": True, "exporterImage": "a\nb"}),
        "spec.monitoring.exporterImage",
    ),
    ("secret-name-path", _spec(credentials={"secretName": "../other"}), "spec.credentials.secretName"),
    ("version-shell", _spec(version="10.11; rm -rf /"), "spec.version"),
    ("service-annotation-key", _spec(service={"annotations": {"a b": "x"}}), "spec.service.annotations"),
]


def manifest(flavor: str, name: str = "target") -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "MysqlCluster",
        "metadata": {"name": name},
        "spec": cluster_spec(flavor, instances=1),
    }


def snapshot(cluster: Cluster, ns: str) -> dict[str, list[str]]:
    """Every object a cluster could make in the namespace, by kind: name@resourceVersion."""
    kinds = ",".join(
        [
            "mysqlclusters",
            "statefulsets",
            "services",
            "configmaps",
            "secrets",
            "poddisruptionbudgets",
            "networkpolicies",
            "pods",
            "jobs",
            "persistentvolumeclaims",
        ]
    )
    items = json.loads(cluster.kubectl("get", kinds, "-n", ns, "-o", "json"))["items"]
    found: dict[str, list[str]] = {}
    for item in items:
        meta = item["metadata"]
        if meta["name"] == "kube-root-ca.crt":
            continue  # published into every namespace by the controller-manager, in its own time
        found.setdefault(item["kind"], []).append(f"{meta['name']}@{meta['resourceVersion']}")
    return {kind: sorted(names) for kind, names in found.items()}


def refused(cluster: Cluster, ns: str, document: dict[str, Any], expected: str, what: str) -> None:
    result = cluster.kubectl_result("apply", "-n", ns, "-f", "-", input=yaml.safe_dump(document))
    assert result.returncode != 0, f"{what} was accepted"
    assert expected in result.stderr, f"{what}: the refusal does not name {expected}: {result.stderr}"


def test_at_least_thirty_hostile_inputs() -> None:
    assert len(HOSTILE) + 2 >= 30  # + the two the operator refuses, below


@pytest.mark.parametrize("flavor", FLAVORS)
def test_hostile_clusters_are_refused_naming_the_field_and_nothing_is_created(
    operator: Cluster, flavor: str
) -> None:
    ns = operator.create_namespace(f"hostile-new-{flavor}")
    before = snapshot(operator, ns)
    for what, mutate, expected in HOSTILE:
        document = manifest(flavor)
        mutate(document)
        refused(operator, ns, document, expected, what)
    assert snapshot(operator, ns) == before, "a refused object left something behind"
    operator.kubectl("delete", "namespace", ns, "--wait=false")


@pytest.mark.parametrize("flavor", FLAVORS)
def test_hostile_updates_of_a_running_cluster_change_nothing(operator: Cluster, flavor: str) -> None:
    ns = operator.create_namespace(f"hostile-upd-{flavor}")
    operator.apply(manifest(flavor), ns)
    wait_for(
        lambda: operator.kubectl_result("get", "statefulset", "target", "-n", ns).returncode == 0,
        120,
        "the StatefulSet of the valid cluster",
    )
    config_before = operator.get("configmap", "target-config", ns)["data"]
    cr_before = operator.get("mysqlcluster", "target", ns)
    for what, mutate, expected in HOSTILE:
        if expected == "metadata.name":
            continue  # a rename is a new object, covered above
        document = manifest(flavor)
        mutate(document)
        refused(operator, ns, document, expected, f"update {what}")
    cr_after = operator.get("mysqlcluster", "target", ns)
    assert cr_after["spec"] == cr_before["spec"]
    assert cr_after["metadata"]["generation"] == cr_before["metadata"]["generation"]
    assert operator.get("configmap", "target-config", ns)["data"] == config_before
    operator.kubectl("delete", "namespace", ns, "--wait=false")


def _warning(cluster: Cluster, ns: str, name: str, reason: str) -> dict[str, Any] | None:
    events = [e for e in cluster.events(ns, name) if e.get("type") == "Warning" and e.get("reason") == reason]
    return events[0] if events else None


@pytest.mark.parametrize("flavor", FLAVORS)
def test_the_operator_refuses_a_secret_that_would_break_an_option_file(
    operator: Cluster, flavor: str
) -> None:
    """The exporter's password is written into its option file: a newline there would add lines."""
    ns = operator.create_namespace(f"hostile-secret-{flavor}")
    operator.kubectl(
        "create",
        "secret",
        "generic",
        "mine",
        "-n",
        ns,
        "--from-literal=root-password=r00t-pw",
        "--from-literal=replication-password=repl-pw",
        "--from-literal=operator-password=op-pw",
        "--from-literal=exporter-password=x\n[client]\nuser=root",
    )
    before = {k: v for k, v in snapshot(operator, ns).items() if k != "MysqlCluster"}
    document = manifest(flavor)
    document["spec"].update(credentials={"secretName": "mine"}, monitoring={"exporter": True})
    operator.apply(document, ns)

    def refusal() -> dict[str, Any] | None:
        cond = operator.condition("target", ns, "CredentialsReady")
        return cond if cond and cond["status"] == "False" else None

    cond = wait_for(refusal, 90, "CredentialsReady False")
    assert "exporter-password" in cond["message"], cond
    event = wait_for(lambda: _warning(operator, ns, "target", "CredentialsInvalid"), 30, "a Warning Event")
    assert "exporter-password" in event["message"]
    after = {k: v for k, v in snapshot(operator, ns).items() if k != "MysqlCluster"}
    assert after == before, "nothing is created for a cluster whose credentials are refused"
    operator.kubectl("delete", "namespace", ns, "--wait=false")


@pytest.mark.parametrize("flavor", FLAVORS)
def test_an_object_the_api_refuses_ends_as_a_condition_and_event_not_a_retry_loop(
    operator: Cluster, flavor: str
) -> None:
    """A toleration the schema lets through (free-form) but the StatefulSet API refuses (422): the
    operator's dry run finds it before anything exists, says what to change, and stops."""
    ns = operator.create_namespace(f"hostile-422-{flavor}")
    before = {k: v for k, v in snapshot(operator, ns).items() if k != "MysqlCluster"}
    document = manifest(flavor)
    document["spec"]["podTemplate"] = {"tolerations": [{"key": "x", "operator": "Sometimes"}]}
    operator.apply(document, ns)

    def refusal() -> dict[str, Any] | None:
        cond = operator.condition("target", ns, "ResourcesReady")
        return cond if cond and cond["status"] == "False" else None

    cond = wait_for(refusal, 90, "ResourcesReady False")
    assert cond["reason"] == "ObjectRefused" and "tolerations" in cond["message"], cond
    assert operator.status("target", ns)["phase"] == "Invalid"
    event = wait_for(lambda: _warning(operator, ns, "target", "ObjectRefused"), 30, "a Warning Event")
    assert "tolerations" in event["message"]
    after = {k: v for k, v in snapshot(operator, ns).items() if k != "MysqlCluster"}
    assert after == before, "the dry run refused it before anything was created"
    # Not retried: still one Event after longer than the operator's retry delay (each retry would
    # post another).
    time.sleep(2 * RETRY_SECONDS + 5)
    refusals = [e for e in operator.events(ns, "target") if e.get("reason") == "ObjectRefused"]
    assert sum(int(e.get("count") or 1) for e in refusals) == 1, refusals
    operator.kubectl("delete", "namespace", ns, "--wait=false")
