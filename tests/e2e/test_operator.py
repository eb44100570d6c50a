"""The operator as installed by the chart: restarts, RBAC as granted, helm upgrade and uninstall."""

from __future__ import annotations

import re
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from sandbox.controlplane import write_kubeconfig
from tests.e2e.conftest import CHART, FLAVORS, OPERATOR_NS, Cluster, example_path, wait_for

pytestmark = pytest.mark.e2e


def operator_pods(cluster: Cluster) -> list[str]:
    pods = cluster.items("pods", OPERATOR_NS, "app.kubernetes.io/instance=mysql-operator")
    return [p["metadata"]["name"] for p in pods if not p["metadata"].get("deletionTimestamp")]


@pytest.mark.parametrize("flavor", FLAVORS)
def test_operator_restarted_mid_reconcile_converges(operator: Cluster, flavor: str) -> None:
    """The flavor's example (examples/mysql.yaml, examples/mariadb.yaml), as `make sandbox` applies it."""
    ns = operator.create_namespace(f"restart-{flavor}")
    operator.kubectl("apply", "-n", ns, "-f", str(example_path(f"{flavor}.yaml")))
    # Kill the operator while it is creating objects and bootstrapping replication.
    wait_for(lambda: operator.items("statefulsets", ns), 60, "the operator to start on the cluster")
    (before,) = operator_pods(operator)
    operator.kubectl("delete", "pod", before, "-n", OPERATOR_NS, "--wait=false")
    wait_for(lambda: [p for p in operator_pods(operator) if p != before], 120, "a new operator pod")
    status = operator.wait_ready("demo", ns, timeout=420)
    assert status["instancesReady"] == "3/3"
    assert status["primary"] is not None
    operator.kubectl("delete", "namespace", ns, "--wait=false")


def can_i(cluster: Cluster, account: str, *args: str) -> bool:
    result = cluster.kubectl_result("auth", "can-i", *args, f"--as={account}")
    return result.stdout.strip() == "yes"


def test_cluster_wide_operator_cannot_touch_kinds_it_does_not_need(operator: Cluster) -> None:
    account = f"system:serviceaccount:{OPERATOR_NS}:mysql-operator"
    assert can_i(operator, account, "patch", "statefulsets", "-n", "anywhere")
    assert can_i(operator, account, "create", "secrets", "-n", "anywhere")
    for verb, kind in (
        ("list", "secrets"),
        ("delete", "secrets"),
        ("delete", "statefulsets"),
        ("create", "deployments"),
        ("delete", "nodes"),
        ("create", "clusterroles"),
        ("create", "roles"),
        ("delete", "persistentvolumes"),
        ("create", "pods/exec"),
    ):
        assert not can_i(operator, account, verb, kind, "-n", "anywhere"), f"operator may {verb} {kind}"


def operator_kubeconfig(cluster: Cluster, account: str, namespace: str, path: Path) -> Path:
    """A kubeconfig that acts with a fresh token of the ServiceAccount (the apiserver decides)."""
    token = cluster.kubectl("create", "token", account, "-n", namespace).strip()
    admin = yaml.safe_load(cluster.sandbox.kubeconfig.read_text())["clusters"][0]["cluster"]
    write_kubeconfig(path, admin["server"], Path(admin["certificate-authority"]), account, token=token)
    return path


def test_operator_token_may_write_only_objects_it_labels_and_never_in_protected_namespaces(
    operator: Cluster, tmp_path: Path
) -> None:
    """RBAC lets the cluster-wide operator create Secrets and patch Pods anywhere; the chart's
    ValidatingAdmissionPolicy narrows that to objects labelled managed-by=mysql-operator."""
    ns = operator.create_namespace("vap")
    as_operator = (
        f"--kubeconfig={operator_kubeconfig(operator, 'mysql-operator', OPERATOR_NS, tmp_path / 'op')}"
    )
    operator.kubectl("create", "configmap", "users-own", "-n", ns, "--from-literal=a=b")
    labelled = {"app.kubernetes.io/managed-by": "mysql-operator"}

    def secret(name: str, namespace: str, labels: dict[str, str]) -> str:
        return yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": name, "namespace": namespace, "labels": labels},
                "stringData": {"k": "v"},
            }
        )

    attempts = [
        ("create an unlabelled Secret", ["create", "-f", "-"], secret("stolen", ns, {})),
        (
            "create a labelled Secret in kube-system",
            ["create", "-f", "-"],
            secret("x", "kube-system", labelled),
        ),
        (
            "label a user's ConfigMap to take it over",
            ["label", "configmap", "users-own", "-n", ns, "app.kubernetes.io/managed-by=mysql-operator"],
            None,
        ),
        (
            "patch a user's ConfigMap",
            ["patch", "configmap", "users-own", "-n", ns, "-p", '{"data":{"a":"c"}}'],
            None,
        ),
        (
            "patch a kube-system ConfigMap",
            ["patch", "configmap", "kube-root-ca.crt", "-n", "kube-system", "-p", '{"data":{"x":"y"}}'],
            None,
        ),
    ]
    for what, args, text in attempts:
        result = operator.kubectl_result(*args, as_operator, input=text)
        assert result.returncode != 0, f"the operator's token may {what}"
        assert "mysql-operator may" in result.stderr or "forbidden" in result.stderr.lower(), result.stderr
    # RBAC (not the policy) refuses what the operator never needs at all.
    for args in (
        ["get", "nodes"],
        ["create", "clusterrolebinding", "x", "--clusterrole=admin", "--user=x"],
        ["delete", "secret", "anything", "-n", ns],
        ["get", "secrets", "-n", ns],
    ):
        result = operator.kubectl_result(*args, as_operator)
        assert result.returncode != 0 and "forbidden" in result.stderr.lower(), (args, result.stderr)
    # The same token may do what the operator does: a labelled object in an ordinary namespace.
    allowed = operator.kubectl_result("create", "-f", "-", as_operator, input=secret("mine", ns, labelled))
    assert allowed.returncode == 0, allowed.stderr
    assert operator.get("configmap", "users-own", ns)["data"] == {"a": "b"}, (
        "the user's ConfigMap is unchanged"
    )
    operator.kubectl("delete", "namespace", ns, "--wait=false")


