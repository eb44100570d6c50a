"""The sandbox itself: a real control plane, RBAC, MariaDB pods on loopback IPs with persistent data,
honest refusal of MySQL images, NodePort forwarding, failure injection, clean shutdown."""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pymysql
import pytest

from sandbox import Sandbox, processes
from sandbox.controlplane import write_kubeconfig
from sandbox.tools import tool_path

from .conftest import wait_for

# The first test also pays for building the toolchain on a cold machine (about 5 minutes here).
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1800)]

NS = "sbx-db"
ROOT_PASSWORD = "r00t'pw\"x"
DB_MANIFEST = textwrap.dedent("""
    apiVersion: v1
    kind: Namespace
    metadata: {name: sbx-db}
    ---
    apiVersion: v1
    kind: Secret
    metadata: {name: db-root, namespace: sbx-db}
    stringData: {password: @ROOT_PASSWORD@}
    ---
    apiVersion: v1
    kind: ConfigMap
    metadata: {name: db-config, namespace: sbx-db}
    data:
      my.cnf: |
        [mysqld]
        log-bin=mysql-bin
        binlog_format=ROW
        skip-name-resolve
      notes.txt: "not a .cnf: ignored like the official image's !includedir does"
    ---
    apiVersion: apps/v1
    kind: StatefulSet
    metadata: {name: db, namespace: sbx-db}
    spec:
      serviceName: db
      replicas: 1
      podManagementPolicy: Parallel
      selector: {matchLabels: {app: db}}
      template:
        metadata: {labels: {app: db}}
        spec:
          terminationGracePeriodSeconds: 10
          containers:
          - name: mysqld
            image: mariadb:10.11
            args: ["--server-id=1$(POD_INDEX)", "--report-host=$(POD_NAME)"]
            env:
            - {name: MARIADB_ROOT_PASSWORD, valueFrom: {secretKeyRef: {name: db-root, key: password}}}
            - {name: MARIADB_DATABASE, value: app}
            - {name: MARIADB_USER, value: appuser}
            - {name: MARIADB_PASSWORD, value: app-pw}
            - {name: POD_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
            - {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
            - name: POD_INDEX
              valueFrom: {fieldRef: {fieldPath: "metadata.labels['apps.kubernetes.io/pod-index']"}}
            ports: [{name: mysql, containerPort: 3306}]
            readinessProbe:
              exec: {command: ["sh", "-c", "mariadb-admin ping --host=\\"$POD_IP\\""]}
              periodSeconds: 2
            livenessProbe:
              tcpSocket: {port: mysql}
              initialDelaySeconds: 20
            volumeMounts:
            - {name: data, mountPath: /var/lib/mysql}
            - {name: config, mountPath: /etc/mysql/conf.d}
          volumes:
          - name: config
            configMap: {name: db-config}
      volumeClaimTemplates:
      - metadata: {name: data}
        spec:
          accessModes: [ReadWriteOnce]
          resources: {requests: {storage: 1Gi}}
    ---
    apiVersion: v1
    kind: Service
    metadata: {name: db-nodeport, namespace: sbx-db}
    spec:
      type: NodePort
      selector: {app: db}
      ports: [{name: mysql, port: 3306, targetPort: mysql}]
""").replace("@ROOT_PASSWORD@", json.dumps(ROOT_PASSWORD))


def pod(sandbox: Sandbox, name: str, namespace: str = NS) -> dict[str, Any] | None:
    return sandbox.kube().get_or_none(f"/api/v1/namespaces/{namespace}/pods/{name}")


def ready_pod(sandbox: Sandbox, name: str, namespace: str = NS, not_uid: str = "") -> dict[str, Any] | None:
    found = pod(sandbox, name, namespace)
    if not found or found["metadata"]["uid"] == not_uid or found["metadata"].get("deletionTimestamp"):
        return None
    conditions = (found.get("status") or {}).get("conditions") or []
    return found if any(c["type"] == "Ready" and c["status"] == "True" for c in conditions) else None


def connect(host: str, port: int = 3306) -> pymysql.Connection:
    return pymysql.connect(host=host, port=port, user="root", password=ROOT_PASSWORD, connect_timeout=5,
                           autocommit=True)


@pytest.fixture(scope="module")
def database(sandbox: Sandbox) -> dict[str, Any]:
    sandbox.kubectl("apply", "-f", "-", input=DB_MANIFEST)
    return wait_for("db-0 Ready", lambda: ready_pod(sandbox, "db-0"), timeout=180)


