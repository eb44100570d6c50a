"""What a platform team uses: MysqlDatabase/MysqlUser objects, the kubectl-mysql plugin, maintenance
(spec.suspend), and deleting a cluster while the operator is down. Against the sandbox, per flavor."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest

from sandbox.images import image_mysql_tools
from tests.e2e.conftest import FLAVORS, OPERATOR_NS, Cluster, cluster_spec, connect, wait_for

pytestmark = pytest.mark.e2e

NAME = "plat"
NODE_PORTS = {"mariadb": 30771, "mysql": 30772}  # 127.0.0.1:<nodePort> is shared by every sandbox
API = "mysql.operator.dev/v1alpha1"
PLUGIN = Path(sys.executable).with_name("kubectl-mysql")


def ns_of(flavor: str) -> str:
    return f"plat-{flavor}"


def plugin(
    cluster: Cluster, *args: str, check: bool = True, timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    """Run the installed console script as a user would, with the sandbox's kubeconfig."""
    assert PLUGIN.exists(), f"{PLUGIN} missing: the package's console script (pip install -e .)"
    # The MySQL client the operator's image ships (the Dockerfile's own layout of the real 9.7 tools):
    # `connect` to a MySQL cluster runs MySQL's client, not the host's MariaDB one.
    env = {**os.environ, "KUBECONFIG": str(cluster.sandbox.kubeconfig),
           "MYSQL_TOOLS_DIR": str(image_mysql_tools())}
    result = subprocess.run([str(PLUGIN), *args], capture_output=True, text=True, env=env, timeout=timeout)
    if check:
        assert result.returncode == 0, f"kubectl-mysql {' '.join(args)}: {result.stdout}{result.stderr}"
    return result


def ready_condition(cluster: Cluster, kind: str, name: str, namespace: str) -> str | None:
    body = cluster.get(kind, name, namespace)
    for cond in (body.get("status") or {}).get("conditions") or []:
        if cond["type"] == "Ready":
            return str(cond["status"])
    return None


def wait_object_ready(cluster: Cluster, kind: str, name: str, namespace: str, timeout: float = 120) -> None:
    def ready() -> bool:
        return ready_condition(cluster, kind, name, namespace) == "True"

    wait_for(ready, timeout, f"{kind} {namespace}/{name} Ready")


def database(name: str, db_name: str, retention: str) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "MysqlDatabase",
        "metadata": {"name": name},
        "spec": {"cluster": NAME, "name": db_name, "retentionPolicy": retention},
    }


def user(name: str, db_name: str) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "MysqlUser",
        "metadata": {"name": name},
        "spec": {
            "cluster": NAME,
            "user": "shopper",
            "passwordSecretRef": {"name": "shopper-password", "key": "password"},
            "grants": [{"database": db_name, "privileges": ["SELECT", "INSERT", "CREATE"]}],
            "retentionPolicy": "Delete",
        },
    }


def secret(password: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "shopper-password"},
        "stringData": {"password": password},
    }


def via_service(flavor: str, password: str, database: str | None = None) -> Any:
    return connect("127.0.0.1", "shopper", password, database, port=NODE_PORTS[flavor])


def primary_of(cluster: Cluster, namespace: str) -> str | None:
    return cluster.status(NAME, namespace).get("primary")


@pytest.fixture(scope="module", params=FLAVORS)
def flavor(request: pytest.FixtureRequest, operator: Cluster) -> Iterator[str]:
    name: str = request.param
    namespace = operator.create_namespace(ns_of(name))
    operator.apply(
        {
            "apiVersion": API,
            "kind": "MysqlCluster",
            "metadata": {"name": NAME},
            "spec": cluster_spec(
                name,
                instances=2,
                service={"type": "NodePort", "nodePort": NODE_PORTS[name]},
                application={"database": "app", "user": "app"},
            ),
        },
        namespace,
    )
    operator.wait_ready(NAME, namespace, timeout=400)
    yield name
    operator.kubectl("delete", "namespace", namespace, "--wait=false")


