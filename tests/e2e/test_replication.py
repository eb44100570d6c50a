"""Replication on the e2e cluster: a 3-instance cluster per flavor (real MySQL 9.7 and MariaDB 10.11)
through the operator running as a pod.

Writes go through the -primary Service (its NodePort, forwarded by the node agent as kube-proxy
would), reads go to a replica pod. Failover, switchover there and back, and the operator's logs.
"""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.conftest import FLAVORS, Cluster, cluster_spec, connect, operator_log, wait_for

pytestmark = pytest.mark.e2e

NAME = "ha"
NODE_PORTS = {"mysql": 30406, "mariadb": 30407}


class HA(Cluster):
    """The e2e cluster seen from one flavor's MysqlCluster: its namespace and its NodePort."""

    def __init__(self, cluster: Cluster, flavor: str) -> None:
        super().__init__(cluster.sandbox)
        self.flavor = flavor
        self.ns = f"repl-{flavor}"
        self.node_port = NODE_PORTS[flavor]


def manifest(flavor: str) -> dict[str, Any]:
    return {
        "apiVersion": "mysql.operator.dev/v1alpha1",
        "kind": "MysqlCluster",
        "metadata": {"name": NAME},
        "spec": cluster_spec(
            flavor,
            replication={"mode": "semi-sync", "failoverGraceSeconds": 3},
            application={"database": "app", "user": "app"},
            service={"type": "NodePort", "nodePort": NODE_PORTS[flavor]},
        ),
    }


@pytest.fixture(scope="module", params=FLAVORS)
def ha(operator: Cluster, request: pytest.FixtureRequest) -> Iterator[HA]:
    cluster = HA(operator, request.param)
    cluster.create_namespace(cluster.ns)
    cluster.apply(manifest(cluster.flavor), cluster.ns)
    cluster.wait_ready(NAME, cluster.ns, timeout=420)
    yield cluster
    # Read by the operator-wide tests below before it goes; deleted so flavors do not pile up.
    cluster.kubectl("delete", "namespace", cluster.ns, "--wait=false")


def app_password(cluster: HA) -> str:
    return cluster.secret(f"{NAME}-credentials", cluster.ns)["app-password"]


def via_service(cluster: HA) -> Any:
    return connect("127.0.0.1", "app", app_password(cluster), "app", port=cluster.node_port)


def role_of(cluster: HA, pod: str) -> str | None:
    labels = cluster.get("pod", pod, cluster.ns)["metadata"].get("labels") or {}
    return labels.get("mysql.operator.dev/role")


def checksums(cluster: HA) -> dict[str, tuple[Any, ...]]:
    admin = cluster.secret(f"{NAME}-credentials", cluster.ns)["operator-password"]
    sums = {}
    for ordinal in range(3):
        pod = f"{NAME}-{ordinal}"
        with (
            connect(cluster.pod_ip(pod, cluster.ns), "mysqlop_admin", admin, "app") as conn,
            conn.cursor() as cur,
        ):
            cur.execute("CHECKSUM TABLE app.items")
            sums[pod] = tuple(cur.fetchall())
    return sums


def primary_of(cluster: HA) -> str | None:
    return cluster.status(NAME, cluster.ns).get("primary")


def test_cluster_becomes_ready_with_one_primary_and_two_replicas(ha: HA) -> None:
    status = ha.status(NAME, ha.ns)
    assert status["phase"] == "Ready" and status["instancesReady"] == "3/3"
    primary = status["primary"]
    roles = {i["name"]: i["role"] for i in status["instances"]}
    assert list(roles.values()).count("primary") == 1 and list(roles.values()).count("replica") == 2
    assert role_of(ha, primary) == "primary"
    assert {e["reason"] for e in ha.events(ha.ns, NAME)} >= {"PrimaryBootstrapped", "ReplicaAttached"}
    out = ha.kubectl("get", "mysql", NAME, "-n", ha.ns)
    assert "True" in out and primary in out and "3/3" in out