def test_namespaced_install_upgrade_and_uninstall_with_rbac_enforced(
    operator: Cluster, tmp_path: Path
) -> None:
    """A second release scoped to one namespace (no pod: the cluster-wide one does the work here)."""
    release, ns = "scoped", "scoped-op"
    account = f"system:serviceaccount:{ns}:{release}-mysql-operator"
    operator.create_namespace("team-a")
    operator.create_namespace("team-b")
    operator.helm(
        "install",
        release,
        str(CHART),
        "-n",
        ns,
        "--create-namespace",
        "--set",
        "watchNamespaces={team-a}",
        "--set",
        "replicaCount=0",
    )
    assert can_i(operator, account, "get", "secrets", "-n", "team-a")
    assert not can_i(operator, account, "get", "secrets", "-n", "team-b"), "Secrets outside its namespaces"
    assert not can_i(operator, account, "get", "secrets", "-n", "kube-system")
    assert not can_i(operator, account, "watch", "mysqlclusters", "--all-namespaces")
    # The denial is the apiserver's, not only can-i's: act with the account's own token.
    token = operator.kubectl("create", "token", f"{release}-mysql-operator", "-n", ns).strip()
    as_operator = tmp_path / "scoped.kubeconfig"
    admin = yaml.safe_load(operator.sandbox.kubeconfig.read_text())["clusters"][0]["cluster"]
    write_kubeconfig(
        as_operator, admin["server"], Path(admin["certificate-authority"]), "scoped", token=token
    )
    denied = operator.kubectl_result("get", "secrets", "-n", "team-b", f"--kubeconfig={as_operator}")
    assert denied.returncode != 0 and "forbidden" in denied.stderr.lower(), denied.stderr
    allowed = operator.kubectl_result("get", "mysqlclusters", "-n", "team-a", f"--kubeconfig={as_operator}")
    assert allowed.returncode == 0, allowed.stderr
    operator.helm(
        "upgrade", release, str(CHART), "-n", ns, "--reuse-values", "--set", "watchNamespaces={team-a,team-b}"
    )
    assert can_i(operator, account, "get", "secrets", "-n", "team-b")
    history = operator.helm("history", release, "-n", ns)
    assert "upgrade" in history.lower() or len(history.strip().splitlines()) == 3
    operator.helm("uninstall", release, "-n", ns, "--wait")
    assert operator.kubectl_result("get", "role", f"{release}-mysql-operator", "-n", "team-a").returncode != 0
    assert not can_i(operator, account, "get", "secrets", "-n", "team-a")
    # The CRDs stay (helm never deletes CRDs), so the main install keeps working.
    assert operator.kubectl_result("get", "crd", "mysqlclusters.mysql.operator.dev").returncode == 0


def topology_passes(pod: dict[str, Any], namespace: str, cluster: str) -> float:
    """The pod's count of topology passes for one cluster (0 when it never acted on it)."""
    url = f"http://{pod['status']['podIP']}:9090/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    pattern = rf'mysql_operator_topology_passes_total\{{cluster="{cluster}",namespace="{namespace}"\}} (\S+)'
    match = re.search(pattern, text)
    return float(match.group(1)) if match else 0.0


def test_two_operator_replicas_elect_one_leader_that_keeps_working(operator: Cluster) -> None:
    """kopf peering with a random priority per replica: one acts, the other waits as a standby."""
    operator.helm(
        "upgrade",
        "mysql-operator",
        str(CHART),
        "-n",
        OPERATOR_NS,
        "--reuse-values",
        "--set",
        "replicaCount=2",
        "--wait",
        "--timeout",
        "180s",
    )
    try:
        wait_for(lambda: len(operator_pods(operator)) == 2, 120, "two operator pods")
        ns = operator.create_namespace("leader")
        operator.apply(
            {
                "apiVersion": "mysql.operator.dev/v1alpha1",
                "kind": "MysqlCluster",
                "metadata": {"name": "solo"},
                "spec": {
                    "flavor": "mariadb",
                    "instances": 1,
                    "storage": {"size": "1Gi", "pvcRetention": "Delete"},
                },
            },
            ns,
        )
        assert operator.wait_ready("solo", ns, timeout=180)["primary"] == "solo-0"
        pods = [
            p
            for p in operator.items("pods", OPERATOR_NS, "app.kubernetes.io/instance=mysql-operator")
            if not p["metadata"].get("deletionTimestamp")
        ]
        passes = sorted(topology_passes(pod, ns, "solo") for pod in pods)
        assert len(passes) == 2 and passes[0] == 0 < passes[1], (
            f"one leader acts, one standby waits: {passes}"
        )
        logs = "".join(operator.pod_logs(OPERATOR_NS, p["metadata"]["name"], "operator") for p in pods)
        assert "Possibly conflicting operators with the same priority" not in logs
        operator.kubectl("delete", "namespace", ns, "--wait=false")
    finally:
        operator.helm(
            "upgrade",
            "mysql-operator",
            str(CHART),
            "-n",
            OPERATOR_NS,
            "--reuse-values",
            "--set",
            "replicaCount=1",
            "--wait",
            "--timeout",
            "180s",
        )
        wait_for(lambda: len(operator_pods(operator)) == 1, 120, "one operator pod again")