def test_database_and_user_objects_work_through_the_service_across_a_switchover_and_a_failover(
    operator: Cluster, flavor: str
) -> None:
    ns = ns_of(flavor)
    operator.apply(secret("first-Pw-1"), ns)
    operator.apply(database("orders", "orders_1", "Delete"), ns)
    operator.apply(database("archive", "archive_1", "Keep"), ns)
    operator.apply(user("shopper", "orders_1"), ns)
    for kind, name in (("mysqldatabase", "orders"), ("mysqldatabase", "archive"), ("mysqluser", "shopper")):
        wait_object_ready(operator, kind, name, ns)
        assert operator.get(kind, name, ns)["status"]["cluster"] == NAME
    # kubectl get prints the cluster, the name on the server, readiness and the retention policy
    table = operator.kubectl("get", "mysqlusers", "-n", ns)
    assert table.split("\n")[0].split()[:5] == ["NAME", "CLUSTER", "USER", "READY", "RETENTION"]
    assert table.split("\n")[1].split()[:5] == ["shopper", NAME, "shopper", "True", "Delete"]
    assert "finalizers" not in operator.get("mysqldatabase", "archive", ns)["metadata"]  # Keep: none

    with via_service(flavor, "first-Pw-1", "orders_1") as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE items (id INT PRIMARY KEY, note VARCHAR(32))")
        cur.execute("INSERT INTO items VALUES (1, 'before')")
        with pytest.raises(pymysql.err.OperationalError):  # no grant on the other database
            cur.execute("CREATE TABLE archive_1.nope (id INT)")

    # a switchover through the plugin; the user (created once, replicated) still works
    before = primary_of(operator, ns)
    plugin(operator, "-n", ns, "switchover", NAME)
    after = primary_of(operator, ns)
    assert after and after != before

    def write(row: int) -> bool:
        with via_service(flavor, "first-Pw-1", "orders_1") as conn, conn.cursor() as cur:
            cur.execute("INSERT INTO items VALUES (%s, 'after')", (row,))
        return True

    wait_for(lambda: write(2), 60, "the user writing through the -primary Service after the switchover")

    # a failover: the primary's mysqld is killed and kept down; the user works on the new primary
    lost = str(primary_of(operator, ns))
    operator.sandbox.kill_container(ns, lost, "mysqld", keep_down=True)
    try:
        wait_for(lambda: primary_of(operator, ns) not in (None, lost), 180, "a failover off the primary")
        wait_for(lambda: write(3), 60, "the user writing through the -primary Service after the failover")
    finally:
        operator.sandbox.release_container(ns, lost, "mysqld")
    operator.wait_ready(NAME, ns, timeout=300)

    # a new password in the Secret re-passwords the user
    operator.apply(secret("second-Pw-2"), ns)
    wait_for(lambda: via_service(flavor, "second-Pw-2").close() is None, 60, "the new password to work")
    with pytest.raises(pymysql.err.OperationalError):
        via_service(flavor, "first-Pw-1")

    # deleting honours the retention policy: Delete drops the user and the database, Keep keeps
    for kind, name in (("mysqluser", "shopper"), ("mysqldatabase", "orders"), ("mysqldatabase", "archive")):
        operator.kubectl("delete", kind, name, "-n", ns, "--timeout=60s")
    admin = operator.secret(f"{NAME}-credentials", ns)["operator-password"]
    host = operator.pod_ip(str(primary_of(operator, ns)), ns)
    with connect(host, "mysqlop_admin", admin) as conn, conn.cursor() as cur:
        cur.execute("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA")
        schemas = {row[0] for row in cur.fetchall()}
        cur.execute("SELECT COUNT(*) FROM mysql.user WHERE User = 'shopper'")
        (users,) = cur.fetchone()
    assert "archive_1" in schemas and "orders_1" not in schemas and users == 0