def test_control_plane_answers_readyz_with_the_pinned_version(sandbox: Sandbox) -> None:
    assert sandbox.kubectl("get", "--raw", "/readyz").stdout.strip() == "ok"
    version = json.loads(sandbox.kubectl("version", "-o", "json").stdout)
    assert version["serverVersion"]["gitVersion"] == "v1.34.4"
    nodes = json.loads(sandbox.kubectl("get", "nodes", "-o", "json").stdout)["items"]
    assert len(nodes) == 3
    assert all(any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"]["conditions"])
               for n in nodes)


def test_rbac_denies_a_service_account_what_it_was_not_granted(sandbox: Sandbox, tmp_path: Path) -> None:
    sandbox.kubectl("create", "namespace", "sbx-rbac")
    sandbox.kubectl("-n", "sbx-rbac", "create", "serviceaccount", "nobody")
    token = sandbox.kubectl("-n", "sbx-rbac", "create", "token", "nobody").stdout.strip()
    kubeconfig = tmp_path / "nobody.kubeconfig"
    admin = sandbox.kube()
    write_kubeconfig(kubeconfig, admin.server, admin.ca, "nobody", token=token)
    result = subprocess.run([str(tool_path("kubectl")), "--kubeconfig", str(kubeconfig), "-n", "sbx-rbac",
                             "get", "secrets"], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "forbidden" in result.stderr.lower()
    assert 'User "system:serviceaccount:sbx-rbac:nobody" cannot list resource "secrets"' in result.stderr


def test_mariadb_statefulset_pod_is_ready_on_a_loopback_ip_and_accepts_root(
        sandbox: Sandbox, database: dict[str, Any]) -> None:
    status = database["status"]
    assert status["podIP"].startswith("127.") and status["podIP"] != "127.0.0.1"
    assert status["hostIP"].startswith("127.")
    assert status["containerStatuses"][0]["ready"] is True
    with connect(status["podIP"]) as conn, conn.cursor() as cursor:
        cursor.execute("SELECT @@server_id, @@report_host, @@log_bin, @@bind_address")
        assert cursor.fetchone() == (10, "db-0", 1, status["podIP"])
        cursor.execute("SELECT @@gtid_binlog_pos")
        assert cursor.fetchone() == ("",), "initialisation must not write binlog events"
        cursor.execute("SELECT user, host FROM mysql.user WHERE user IN ('root', 'appuser') ORDER BY 1, 2")
        assert cursor.fetchall() == (("appuser", "%"), ("root", "%"), ("root", "localhost"))
        cursor.execute("CREATE DATABASE shop")
        cursor.execute("CREATE TABLE shop.orders (id INT PRIMARY KEY)")
        cursor.execute("INSERT INTO shop.orders VALUES (42)")


def test_deleting_the_pod_kills_mariadbd_and_the_data_survives(
        sandbox: Sandbox, database: dict[str, Any]) -> None:
    old = pod(sandbox, "db-0")
    assert old is not None
    old_pid = int(old["status"]["containerStatuses"][0]["containerID"].split("://")[1])
    assert processes.alive(old_pid)
    sandbox.kubectl("-n", NS, "delete", "pod", "db-0", "--wait=false")
    wait_for("the old mariadbd to exit", lambda: not processes.alive(old_pid), timeout=60)
    new = wait_for("a new db-0 Ready", lambda: ready_pod(sandbox, "db-0", not_uid=old["metadata"]["uid"]),
                   timeout=180)
    with connect(new["status"]["podIP"]) as conn, conn.cursor() as cursor:
        cursor.execute("SELECT id FROM shop.orders")
        assert cursor.fetchall() == ((42,),)


def test_a_nodeport_service_forwards_loopback_to_a_ready_pod(
        sandbox: Sandbox, database: dict[str, Any]) -> None:
    service = json.loads(sandbox.kubectl("-n", NS, "get", "service", "db-nodeport", "-o", "json").stdout)
    node_port = service["spec"]["ports"][0]["nodePort"]
    current = wait_for("db-0 Ready", lambda: ready_pod(sandbox, "db-0"), timeout=120)

    def query() -> tuple[Any, ...] | None:
        try:
            with connect("127.0.0.1", node_port) as conn, conn.cursor() as cursor:
                cursor.execute("SELECT @@bind_address, (SELECT COUNT(*) FROM shop.orders)")
                return cursor.fetchone()
        except pymysql.err.OperationalError:
            return None  # the forwarder may still be opening its listener

    assert wait_for("a query through the NodePort", query, timeout=30) == (current["status"]["podIP"], 1)


def test_kill_container_keeps_mysqld_down_until_released(sandbox: Sandbox, database: dict[str, Any]) -> None:
    current = wait_for("db-0 Ready", lambda: ready_pod(sandbox, "db-0"), timeout=120)
    killed = sandbox.kill_container(NS, "db-0", "mysqld", keep_down=True)
    assert killed
    try:
        def kept_down() -> bool:
            found = pod(sandbox, "db-0") or {}
            states = (found.get("status") or {}).get("containerStatuses") or [{}]
            return states[0].get("state", {}).get("waiting", {}).get("reason") == "KeptDown"
        wait_for("mysqld held down", kept_down, timeout=30)
        assert not all(processes.alive(pid) for pid in killed)
        with pytest.raises(pymysql.err.OperationalError):
            connect(current["status"]["podIP"])
        assert ready_pod(sandbox, "db-0") is None
    finally:
        sandbox.release_container(NS, "db-0", "mysqld")
    back = wait_for("db-0 Ready again", lambda: ready_pod(sandbox, "db-0"), timeout=120)
    assert back["status"]["containerStatuses"][0]["restartCount"] >= 1


def test_a_mysql_image_is_reported_not_runnable_and_never_ready(sandbox: Sandbox) -> None:
    sandbox.kubectl("apply", "-f", "-", input=textwrap.dedent("""
        apiVersion: v1
        kind: Pod
        metadata: {name: mysql84, namespace: sbx-db}
        spec:
          containers:
          - {name: mysqld, image: "mysql:8.4"}
    """))

    def waiting() -> dict[str, Any] | None:
        found = pod(sandbox, "mysql84") or {}
        states = (found.get("status") or {}).get("containerStatuses") or [{}]
        return states[0].get("state", {}).get("waiting")

    state = wait_for("mysql84 to report its container state", waiting, timeout=60)
    assert state["reason"] == "ImageNotRunnable"
    assert "MySQL 8.4 binaries are not available" in state["message"]
    found = pod(sandbox, "mysql84")
    assert found is not None and found["status"]["phase"] == "Pending"
    assert ready_pod(sandbox, "mysql84") is None


OPERATOR_SCRIPT = textwrap.dedent("""
    import http.server, os, sys
    import kubernetes
    print("CLUSTER-ENV", sorted(k for k in os.environ if k.startswith("KUBERNETES_")), flush=True)
    kubernetes.config.load_kube_config()
    core = kubernetes.client.CoreV1Api()
    print("OWN-PODS", len(core.list_namespaced_pod("sbx-op").items), flush=True)
    try:
        core.list_namespaced_secret("kube-system")
        print("SECRETS allowed", flush=True)
    except kubernetes.client.exceptions.ApiException as exc:
        print("SECRETS", exc.status, flush=True)
    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/healthz" else 404)
            self.end_headers()
    http.server.HTTPServer((sys.argv[1], 8080), Health).serve_forever()
""")


def test_the_operator_image_runs_python_with_its_service_account_token(sandbox: Sandbox) -> None:
    manifest = {
        "apiVersion": "v1", "kind": "List", "items": [
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "sbx-op"}},
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "op", "namespace": "sbx-op"}},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
             "metadata": {"name": "pods", "namespace": "sbx-op"},
             "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}]},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
             "metadata": {"name": "op-pods", "namespace": "sbx-op"},
             "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pods"},
             "subjects": [{"kind": "ServiceAccount", "name": "op", "namespace": "sbx-op"}]},
            {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "op", "namespace": "sbx-op"}, "spec": {
                "serviceAccountName": "op",
                "containers": [{
                    "name": "operator", "image": "example.org/mysql-operator:test",
                    "command": ["python", "-c", OPERATOR_SCRIPT, "$(POD_IP)"],
                    "env": [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
                    "ports": [{"name": "health", "containerPort": 8080}],
                    "readinessProbe": {"httpGet": {"path": "/healthz", "port": "health"}, "periodSeconds": 1},
                }],
            }},
        ],
    }
    sandbox.kubectl("apply", "-f", "-", input=json.dumps(manifest))
    wait_for("the operator pod Ready (httpGet probe on its pod IP)",
             lambda: ready_pod(sandbox, "op", "sbx-op"), timeout=90)
    output = wait_for("the operator's output", lambda: "SECRETS" in sandbox.logs("sbx-op", "op", "operator")
                      and sandbox.logs("sbx-op", "op", "operator"), timeout=30)
    assert "CLUSTER-ENV []" in output, "no KUBERNETES_* variable may point at a ClusterIP"
    assert "OWN-PODS 1" in output, "the Role grants listing pods in its namespace"
    assert "SECRETS 403" in output, "RBAC applies: the ServiceAccount may not read kube-system Secrets"


