"""Backups and restores on the e2e cluster, through the operator running as a pod, per flavor: a MySQL
9.7 cluster's Jobs run MySQL's own mysqldump/mysqlbinlog (MYSQL_TOOLS_DIR of the operator image),
a MariaDB one's MariaDB's tools.

S3 target: moto's S3 server (`moto_server`, a real HTTP S3 implementation from PyPI) on 127.0.0.1;
the backup Jobs (pods of the operator image) reach it like any endpoint. PVC target: a
PersistentVolumeClaim of the sandbox's default StorageClass, mounted into the Jobs.

Point in time: rows written, backed up, more written, a moment noted, more written, binlogs archived;
a new cluster restored to that moment holds exactly the rows of that moment, table by table, row by
row and by CHECKSUM TABLE. Also: scheduled backups and retention (which spares a backup a restore
still waits for), a backup Job killed half way, a restore from a backup that does not exist.
"""

from __future__ import annotations

import base64
import shutil
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.e2e.conftest import FLAVORS, Cluster, cluster_spec, connect, operator_log, wait_for
from tests.integration.s3server import ACCESS_KEY_ID, SECRET_ACCESS_KEY, S3Server

pytestmark = pytest.mark.e2e

BUCKET = "e2e-backups"
SOURCE = "src"  # 2 instances, S3, binlogs archived every 10 s
SCHEDULED = "sched"  # 1 instance, PVC, a backup every minute, retention 2
TABLES = ("items", "orders")
API = "mysql.operator.dev/v1alpha1"


class Shop(Cluster):
    """The e2e cluster seen from one flavor's namespace of backed-up clusters."""

    def __init__(self, cluster: Shop, flavor: str) -> None:
        super().__init__(cluster.sandbox)
        self.flavor = flavor
        self.ns = f"backups-{flavor}"
        self.prefix = f"{SOURCE}-{flavor}"  # one bucket, a prefix per flavor


def cluster_manifest(flavor: str, name: str, instances: int, **extra: Any) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "MysqlCluster",
        "metadata": {"name": name},
        "spec": cluster_spec(
            flavor, instances=instances, application={"database": "app", "user": "app"}, **extra
        ),
    }


def backup_manifest(name: str, cluster: str) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "MysqlBackup",
        "metadata": {"name": name},
        "spec": {"cluster": cluster},
    }


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    log_dir = Path(tempfile.mkdtemp(prefix="e2e-s3-"))
    server = S3Server(log_path=log_dir / "moto.log")
    server.start()
    server.create_bucket(BUCKET)
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(log_dir, ignore_errors=True)


def s3_keys(server: S3Server, prefix: str) -> list[str]:
    client = boto3.client(
        "s3",
        endpoint_url=server.endpoint,
        region_name="us-east-1",
        aws_access_key_id=ACCESS_KEY_ID,
        aws_secret_access_key=SECRET_ACCESS_KEY,
    )
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return [obj["Key"] for page in pages for obj in page.get("Contents") or []]


@pytest.fixture(scope="module", params=FLAVORS)
def shop(operator: Cluster, s3: S3Server, request: pytest.FixtureRequest) -> Iterator[Shop]:
    """The namespace, the S3 credentials, the PVC, and both source clusters Ready."""
    shop = Shop(operator, request.param)
    operator.create_namespace(shop.ns)
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "s3-creds"},
        "data": {
            "access-key-id": base64.b64encode(ACCESS_KEY_ID.encode()).decode(),
            "secret-access-key": base64.b64encode(SECRET_ACCESS_KEY.encode()).decode(),
        },
    }
    pvc = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "backups"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    operator.apply({"apiVersion": "v1", "kind": "List", "items": [secret, pvc]}, shop.ns)
    s3_storage = {
        "s3": {
            "endpoint": s3.endpoint,
            "bucket": BUCKET,
            "prefix": shop.prefix,
            "credentialsSecret": "s3-creds",
        }
    }
    operator.apply(
        cluster_manifest(
            shop.flavor,
            SOURCE,
            2,
            backup={
                "schedule": "0 0 1 1 *",
                "retention": 5,
                "storage": s3_storage,
                "binlogArchiveIntervalSeconds": 10,
            },
        ),
        shop.ns,
    )
    operator.apply(
        cluster_manifest(
            shop.flavor,
            SCHEDULED,
            1,
            backup={
                "schedule": "* * * * *",
                "retention": 2,
                "storage": {"pvc": {"claimName": "backups", "path": "sched"}},
            },
        ),
        shop.ns,
    )
    operator.wait_ready(SOURCE, shop.ns, timeout=420)
    operator.wait_ready(SCHEDULED, shop.ns, timeout=420)
    with admin_session(shop, SCHEDULED, f"{SCHEDULED}-0") as conn, conn.cursor() as cur:
        create_tables(cur)
        cur.executemany(
            "INSERT INTO app.items (id, name, qty) VALUES (%s, %s, %s)",
            [(i, f"sched-{i}", i) for i in range(1, 51)],
        )
    yield shop
    operator.kubectl("delete", "namespace", shop.ns, "--wait=false")  # flavors do not pile up


