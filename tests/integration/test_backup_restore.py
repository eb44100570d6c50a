"""The backup engine against real servers of each flavor (binlog + GTID) and a real S3 server.

MariaDB's backups run mariadb-dump/mariadb-binlog, MySQL's run MySQL's own mysqldump/mysqlbinlog from
MYSQL_TOOLS_DIR (the conftest points it at wrappers over the cached MySQL root). Each test starts its
own servers on 127.<IT_NET>.30.x and stops them at the end; every wait is bounded.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from mysql_operator.backup.binlogs import archive_binlogs
from mysql_operator.backup.catalog import list_backups, scan
from mysql_operator.backup.cli import EXIT_BAD_BACKUP, EXIT_OK, main
from mysql_operator.backup.commands import MYSQL_TOOLS_DIR_ENV, Instance, Tools
from mysql_operator.backup.manifest import BackupCorrupt, BackupNotFound, dump_key, manifest_key
from mysql_operator.backup.restore import PointInTimeUnavailable, RestoreStep, TargetNotEmpty, restore
from mysql_operator.backup.retention import apply_retention
from mysql_operator.backup.storage import DirectoryStorage, S3Location, S3Storage, Storage
from mysql_operator.backup.take import DumpFailed, take_backup
from mysql_operator.conventions import Flavor
from mysql_operator.mysql.session import Login
from mysql_operator.mysql.users import BACKUP_GRANTS
from tests.integration.conftest import NET
from tests.integration.s3server import ACCESS_KEY_ID, SECRET_ACCESS_KEY, S3Server
from tests.integration.servers import DbServer, make_server

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SOURCE_HOST = f"127.{NET}.30.1"
TARGET_HOST = f"127.{NET}.30.2"
# A backup user whose password needs every kind of quoting an option file knows.
BACKUP_USER = "bk_user"
BACKUP_PASSWORD = "p\"a'ss\\wo#rd; x=1"
SERVER_CONFIG = {
    Flavor.MARIADB: {
        "read_only": "OFF",
        "gtid_strict_mode": "ON",
        "gtid_domain_id": "0",
        "max_allowed_packet": "64M",
    },
    Flavor.MYSQL: {"read_only": "OFF", "max_allowed_packet": "64M"},
}
BOUND = 60.0


def _wait_for(check: Callable[[], Any], what: str, timeout: float = BOUND) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


class Servers:
    """Starts servers of one flavor under one short temporary directory; `stop_all` kills and removes them."""

    def __init__(self, flavor: Flavor) -> None:
        self.flavor = flavor
        self.base = Path(tempfile.mkdtemp(prefix="bk-", dir="/tmp"))
        self.started: list[DbServer] = []

    def start(self, host: str, ordinal: int) -> DbServer:
        server = make_server(self.flavor, ordinal, host, self.base / host, SERVER_CONFIG[self.flavor])
        self.started.append(server)
        server.start()
        return server

    def stop_all(self) -> None:
        for server in self.started:
            server.kill()
        shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture
def servers(flavor: str) -> Iterator[Servers]:
    started = Servers(Flavor(flavor))
    try:
        yield started
    finally:
        started.stop_all()


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    log_dir = Path(tempfile.mkdtemp(prefix="bk-s3-"))
    server = S3Server(log_path=log_dir / "moto.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(log_dir, ignore_errors=True)


_buckets = iter(range(1, 1000))


@pytest.fixture(params=["directory", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    if request.param == "directory":
        return DirectoryStorage(tmp_path / "pvc" / "shop-db")
    server: S3Server = request.getfixturevalue("s3")
    bucket = f"backups-{next(_buckets)}"
    server.create_bucket(bucket)
    return S3Storage(
        S3Location(
            endpoint=server.endpoint,
            bucket=bucket,
            prefix="clusters/shop-db",
            access_key_id=ACCESS_KEY_ID,
            secret_access_key=SECRET_ACCESS_KEY,
        )
    )


def instance_of(server: DbServer, user: str = BACKUP_USER, password: str = BACKUP_PASSWORD) -> Instance:
    return Instance(
        host=server.host, login=Login(user, password), flavor=server.flavor, name=server.pod_name
    )


def create_backup_user(server: DbServer) -> None:
    server.sql("CREATE USER %s@'%%' IDENTIFIED BY %s", (BACKUP_USER, BACKUP_PASSWORD))
    server.sql("GRANT ALL PRIVILEGES ON *.* TO %s@'%%'", (BACKUP_USER,))


def create_schema(server: DbServer) -> None:
    for statement in (
        "CREATE DATABASE shop",
        "CREATE DATABASE crm",
        "CREATE TABLE shop.orders (id INT AUTO_INCREMENT PRIMARY KEY, customer VARCHAR(64) NOT NULL, "
        "amount DECIMAL(12,2) NOT NULL, note TEXT, created DATETIME(6) NOT NULL)",
        "CREATE TABLE shop.items (order_id INT NOT NULL, sku VARCHAR(32) NOT NULL, qty INT NOT NULL, "
        "photo BLOB, PRIMARY KEY (order_id, sku))",
        "CREATE TABLE crm.contacts (email VARCHAR(128) PRIMARY KEY, name VARCHAR(128) CHARACTER SET utf8mb4, "
        "score DOUBLE)",
        "CREATE TABLE crm.audit (at DATETIME(6), what VARCHAR(255))",  # no primary key
    ):
        server.sql(statement)


def write_batch(server: DbServer, batch: int, rows: int = 200) -> None:
    """Inserts, updates and deletes whose result depends on the batch number."""
    with server.root_connection() as connection, connection.cursor() as cursor:
        for i in range(rows):
            cursor.execute(
                "INSERT INTO shop.orders (customer, amount, note, created) VALUES (%s, %s, %s, %s)",
                (
                    f"c{batch}-{i}",
                    f"{batch * 1000 + i}.{i % 100:02d}",
                    f"note 'é' {batch}/{i}",
                    datetime.now(UTC),
                ),
            )
            order_id = cursor.lastrowid
            cursor.execute(
                "INSERT INTO shop.items VALUES (%s, %s, %s, %s)",
                (order_id, f"sku-{i % 7}", i % 5 + 1, bytes([(batch + i + k) % 256 for k in range(64)])),
            )
        cursor.executemany(
            "INSERT INTO crm.contacts VALUES (%s, %s, %s) "
            "ON DUPLICATE KEY UPDATE score = score + VALUES(score)",
            [(f"u{i % 50}@example.org", f"Ünïcode {i} ✓", batch + i / 7) for i in range(rows // 2)],
        )
        cursor.execute("INSERT INTO crm.audit VALUES (%s, %s)", (datetime.now(UTC), f"batch {batch}"))
        cursor.execute("UPDATE shop.orders SET note = CONCAT(note, ' +', %s) WHERE id %% 3 = 0", (batch,))
        cursor.execute(
            "DELETE FROM shop.items WHERE qty = %s AND order_id %% 4 = %s", (batch % 5 + 1, batch % 4)
        )


def user_tables(server: DbServer) -> list[tuple[str, str]]:
    rows = server.sql(
        "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA NOT IN "
        "('mysql', 'information_schema', 'performance_schema', 'sys') ORDER BY 1, 2"
    )
    return [(str(a), str(b)) for a, b in rows]


def scalar(server: DbServer, statement: str) -> Any:
    return server.sql(statement)[0][0]


def snapshot(server: DbServer) -> dict[str, Any]:
    """Every user table: CHECKSUM TABLE and all rows in a stable order."""
    state: dict[str, Any] = {}
    for schema, table in user_tables(server):
        name = f"`{schema}`.`{table}`"
        width = len(server.sql(f"SHOW COLUMNS FROM {name}"))
        order = ", ".join(str(i) for i in range(1, width + 1))
        state[name] = {
            "checksum": server.sql(f"CHECKSUM TABLE {name}")[0][1],
            "count": scalar(server, f"SELECT COUNT(*) FROM {name}"),
            "rows": server.sql(f"SELECT * FROM {name} ORDER BY {order}"),
        }
    return state


def assert_same_data(expected: dict[str, Any], actual: dict[str, Any]) -> None:
    assert sorted(actual) == sorted(expected)
    for table, want in expected.items():
        got = actual[table]
        assert got["count"] == want["count"], table
        assert got["checksum"] == want["checksum"], table
        for number, (row_want, row_got) in enumerate(zip(want["rows"], got["rows"], strict=True)):
            assert row_got == row_want, f"{table} row {number}"


def next_whole_second() -> datetime:
    """Wait until a new second starts and return it: writes before are stamped before it."""
    now = datetime.now(UTC)
    mark = now.replace(microsecond=0).timestamp() + 1
    time.sleep(max(0.0, mark - now.timestamp()) + 0.02)
    return datetime.fromtimestamp(mark, UTC)


def test_point_in_time_restore_reproduces_every_table_row_for_row(servers: Servers, storage: Storage) -> None:
    source = servers.start(SOURCE_HOST, 0)
    create_backup_user(source)
    create_schema(source)
    write_batch(source, 1)
    backup = take_backup(instance_of(source), storage, cluster="shop-db", name="shop-db-1")
    assert [m.name for m in list_backups(storage)] == ["shop-db-1"]
    assert backup.binlog_file and source.origin_mark() in backup.gtid_position
    at_backup = snapshot(source)

    write_batch(source, 2)
    source.sql("CREATE TABLE shop.coupons (code VARCHAR(16) PRIMARY KEY, percent INT)")
    source.sql("INSERT INTO shop.coupons VALUES ('SPRING', 10), ('FALL', 15)")
    archive_binlogs(instance_of(source), storage)  # an archive run in between, as the timer does
    write_batch(source, 3)
    moment = next_whole_second()
    expected = snapshot(source)

    write_batch(source, 4)
    source.sql("DROP TABLE crm.audit")
    source.sql("UPDATE shop.coupons SET percent = 99")
    archived = archive_binlogs(instance_of(source), storage)
    assert archived.copied

    steps: list[str] = []
    target = servers.start(TARGET_HOST, 0)
    result = restore(
        instance_of(target, "root", "r00t-Secret-pw"),
        storage,
        backup.location,
        point_in_time=moment,
        progress=lambda step, message: steps.append(step),
    )
    assert result.replayed
    assert steps == [
        RestoreStep.VERIFYING,
        RestoreStep.FETCHING_BINLOGS,
        RestoreStep.LOADING_DUMP,
        RestoreStep.REPLAYING_BINLOGS,
        RestoreStep.DONE,
    ]
    assert_same_data(expected, snapshot(target))
    # batches 1-3, not 4
    assert scalar(target, "SELECT COUNT(*) FROM shop.orders") == 600

    # and without a point in time, the dump alone is the data at the backup
    plain = servers.start(f"127.{NET}.30.3", 0)
    restore(instance_of(plain, "root", "r00t-Secret-pw"), storage, "shop-db-1")
    assert_same_data(at_backup, snapshot(plain))


def _dump_children(parent: int, flavor: Flavor) -> list[int]:
    # By command line: MySQL's tools run through the root's loader (the process's comm and argv[0]
    # are the loader's; the tool's path follows it).
    tool = Path(Tools.for_flavor(flavor).dump).name
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        if tool in [Path(part).name for part in argv[:6]] and ppid == parent:
            found.append(int(entry.name))
    return found


def _fill_for_blocking(server: DbServer) -> None:
    create_schema(server)
    write_batch(server, 1, rows=100)
    server.sql("CREATE TABLE shop.zz_blocker (id INT PRIMARY KEY)")
    server.sql("INSERT INTO shop.zz_blocker VALUES (1)")


def test_backup_whose_dump_is_killed_half_way_is_never_listed_complete(
    servers: Servers, storage: Storage
) -> None:
    source = servers.start(SOURCE_HOST, 0)
    create_backup_user(source)
    _fill_for_blocking(source)
    failure: list[BaseException] = []

    def run() -> None:
        try:
            take_backup(instance_of(source), storage, cluster="shop-db", name="doomed")
        except BaseException as error:
            failure.append(error)

    # The dump reads tables in order and waits on the last one, locked here: killed mid-stream.
    with source.root_connection() as lock, lock.cursor() as cursor:
        cursor.execute("LOCK TABLES shop.zz_blocker WRITE")
        worker = threading.Thread(target=run)
        worker.start()
        dump = _wait_for(lambda: _dump_children(os.getpid(), source.flavor), "the dump process")[0]
        time.sleep(0.3)  # let it stream the tables before the lock
        os.kill(dump, signal.SIGKILL)
        worker.join(BOUND)
        cursor.execute("UNLOCK TABLES")
    assert not worker.is_alive()
    assert len(failure) == 1 and isinstance(failure[0], DumpFailed)
    assert "killed by signal 9" in str(failure[0])
    assert list_backups(storage) == []
    assert not storage.exists(dump_key("doomed"))
    assert not storage.exists(manifest_key("doomed"))
    with pytest.raises(BackupNotFound):
        restore(instance_of(source), storage, "doomed")


def _cli_env(server: DbServer, storage_json: dict[str, Any], pvc_root: Path) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if k.startswith(("PATH", "HOME", "LANG"))},
        MYSQL_TOOLS_DIR_ENV: os.environ[MYSQL_TOOLS_DIR_ENV],
        "PYTHONPATH": str(ROOT),
        "DB_HOST": server.host,
        "DB_PORT": "3306",
        "DB_USER": BACKUP_USER,
        "DB_PASSWORD": BACKUP_PASSWORD,
        "DB_FLAVOR": server.flavor.value,
        "BACKUP_STORAGE": json.dumps(storage_json),
        "BACKUP_PVC_ROOT": str(pvc_root),
    }


def test_backup_job_killed_half_way_leaves_a_leftover_that_retention_removes(
    servers: Servers, tmp_path: Path
) -> None:
    source = servers.start(SOURCE_HOST, 0)
    create_backup_user(source)
    _fill_for_blocking(source)
    env = _cli_env(source, {"pvc": {"claimName": "backups", "path": "shop-db"}}, tmp_path)
    storage = DirectoryStorage(tmp_path / "shop-db")
    with source.root_connection() as lock, lock.cursor() as cursor:
        cursor.execute("LOCK TABLES shop.zz_blocker WRITE")
        job = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mysql_operator.backup.cli",
                "backup",
                "--cluster",
                "shop-db",
                "--name",
                "b1",
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        try:
            _wait_for(lambda: _dump_children(job.pid, source.flavor), "the job's dump process")
            _wait_for(lambda: storage.list_partial(), "the job to stream data")
            os.killpg(job.pid, signal.SIGKILL)  # the Job's pod dies: everything in it goes
            job.wait(BOUND)
        finally:
            if job.poll() is None:
                os.killpg(job.pid, signal.SIGKILL)
                job.wait(BOUND)
            assert job.stdout is not None and job.stderr is not None
            job.stdout.close()
            job.stderr.close()
        cursor.execute("UNLOCK TABLES")
    assert list_backups(storage) == []
    assert [leftover.name for leftover in scan(storage).leftovers] == ["b1"]

    completed = subprocess.run(
        [sys.executable, "-m", "mysql_operator.backup.cli", "backup", "--cluster", "shop-db", "--name", "b2"],
        env=env,
        capture_output=True,
        timeout=BOUND,
        check=False,
    )
    assert completed.returncode == EXIT_OK, completed.stderr.decode()[-2000:]
    result = json.loads(completed.stdout)
    assert result["result"] == "Completed" and result["status"]["location"] == "backups/b2"
    assert result["status"]["phase"] == "Completed" and result["status"]["binlogFile"]
    assert BACKUP_PASSWORD not in completed.stderr.decode() + completed.stdout.decode()
    assert [m.name for m in list_backups(storage)] == ["b2"]

    plan = apply_retention(storage, keep=1)
    assert plan.delete_leftovers == ["b1"]
    assert scan(storage).leftovers == []
    assert storage.list_partial() == []


def test_retention_keeps_the_newest_backups_and_the_binlogs_they_need(
    servers: Servers, storage: Storage
) -> None:
    source = servers.start(SOURCE_HOST, 0)
    create_backup_user(source)
    create_schema(source)
    instance = instance_of(source)
    for number in range(1, 5):
        write_batch(source, number, rows=20)
        take_backup(instance, storage, cluster="shop-db", name=f"b{number}")
        archive_binlogs(instance, storage)
    before = scan(storage)
    assert [m.name for m in before.complete] == ["b1", "b2", "b3", "b4"]
    source_name = before.complete[0].binlog_source
    assert source_name == "server-10"

    plan = apply_retention(storage, keep=2)
    after = scan(storage)
    assert plan.delete_backups == ["b1", "b2"]
    assert [m.name for m in after.complete] == ["b3", "b4"]
    assert storage.list("backups/b1/") == [] and storage.list("backups/b2/") == []
    oldest_kept = after.complete[0].binlog_file
    assert oldest_kept is not None
    assert after.binlogs[source_name][0].file == oldest_kept
    assert len(after.binlogs[source_name]) < len(before.binlogs[source_name])

    # archiving again does not bring the pruned files back
    again = archive_binlogs(instance, storage)
    assert all(b.file >= oldest_kept for b in scan(storage).binlogs[source_name])
    assert again.source == source_name

    # the oldest kept backup still restores to a point after it
    write_batch(source, 9, rows=5)
    moment = next_whole_second()
    expected = snapshot(source)
    write_batch(source, 10, rows=5)
    archive_binlogs(instance, storage)
    target = servers.start(TARGET_HOST, 0)
    restore(instance_of(target, "root", "r00t-Secret-pw"), storage, "b3", point_in_time=moment)
    assert_same_data(expected, snapshot(target))


def test_corrupt_or_missing_backup_is_refused_and_changes_nothing(servers: Servers, tmp_path: Path) -> None:
    source = servers.start(SOURCE_HOST, 0)
    create_backup_user(source)
    create_schema(source)
    write_batch(source, 1, rows=50)
    storage = DirectoryStorage(tmp_path / "pvc")
    manifest = take_backup(instance_of(source), storage, cluster="shop-db", name="good")
    target = servers.start(TARGET_HOST, 0)
    target_instance = instance_of(target, "root", "r00t-Secret-pw")
    before = target.executed_gtids()

    with pytest.raises(BackupNotFound, match="no complete backup 'nope'"):
        restore(target_instance, storage, "backups/nope")

    path = storage.root / manifest.dump_key
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(BackupCorrupt, match="does not match its manifest"):
        restore(target_instance, storage, "good")
    code = main(
        ["restore", "--backup", "backups/good"],
        env={
            "DB_HOST": target.host,
            "DB_USER": "root",
            "DB_PASSWORD": "r00t-Secret-pw",
            "DB_FLAVOR": target.flavor.value,
            "BACKUP_STORAGE": json.dumps({"pvc": {"claimName": "backups"}}),
            "BACKUP_PVC_ROOT": str(storage.root),
        },
    )
    assert code == EXIT_BAD_BACKUP
    assert user_tables(target) == []
    assert target.executed_gtids() == before

    (storage.root / manifest_key("good")).write_text("{not json")
    with pytest.raises(BackupCorrupt, match="unreadable"):
        restore(target_instance, storage, "good")


def test_restore_refuses_a_target_with_data_and_an_uncovered_point_in_time(
    servers: Servers, tmp_path: Path
) -> None:
    source = servers.start(SOURCE_HOST, 0)
    create_backup_user(source)
    create_schema(source)
    write_batch(source, 1, rows=10)
    storage = DirectoryStorage(tmp_path / "pvc")
    take_backup(instance_of(source), storage, cluster="shop-db", name="b1")
    with pytest.raises(TargetNotEmpty, match="shop"):
        restore(instance_of(source), storage, "b1")
    target = servers.start(TARGET_HOST, 0)
    later = datetime.now(UTC).replace(microsecond=0)
    time.sleep(1.1)
    with pytest.raises(PointInTimeUnavailable, match="no archived binlog"):
        restore(instance_of(target, "root", "r00t-Secret-pw"), storage, "b1", point_in_time=later)
    assert user_tables(target) == []


def test_backup_and_binlog_archive_need_only_the_documented_grants(servers: Servers, tmp_path: Path) -> None:
    source = servers.start(SOURCE_HOST, 0)
    create_schema(source)
    write_batch(source, 1, rows=20)
    source.sql("CREATE USER 'bk_min'@'%%' IDENTIFIED BY %s", ("min-pw",))
    # What the operator grants its backup user (the Job does not run as root).
    source.sql(f"GRANT {BACKUP_GRANTS[source.flavor]} ON *.* TO 'bk_min'@'%'")
    storage = DirectoryStorage(tmp_path / "pvc")
    instance = instance_of(source, "bk_min", "min-pw")
    backup = take_backup(instance, storage, cluster="shop-db", name="b1")
    assert backup.binlog_file and backup.gtid_position
    write_batch(source, 2, rows=20)
    assert archive_binlogs(instance, storage).copied