def test_a_job_pod_runs_to_completion_and_its_deletion_is_finalized(sandbox: Sandbox) -> None:
    job = {
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "once", "namespace": "sbx-op"},
        "spec": {"backoffLimit": 2, "template": {"spec": {
            "restartPolicy": "OnFailure",
            "containers": [{"name": "operator", "image": "example.org/mysql-operator:test",
                            "command": ["python3", "-c", "print('job done')"]}],
        }}},
    }
    sandbox.kubectl("create", "namespace", "sbx-op", check=False)
    sandbox.kubectl("apply", "-f", "-", input=json.dumps(job))
    kube = sandbox.kube()

    def succeeded() -> bool:
        found = kube.get_or_none("/apis/batch/v1/namespaces/sbx-op/jobs/once") or {}
        return (found.get("status") or {}).get("succeeded") == 1

    wait_for("the Job to succeed", succeeded, timeout=90)
    pods = kube.get("/api/v1/namespaces/sbx-op/pods", labelSelector="job-name=once")["items"]
    assert [p["status"]["phase"] for p in pods] == ["Succeeded"]
    assert pods[0]["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 0
    name = pods[0]["metadata"]["name"]
    assert "job done" in sandbox.logs("sbx-op", name, "operator")
    selector = f"involvedObject.name={name}"
    events = kube.get("/api/v1/namespaces/sbx-op/events", fieldSelector=selector)["items"]
    assert "Started" in {e["reason"] for e in events}
    sandbox.kubectl("-n", "sbx-op", "delete", "job", "once", "--cascade=foreground", "--timeout=60s")
    wait_for("the Job's pod to be gone",
             lambda: not kube.get("/api/v1/namespaces/sbx-op/pods", labelSelector="job-name=once")["items"],
             timeout=60)


def test_a_failing_liveness_probe_restarts_the_container(sandbox: Sandbox) -> None:
    manifest = {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "sick", "namespace": "sbx-op"}, "spec": {
            "containers": [{
                "name": "operator", "image": "example.org/mysql-operator:test",
                "command": ["python", "-c", "import time; time.sleep(600)"],
                "livenessProbe": {"exec": {"command": ["sh", "-c", "exit 1"]},
                                  "periodSeconds": 1, "failureThreshold": 2},
            }],
            "terminationGracePeriodSeconds": 1,
        },
    }
    sandbox.kubectl("create", "namespace", "sbx-op", check=False)
    sandbox.kubectl("apply", "-f", "-", input=json.dumps(manifest))

    def restarted() -> bool:
        found = pod(sandbox, "sick", "sbx-op") or {}
        statuses = (found.get("status") or {}).get("containerStatuses") or [{}]
        last = statuses[0].get("lastState", {})
        return bool(statuses[0].get("restartCount", 0) >= 1 and last.get("terminated"))

    wait_for("a restart after the liveness probe failed", restarted, timeout=60)
    events = sandbox.kube().get("/api/v1/namespaces/sbx-op/events", fieldSelector="involvedObject.name=sick")
    assert "Unhealthy" in {e["reason"] for e in events["items"]}
    sandbox.kubectl("-n", "sbx-op", "delete", "pod", "sick", "--timeout=60s")