def admin_session(cluster: Shop, name: str, pod: str) -> Any:
    """The operator's user on `pod` (root is local to its pod only)."""
    admin = cluster.secret(f"{name}-credentials", cluster.ns)["operator-password"]
    return connect(cluster.pod_ip(pod, cluster.ns), "mysqlop_admin", admin)


def create_tables(cur: Any) -> None:
    cur.execute("CREATE TABLE IF NOT EXISTS app.items (id INT PRIMARY KEY, name VARCHAR(64), qty INT)")
    cur.execute(
        "CREATE TABLE IF NOT EXISTS app.orders (id INT AUTO_INCREMENT PRIMARY KEY, item_id INT, "
        "note TEXT, placed DATETIME(6) DEFAULT CURRENT_TIMESTAMP(6))"
    )


def snapshot(cluster: Shop, name: str, pod: str) -> dict[str, Any]:
    """Every table of the app database: its CHECKSUM TABLE and all its rows in key order."""
    with admin_session(cluster, name, pod) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'app' ORDER BY table_name"
        )
        tables = [row[0] for row in cur.fetchall()]
        state: dict[str, Any] = {}
        for table in tables:
            cur.execute(f"CHECKSUM TABLE app.`{table}`")
            checksum = cur.fetchone()[1]
            cur.execute(f"SELECT * FROM app.`{table}` ORDER BY 1")
            state[table] = {"checksum": checksum, "rows": [tuple(row) for row in cur.fetchall()]}
    return state


def mysqlbackup(cluster: Shop, name: str) -> dict[str, Any]:
    return cluster.get("mysqlbackup", name, cluster.ns)


def wait_backup(cluster: Shop, name: str, phases: tuple[str, ...], timeout: float = 120) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        status = mysqlbackup(cluster, name).get("status") or {}
        return status if status.get("phase") in phases else None

    return wait_for(done, timeout, f"MysqlBackup {name} {'/'.join(phases)}")


def seconds_between(start: str, end: str) -> float:
    def parse(text: str) -> datetime:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))

    return (parse(end) - parse(start)).total_seconds()


def test_a_backup_to_s3_completes_from_a_replica_and_kubectl_shows_it(shop: Shop, s3: S3Server) -> None:
    primary = shop.status(SOURCE, shop.ns)["primary"]
    with admin_session(shop, SOURCE, primary) as conn, conn.cursor() as cur:
        create_tables(cur)
        cur.executemany(
            "INSERT INTO app.items (id, name, qty) VALUES (%s, %s, %s)",
            [(i, f"item-{i}", i * 10) for i in range(1, 201)],
        )
        cur.executemany(
            "INSERT INTO app.orders (item_id, note) VALUES (%s, %s)",
            [(i % 200 + 1, "x" * (i % 50)) for i in range(300)],
        )
    shop.apply(backup_manifest("src-full", SOURCE), shop.ns)
    status = wait_backup(shop, "src-full", ("Completed", "Failed"))
    assert status["phase"] == "Completed", status
    replica = next(i["name"] for i in shop.status(SOURCE, shop.ns)["instances"] if i["role"] == "replica")
    assert status["instance"] == replica != primary, "backups come from a replica while one is healthy"
    assert status["location"] == "backups/src-full" and status["size"] > 0 and status["gtidPosition"]
    assert f"{shop.prefix}/backups/src-full/manifest.json" in s3_keys(s3, f"{shop.prefix}/backups/src-full/")
    table = shop.kubectl("get", "mysqlbackups", "-n", shop.ns)
    header, row = (
        table.splitlines()[0].split(),
        next(line for line in table.splitlines() if "src-full" in line),
    )
    assert header == ["NAME", "CLUSTER", "PHASE", "SIZE", "AGE"]
    assert row.split()[1:4] == [SOURCE, "Completed", status["sizeHuman"]]
    took = seconds_between(status["startTime"], status["completionTime"])
    print(f"\nbackup src-full: {status['sizeHuman']} in {took:.1f}s")


