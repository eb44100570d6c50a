"""TLS on the e2e cluster, per flavor (real MySQL 9.7 and MariaDB 10.11), operator-issued certificates.

A client verifies the server through the -primary NodePort on 127.0.0.1 (the command-line client
with VERIFY_IDENTITY / --ssl-verify-server-cert, and Python verifying the Service's DNS name);
plaintext clients are refused (requireSecureTransport); replication runs over TLS (the replica's
configuration and the replication session's cipher on the source); a re-issued certificate reaches
mysqld by a live reload, with no restart and an open session surviving it.
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pymysql
import pytest
import yaml

from mysql_operator.tls.client import ClientTls
from mysql_operator.tls.issue import certificate_facts, issue_ca, utcnow
from sandbox import mysql_root
from tests.e2e.conftest import FLAVORS, Cluster, cluster_spec, wait_for

pytestmark = pytest.mark.e2e

NAME = "tls"
NODE_PORTS = {"mysql": 30426, "mariadb": 30427}
REPLICATION_USER = "mysqlop_repl"
EXTRA_NAME = "db.example.test"


class TlsCluster(Cluster):
    def __init__(self, cluster: Cluster, flavor: str) -> None:
        super().__init__(cluster.sandbox)
        self.flavor = flavor
        self.ns = f"tls-{flavor}"
        self.node_port = NODE_PORTS[flavor]
        self.work = Path(tempfile.mkdtemp(prefix=f"e2e-tls-{flavor}-"))

    @property
    def ca_file(self) -> Path:
        """The CA as a client gets it: `kubectl get secret tls-tls -o jsonpath='{.data.ca\\.crt}'`."""
        path = self.work / "ca.crt"
        path.write_text(self.secret(f"{NAME}-tls", self.ns)["ca.crt"])
        return path

    def password(self, key: str) -> str:
        return self.secret(f"{NAME}-credentials", self.ns)[key]

    def tls_connect(self, host: str, port: int, user: str, password: str, server_name: str | None) -> Any:
        ca = self.secret(f"{NAME}-tls", self.ns)["ca.crt"]
        return pymysql.connect(host=host, port=port, user=user, password=password, connect_timeout=5,
                               read_timeout=30, autocommit=True, ssl=ClientTls(ca, server_name).context())

    def primary_service_name(self) -> str:
        return f"{NAME}-primary.{self.ns}.svc"


def manifest(flavor: str, **tls: Any) -> dict[str, Any]:
    return {
        "apiVersion": "mysql.operator.dev/v1alpha1",
        "kind": "MysqlCluster",
        "metadata": {"name": NAME},
        "spec": cluster_spec(
            flavor,
            instances=2,
            application={"database": "app", "user": "app"},
            service={"type": "NodePort", "nodePort": NODE_PORTS[flavor]},
            tls={"requireSecureTransport": True, **tls},
            # The replication session's cipher is read from the source's performance_schema.
            mysqlConfig={"performance_schema": "ON"},
        ),
    }


@pytest.fixture(scope="module", params=FLAVORS)
def tls(operator: Cluster, request: pytest.FixtureRequest) -> Iterator[TlsCluster]:
    cluster = TlsCluster(operator, request.param)
    cluster.create_namespace(cluster.ns)
    cluster.apply(manifest(cluster.flavor), cluster.ns)
    cluster.wait_ready(NAME, cluster.ns, timeout=420)
    yield cluster
    cluster.kubectl("delete", "namespace", cluster.ns, "--wait=false")


def client_command(flavor: str, ca_file: Path, options: Path, port: int) -> list[str]:
    """The README's client line: the server's identity verified with the CA from the Secret."""
    if flavor == "mysql":
        head = [*mysql_root.client_argv("mysql"), f"--defaults-file={options}", "--ssl-mode=VERIFY_IDENTITY"]
    else:
        head = ["mariadb", f"--defaults-file={options}", "--ssl", "--ssl-verify-server-cert"]
    return [*head, f"--ssl-ca={ca_file}", "-h", "127.0.0.1", "-P", str(port), "-N", "-B",
            "-e", "SHOW SESSION STATUS LIKE 'Ssl_cipher'"]


def run_client(cluster: TlsCluster, ca_file: Path) -> subprocess.CompletedProcess[str]:
    options = cluster.work / "client.cnf"
    options.write_text(f"[client]\nuser=app\npassword={cluster.password('app-password')}\ndatabase=app\n")
    options.chmod(0o600)
    command = client_command(cluster.flavor, ca_file, options, cluster.node_port)
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def test_operator_issues_an_owned_ca_and_server_certificate(tls: TlsCluster) -> None:
    uid = tls.get("mysqlcluster", NAME, tls.ns)["metadata"]["uid"]
    for secret in (f"{NAME}-ca", f"{NAME}-tls"):
        owners = tls.get("secret", secret, tls.ns)["metadata"]["ownerReferences"]
        assert [o["uid"] for o in owners] == [uid]
    facts = certificate_facts(tls.secret(f"{NAME}-tls", tls.ns)["tls.crt"])
    assert {tls.primary_service_name(), f"{NAME}-replicas.{tls.ns}.svc", f"{NAME}-1.{NAME}.{tls.ns}.svc",
            "localhost", "127.0.0.1"} <= facts.names
    assert "ca.key" not in tls.secret(f"{NAME}-tls", tls.ns)  # the CA's key never reaches a pod


def test_client_connects_through_the_node_port_verifying_the_server(tls: TlsCluster) -> None:
    done = run_client(tls, tls.ca_file)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[0] == "Ssl_cipher" and len(done.stdout.split()) == 2  # a cipher in use
    # Python, dialing 127.0.0.1 and verifying the name in-cluster clients use.
    with tls.tls_connect("127.0.0.1", tls.node_port, "app", tls.password("app-password"),
                         tls.primary_service_name()) as conn, conn.cursor() as cur:
        cur.execute("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
        assert cur.fetchone()[1]
    # Verification is real: the same client with another CA is refused.
    stranger = tls.work / "stranger.crt"
    stranger.write_text(issue_ca("stranger", tls.ns, utcnow(), timedelta(days=1)).cert_pem)
    refused = run_client(tls, stranger)
    assert refused.returncode != 0
    assert any(word in refused.stderr.lower() for word in ("certificate", "ssl", "tls")), refused.stderr


def test_plaintext_client_is_refused(tls: TlsCluster) -> None:
    with pytest.raises(pymysql.err.OperationalError) as refused:
        pymysql.connect(host="127.0.0.1", port=tls.node_port, user="app",
                        password=tls.password("app-password"), ssl_disabled=True, connect_timeout=5)
    # MySQL: 3159 (ER_SECURE_TRANSPORT_REQUIRED); MariaDB 10.11 answers 1045 to a plaintext login.
    assert refused.value.args[0] == (3159 if tls.flavor == "mysql" else 1045)


def test_replication_runs_over_tls(tls: TlsCluster) -> None:
    status = tls.status(NAME, tls.ns)
    primary = status["primary"]
    replica = next(i["name"] for i in status["instances"] if i["name"] != primary)
    admin = tls.password("operator-password")

    def connect_pod(pod: str) -> Any:
        return tls.tls_connect(tls.pod_ip(pod, tls.ns), 3306, "mysqlop_admin", admin,
                               f"{pod}.{NAME}.{tls.ns}.svc")

    with connect_pod(replica) as conn, conn.cursor(pymysql.cursors.DictCursor) as cur:
        cur.execute("SHOW REPLICA STATUS" if tls.flavor == "mysql" else "SHOW SLAVE STATUS")
        row = cur.fetchone()
    prefix = "Source" if tls.flavor == "mysql" else "Master"
    assert row[f"{prefix}_SSL_Allowed"] == "Yes"
    assert row[f"{prefix}_SSL_CA_File"].endswith("ca.crt")
    assert row["Replica_IO_Running" if tls.flavor == "mysql" else "Slave_IO_Running"] == "Yes"
    # On the source: the replica's binlog dump session is encrypted.
    with connect_pod(primary) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT s.VARIABLE_VALUE FROM performance_schema.status_by_thread s "
            "JOIN performance_schema.threads t USING (THREAD_ID) "
            "WHERE t.PROCESSLIST_USER = %s AND s.VARIABLE_NAME = 'Ssl_cipher'",
            (REPLICATION_USER,),
        )
        ciphers = [r[0] for r in cur.fetchall()]
    assert ciphers and all(ciphers), ciphers


def container_starts(tls: TlsCluster) -> dict[str, list[str | None]]:
    """When each container of each instance pod started: any restart changes it."""
    pods = tls.items("pods", tls.ns, f"app.kubernetes.io/instance={NAME}")
    return {p["metadata"]["name"]: [s["state"].get("running", {}).get("startedAt")
                                    for s in p["status"]["containerStatuses"]] for p in pods}


def test_reissued_certificate_is_served_after_a_live_reload(tls: TlsCluster) -> None:
    started = container_starts(tls)
    before = certificate_facts(tls.secret(f"{NAME}-tls", tls.ns)["tls.crt"])
    password = tls.password("app-password")
    held = tls.tls_connect("127.0.0.1", tls.node_port, "app", password, tls.primary_service_name())
    # A name the certificate lacks: the operator re-issues it (as it does a third before expiry).
    tls.kubectl("patch", "mysqlcluster", NAME, "-n", tls.ns, "--type=merge",
                "-p", f'{{"spec":{{"tls":{{"additionalNames":["{EXTRA_NAME}"]}}}}}}')

    def reissued() -> Any:
        facts = certificate_facts(tls.secret(f"{NAME}-tls", tls.ns)["tls.crt"])
        return facts if facts.serial != before.serial and EXTRA_NAME in facts.names else None

    wait_for(reissued, 120, "the server certificate re-issued with the new name")

    def served_with_new_name() -> bool:
        # Only a server presenting the new certificate passes verification of the new name.
        try:
            with tls.tls_connect("127.0.0.1", tls.node_port, "app", password, EXTRA_NAME):
                return True
        except pymysql.err.OperationalError:
            return False

    wait_for(served_with_new_name, 180, "mysqld serving the re-issued certificate")
    events = [e for e in tls.items("events", tls.ns) if e["reason"] == "TlsReloaded"]
    assert events, "no TlsReloaded event"
    # No restart: the same containers run, and a session opened before the reload still works.
    assert container_starts(tls) == started
    with held.cursor() as cur:
        cur.execute("SELECT 1")
        assert cur.fetchone() == (1,)
    held.close()


REFUSED_TLS = [
    ("two-sources", {"secretName": "mine", "certManager": {"issuerRef": {"name": "ca"}}}, "exclusive"),
    ("secure-without-tls", {"enabled": False, "requireSecureTransport": True}, "needs tls.enabled"),
    ("name-injection", {"additionalNames": ["db\n[mysqld]"]}, "spec.tls.additionalNames"),
    ("issuer-kind", {"certManager": {"issuerRef": {"name": "ca", "kind": "Secret"}}}, "spec.tls.certManager"),
]


@pytest.mark.parametrize("name, tls_spec, expected", REFUSED_TLS, ids=[r[0] for r in REFUSED_TLS])
def test_the_api_refuses_invalid_tls_naming_the_field(
    operator: Cluster, name: str, tls_spec: dict[str, Any], expected: str
) -> None:
    body = {"apiVersion": "mysql.operator.dev/v1alpha1", "kind": "MysqlCluster",
            "metadata": {"name": f"tls-{name}"}, "spec": {**cluster_spec("mariadb"), "tls": tls_spec}}
    result = operator.kubectl_result("apply", "-n", "default", "-f", "-", input=yaml.safe_dump(body))
    assert result.returncode != 0 and expected in result.stderr, result.stderr
    assert operator.kubectl_result("get", "mysqlcluster", f"tls-{name}", "-n", "default").returncode != 0