TERMINATION_SCRIPT = """
import json, os, sys
scratch = os.environ["SCRATCH"]
open(os.path.join(scratch, "written"), "w").write("x")
with open(sys.argv[1], "w") as out:
    json.dump({"result": "ok", "scratch": scratch}, out)
"""


def test_a_job_reports_its_termination_message_and_reaches_its_volumes(sandbox: Sandbox) -> None:
    job = {
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "report", "namespace": "sbx-op"},
        "spec": {"backoffLimit": 0, "template": {"spec": {
            "restartPolicy": "Never",
            "volumes": [{"name": "scratch", "emptyDir": {}}],
            "containers": [
                {"name": "writer", "image": "example.org/mysql-operator:test",
                 "command": ["python3", "-c", TERMINATION_SCRIPT, "/dev/termination-log"],
                 "env": [{"name": "SCRATCH", "value": "/scratch"}],
                 "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}]},
                {"name": "crasher", "image": "example.org/mysql-operator:test",
                 "command": ["python3", "-c", "print('boom: half way'); raise SystemExit(3)"],
                 "terminationMessagePolicy": "FallbackToLogsOnError"},
            ],
        }}},
    }
    sandbox.kubectl("create", "namespace", "sbx-op", check=False)
    sandbox.kubectl("apply", "-f", "-", input=json.dumps(job))
    kube = sandbox.kube()

    def finished() -> list[dict[str, Any]] | None:
        pods = kube.get("/api/v1/namespaces/sbx-op/pods", labelSelector="job-name=report")["items"]
        states = [s["state"] for p in pods for s in p["status"].get("containerStatuses") or []]
        return pods if len(states) == 2 and all("terminated" in s for s in states) else None

    pods = wait_for("both containers of the Job's pod to terminate", finished, timeout=90)
    terminated = {s["name"]: s["state"]["terminated"] for s in pods[0]["status"]["containerStatuses"]}
    result = json.loads(terminated["writer"]["message"])
    assert result["result"] == "ok" and terminated["writer"]["exitCode"] == 0
    assert result["scratch"] != "/scratch" and (Path(result["scratch"]) / "written").is_file(), (
        "an env value naming a mountPath reaches the volume's local directory")
    assert terminated["crasher"]["exitCode"] == 3
    assert "boom: half way" in terminated["crasher"]["message"], "FallbackToLogsOnError: the log's end"
    assert pods[0]["status"]["phase"] == "Failed"