def test_point_in_time_restore_into_a_new_cluster_has_exactly_the_rows_of_that_moment(shop: Shop) -> None:
    primary = shop.status(SOURCE, shop.ns)["primary"]
    with admin_session(shop, SOURCE, primary) as conn, conn.cursor() as cur:
        cur.execute("UPDATE app.items SET qty = qty + 1 WHERE id <= 50")
        cur.execute("DELETE FROM app.items WHERE id > 190")
        cur.executemany(
            "INSERT INTO app.orders (item_id, note) VALUES (%s, %s)",
            [(i, "after the backup") for i in range(1, 41)],
        )
        cur.execute("CREATE TABLE app.notes (id INT PRIMARY KEY, body TEXT)")
        cur.execute("INSERT INTO app.notes VALUES (1, 'before the moment')")
    moment = int(time.time()) + 1  # every write above is stamped before this second
    while time.time() < moment + 1.2:
        time.sleep(0.1)
    expected = snapshot(shop, SOURCE, primary)
    assert set(expected) == {"items", "orders", "notes"}
    with admin_session(shop, SOURCE, primary) as conn, conn.cursor() as cur:
        cur.execute("UPDATE app.items SET name = 'too late' WHERE id <= 100")
        cur.execute("INSERT INTO app.notes VALUES (2, 'after the moment')")
        cur.execute("DROP TABLE app.orders")
    after_writes = time.time()
    point_in_time = datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def archived() -> bool:
        last = (shop.status(SOURCE, shop.ns).get("backup") or {}).get("lastBinlogArchiveTime")
        return (
            bool(last) and datetime.fromisoformat(last.replace("Z", "+00:00")).timestamp() > after_writes + 1
        )

    wait_for(archived, 90, "binlogs archived after the last writes")
    started = time.monotonic()
    restore_from = {"backup": "src-full", "pointInTime": point_in_time}
    shop.apply(cluster_manifest(shop.flavor, "restored", 2, restoreFrom=restore_from), shop.ns)
    status = shop.wait_ready("restored", shop.ns, timeout=420)
    elapsed = time.monotonic() - started
    restore = status["restore"]
    assert restore["phase"] == "Completed" and "replayed" in restore["message"], restore
    restored_condition = shop.condition("restored", shop.ns, "Restored")
    assert restored_condition is not None and restored_condition["status"] == "True"
    assert status["primary"] == "restored-0"
    got = snapshot(shop, "restored", "restored-0")
    assert set(got) == set(expected)
    for table in expected:
        assert got[table]["rows"] == expected[table]["rows"], f"rows of app.{table} differ"
        assert got[table]["checksum"] == expected[table]["checksum"], f"CHECKSUM TABLE app.{table} differs"
    wait_for(lambda: snapshot(shop, "restored", "restored-1") == expected, 120, "the replica to follow")
    print(f"\nrestore to {point_in_time} and Ready with 2 instances: {elapsed:.1f}s ({restore['message']})")


