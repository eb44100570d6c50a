"""Data you can get back into: a cluster deleted with its volumes retained, recreated under the same
name, starts on the old data with the old passwords, and its rows are read back."""

from __future__ import annotations

import pymysql
import pytest

from tests.e2e.conftest import FLAVORS, Cluster, cluster_manifest, connect, wait_for

pytestmark = pytest.mark.e2e

NAME = "keep"


def cluster(flavor: str) -> dict[str, object]:
    return cluster_manifest(
        NAME, flavor, instances=1, storage={"size": "1Gi", "pvcRetention": "Retain"},
        application={"database": "shop", "user": "app"},
    )


def primary_ip(operator: Cluster, ns: str) -> str:
    status = operator.wait_ready(NAME, ns, timeout=300)
    return operator.pod_ip(str(status["primary"]), ns)


@pytest.mark.parametrize("flavor", FLAVORS)
def test_recreated_cluster_on_retained_volumes_reads_the_old_rows(operator: Cluster, flavor: str) -> None:
    ns = operator.create_namespace(f"retain-{flavor}")
    operator.apply(cluster(flavor), ns)
    secret_name = f"{NAME}-credentials"
    host = primary_ip(operator, ns)
    secret = operator.secret(secret_name, ns)
    assert "ownerReferences" not in operator.get("secret", secret_name, ns)["metadata"], (
        "retained volumes: the credentials Secret must not go with the cluster"
    )
    # Least privilege: root answers on localhost only; the operator works with its own user.
    with pytest.raises(pymysql.err.OperationalError) as refused:
        connect(host, "root", secret["root-password"]).close()
    assert refused.value.args[0] == 1045, refused.value
    with connect(host, "mysqlop_admin", secret["operator-password"]) as conn, conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM mysql.user WHERE user = 'root' AND host <> 'localhost'")
        assert cur.fetchone() == (0,)
    with connect(host, "app", secret["app-password"], "shop") as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE orders (id INT PRIMARY KEY, item VARCHAR(32))")
        cur.executemany("INSERT INTO orders VALUES (%s, %s)", [(1, "tea"), (2, "milk"), (3, "bread")])
    uid = operator.get("mysqlcluster", NAME, ns)["metadata"]["uid"]

    operator.kubectl("delete", "mysqlcluster", NAME, "-n", ns, "--wait=true", "--timeout=120s")
    wait_for(lambda: not operator.items("pods", ns, f"app.kubernetes.io/instance={NAME}"), 120, "pods gone")
    wait_for(
        lambda: operator.kubectl_result("get", "statefulset", NAME, "-n", ns).returncode != 0,
        120,
        "the StatefulSet garbage-collected",
    )
    assert [p["metadata"]["name"] for p in operator.items("pvc", ns)] == [f"data-{NAME}-0"]
    assert operator.secret(secret_name, ns) == secret, "the credentials outlived the cluster unchanged"

    operator.apply(cluster(flavor), ns)
    assert operator.get("mysqlcluster", NAME, ns)["metadata"]["uid"] != uid, "a new cluster object"
    host = primary_ip(operator, ns)
    assert operator.secret(secret_name, ns) == secret, "no new passwords for old data"
    with connect(host, "app", secret["app-password"], "shop") as conn, conn.cursor() as cur:
        cur.execute("SELECT id, item FROM orders ORDER BY id")
        assert cur.fetchall() == ((1, "tea"), (2, "milk"), (3, "bread"))
    events = [e for e in operator.events(ns, NAME) if e.get("reason") == "CredentialsGenerated"]
    assert len(events) == 1, "the recreated cluster reused the Secret rather than generating one"
    operator.kubectl("delete", "mysqlcluster", NAME, "-n", ns, "--wait=true", "--timeout=120s")
    operator.kubectl("delete", "pvc", "--all", "-n", ns, "--wait=false")
    operator.kubectl("delete", "namespace", ns, "--wait=false")