def test_plugin_status_connect_and_credentials(operator: Cluster, flavor: str) -> None:
    ns = ns_of(flavor)
    text = plugin(operator, "-n", ns, "status", NAME).stdout
    primary = str(primary_of(operator, ns))
    assert f"Primary:     {primary}" in text
    assert any(line.split()[:2] == [primary, "primary"] for line in text.splitlines())
    assert "switchover" in text  # the role change of the previous test is listed
    client = "mariadb" if flavor == "mariadb" else "mysql"
    assert shutil.which(client), f"{client} client not installed"
    query = ["--", "-N", "-e", "SELECT 6 * 7, @@read_only, CURRENT_USER()"]
    answer = plugin(operator, "-n", ns, "connect", NAME, "--user", "app", *query).stdout
    assert answer.split() == ["42", "0", "app@%"], answer  # the primary: writable
    replica = plugin(operator, "-n", ns, "connect", NAME, "--replica", "--user", "app", *query).stdout
    assert replica.split() == ["42", "1", "app@%"], replica
    password = operator.secret(f"{NAME}-credentials", ns)["app-password"]
    shown = plugin(operator, "-n", ns, "credentials", NAME, "--user", "app").stdout
    assert shown == f"user: app\npassword: {password}\n"


def test_maintenance_stops_every_change_and_resumes_cleanly(operator: Cluster, flavor: str) -> None:
    ns = ns_of(flavor)
    plugin(operator, "-n", ns, "maintenance", "on", NAME, "--wait")
    wait_for(lambda: operator.status(NAME, ns).get("phase") == "Suspended", 60, "phase Suspended")
    columns = operator.kubectl("get", "mysqlcluster", NAME, "-n", ns).split("\n")
    assert "SUSPENDED" in columns[0].split() and "true" in columns[1].split()
    primary = str(primary_of(operator, ns))
    target = 1 - int(primary.rsplit("-", 1)[1])
    # asked for a switchover and a new database while suspended: nothing happens
    plugin(operator, "-n", ns, "switchover", NAME, "--to", str(target), "--no-wait")
    operator.apply(database("later", "later_1", "Keep"), ns)
    time.sleep(15)  # several topology passes (2 s) and schema passes (10 s)
    assert primary_of(operator, ns) == primary
    assert ready_condition(operator, "mysqldatabase", "later", ns) != "True"
    assert "suspended" in str(operator.get("mysqldatabase", "later", ns).get("status", {}).get("message"))
    status = operator.status(NAME, ns)
    assert all("suspended" in inst.get("message", "") for inst in status["instances"] if inst["reachable"])
    # off: the switchover and the database happen, the cluster is Ready again
    plugin(operator, "-n", ns, "maintenance", "off", NAME, "--wait")
    wait_for(lambda: primary_of(operator, ns) == f"{NAME}-{target}", 120, "the switchover after maintenance")
    wait_object_ready(operator, "mysqldatabase", "later", ns)
    operator.wait_ready(NAME, ns, timeout=120)
    assert operator.status(NAME, ns)["phase"] == "Ready"


def test_fence_takes_an_instance_out_of_the_services_and_unfence_brings_it_back(
    operator: Cluster, flavor: str
) -> None:
    ns = ns_of(flavor)
    replica = next(i["name"] for i in operator.status(NAME, ns)["instances"] if i["role"] == "replica")

    def role() -> str | None:
        return (operator.get("pod", replica, ns)["metadata"].get("labels") or {}).get(
            "mysql.operator.dev/role"
        )

    plugin(operator, "-n", ns, "fence", replica)
    wait_for(lambda: role() == "none", 30, f"{replica} labelled out of the Services")
    assert "fenced" in next(
        line
        for line in plugin(operator, "-n", ns, "status", NAME).stdout.splitlines()
        if line.startswith(replica)
    )
    plugin(operator, "-n", ns, "unfence", replica)
    wait_for(lambda: role() == "replica", 30, f"{replica} back in the -replicas Service")


def scale_operator(cluster: Cluster, replicas: int) -> None:
    cluster.kubectl("scale", "deployment", "mysql-operator", "-n", OPERATOR_NS, f"--replicas={replicas}")

    def settled() -> bool:
        pods = cluster.items("pods", OPERATOR_NS, "app.kubernetes.io/instance=mysql-operator")
        if replicas == 0:
            return not pods
        return any(
            p["status"].get("phase") == "Running"
            and all(s.get("ready") for s in p["status"].get("containerStatuses", []))
            for p in pods
        )

    wait_for(settled, 120, f"the operator at {replicas} replicas")