def test_a_physical_backup_restores_to_a_point_in_time_before_the_new_cluster_starts(
    shop: Shop, s3: S3Server
) -> None:
    """spec.method physical: MariaDB's Job copies the donor's files with mariadb-backup beside its
    volume, MySQL's pulls them with the clone plugin into a server of the cluster's image. The
    restore fills instance 0's volume before any pod of the new cluster exists, gives the copied
    accounts the new cluster's passwords, rolls forward to the moment and lets the pods start."""
    primary = shop.status(SOURCE, shop.ns)["primary"]
    with admin_session(shop, SOURCE, primary) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE app.phys (id INT PRIMARY KEY, body VARCHAR(200), n INT)")
        cur.executemany("INSERT INTO app.phys VALUES (%s, %s, %s)",
                        [(i, f"before the backup {i}", i) for i in range(1, 301)])
    shop.apply({**backup_manifest("src-phys", SOURCE), "spec": {"cluster": SOURCE, "method": "physical"}},
               shop.ns)
    status = wait_backup(shop, "src-phys", ("Completed", "Failed"), timeout=300)
    assert status["phase"] == "Completed", status
    assert status["method"] == "physical" and status["size"] > 0 and "data files" in status["message"]
    assert f"{shop.prefix}/backups/src-phys/manifest.json" in s3_keys(s3, f"{shop.prefix}/backups/src-phys/")
    took = seconds_between(status["startTime"], status["completionTime"])
    with admin_session(shop, SOURCE, primary) as conn, conn.cursor() as cur:
        cur.executemany("INSERT INTO app.phys VALUES (%s, %s, %s)",
                        [(i, f"after the backup {i}", i) for i in range(301, 401)])
        cur.execute("UPDATE app.phys SET n = n * 2 WHERE id <= 100")
    moment = int(time.time()) + 1
    while time.time() < moment + 1.2:
        time.sleep(0.1)
    expected = snapshot(shop, SOURCE, primary)
    with admin_session(shop, SOURCE, primary) as conn, conn.cursor() as cur:
        cur.execute("DELETE FROM app.phys WHERE id > 200")
        cur.execute("INSERT INTO app.phys VALUES (100001, 'too late', 0)")
    after_writes = time.time()
    point_in_time = datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def archived() -> bool:
        last = (shop.status(SOURCE, shop.ns).get("backup") or {}).get("lastBinlogArchiveTime")
        stamp = datetime.fromisoformat(last.replace("Z", "+00:00")).timestamp() if last else 0.0
        return stamp > after_writes + 1

    wait_for(archived, 90, "binlogs archived after the last writes")
    started = time.monotonic()
    restore_from = {"backup": "src-phys", "pointInTime": point_in_time}
    shop.apply(cluster_manifest(shop.flavor, "phys", 2, restoreFrom=restore_from), shop.ns)
    pods_while_restoring: list[int] = []

    def restoring() -> bool:
        restore = shop.status("phys", shop.ns).get("restore") or {}
        if restore.get("phase") == "Running" and restore.get("step") == "Restoring":  # the Job's part
            instances = "app.kubernetes.io/name=mysql,app.kubernetes.io/instance=phys"  # not the Job's pod
            pods_while_restoring.append(len(shop.items("pods", shop.ns, instances)))
        return restore.get("phase") in ("Completed", "Failed")

    wait_for(restoring, 420, "the physical restore to end", interval=1)
    status = shop.wait_ready("phys", shop.ns, timeout=300)
    elapsed = time.monotonic() - started
    restore = status["restore"]
    assert restore["phase"] == "Completed" and restore["method"] == "physical", restore
    assert pods_while_restoring and set(pods_while_restoring) == {0}, "no instance starts before its data"
    assert restore["step"] == "Done"
    assert status["primary"] == "phys-0"
    got = snapshot(shop, "phys", "phys-0")  # the new cluster's own operator password works
    assert set(got) == set(expected)
    for table in expected:
        assert got[table]["rows"] == expected[table]["rows"], f"rows of app.{table} differ"
        assert got[table]["checksum"] == expected[table]["checksum"], f"CHECKSUM TABLE app.{table} differs"
    app_password = shop.secret("phys-credentials", shop.ns)["app-password"]
    assert app_password != shop.secret(f"{SOURCE}-credentials", shop.ns)["app-password"]
    with connect(shop.pod_ip("phys-0", shop.ns), "app", app_password) as conn, conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM app.phys")
        assert cur.fetchone()[0] == 400
    wait_for(lambda: snapshot(shop, "phys", "phys-1") == expected, 180, "the replica to follow")
    print(f"\nphysical backup src-phys: {status_size(shop)} in {took:.1f}s; restore to {point_in_time} and "
          f"Ready with 2 instances: {elapsed:.1f}s ({restore['message']})")


def status_size(shop: Shop) -> str:
    return str((mysqlbackup(shop, "src-phys").get("status") or {}).get("sizeHuman"))


