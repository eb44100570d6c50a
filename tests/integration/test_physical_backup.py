"""Physical backups against real servers of both flavors (MariaDB: mariadb-backup; MySQL: CLONE
LOCAL DATA DIRECTORY, and a recipient server's CLONE INSTANCE ... DATA DIRECTORY), streamed to a PVC
directory and to S3, unpacked into a new instance's empty data directory, started, rolled forward
with the archived binlogs to a point in time, and proven by checksums: every table's CHECKSUM TABLE
equals the source's at that time."""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mysql_operator.backup.binlogs import archive_binlogs
from mysql_operator.backup.catalog import list_backups, read_manifest
from mysql_operator.backup.cli import main
from mysql_operator.backup.commands import Instance, Tools
from mysql_operator.backup.manifest import BackupCorrupt
from mysql_operator.backup.physical import PhysicalBackupFailed, take_physical_backup, unpack_physical
from mysql_operator.backup.restore import RestoreRefused, restore, roll_forward
from mysql_operator.backup.storage import DirectoryStorage, S3Location, S3Storage, Storage
from mysql_operator.conventions import BACKUP_USER, Flavor
from mysql_operator.mysql.dialect import dialect_for
from mysql_operator.mysql.session import Login, open_session
from mysql_operator.mysql.users import BACKUP_GRANTS, ensure_backup_user
from mysql_operator.tls.issue import issue_ca
from sandbox import mysql_root
from tests.integration.conftest import NET
from tests.integration.s3server import ACCESS_KEY_ID, SECRET_ACCESS_KEY, S3Server
from tests.integration.servers import ROOT_PASSWORD, DbServer, make_server

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

SOURCE_HOST = f"127.{NET}.31.1"
TARGET_HOST = f"127.{NET}.31.2"
RECIPIENT_HOST = f"127.{NET}.31.3"
BACKUP_PASSWORD = "bk-Secret-pw"


class Servers:
    """Servers of one flavor under one temporary directory; `stop_all` kills and removes them."""

    def __init__(self, flavor: str) -> None:
        self.flavor = flavor
        self.base = Path(tempfile.mkdtemp(prefix="pbk-", dir="/tmp"))
        self.made: list[DbServer] = []

    def make(self, host: str, ordinal: int, extra_config: dict[str, str] | None = None) -> DbServer:
        server = make_server(self.flavor, ordinal, host, self.base / host, extra_config)
        self.made.append(server)
        return server

    def tools(self) -> Tools:
        """The flavor's client tools: MariaDB's on PATH, MySQL's through the cached root's loader."""
        if self.flavor == Flavor.MARIADB:
            return Tools.for_flavor(Flavor.MARIADB)
        wrappers = mysql_root.write_wrappers(self.base / "bin")
        return Tools(dump=str(wrappers["mysqldump"]), client=str(wrappers["mysql"]),
                     binlog=str(wrappers["mysqlbinlog"]))

    def stop_all(self) -> None:
        for server in self.made:
            server.kill()
        shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture
def servers(flavor: str) -> Iterator[Servers]:
    made = Servers(flavor)
    try:
        yield made
    finally:
        made.stop_all()


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    log_dir = Path(tempfile.mkdtemp(prefix="pbk-s3-"))
    server = S3Server(log_path=log_dir / "moto.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(log_dir, ignore_errors=True)


_buckets = iter(range(1, 1000))


@pytest.fixture(params=["pvc", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    if request.param == "pvc":
        return DirectoryStorage(tmp_path / "pvc" / "shop-db")
    server: S3Server = request.getfixturevalue("s3")
    bucket = f"physical-{next(_buckets)}"
    server.create_bucket(bucket)
    return S3Storage(S3Location(endpoint=server.endpoint, bucket=bucket, prefix="clusters/shop-db",
                                access_key_id=ACCESS_KEY_ID, secret_access_key=SECRET_ACCESS_KEY))


def root_of(server: DbServer) -> Instance:
    return Instance(host=server.host, login=Login("root", ROOT_PASSWORD), flavor=Flavor(server.flavor))


TABLES = ("shop.orders", "shop.notes")


def create_schema(server: DbServer) -> None:
    server.sql("CREATE DATABASE shop")
    server.sql("CREATE TABLE shop.orders (id INT PRIMARY KEY, customer VARCHAR(40), total DECIMAL(10,2), "
               "KEY by_customer (customer))")
    server.sql("CREATE TABLE shop.notes (id INT AUTO_INCREMENT PRIMARY KEY, body TEXT) ENGINE=InnoDB")


def write_batch(server: DbServer, batch: int, rows: int = 200) -> None:
    values = ", ".join(f"({batch * 1000 + i}, 'c{i % 17}', {i}.{batch:02d})" for i in range(rows))
    server.sql(f"INSERT INTO shop.orders VALUES {values}")
    server.sql("INSERT INTO shop.notes (body) VALUES (%s)", (f"batch {batch} " + "x" * 500,))


def checksums(server: DbServer) -> dict[str, int]:
    """CHECKSUM TABLE of every table: equal checksums, equal rows."""
    return {str(row[0]): int(row[1]) for row in server.sql(f"CHECKSUM TABLE {', '.join(TABLES)}")}


def next_whole_second() -> datetime:
    """Wait into the next second and return it: transactions before it are in, after it are out."""
    now = datetime.now(UTC)
    mark = now.replace(microsecond=0).timestamp() + 1
    time.sleep(max(0.0, mark - now.timestamp()) + 0.02)
    return datetime.fromtimestamp(mark, UTC)


def take(server: DbServer, storage: Storage, servers: Servers, name: str) -> object:
    return take_physical_backup(root_of(server), storage, cluster="shop-db", name=name,
                                datadir=server.datadir, scratch=servers.base / f"clone-{name}")


def test_physical_backup_restores_to_a_point_in_time_proven_by_checksums(
    servers: Servers, storage: Storage
) -> None:
    source = servers.make(SOURCE_HOST, 0)
    source.start()
    create_schema(source)
    write_batch(source, 1)
    manifest = take(source, storage, servers, "shop-db-p1")
    assert [m.name for m in list_backups(storage)] == ["shop-db-p1"]
    stored = read_manifest(storage, "shop-db-p1")
    assert stored.method == "physical" and stored.binlog_file and stored.binlog_position
    at_backup = checksums(source)

    tools = servers.tools()
    write_batch(source, 2)
    archive_binlogs(root_of(source), storage, tools=tools)
    write_batch(source, 3)
    moment = next_whole_second()
    expected = checksums(source)
    write_batch(source, 4)
    source.sql("DELETE FROM shop.notes")
    assert archive_binlogs(root_of(source), storage, tools=tools).copied

    # The new cluster's instance 0: its data directory gets the files, then its server starts.
    target = servers.make(TARGET_HOST, 0)
    unpack_physical(storage, stored, target.datadir)
    target.start()
    replayed = roll_forward(root_of(target), storage, stored, moment, tools=tools)
    assert replayed
    assert checksums(target) == expected
    assert target.sql("SELECT COUNT(*) FROM shop.orders")[0][0] == 600  # batches 1-3, not 4
    assert manifest is not None and at_backup != expected


def test_physical_backup_alone_is_the_data_at_the_backup(servers: Servers, tmp_path: Path) -> None:
    storage = DirectoryStorage(tmp_path / "pvc")
    source = servers.make(SOURCE_HOST, 0)
    source.start()
    create_schema(source)
    write_batch(source, 1)
    take(source, storage, servers, "only")
    expected = checksums(source)
    write_batch(source, 2)
    target = servers.make(TARGET_HOST, 0)
    unpack_physical(storage, read_manifest(storage, "only"), target.datadir)
    target.start()
    assert checksums(target) == expected
    # A logical restore refuses a physical backup (it would need a stopped instance's files).
    with pytest.raises(RestoreRefused):
        restore(root_of(target), storage, "only")


def test_a_corrupt_physical_backup_is_refused(servers: Servers, tmp_path: Path) -> None:
    storage = DirectoryStorage(tmp_path / "pvc")
    source = servers.make(SOURCE_HOST, 0)
    source.start()
    create_schema(source)
    write_batch(source, 1)
    take(source, storage, servers, "broken")
    manifest = read_manifest(storage, "broken")
    path = tmp_path / "pvc" / manifest.dump_key
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    target = tmp_path / "target-datadir"
    with pytest.raises(BackupCorrupt):
        unpack_physical(storage, manifest, target)


def backup_user_of(server: DbServer, ssl_ca: str = "") -> Instance:
    """The operator's backup user on `server`, with its grants (users.ensure_backup_user); over TLS
    verified with `ssl_ca` when given."""
    with open_session(server.host, Login("root", ROOT_PASSWORD)) as session:
        ensure_backup_user(session, dialect_for(server.flavor), BACKUP_PASSWORD)
    return Instance(host=server.host, login=Login(BACKUP_USER, BACKUP_PASSWORD), flavor=Flavor(server.flavor),
                    ssl_ca=ssl_ca)


def user_databases(server: DbServer) -> set[str]:
    return {str(row[0]) for row in server.sql("SHOW DATABASES")} - {
        "mysql", "information_schema", "performance_schema", "sys"}


def start_recipient(servers: Servers) -> DbServer:
    """A fresh server of the same version, performance_schema on (clone_status is read there),
    with a database of its own that the clone must leave alone."""
    recipient = servers.make(RECIPIENT_HOST, 1, {"performance_schema": "ON"})
    recipient.start()
    recipient.sql("CREATE DATABASE marker")
    return recipient


@pytest.mark.parametrize("flavor", ["mysql"])
@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_physical_backup_through_a_recipient_restores_to_a_point_in_time(
    servers: Servers, tmp_path: Path, tls: bool
) -> None:
    storage = DirectoryStorage(tmp_path / "pvc" / "shop-db")
    source = servers.make(SOURCE_HOST, 0)
    source.start()
    recipient = start_recipient(servers)
    create_schema(source)
    for batch in range(1, 11):
        write_batch(source, batch, rows=1000)
    # TLS: the donor's own CA (mysqld made it at initialisation), read by the recipient mysqld too.
    donor = backup_user_of(source, str(source.datadir / "ca.pem") if tls else "")
    clone_dir = servers.base / "shared" / "clone-r1"
    clone_dir.parent.mkdir()
    timings: dict[str, float] = {}
    take_physical_backup(donor, storage, cluster="shop-db", name="shop-db-r1", recipient=root_of(recipient),
                         clone_dir=clone_dir, timings=timings)
    stored = read_manifest(storage, "shop-db-r1")
    print(f"\nrecipient backup ({'tls' if tls else 'plain'}): {stored.uncompressed_size} bytes tar, "
          f"{stored.size} stored; " + ", ".join(f"{k} {v:.2f}s" for k, v in timings.items()))
    assert stored.method == "physical" and stored.archive == "tar" and stored.binlog_file
    assert stored.binlog_position and stored.gtid_position
    assert not clone_dir.exists()
    assert user_databases(recipient) == {"marker"}  # its own data, untouched; the copy went elsewhere
    assert recipient.running and recipient.restarts == 0

    tools = servers.tools()
    write_batch(source, 11)
    archive_binlogs(root_of(source), storage, tools=tools)
    write_batch(source, 12)
    moment = next_whole_second()
    expected = checksums(source)
    write_batch(source, 13)
    source.sql("DELETE FROM shop.notes")
    assert archive_binlogs(root_of(source), storage, tools=tools).copied

    target = servers.make(TARGET_HOST, 0)
    unpack_physical(storage, stored, target.datadir)
    assert not (target.datadir / "auto.cnf").exists() and not (target.datadir / "mysqld-auto.cnf").exists()
    target.start()
    assert target.sql("SELECT @@server_uuid") != source.sql("SELECT @@server_uuid")
    assert roll_forward(root_of(target), storage, stored, moment, tools=tools)
    assert checksums(target) == expected
    assert target.sql("SELECT COUNT(*) FROM shop.orders")[0][0] == 10 * 1000 + 2 * 200  # not batch 13
    assert user_databases(target) == {"shop"}


@pytest.mark.parametrize("flavor", ["mysql"])
def test_a_failed_clone_through_a_recipient_stores_nothing(servers: Servers, tmp_path: Path) -> None:
    storage = DirectoryStorage(tmp_path / "pvc")
    source = servers.make(SOURCE_HOST, 0)
    source.start()
    recipient = start_recipient(servers)
    create_schema(source)
    write_batch(source, 1)
    donor = backup_user_of(source)
    clone_dir = servers.base / "clone-bad"
    wrong = Instance(host=donor.host, login=Login(BACKUP_USER, "not-the-password"), flavor=donor.flavor)
    with pytest.raises(PhysicalBackupFailed) as refused:
        take_physical_backup(wrong, storage, cluster="shop-db", name="bad", recipient=root_of(recipient),
                             clone_dir=clone_dir)
    assert "not-the-password" not in str(refused.value)
    # Over TLS the recipient verifies the donor: a CA that did not sign its certificate is refused.
    over_tls = backup_user_of(source, str(source.datadir / "ca.pem"))
    other_ca = servers.base / "other-ca.pem"
    other_ca.write_text(issue_ca("other", "default", datetime.now(UTC), timedelta(days=1)).cert_pem)
    with pytest.raises(PhysicalBackupFailed, match="clone of"):
        take_physical_backup(over_tls, storage, cluster="shop-db", name="bad", recipient=root_of(recipient),
                             clone_dir=clone_dir, donor_ssl_ca=str(other_ca))
    # Without BACKUP_ADMIN (the grants before) the donor refuses the recipient: the clone itself fails.
    source.sql(f"REVOKE ALL PRIVILEGES ON *.* FROM '{BACKUP_USER}'@'%'")
    before = BACKUP_GRANTS[Flavor.MYSQL].replace(", BACKUP_ADMIN", "")
    source.sql(f"GRANT {before} ON *.* TO '{BACKUP_USER}'@'%'")
    with pytest.raises(PhysicalBackupFailed, match="BACKUP_ADMIN") as refused:
        take_physical_backup(donor, storage, cluster="shop-db", name="bad", recipient=root_of(recipient),
                             clone_dir=clone_dir)
    assert BACKUP_PASSWORD not in str(refused.value)
    assert [path for path in (tmp_path / "pvc").rglob("*") if path.is_file()] == []  # no manifest, no data
    assert list_backups(storage) == [] and not clone_dir.exists()
    assert user_databases(recipient) == {"marker"} and recipient.running


@pytest.mark.parametrize("flavor", ["mysql"])
def test_the_cli_backs_up_through_a_recipient_and_stops_it(
    servers: Servers, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = servers.make(SOURCE_HOST, 0)
    source.start()
    recipient = start_recipient(servers)
    create_schema(source)
    write_batch(source, 1)
    backup_user_of(source)
    env = {"DB_HOST": source.host, "DB_USER": BACKUP_USER, "DB_PASSWORD": BACKUP_PASSWORD,
           "DB_FLAVOR": "mysql",
           "BACKUP_STORAGE": json.dumps({"pvc": {"claimName": "b", "path": "shop-db"}}),
           "BACKUP_PVC_ROOT": str(tmp_path), "RECIPIENT_PASSWORD": ROOT_PASSWORD}
    argv = ["backup", "--cluster", "shop-db", "--name", "cli-1", "--method", "physical",
            "--recipient-host", recipient.host, "--clone-dir", str(servers.base / "clone-cli"),
            "--shutdown-recipient"]
    capsys.readouterr()
    assert main(argv, env=env) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["result"] == "Completed" and result["manifest"]["method"] == "physical"
    assert read_manifest(DirectoryStorage(tmp_path / "shop-db"), "cli-1").archive == "tar"
    # The recipient shut down by itself (here its supervisor starts it again, as a kubelet would
    # with restartPolicy Always; a Job's pod, restartPolicy Never, completes instead).
    deadline = time.monotonic() + 60
    while recipient.restarts == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert recipient.restarts == 1
