"""Physical backups against real servers of both flavors (MariaDB: mariadb-backup; MySQL: CLONE
LOCAL DATA DIRECTORY), streamed to a PVC directory and to S3, unpacked into a new instance's empty
data directory, started, rolled forward with the archived binlogs to a point in time, and proven
by checksums: every table's CHECKSUM TABLE equals the source's at that time."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mysql_operator.backup.binlogs import archive_binlogs
from mysql_operator.backup.catalog import list_backups, read_manifest
from mysql_operator.backup.commands import Instance, Tools
from mysql_operator.backup.manifest import BackupCorrupt
from mysql_operator.backup.physical import take_physical_backup, unpack_physical
from mysql_operator.backup.restore import RestoreRefused, restore, roll_forward
from mysql_operator.backup.storage import DirectoryStorage, S3Location, S3Storage, Storage
from mysql_operator.conventions import Flavor
from mysql_operator.mysql.session import Login
from sandbox import mysql_root
from tests.integration.conftest import NET
from tests.integration.s3server import ACCESS_KEY_ID, SECRET_ACCESS_KEY, S3Server
from tests.integration.servers import ROOT_PASSWORD, DbServer, make_server

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

SOURCE_HOST = f"127.{NET}.31.1"
TARGET_HOST = f"127.{NET}.31.2"


class Servers:
    """Servers of one flavor under one temporary directory; `stop_all` kills and removes them."""

    def __init__(self, flavor: str) -> None:
        self.flavor = flavor
        self.base = Path(tempfile.mkdtemp(prefix="pbk-", dir="/tmp"))
        self.made: list[DbServer] = []

    def make(self, host: str, ordinal: int) -> DbServer:
        server = make_server(self.flavor, ordinal, host, self.base / host)
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
