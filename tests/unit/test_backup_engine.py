from __future__ import annotations

import io
import json
import stat
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from mysql_operator.backup.catalog import ArchivedBinlog, Catalog, Leftover, read_manifest, scan
from mysql_operator.backup.cli import (
    EXIT_BAD_BACKUP,
    EXIT_USAGE,
    ConfigError,
    instance_from_env,
    main,
    storage_from_env,
)
from mysql_operator.backup.commands import (
    Instance,
    Tools,
    binlog_fetch_command,
    binlog_replay_command,
    defaults_file,
    defaults_text,
    dump_command,
    load_command,
    option_value,
)
from mysql_operator.backup.manifest import (
    BackupCorrupt,
    BackupNotFound,
    Manifest,
    dump_key,
    manifest_key,
    name_of,
    parse_dump_position,
    rfc3339,
)
from mysql_operator.backup.restore import _MARIADB_GTID_LINE, PointInTimeUnavailable, plan_binlogs
from mysql_operator.backup.retention import plan_retention
from mysql_operator.backup.storage import DirectoryStorage, S3Storage, StorageError
from mysql_operator.backup.take import DumpFailed, DumpStream
from mysql_operator.conventions import Flavor
from mysql_operator.mysql.session import Login

PASSWORD = "s3cr\"et'pa\\ss #word"
T0 = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)


def manifest(name: str, finished: datetime, binlog_file: str = "mysql-bin.000003", **extra: Any) -> Manifest:
    values: dict[str, Any] = {
        "name": name,
        "cluster": "shop-db",
        "flavor": Flavor.MARIADB,
        "server_version": "10.11.19-MariaDB",
        "instance": "shop-db-1",
        "started_at": rfc3339(finished - timedelta(minutes=1)),
        "finished_at": rfc3339(finished),
        "databases": ["shop"],
        "gtid_position": "0-10-42",
        "binlog_file": binlog_file,
        "binlog_position": 1234,
        "binlog_source": "server-11",
        "dump_key": dump_key(name),
        "size": 10,
        "uncompressed_size": 100,
        "sha256": "0" * 64,
    }
    values.update(extra)
    return Manifest(**values)


# --- manifest and dump position ------------------------------------------------------------------


def test_manifest_round_trips_as_camel_case_json() -> None:
    original = manifest("b1", T0)
    data = json.loads(original.to_json())
    assert data["binlogFile"] == "mysql-bin.000003" and data["gtidPosition"] == "0-10-42"
    assert Manifest.from_json(original.to_json(), "x") == original
    assert original.location == "backups/b1"


def test_manifest_gives_the_mysqlbackup_status() -> None:
    status = manifest("b1", T0, size=3 * 2**20).status_fields()
    assert status["phase"] == "Completed" and status["location"] == "backups/b1"
    assert status["sizeHuman"] == "3.0MiB" and status["size"] == 3 * 2**20
    assert (status["binlogFile"], status["binlogPosition"], status["gtidPosition"]) == (
        "mysql-bin.000003",
        1234,
        "0-10-42",
    )
    assert status["completionTime"] == "2026-11-25T12:00:00.000Z"


@pytest.mark.parametrize("data", [b"{broken", b'{"name": "b1"}', b"[]"])
def test_unreadable_manifest_is_corrupt(data: bytes) -> None:
    with pytest.raises(BackupCorrupt, match="unreadable"):
        Manifest.from_json(data, "backups/b1/manifest.json")


def test_newer_manifest_format_is_refused() -> None:
    data = json.loads(manifest("b1", T0).to_json())
    data["formatVersion"] = 99
    with pytest.raises(BackupCorrupt, match="format 99"):
        Manifest.from_json(json.dumps(data).encode(), "x")


MARIADB_HEAD = """-- MariaDB dump 10.19  Distrib 10.11.19-MariaDB
-- CHANGE MASTER TO MASTER_USE_GTID=slave_pos;

-- CHANGE MASTER TO MASTER_LOG_FILE='mysql-bin.000007', MASTER_LOG_POS=900;
"""
MARIADB_TAIL = """-- Preferably use GTID to start replication from GTID position:

-- SET GLOBAL gtid_slave_pos='0-10-3,1-11-7';
-- Dump completed on 2026-11-25 15:16:31
"""
MYSQL_HEAD = """-- MySQL dump 10.13  Distrib 8.4.3
SET @@GLOBAL.GTID_PURGED=/*!80000 '+'*/ '3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5,
4e11fa47-71ca-11e1-9e33-c80aa9429562:1-9';
-- CHANGE REPLICATION SOURCE TO SOURCE_LOG_FILE='binlog.000002', SOURCE_LOG_POS=157;
"""