MYSQL_MANIFEST = textwrap.dedent("""
    apiVersion: v1
    kind: Namespace
    metadata: {name: sbx-mysql}
    ---
    apiVersion: v1
    kind: Secret
    metadata: {name: db-root, namespace: sbx-mysql}
    stringData: {password: @ROOT_PASSWORD@}
    ---
    apiVersion: v1
    kind: ConfigMap
    metadata: {name: db-config, namespace: sbx-mysql}
    data:
      my.cnf: |
        [mysqld]
        gtid_mode=ON
        enforce_gtid_consistency=ON
        log-bin=mysql-bin
        skip-name-resolve
    ---
    apiVersion: v1
    kind: ConfigMap
    metadata: {name: db-initdb, namespace: sbx-mysql}
    data:
      01-schema.sql: |
        CREATE TABLE shop.orders (id INT PRIMARY KEY);
        INSERT INTO shop.orders VALUES (7);
      02-more.sh: |
        mysql -uroot -p"$MYSQL_ROOT_PASSWORD" -e "CREATE DATABASE from_script"
    ---
    apiVersion: apps/v1
    kind: StatefulSet
    metadata: {name: db, namespace: sbx-mysql}
    spec:
      serviceName: db
      replicas: 1
      podManagementPolicy: Parallel
      selector: {matchLabels: {app: db}}
      template:
        metadata: {labels: {app: db}}
        spec:
          terminationGracePeriodSeconds: 10
          containers:
          - name: mysqld
            image: mysql:9.7
            args: ["--server-id=1$(POD_INDEX)"]
            env:
            - {name: MYSQL_ROOT_PASSWORD, valueFrom: {secretKeyRef: {name: db-root, key: password}}}
            - {name: MYSQL_DATABASE, value: shop}
            - {name: MYSQL_USER, value: appuser}
            - {name: MYSQL_PASSWORD, value: app-pw}
            - {name: POD_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
            - name: POD_INDEX
              valueFrom: {fieldRef: {fieldPath: "metadata.labels['apps.kubernetes.io/pod-index']"}}
            ports: [{name: mysql, containerPort: 3306}]
            readinessProbe:
              exec: {command: ["sh", "-c", "mysqladmin ping --host=\\"$POD_IP\\" && mysqladmin --version"]}
              periodSeconds: 2
            volumeMounts:
            - {name: data, mountPath: /var/lib/mysql}
            - {name: config, mountPath: /etc/mysql/conf.d}
            - {name: initdb, mountPath: /docker-entrypoint-initdb.d}
          volumes:
          - {name: config, configMap: {name: db-config}}
          - {name: initdb, configMap: {name: db-initdb}}
      volumeClaimTemplates:
      - metadata: {name: data}
        spec:
          accessModes: [ReadWriteOnce]
          resources: {requests: {storage: 1Gi}}
""").replace("@ROOT_PASSWORD@", json.dumps(ROOT_PASSWORD))