def test_a_backup_job_killed_half_way_leaves_the_backup_failed(shop: Shop, s3: S3Server) -> None:
    # The dump is stalled on the replica without writing there (a replica is read-only, and MySQL's
    # super_read_only refuses even root's LOCK TABLES ... WRITE): an open transaction of the test
    # holds app.items, an ALTER replicated from the primary queues for that table's exclusive
    # metadata lock, and every later reader queues behind it. Whatever the dump does first on that
    # replica waits: MySQL's mysqldump its FLUSH TABLES / FLUSH TABLES WITH READ LOCK, MariaDB's
    # mariadb-dump (a consistent binlog snapshot, no global lock) its SELECT from app.items. Closing
    # the test's session (the with-block, also on failure) lets the ALTER and the replica go on.
    primary = shop.status(SOURCE, shop.ns)["primary"]
    replica = next(i["name"] for i in shop.status(SOURCE, shop.ns)["instances"] if i["role"] == "replica")
    with admin_session(shop, SOURCE, replica) as hold, hold.cursor() as cur:
        cur.execute("START TRANSACTION")
        cur.execute("SELECT COUNT(*) FROM app.items")  # its metadata lock lasts until the session ends
        with admin_session(shop, SOURCE, primary) as conn, conn.cursor() as writer:
            writer.execute("ALTER TABLE app.items COMMENT = 'stalls a backup on the replica'")

        def waiting(user_clause: str) -> bool:
            cur.execute(
                "SELECT COUNT(*) FROM information_schema.processlist "
                f"WHERE {user_clause} AND state LIKE 'Waiting for%'"
            )
            return bool(cur.fetchone()[0])

        wait_for(
            lambda: waiting("info LIKE '%ALTER TABLE app.items%'"),
            60,
            "the replicated ALTER to wait for app.items",
        )
        shop.apply(backup_manifest("src-killed", SOURCE), shop.ns)
        wait_backup(shop, "src-killed", ("Running",))

        def dumping() -> str | None:
            if not waiting("user = 'mysqlop_backup'"):
                return None
            pods = shop.items("pods", shop.ns, "job-name=src-killed-backup")
            return str(pods[0]["metadata"]["name"]) if pods else None

        pod = wait_for(dumping, 120, "the dump to wait behind the ALTER, half way")
        assert mysqlbackup(shop, "src-killed")["status"]["instance"] == replica
        assert shop.sandbox.kill_container(shop.ns, pod, "backup"), "the Job's process was killed"
    status = wait_backup(shop, "src-killed", ("Completed", "Failed"))
    assert status["phase"] == "Failed", status
    assert "137" in status["message"] and "killed" in status["message"], status["message"]
    assert not [k for k in s3_keys(s3, f"{shop.prefix}/backups/src-killed/") if k.endswith("manifest.json")]
    table = shop.kubectl("get", "mysqlbackups", "-n", shop.ns, "-o", "wide")
    assert "Failed" in next(line for line in table.splitlines() if "src-killed" in line)
    reasons = {e["reason"] for e in shop.events(shop.ns, "src-killed")}
    assert "BackupFailed" in reasons


def test_a_restore_from_a_missing_backup_fails_clearly_and_changes_nothing(shop: Shop) -> None:
    shop.apply(cluster_manifest(shop.flavor, "ghost", 1, restoreFrom={"backup": "no-such-backup"}), shop.ns)

    def failed() -> dict[str, Any] | None:
        cond = shop.condition("ghost", shop.ns, "Restored")
        return cond if cond and cond["reason"] == "RestoreFailed" else None

    cond = wait_for(failed, 90, "the Restored condition to say RestoreFailed")
    assert (
        cond["status"] == "False"
        and "BackupNotFound" in cond["message"]
        and "no-such-backup" in cond["message"]
    )
    time.sleep(6)  # two more restore and topology passes: no retry, no bootstrap
    status = shop.status("ghost", shop.ns)
    assert status["phase"] == "RestoreFailed" and not status.get("primary")
    assert shop.condition("ghost", shop.ns, "Restored") == cond, "no retry storm: the condition stays"
    assert shop.kubectl_result("get", "job", "ghost-restore", "-n", shop.ns).returncode != 0
    events = [e for e in shop.events(shop.ns, "ghost") if e["reason"] == "RestoreFailed"]
    assert len(events) == 1 and events[0]["type"] == "Warning"