def test_deleting_a_cluster_and_its_namespace_never_waits_for_the_operator(operator: Cluster) -> None:
    ns = operator.create_namespace("plat-orphan")
    operator.apply(
        {
            "apiVersion": API,
            "kind": "MysqlCluster",
            "metadata": {"name": "lonely"},
            "spec": cluster_spec(FLAVORS[0], instances=1),
        },
        ns,
    )
    wait_for(lambda: operator.status("lonely", ns).get("phase"), 120, "the operator to handle the cluster")
    time.sleep(5)  # its timers have run too
    assert not operator.get("mysqlcluster", "lonely", ns)["metadata"].get("finalizers")
    scale_operator(operator, 0)
    try:
        operator.kubectl("delete", "mysqlcluster", "lonely", "-n", ns, "--timeout=60s")
        operator.kubectl("delete", "namespace", ns, "--timeout=180s")
        gone = operator.kubectl_result("get", "namespace", ns)
        assert gone.returncode != 0 and "NotFound" in gone.stderr
    finally:
        scale_operator(operator, 1)


# (kind, spec, what the apiserver's message must contain): refused before the operator sees them
REFUSED = [
    (
        "MysqlCluster",
        {"backup": {"schedule": "0 0 30 2 *", "storage": {"pvc": {"claimName": "b"}}}},
        "backup.schedule never fires",
    ),
    (
        "MysqlCluster",
        {"backup": {"schedule": "0 0 31 4,jun *", "storage": {"pvc": {"claimName": "b"}}}},
        "never fires",
    ),
    (
        "MysqlCluster",
        {"backup": {"schedule": "@daily", "timeZone": "../etc", "storage": {"pvc": {"claimName": "b"}}}},
        "spec.backup.timeZone",
    ),
    (
        "MysqlUser",
        {
            "cluster": "c",
            "user": "u",
            "passwordSecretRef": {"name": "s", "key": "k"},
            "grants": [{"database": "d", "privileges": ["SUPER"]}],
        },
        "spec.grants[0].privileges[0]",
    ),
    (
        "MysqlUser",
        {
            "cluster": "c",
            "user": "u",
            "passwordSecretRef": {"name": "s", "key": "k"},
            "grants": [{"database": "mysql", "privileges": ["SELECT"]}],
        },
        "grants on system schemas",
    ),
    (
        "MysqlUser",
        {"cluster": "c", "user": "u", "host": "a'b", "passwordSecretRef": {"name": "s", "key": "k"}},
        "spec.host",
    ),
    (
        "MysqlUser",
        {"cluster": "c", "user": "mysqlop_admin", "passwordSecretRef": {"name": "s", "key": "k"}},
        "reserved for the operator",
    ),
    (
        "MysqlUser",
        {"cluster": "c", "user": "u", "password": "inline", "passwordSecretRef": {"name": "s", "key": "k"}},
        "password",
    ),
    ("MysqlDatabase", {"cluster": "c", "name": "information_schema"}, "system schema"),
    ("MysqlDatabase", {"cluster": "c", "name": "a`b"}, "spec.name"),
]


def test_the_apiserver_refuses_never_firing_schedules_and_unsafe_users_and_databases(
    operator: Cluster,
) -> None:
    ns = operator.create_namespace("plat-refused")
    for index, (kind, spec, expected) in enumerate(REFUSED):
        body = {"apiVersion": API, "kind": kind, "metadata": {"name": f"bad-{index}"}, "spec": spec}
        result = operator.kubectl_result(
            "apply", "--validate=strict", "-n", ns, "-f", "-", input=json.dumps(body)
        )
        assert result.returncode != 0, f"{kind} {spec} was accepted"
        assert expected in result.stderr, f"{kind} {spec}: {result.stderr}"
    for plural in ("mysqlclusters", "mysqlusers", "mysqldatabases"):
        assert operator.items(plural, ns) == []
    operator.kubectl("delete", "namespace", ns, "--wait=false")