def test_a_mysql_9_7_pod_runs_the_real_mysqld_as_the_official_image_would(sandbox: Sandbox) -> None:
    sandbox.kubectl("apply", "-f", "-", input=MYSQL_MANIFEST)
    first = wait_for("sbx-mysql/db-0 Ready", lambda: ready_pod(sandbox, "db-0", "sbx-mysql"), timeout=240)
    with connect(first["status"]["podIP"]) as conn, conn.cursor() as cursor:  # caching_sha2_password
        cursor.execute("SELECT @@version, @@server_id, @@bind_address, @@gtid_mode")
        assert cursor.fetchone() == ("9.7.4-2", 10, first["status"]["podIP"], "ON")
        cursor.execute("SELECT user, host FROM mysql.user WHERE user IN ('root', 'appuser') ORDER BY 1, 2")
        assert cursor.fetchall() == (("appuser", "%"), ("root", "%"), ("root", "localhost"))
        cursor.execute("SELECT id FROM shop.orders")
        assert cursor.fetchall() == ((7,),), "/docker-entrypoint-initdb.d/*.sql ran"
        cursor.execute("SHOW DATABASES LIKE 'from_script'")
        assert cursor.fetchall() == (("from_script",),), "/docker-entrypoint-initdb.d/*.sh ran"
        cursor.execute("INSERT INTO shop.orders VALUES (8)")
    probes = "".join(p.read_text() for p in sandbox.dir.glob("pods/sbx-mysql/db-0*/probes.log"))
    assert "Ver 9.7.4" in probes and "MariaDB" not in probes, "the exec probe ran MySQL's own mysqladmin"
    sandbox.kubectl("-n", "sbx-mysql", "delete", "pod", "db-0", "--wait=false")
    again = wait_for("a new db-0 Ready", lambda: ready_pod(sandbox, "db-0", "sbx-mysql",
                                                          not_uid=first["metadata"]["uid"]), timeout=240)
    with connect(again["status"]["podIP"]) as conn, conn.cursor() as cursor:  # first login after restart
        cursor.execute("SELECT id FROM shop.orders ORDER BY id")
        assert cursor.fetchall() == ((7,), (8,)), "the data directory on the PVC survived, not re-initialised"
    log = "".join(p.read_text() for p in sandbox.dir.glob("pods/sbx-mysql/db-0*/mysqld.log"))  # both pods
    assert log.count("initialising database files") == 1 and ROOT_PASSWORD not in log


def test_the_operator_image_has_mysql_tools_in_mysql_tools_dir(sandbox: Sandbox) -> None:
    script = ("import os, subprocess; d = os.environ['MYSQL_TOOLS_DIR']; "
              "print('TOOLS', *[subprocess.run([os.path.join(d, t), '--version'], capture_output=True, "
              "text=True).stdout.split(' ', 1)[1].strip() for t in ('mysqldump', 'mysqlbinlog', 'mysql')], "
              "sep='\\n', flush=True)")
    job = {
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "tools", "namespace": "sbx-tools"},
        "spec": {"backoffLimit": 0, "template": {"spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "operator", "image": "example.org/mysql-operator:test",
                            "command": ["python", "-c", script]}],
        }}},
    }
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "sbx-tools"}}
    sandbox.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List",
                                                          "items": [namespace, job]}))
    output = wait_for("the tools Job's output", lambda: "TOOLS" in (text := "".join(
        p.read_text() for p in sandbox.dir.glob("pods/sbx-tools/tools-*/operator.log"))) and text, timeout=90)
    lines = output.split("TOOLS", 1)[1].strip().splitlines()
    assert len(lines) == 3 and all("9.7.4" in line and "MariaDB" not in line for line in lines), lines