def test_dump_position_is_read_from_mariadb_head_and_tail() -> None:
    position = parse_dump_position(MARIADB_HEAD, MARIADB_TAIL)
    assert (position.binlog_file, position.binlog_position, position.gtid_position) == (
        "mysql-bin.000007",
        900,
        "0-10-3,1-11-7",
    )


def test_dump_position_is_read_from_mysql_head() -> None:
    position = parse_dump_position(MYSQL_HEAD, "-- Dump completed")
    assert (position.binlog_file, position.binlog_position) == ("binlog.000002", 157)
    assert position.gtid_position == (
        "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5,4e11fa47-71ca-11e1-9e33-c80aa9429562:1-9"
    )


def test_dump_without_position_has_none() -> None:
    position = parse_dump_position("-- nothing here", "")
    assert (position.binlog_file, position.binlog_position, position.gtid_position) == (None, None, "")


def test_backup_names_and_locations() -> None:
    assert name_of("backups/shop-db-1") == "shop-db-1" == name_of("shop-db-1")
    assert manifest_key("b") == "backups/b/manifest.json"
    with pytest.raises(ValueError):
        name_of("backups/../etc")


# --- directory storage ---------------------------------------------------------------------------


class Exploding(io.RawIOBase):
    """A stream that fails after some data, like a dump that dies."""

    def __init__(self) -> None:
        self.calls = 0

    def read(self, size: int = -1) -> bytes:
        self.calls += 1
        if self.calls > 2:
            raise DumpFailed("dump was killed by signal 9")
        return b"x" * 100


def test_directory_storage_puts_lists_reads_and_deletes(tmp_path: Path) -> None:
    storage = DirectoryStorage(tmp_path / "pvc")
    assert storage.list() == []
    assert storage.put("backups/b1/dump.sql.gz", io.BytesIO(b"a" * 3_000_000)) == 3_000_000
    storage.put_bytes("backups/b1/manifest.json", b"{}")
    storage.put_bytes("binlogs/server-10/mysql-bin.000001", b"bin")
    assert [(o.key, o.size) for o in storage.list("backups/")] == [
        ("backups/b1/dump.sql.gz", 3_000_000),
        ("backups/b1/manifest.json", 2),
    ]
    assert storage.size("backups/b1/manifest.json") == 2 and storage.exists("backups/b1/dump.sql.gz")
    assert storage.size("backups/nope") is None
    assert storage.get_bytes("binlogs/server-10/mysql-bin.000001") == b"bin"
    storage.delete("backups/b1/dump.sql.gz")
    storage.delete("backups/b1/manifest.json")
    storage.delete("backups/b1/manifest.json")  # already gone: no error
    assert not (tmp_path / "pvc" / "backups").exists()  # empty directories go too


def test_directory_put_that_fails_half_way_leaves_nothing(tmp_path: Path) -> None:
    storage = DirectoryStorage(tmp_path)
    with pytest.raises(DumpFailed):
        storage.put("backups/b1/dump.sql.gz", Exploding())
    assert storage.list() == [] and storage.list_partial() == []


def test_directory_put_replaces_atomically(tmp_path: Path) -> None:
    storage = DirectoryStorage(tmp_path)
    storage.put_bytes("a/b", b"old")
    with pytest.raises(DumpFailed):
        storage.put("a/b", Exploding())
    assert storage.get_bytes("a/b") == b"old"


@pytest.mark.parametrize("key", ["../x", "a/../../x", "/abs", "a//b", "a/./b", "a b", ""])
def test_storage_keys_cannot_escape_the_root(tmp_path: Path, key: str) -> None:
    with pytest.raises(StorageError, match="invalid storage key"):
        DirectoryStorage(tmp_path).put_bytes(key, b"x")


def test_missing_object_is_reported(tmp_path: Path) -> None:
    from mysql_operator.backup.storage import ObjectMissing

    with pytest.raises(ObjectMissing), DirectoryStorage(tmp_path).open("backups/x"):
        pass


# --- command lines and the defaults file -----------------------------------------------------------


def test_option_values_escape_quotes_and_backslashes() -> None:
    assert option_value("plain") == '"plain"'
    assert option_value("a\"b'c\\d #e") == '"a\\"b\\\'c\\\\d #e"'
    with pytest.raises(ValueError):
        option_value("two\nlines")