def test_write_through_the_primary_service_read_on_a_replica(ha: HA) -> None:
    with via_service(ha) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS items (id INT PRIMARY KEY, v VARCHAR(40))")
        cur.executemany("INSERT INTO items VALUES (%s, %s)", [(i, f"row-{i}") for i in range(1, 101)])
        cur.execute("SELECT @@hostname, @@read_only")
        assert cur.fetchone()[1] == 0
    status = ha.status(NAME, ha.ns)
    replica = next(i["name"] for i in status["instances"] if i["role"] == "replica")

    def replicated() -> bool:
        with connect(ha.pod_ip(replica, ha.ns), "app", app_password(ha), "app") as conn, conn.cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM items")
            return bool(cur.fetchone()[0] == 100)

    wait_for(replicated, 30, f"rows on replica {replica}")
    with connect(ha.pod_ip(replica, ha.ns), "app", app_password(ha), "app") as conn, conn.cursor() as cur:
        cur.execute("SELECT @@read_only")
        assert cur.fetchone()[0] == 1, "replicas are read-only"


def test_losing_the_primary_promotes_a_replica_and_the_service_follows(ha: HA) -> None:
    old = primary_of(ha)
    assert old is not None
    with via_service(ha) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO items VALUES (1000, 'before failover')")
    # A lost node: mysqld killed and kept down, the pod deleted (its replacement cannot start mysqld).
    ha.sandbox.kill_container(ha.ns, old, "mysqld", keep_down=True)
    ha.kubectl("delete", "pod", old, "-n", ha.ns, "--wait=false")
    new = wait_for(lambda: (p := primary_of(ha)) and p != old and p, 120, "a new primary")

    def writable_through_service() -> bool:
        with via_service(ha) as conn, conn.cursor() as cur:
            cur.execute("INSERT INTO items VALUES (1001, 'after failover')")
            cur.execute("SELECT COUNT(*) FROM items WHERE id = 1000")
            return bool(cur.fetchone()[0] == 1)

    wait_for(writable_through_service, 60, "writes through the Service on the new primary")
    assert role_of(ha, new) == "primary"
    history = ha.status(NAME, ha.ns)["roleChanges"]
    assert history[-1]["kind"] == "failover" and history[-1]["from"] == old and history[-1]["to"] == new
    assert history[-1]["seconds"] >= 0
    assert "FailoverCompleted" in {e["reason"] for e in ha.events(ha.ns, NAME)}
    # The node comes back: the old primary rejoins as a replica and the cluster is Ready again.
    ha.sandbox.release_container(ha.ns, old, "mysqld")
    wait_for(lambda: role_of(ha, old) == "replica", 180, f"{old} back as a replica")
    status = ha.wait_ready(NAME, ha.ns, timeout=180)
    assert status["primary"] == new


def test_switchover_there_and_back_three_times_keeps_every_write(ha: HA) -> None:
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
            ha.ns,
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
        ha.wait_ready(NAME, ha.ns, timeout=120)
    kinds = [h["kind"] for h in ha.status(NAME, ha.ns)["roleChanges"]]
    assert kinds.count("switchover") >= 6 or len(kinds) == 10

    def converged() -> dict[str, tuple[Any, ...]] | None:
        sums = checksums(ha)
        return sums if len(set(sums.values())) == 1 else None

    wait_for(converged, 60, "equal table checksums on primary and replicas")
    with via_service(ha) as conn, conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM items WHERE id >= 2000")
        assert cur.fetchone()[0] == 6


def test_no_password_in_operator_logs(ha: HA) -> None:
    log = operator_log(ha)
    assert "topology" in log or "applied" in log, "the operator log was found and has content"
    secrets = ha.secret(f"{NAME}-credentials", ha.ns)
    for key in ("root-password", "replication-password", "operator-password", "app-password"):
        assert secrets[key] not in log, f"{key} appears in the operator log"


def test_operator_logs_are_json_lines_naming_the_cluster(ha: HA) -> None:
    lines = [json.loads(line) for line in operator_log(ha).splitlines() if line.strip()]
    ours = [line for line in lines if (line.get("object") or {}).get("namespace") == ha.ns]
    assert ours and all(line["object"]["name"] == NAME for line in ours)
    failover = [line for line in ours if "FailoverCompleted" in line.get("message", "")]
    assert failover, "the SQL layer's failover line is in the log, naming this cluster"


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


def test_operator_metrics_show_lag_failovers_and_reconciles(ha: HA) -> None:
    (pod,) = [
        p
        for p in ha.items("pods", "mysql-operator", "app.kubernetes.io/instance=mysql-operator")
        if p["status"].get("podIP") and not p["metadata"].get("deletionTimestamp")
    ]
    samples = scrape(f"http://{pod['status']['podIP']}:9090/metrics")
    ours = frozenset({("namespace", ha.ns), ("cluster", NAME)})
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
