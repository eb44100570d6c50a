"""Replication on the e2e cluster: a 3-instance MariaDB cluster through the operator running as a pod.

Writes go through the -primary Service (its NodePort, forwarded by the node agent as kube-proxy
would), reads go to a replica pod. Failover, switchover there and back, and the operator's logs.
"""

from __future__ import annotations

import json
import re
import urllib.request
from typing import Any

import pytest

from tests.e2e.conftest import Cluster, connect, operator_log, wait_for

pytestmark = pytest.mark.e2e

NS = "repl"
NAME = "ha"
NODE_PORT = 30406


def spec() -> dict[str, Any]:
    return {
        "apiVersion": "mysql.operator.dev/v1alpha1",
        "kind": "MysqlCluster",
        "metadata": {"name": NAME},
        "spec": {
            "flavor": "mariadb",
            "instances": 3,
            "replication": {"mode": "semi-sync", "failoverGraceSeconds": 3},
            "application": {"database": "app", "user": "app"},
            "storage": {"size": "1Gi", "pvcRetention": "Delete"},
            "service": {"type": "NodePort", "nodePort": NODE_PORT},
        },
    }


@pytest.fixture(scope="module")
def ha(operator: Cluster) -> Cluster:
    operator.create_namespace(NS)
    operator.apply(spec(), NS)
    operator.wait_ready(NAME, NS, timeout=300)
    return operator


def app_password(cluster: Cluster) -> str:
    return cluster.secret(f"{NAME}-credentials", NS)["app-password"]


def via_service(cluster: Cluster) -> Any:
    return connect("127.0.0.1", "app", app_password(cluster), "app", port=NODE_PORT)


def role_of(cluster: Cluster, pod: str) -> str | None:
    return (cluster.get("pod", pod, NS)["metadata"].get("labels") or {}).get("mysql.operator.dev/role")


def checksums(cluster: Cluster) -> dict[str, tuple[Any, ...]]:
    root = cluster.secret(f"{NAME}-credentials", NS)["operator-password"]
    sums = {}
    for ordinal in range(3):
        pod = f"{NAME}-{ordinal}"
        with connect(cluster.pod_ip(pod, NS), "mysqlop_admin", root, "app") as conn, conn.cursor() as cur:
            cur.execute("CHECKSUM TABLE app.items")
            sums[pod] = tuple(cur.fetchall())
    return sums


def primary_of(cluster: Cluster) -> str | None:
    return cluster.status(NAME, NS).get("primary")


def test_cluster_becomes_ready_with_one_primary_and_two_replicas(ha: Cluster) -> None:
    status = ha.status(NAME, NS)
    assert status["phase"] == "Ready" and status["instancesReady"] == "3/3"
    primary = status["primary"]
    roles = {i["name"]: i["role"] for i in status["instances"]}
    assert list(roles.values()).count("primary") == 1 and list(roles.values()).count("replica") == 2
    assert role_of(ha, primary) == "primary"
    assert {e["reason"] for e in ha.events(NS, NAME)} >= {"PrimaryBootstrapped", "ReplicaAttached"}
    out = ha.kubectl("get", "mysql", NAME, "-n", NS)
    assert "True" in out and primary in out and "3/3" in out


def test_write_through_the_primary_service_read_on_a_replica(ha: Cluster) -> None:
    with via_service(ha) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS items (id INT PRIMARY KEY, v VARCHAR(40))")
        cur.executemany("INSERT INTO items VALUES (%s, %s)", [(i, f"row-{i}") for i in range(1, 101)])
        cur.execute("SELECT @@hostname, @@read_only")
        assert cur.fetchone()[1] == 0
    status = ha.status(NAME, NS)
    replica = next(i["name"] for i in status["instances"] if i["role"] == "replica")

    def replicated() -> bool:
        with connect(ha.pod_ip(replica, NS), "app", app_password(ha), "app") as conn, conn.cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM items")
            return bool(cur.fetchone()[0] == 100)

    wait_for(replicated, 30, f"rows on replica {replica}")
    with connect(ha.pod_ip(replica, NS), "app", app_password(ha), "app") as conn, conn.cursor() as cur:
        cur.execute("SELECT @@read_only")
        assert cur.fetchone()[0] == 1, "replicas are read-only"


