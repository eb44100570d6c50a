"""The restore Job's commands against real servers of both flavors, as the Job runs them
(resources/physical_jobs.py): `unpack --init-sql` into the new instance's empty data directory,
the server started on it with `--init-file`, `restore-physical --point-in-time --shutdown` logged
in with the NEW cluster's password (the copy holds the source's), then the server started as the
instance: the data of that moment by CHECKSUM TABLE, the new passwords in, the old ones out."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pymysql
import pytest

from mysql_operator.backup.binlogs import archive_binlogs
from mysql_operator.backup.cli import main
from mysql_operator.backup.physical_restore import sql_string
from mysql_operator.backup.storage import DirectoryStorage
from mysql_operator.conventions import OPERATOR_USER
from tests.integration.test_physical_backup import (
    SOURCE_HOST,
    TARGET_HOST,
    Servers,
    checksums,
    create_schema,
    next_whole_second,
    root_of,
    take,
    write_batch,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

OLD_PASSWORD = "source-Admin-pw"
# quotes and a backslash, read by a server whose sql_mode has NO_BACKSLASH_ESCAPES (init_sql resets it)
NEW_PASSWORD = "new-'cluster\\-Adm\"in-pw"
SQL_MODE = "NO_BACKSLASH_ESCAPES,STRICT_TRANS_TABLES"
STORAGE = {"pvc": {"claimName": "backups", "path": "shop-db"}}


@pytest.fixture
def servers(flavor: str) -> Iterator[Servers]:
    made = Servers(flavor)
    try:
        yield made
    finally:
        made.stop_all()


def login_works(host: str, user: str, password: str) -> bool:
    try:
        pymysql.connect(host=host, user=user, password=password, connect_timeout=3).close()
        return True
    except pymysql.err.OperationalError:
        return False


def test_the_restore_job_commands_restore_a_point_in_time_with_the_new_cluster_s_passwords(
    servers: Servers, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = servers.make(SOURCE_HOST, 0)
    source.start()
    source.sql("SET GLOBAL read_only = OFF")
    source.sql(f"CREATE USER '{OPERATOR_USER}'@'%' IDENTIFIED BY '{OLD_PASSWORD}'")
    source.sql(f"GRANT ALL ON *.* TO '{OPERATOR_USER}'@'%' WITH GRANT OPTION")
    create_schema(source)
    write_batch(source, 1)
    storage = DirectoryStorage(tmp_path / "shop-db")
    take(source, storage, servers, "job-1")
    write_batch(source, 2)
    moment = next_whole_second()
    expected = checksums(source)
    write_batch(source, 3)
    assert archive_binlogs(root_of(source), storage, tools=servers.tools()).copied

    init_sql = tmp_path / "run" / "init.sql"
    target = servers.make(TARGET_HOST, 0, {"init_file": str(init_sql), "sql_mode": SQL_MODE})
    env = {
        "DB_FLAVOR": servers.flavor,
        "BACKUP_STORAGE": json.dumps(STORAGE),
        "BACKUP_PVC_ROOT": str(tmp_path),
        "RESET_ACCOUNTS": json.dumps([[OPERATOR_USER, "%", "ACCOUNT_PASSWORD_1", ""],
                                      ["app", "%", "ACCOUNT_PASSWORD_5", "ACCOUNT_USER_5"]]),
        "ACCOUNT_PASSWORD_1": NEW_PASSWORD,  # no app user in this Secret: that line is left out
    }
    capsys.readouterr()
    assert main(["unpack", "--backup", "job-1", "--datadir", str(target.datadir), "--init-sql",
                 str(init_sql)], env=env) == 0
    unpacked = json.loads(capsys.readouterr().out)
    assert unpacked["result"] == "Unpacked" and unpacked["accounts"] == 1
    assert not (target.datadir / "auto.cnf").exists()
    assert sql_string(NEW_PASSWORD) in init_sql.read_text()
    assert oct(init_sql.stat().st_mode & 0o777) == "0o600"

    target.start()  # on the copy, running the init file
    finish = {**env, "DB_HOST": target.host, "DB_USER": OPERATOR_USER, "DB_PASSWORD": NEW_PASSWORD}
    point = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert main(["restore-physical", "--backup", "job-1", "--point-in-time", point, "--shutdown"],
                env=finish) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["result"] == "Restored" and result["replayed"], result
    deadline = time.monotonic() + 60
    while target.restarts == 0 and time.monotonic() < deadline:  # the Job's server stopped
        time.sleep(0.1)
    assert target.restarts == 1

    target.kill()  # then started as the instance: without the init file
    target.extra_config.pop("init_file")
    target.start()
    assert checksums(target) == expected
    assert "NO_BACKSLASH_ESCAPES" in target.sql("SELECT @@GLOBAL.sql_mode")[0][0]
    assert login_works(target.host, OPERATOR_USER, NEW_PASSWORD)
    assert not login_works(target.host, OPERATOR_USER, OLD_PASSWORD)


def test_unpack_refuses_a_logical_backup_and_the_other_flavor(
    servers: Servers, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = servers.make(SOURCE_HOST, 0)
    source.start()
    create_schema(source)
    storage = DirectoryStorage(tmp_path / "shop-db")
    take(source, storage, servers, "job-2")
    other = "mysql" if servers.flavor == "mariadb" else "mariadb"
    env = {"DB_FLAVOR": other, "BACKUP_STORAGE": json.dumps(STORAGE), "BACKUP_PVC_ROOT": str(tmp_path),
           "RESET_ACCOUNTS": "[]"}
    target = tmp_path / "target"
    capsys.readouterr()
    assert main(["unpack", "--backup", "job-2", "--datadir", str(target)], env=env) == 4
    assert "target runs" in json.loads(capsys.readouterr().out)["message"]
    assert not target.exists() or not any(target.iterdir()), "nothing was written"