def test_defaults_file_holds_the_login_readable_by_owner_only(tmp_path: Path) -> None:
    instance = Instance(host="127.0.9.5", port=3307, login=Login("backup", PASSWORD), flavor=Flavor.MARIADB)
    assert PASSWORD not in repr(instance)
    with defaults_file(instance, str(tmp_path)) as path:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        text = path.read_text()
        assert text == defaults_text(instance)
        assert "[client]" in text and "port=3307" in text and 'host="127.0.9.5"' in text
    assert not path.exists()


def test_mariadb_tool_reads_the_escaped_password_back(tmp_path: Path) -> None:
    """The option-file quoting is what the real client parses (no server needed: --print-defaults)."""
    instance = Instance(host="127.0.0.1", login=Login("backup", PASSWORD), flavor=Flavor.MARIADB)
    with defaults_file(instance, str(tmp_path)) as path:
        out = subprocess.run(
            ["mariadb", f"--defaults-extra-file={path}", "--print-defaults"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    assert f"--password={PASSWORD}" in out


def test_mariadb_dump_command_records_position_and_gtid() -> None:
    tools = Tools.for_flavor(Flavor.MARIADB)
    command = dump_command(tools, Flavor.MARIADB, Path("/tmp/x.cnf"), ["crm", "shop"])
    assert command[:2] == ["mariadb-dump", "--defaults-extra-file=/tmp/x.cnf"]
    for flag in ("--single-transaction", "--master-data=2", "--gtid", "--routines", "--events", "--triggers"):
        assert flag in command
    assert command[-3:] == ["--databases", "crm", "shop"]
    assert not any("password" in part for part in command)


def test_mysql_dump_command_uses_source_data_and_gtid_purged() -> None:
    tools = Tools.for_flavor(Flavor.MYSQL, {"MYSQL_TOOLS_DIR": "/opt/mysql/bin"})
    command = dump_command(tools, Flavor.MYSQL, Path("/tmp/x.cnf"), ["shop"])
    assert command == [
        "/opt/mysql/bin/mysqldump",
        "--defaults-extra-file=/tmp/x.cnf",
        "--single-transaction",
        "--quick",
        "--routines",
        "--events",
        "--triggers",
        "--hex-blob",
        "--default-character-set=utf8mb4",
        "--max-allowed-packet=1G",
        "--source-data=2",
        "--set-gtid-purged=ON",
        "--databases",
        "shop",
    ]


def test_dump_of_a_server_without_user_databases_creates_nothing() -> None:
    command = dump_command(Tools.for_flavor(Flavor.MARIADB), Flavor.MARIADB, Path("/x"), [])
    assert command[-5:] == ["--no-create-info", "--no-data", "--no-create-db", "--databases", "mysql"]


def test_mysql_tools_come_from_one_setting_and_mariadb_tools_never_get_mysql_flags() -> None:
    assert Tools.for_flavor(Flavor.MYSQL, {}).dump == "/opt/mysql/bin/mysqldump"  # the image's place
    mysql = Tools.for_flavor(Flavor.MYSQL, {"MYSQL_TOOLS_DIR": "/x/bin"})
    assert (mysql.dump, mysql.client, mysql.binlog) == (
        "/x/bin/mysqldump",
        "/x/bin/mysql",
        "/x/bin/mysqlbinlog",
    )
    maria = Tools.for_flavor(Flavor.MARIADB, {"MYSQL_TOOLS_DIR": "/x/bin"})
    dump = dump_command(maria, Flavor.MARIADB, Path("/d.cnf"), ["shop"])
    replay = binlog_replay_command(maria, Flavor.MARIADB, [Path("/w/b.000001")], 4, "2026-11-25 12:00:00")
    assert dump[0] == "mariadb-dump" and replay[0] == "mariadb-binlog"
    mysql_only = ("--source-data", "--set-gtid-purged", "--skip-gtids")
    assert not [part for part in dump + replay if part.startswith(mysql_only)]


def test_client_and_binlog_commands_per_flavor() -> None:
    maria, mysql = Tools.for_flavor(Flavor.MARIADB), Tools.for_flavor(Flavor.MYSQL, {})
    assert load_command(maria, Path("/d.cnf"))[:2] == ["mariadb", "--defaults-extra-file=/d.cnf"]
    assert load_command(mysql, Path("/d.cnf"))[0] == "/opt/mysql/bin/mysql"
    assert binlog_fetch_command(maria, Path("/d.cnf"), "mysql-bin.000004", Path("/w")) == [
        "mariadb-binlog",
        "--defaults-extra-file=/d.cnf",
        "--read-from-remote-server",
        "--raw",
        "--result-file=/w/",
        "mysql-bin.000004",
    ]
    fetch = binlog_fetch_command(mysql, Path("/d.cnf"), "binlog.000004", Path("/w"))
    assert fetch[0] == "/opt/mysql/bin/mysqlbinlog"
    files = [Path("/w/mysql-bin.000004"), Path("/w/mysql-bin.000005")]
    assert binlog_replay_command(maria, Flavor.MARIADB, files, 900, "2026-11-25 12:00:00") == [
        "mariadb-binlog",
        "--no-defaults",
        "--start-position=900",
        "--stop-datetime=2026-11-25 12:00:00",
        "/w/mysql-bin.000004",
        "/w/mysql-bin.000005",
    ]
    assert "--skip-gtids" in binlog_replay_command(mysql, Flavor.MYSQL, files, 4, None)


@pytest.mark.parametrize(
    ("line", "dropped"),
    [
        (b"/*M!100001 SET @@session.gtid_seq_no=2*//*!*/;\n", True),
        (b"/*!100001 SET @@session.gtid_domain_id=0*//*!*/;\n", True),
        (b"/*!100001 SET @@session.server_id=10*//*!*/;\n", True),
        (b"SET @@session.sql_mode=1411383296/*!*/;\n", False),
        (b"/*!50530 SET @@SESSION.PSEUDO_SLAVE_MODE=1*/;\n", False),
    ],
)
def test_replay_drops_only_the_original_gtid_lines(line: bytes, dropped: bool) -> None:
    assert bool(_MARIADB_GTID_LINE.match(line)) is dropped


# --- the dump stream -------------------------------------------------------------------------------


def _stream(script: str, tmp_path: Path) -> tuple[DumpStream, subprocess.Popen[bytes]]:
    stderr = open(tmp_path / "stderr", "w+b")  # noqa: SIM115 - closed with the test's tmp_path
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=stderr)
    return DumpStream(process, stderr, ("hunter2",), 1, lambda _: None), process


def test_dump_stream_compresses_hashes_and_keeps_head_and_tail(tmp_path: Path) -> None:
    import gzip
    import hashlib

    script = (
        "import sys; sys.stdout.write('-- head\\n' + 'INSERT x;\\n' * 300000 + '-- Dump completed on now\\n')"
    )
    stream, process = _stream(script, tmp_path)
    storage = DirectoryStorage(tmp_path / "s")
    size = storage.put("backups/b/dump.sql.gz", stream)
    data = storage.get_bytes("backups/b/dump.sql.gz")
    assert size == len(data) == stream.size
    assert stream.sha256.hexdigest() == hashlib.sha256(data).hexdigest()
    text = gzip.decompress(data)
    assert len(text) == stream.uncompressed_size and text.startswith(b"-- head")
    assert stream.head.startswith(b"-- head") and stream.tail.endswith(b"-- Dump completed on now\n")
    assert process.returncode == 0


def test_dump_stream_fails_when_the_dump_fails_and_hides_the_password(tmp_path: Path) -> None:
    script = (
        "import sys; sys.stdout.write('-- partial\\n'); sys.stderr.write('denied for hunter2'); sys.exit(2)"
    )
    stream, _ = _stream(script, tmp_path)
    storage = DirectoryStorage(tmp_path / "s")
    with pytest.raises(DumpFailed, match="exited with 2") as failure:
        storage.put("backups/b/dump.sql.gz", stream)
    assert "hunter2" not in str(failure.value) and "<redacted>" in str(failure.value)
    assert storage.list() == [] and storage.list_partial() == []


def test_dump_stream_without_completion_trailer_is_a_failure(tmp_path: Path) -> None:
    stream, _ = _stream("import sys; sys.stdout.write('-- cut short\\n')", tmp_path)
    with pytest.raises(DumpFailed, match="without its completion trailer"):
        DirectoryStorage(tmp_path / "s").put("backups/b/dump.sql.gz", stream)


# --- catalog and retention --------------------------------------------------------------------------


def _store_backup(storage: DirectoryStorage, item: Manifest) -> None:
    storage.put_bytes(item.dump_key, b"0123456789")
    storage.put_bytes(manifest_key(item.name), item.to_json())


def test_catalog_lists_only_backups_with_a_manifest(tmp_path: Path) -> None:
    storage = DirectoryStorage(tmp_path)
    _store_backup(storage, manifest("b1", T0))
    storage.put_bytes(dump_key("half"), b"no manifest")
    storage.put_bytes(manifest_key("broken"), b"{")
    catalog = scan(storage)
    assert [m.name for m in catalog.complete] == ["b1"]
    assert [leftover.name for leftover in catalog.leftovers] == ["half"]
    assert catalog.corrupt == ["broken"]
    assert read_manifest(storage, "backups/b1").name == "b1"
    with pytest.raises(BackupNotFound, match="never finished"):
        read_manifest(storage, "half")


def _archived(number: int, source: str = "server-11") -> ArchivedBinlog:
    return ArchivedBinlog(source, f"mysql-bin.{number:06d}", 100, "f" * 64, T0 + timedelta(minutes=number))


def test_retention_keeps_newest_and_prunes_older_backups_leftovers_and_binlogs() -> None:
    backups = [
        manifest(f"b{i}", T0 + timedelta(hours=i), binlog_file=f"mysql-bin.{i * 2:06d}") for i in range(1, 6)
    ]
    catalog = Catalog(
        complete=backups,
        leftovers=[
            Leftover("dead", ("backups/dead/dump.sql.gz.1234.partial",), T0 + timedelta(hours=2)),
            Leftover("running", ("backups/running/dump.sql.gz.9999.partial",), T0 + timedelta(hours=9)),
        ],
        binlogs={
            "server-11": [_archived(n) for n in range(1, 12)],
            "server-12": [_archived(n, "server-12") for n in range(1, 3)],
        },
    )
    keys = [k for m in backups for k in (m.dump_key, manifest_key(m.name))]
    plan = plan_retention(catalog, keep=2, all_keys=keys)
    assert plan.keep == ["b4", "b5"]
    assert plan.delete_backups == ["b1", "b2", "b3"]
    assert plan.delete_leftovers == ["dead"]
    # the manifest of each deleted backup goes before its dump
    assert plan.delete_keys[:2] == ["backups/b1/manifest.json", "backups/b1/dump.sql.gz"]
    assert "backups/dead/dump.sql.gz.1234.partial" in plan.delete_keys
    assert not any("running" in k for k in plan.delete_keys)
    deleted_binlogs = [k for k in plan.delete_keys if k.startswith("binlogs/")]
    # b4 starts at mysql-bin.000008: 1..7 go (sidecar first), 8.. stay; server-12 is nobody's
    assert deleted_binlogs[:2] == [
        "binlogs/server-11/mysql-bin.000001.json",
        "binlogs/server-11/mysql-bin.000001",
    ]
    assert len(deleted_binlogs) == 14
    assert not any("server-12" in k or "000008" in k for k in deleted_binlogs)


def test_retention_spares_a_backup_a_restore_still_reads_and_the_binlogs_after_it() -> None:
    backups = [
        manifest(f"b{i}", T0 + timedelta(hours=i), binlog_file=f"mysql-bin.{i * 2:06d}") for i in range(1, 6)
    ]
    catalog = Catalog(complete=backups, binlogs={"server-11": [_archived(n) for n in range(1, 12)]})
    keys = [k for m in backups for k in (m.dump_key, manifest_key(m.name))]
    plan = plan_retention(catalog, keep=2, all_keys=keys, spare={"b2", "not-here"})
    assert plan.keep == ["b4", "b5"] and plan.spared == ["b2"]
    assert plan.delete_backups == ["b1", "b3"]
    assert not any(k.startswith("backups/b2/") for k in plan.delete_keys)
    # b2 starts at mysql-bin.000004: only 1..3 go, so a point-in-time restore from b2 replays the rest
    deleted_binlogs = [k for k in plan.delete_keys if k.startswith("binlogs/")]
    assert len(deleted_binlogs) == 6 and not any("000004" in k for k in deleted_binlogs)


def test_retention_with_fewer_backups_than_kept_deletes_nothing_complete() -> None:
    catalog = Catalog(complete=[manifest("b1", T0)])
    plan = plan_retention(catalog, keep=7, all_keys=[])
    assert plan.keep == ["b1"] and plan.delete_keys == []
    with pytest.raises(ValueError):
        plan_retention(catalog, keep=0, all_keys=[])


def test_leftovers_stay_while_there_is_no_complete_backup() -> None:
    catalog = Catalog(leftovers=[Leftover("first", ("backups/first/x.partial",), T0)])
    assert plan_retention(catalog, keep=1, all_keys=[]).delete_keys == []


# --- point-in-time plan ---------------------------------------------------------------------------


def test_binlog_plan_runs_from_the_dump_file_to_the_first_file_closed_after_the_time() -> None:
    backup = manifest("b1", T0, binlog_file="mysql-bin.000003", started_at=rfc3339(T0))
    archived = [_archived(n) for n in range(1, 9)]  # file n closed at T0 + n minutes
    plan = plan_binlogs(backup, archived, T0 + timedelta(minutes=5, seconds=30))
    assert [b.file for b in plan] == [
        "mysql-bin.000003",
        "mysql-bin.000004",
        "mysql-bin.000005",
        "mysql-bin.000006",
    ]


def test_binlog_plan_refuses_gaps_uncovered_times_and_times_before_the_backup() -> None:
    backup = manifest("b1", T0, binlog_file="mysql-bin.000003", started_at=rfc3339(T0))
    with pytest.raises(PointInTimeUnavailable, match=r"mysql-bin\.000005 is missing"):
        plan_binlogs(
            backup, [_archived(3), _archived(4), _archived(6)], T0 + timedelta(minutes=5, seconds=30)
        )
    with pytest.raises(PointInTimeUnavailable, match="archived up to"):
        plan_binlogs(backup, [_archived(3)], T0 + timedelta(hours=1))
    with pytest.raises(PointInTimeUnavailable, match="before backup b1 started"):
        plan_binlogs(backup, [_archived(3)], T0 - timedelta(seconds=5))
    with pytest.raises(PointInTimeUnavailable, match="no binlog position"):
        plan_binlogs(manifest("b2", T0, binlog_file=None), [], T0 + timedelta(minutes=1))


# --- CLI configuration ------------------------------------------------------------------------------


def test_cli_reads_instance_and_storage_from_the_environment(tmp_path: Path) -> None:
    env = {
        "DB_HOST": "127.0.9.3",
        "DB_PORT": "3307",
        "DB_USER": "bk",
        "DB_PASSWORD": PASSWORD,
        "DB_FLAVOR": "mariadb",
        "BACKUP_STORAGE": json.dumps({"pvc": {"claimName": "backups", "path": "shop"}}),
        "BACKUP_PVC_ROOT": str(tmp_path),
    }
    instance = instance_from_env(env)
    assert (instance.host, instance.port, instance.login.password, instance.flavor) == (
        "127.0.9.3",
        3307,
        PASSWORD,
        Flavor.MARIADB,
    )
    storage = storage_from_env(env)
    assert isinstance(storage, DirectoryStorage) and storage.root == tmp_path / "shop"
    s3_env = {
        "BACKUP_STORAGE": json.dumps(
            {
                "s3": {
                    "endpoint": "http://127.0.0.1:1",
                    "bucket": "bkt",
                    "prefix": "a/b",
                    "credentialsSecret": "c",
                }
            }
        ),
        "AWS_ACCESS_KEY_ID": "id",
        "AWS_SECRET_ACCESS_KEY": "key",
    }
    s3 = storage_from_env(s3_env)
    assert isinstance(s3, S3Storage) and s3.prefix == "a/b" and "key" not in repr(s3.location)
    with pytest.raises(ConfigError, match="AWS_SECRET_ACCESS_KEY"):
        storage_from_env({k: v for k, v in s3_env.items() if k != "AWS_SECRET_ACCESS_KEY"})
    with pytest.raises(ConfigError, match="DB_HOST"):
        instance_from_env({"DB_USER": "x"})


def test_cli_exit_codes_for_bad_usage_and_missing_backups(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["nonsense"], env={}) == EXIT_USAGE
    assert main(["list"], env={}) == EXIT_USAGE  # no storage configured
    env = {
        "DB_HOST": "127.0.0.1",
        "DB_USER": "x",
        "BACKUP_STORAGE": json.dumps({"pvc": {"claimName": "b"}}),
        "BACKUP_PVC_ROOT": str(tmp_path),
    }
    capsys.readouterr()
    log = tmp_path / "termination-log"
    assert (
        main(["restore", "--backup", "backups/none", "--termination-log", str(log)], env=env)
        == EXIT_BAD_BACKUP
    )
    result = json.loads(capsys.readouterr().out)
    assert result["error"] == "BackupNotFound"
    assert json.loads(log.read_text()) == result
    assert main(["list"], env=env) == 0
    assert json.loads(capsys.readouterr().out)["complete"] == []