def test_losing_the_primary_promotes_a_replica_and_the_service_follows(ha: Cluster) -> None:
    old = primary_of(ha)
    assert old is not None
    with via_service(ha) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO items VALUES (1000, 'before failover')")
    # A lost node: mysqld killed and kept down, the pod deleted (its replacement cannot start mysqld).
    ha.sandbox.kill_container(NS, old, "mysqld", keep_down=True)
    ha.kubectl("delete", "pod", old, "-n", NS, "--wait=false")
    new = wait_for(lambda: (p := primary_of(ha)) and p != old and p, 120, "a new primary")

    def writable_through_service() -> bool:
        with via_service(ha) as conn, conn.cursor() as cur:
            cur.execute("INSERT INTO items VALUES (1001, 'after failover')")
            cur.execute("SELECT COUNT(*) FROM items WHERE id = 1000")
            return bool(cur.fetchone()[0] == 1)

    wait_for(writable_through_service, 60, "writes through the Service on the new primary")
    assert role_of(ha, new) == "primary"
    history = ha.status(NAME, NS)["roleChanges"]
    assert history[-1]["kind"] == "failover" and history[-1]["from"] == old and history[-1]["to"] == new
    assert history[-1]["seconds"] >= 0
    assert "FailoverCompleted" in {e["reason"] for e in ha.events(NS, NAME)}
    # The node comes back: the old primary rejoins as a replica and the cluster is Ready again.
    ha.sandbox.release_container(NS, old, "mysqld")
    wait_for(lambda: role_of(ha, old) == "replica", 180, f"{old} back as a replica")
    status = ha.wait_ready(NAME, NS, timeout=180)
    assert status["primary"] == new


def test_switchover_there_and_back_three_times_keeps_every_write(ha: Cluster) -> None:
    start = primary_of(ha)
    assert start is not None
    other = next(f"{NAME}-{o}" for o in range(3) if f"{NAME}-{o}" != start)
    row = 2000
    for target in [other, start] * 3:
        ordinal = int(target.rsplit("-", 1)[1])
        ha.kubectl(
            "patch",
            "mysqlcluster",
            NAME,
            "-n",
            NS,
            "--type=merge",
            "-p",
            f'{{"spec":{{"replication":{{"switchoverTo":{ordinal}}}}}}}',
        )
        wait_for(
            lambda t=target: primary_of(ha) == t and role_of(ha, t) == "primary", 120, f"{target} primary"
        )

        def write(r: int = row) -> bool:
            with via_service(ha) as conn, conn.cursor() as cur:
                cur.execute("INSERT INTO items VALUES (%s, 'switchover')", (r,))
            return True

        wait_for(write, 60, "a write through the Service after switchover")
        row += 1
        ha.wait_ready(NAME, NS, timeout=120)
    kinds = [h["kind"] for h in ha.status(NAME, NS)["roleChanges"]]
    assert kinds.count("switchover") >= 6 or len(kinds) == 10

    def converged() -> dict[str, tuple[Any, ...]] | None:
        sums = checksums(ha)
        return sums if len(set(sums.values())) == 1 else None

    wait_for(converged, 60, "equal table checksums on primary and replicas")
    with via_service(ha) as conn, conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM items WHERE id >= 2000")
        assert cur.fetchone()[0] == 6


def test_no_password_in_operator_logs(ha: Cluster) -> None:
    log = operator_log(ha)
    assert "topology" in log or "applied" in log, "the operator log was found and has content"
    secrets = ha.secret(f"{NAME}-credentials", NS)
    for key in ("root-password", "replication-password", "operator-password", "app-password"):
        assert secrets[key] not in log, f"{key} appears in the operator log"


def test_operator_logs_are_json_lines_naming_the_cluster(ha: Cluster) -> None:
    lines = [json.loads(line) for line in operator_log(ha).splitlines() if line.strip()]
    ours = [line for line in lines if (line.get("object") or {}).get("name") == NAME]
    assert ours and all(line["object"]["namespace"] == NS for line in ours)
    failover = [line for line in lines if "FailoverCompleted" in line.get("message", "")]
    assert failover, "the SQL layer's failover line is in the log"
    assert all(line.get("object", {}).get("name") == NAME for line in failover), failover


def scrape(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Prometheus text format -> {(series, labels): value}."""
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    samples = {}
    for line in text.splitlines():
        match = re.fullmatch(r"([a-z_]+)(?:\{(.*)\})? (\S+)", line)
        if match:
            labels = frozenset(re.findall(r'(\w+)="([^"]*)"', match.group(2) or ""))
            samples[(match.group(1), labels)] = float(match.group(3))
    return samples


def test_operator_metrics_show_lag_failovers_and_reconciles(ha: Cluster) -> None:
    (pod,) = [
        p
        for p in ha.items("pods", "mysql-operator", "app.kubernetes.io/instance=mysql-operator")
        if p["status"].get("podIP") and not p["metadata"].get("deletionTimestamp")
    ]
    samples = scrape(f"http://{pod['status']['podIP']}:9090/metrics")
    ours = frozenset({("namespace", NS), ("cluster", NAME)})
    assert samples[("mysql_operator_failovers_total", ours)] == 1
    assert samples[("mysql_operator_switchovers_total", ours)] == 6
    assert samples[("mysql_operator_cluster_ready", ours)] == 1
    assert samples[("mysql_operator_topology_passes_total", ours)] > 10
    assert samples[("mysql_operator_reconciles_total", ours)] >= 1
    lag = {
        dict(labels)["instance"]: value
        for (name, labels), value in samples.items()
        if name == "mysql_operator_replication_lag_seconds" and ours <= labels
    }
    assert len(lag) == 2 and all(value >= 0 for value in lag.values())