def pvc_directory(cluster: Shop) -> Path:
    volume = cluster.get("pvc", "backups", cluster.ns)["spec"]["volumeName"]
    spec = cluster.get("pv", volume, cluster.ns)["spec"]
    return Path((spec.get("hostPath") or spec.get("local"))["path"])


def test_scheduled_backups_fire_and_retention_prunes_objects_and_data(shop: Shop) -> None:
    seen: set[str] = set()
    stored = pvc_directory(shop) / "sched" / "backups"

    def retention_state() -> dict[str, Any]:
        return dict(shop.status(SCHEDULED, shop.ns).get("backup") or {})

    def settled() -> tuple[dict[str, Any], list[dict[str, Any]], list[str]] | None:
        """Objects and stored manifests read while no retention ran (the state is the same after as
        before): a backup every minute, so the next backup and its retention may come at any time."""
        state = retention_state()
        backups = shop.items("mysqlbackups", shop.ns, f"mysql.operator.dev/cluster={SCHEDULED}")
        seen.update(b["metadata"]["name"] for b in backups)
        done = state.get("retainedAfter") and not state.get("retentionJob")
        if not (done and str(state.get("lastRetention", "")).startswith("kept 2")):
            return None
        listed = sorted(p.parent.name for p in stored.glob("*/manifest.json"))
        after = retention_state()
        same = after.get("retainedAfter") == state["retainedAfter"] and not after.get("retentionJob")
        # and the next backup not complete yet, so its retention is not seconds away either
        newer = [b for b in backups if b["metadata"]["name"] > str(state["retainedAfter"])]
        quiet = not any((b.get("status") or {}).get("phase") == "Completed" for b in newer)
        return (state, backups, listed) if same and quiet and len(seen) >= 3 else None

    state, remaining, listed = wait_for(
        settled, 240, "3 scheduled backups and retention after the third", interval=2
    )
    # Retention ran after `retainedAfter` completed: what it decided covers the backups up to that
    # one (names sort by fire time); a newer one may have completed since, its retention still due.
    upto = str(state["retainedAfter"])
    complete = sorted(
        b["metadata"]["name"]
        for b in remaining
        if (b.get("status") or {}).get("phase") == "Completed" and b["metadata"]["name"] <= upto
    )
    assert len(complete) <= 2 and complete[-1] == upto and len(seen) >= 3, (seen, complete, state)
    with_manifest = [name for name in listed if name <= upto]
    assert with_manifest == complete, "retention deleted the data of the pruned backups, and only theirs"

    # A restore that has not read its backup yet keeps it from retention: the oldest kept backup,
    # next in line to go, stays while a new cluster restoring from it waits (suspended, so it waits
    # for as long as the test needs); then that cluster is let go and restores it.
    oldest = complete[0]
    copy = cluster_manifest(shop.flavor, "sched-copy", 1, restoreFrom={"backup": oldest}, suspend=True)
    shop.apply(copy, shop.ns)

    def retention_after_a_newer_backup() -> dict[str, Any] | None:
        now = retention_state()
        done = str(now.get("retainedAfter") or "") > upto and not now.get("retentionJob")
        return now if done and str(now.get("lastRetention", "")).startswith("kept 2") else None

    later = wait_for(retention_after_a_newer_backup, 180, "retention after a newer scheduled backup", 2)
    assert mysqlbackup(shop, oldest)["status"]["phase"] == "Completed", later
    assert (stored / oldest / "manifest.json").exists(), "retention spared the backup a restore waits for"
    shop.apply({**copy, "spec": {**copy["spec"], "suspend": False}}, shop.ns)
    shop.wait_ready("sched-copy", shop.ns, timeout=240)
    assert snapshot(shop, "sched-copy", "sched-copy-0") == snapshot(shop, SCHEDULED, f"{SCHEDULED}-0")


def test_the_operator_logged_no_tracebacks_in_the_backup_handlers(shop: Shop) -> None:
    log = operator_log(shop)
    assert "handlers/backup.py" not in log and "handlers/restore.py" not in log, log[-3000:]
