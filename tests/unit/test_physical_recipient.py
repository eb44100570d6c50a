"""MySQL physical backups through a recipient, without a server: the statements the recipient runs
(with and without TLS, into a data directory or over its own data), the position the copy is
recorded with, the tar of the clone (what it leaves out, with the real tar), the clone directory's
checks, and the CLI's recipient options (its login from the environment, SHUTDOWN at the end)."""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
from pathlib import Path

import pytest

from mysql_operator.backup import cli
from mysql_operator.backup.cli import EXIT_USAGE, main, recipient_from_env
from mysql_operator.backup.commands import Instance, child_env
from mysql_operator.backup.physical import (
    PhysicalBackupFailed,
    PhysicalTools,
    _clone_target,
    binlog_position,
    clone_position,
    clone_tar_command,
)
from mysql_operator.conventions import Flavor
from mysql_operator.mysql.dialect import MysqlDialect
from mysql_operator.mysql.seed import SeedEndpoint, clone_plan
from mysql_operator.mysql.session import Login, Statement

DONOR = SeedEndpoint("127.0.0.9", Login("mysqlop_backup", "s3cret"), 3306)


def test_a_clone_into_a_data_directory_keeps_the_recipient_as_it_is() -> None:
    statements = MysqlDialect().clone_from("127.0.0.9", 3306, "mysqlop_backup", "s3cret",
                                           data_directory="/clone/c1")
    assert statements == [
        Statement("SET GLOBAL clone_valid_donor_list = %s", ("127.0.0.9:3306",)),
        Statement("SET GLOBAL clone_ssl_ca = ''"),  # no CA of an earlier TLS backup lingers
        Statement("CLONE INSTANCE FROM %s@%s:%s IDENTIFIED BY %s DATA DIRECTORY = %s",
                  ("mysqlop_backup", "127.0.0.9", 3306, "s3cret", "/clone/c1")),
    ]  # no SET GLOBAL super_read_only: the recipient's own data is not replaced


def test_a_clone_over_tls_verifies_the_donor_with_the_ca_and_requires_ssl() -> None:
    statements = MysqlDialect().clone_from("127.0.0.9", 3307, "u", "pw", "/tls/ca.crt", "/clone/c1")
    assert statements[1] == Statement("SET GLOBAL clone_ssl_ca = %s", ("/tls/ca.crt",))
    assert statements[-1] == Statement(
        "CLONE INSTANCE FROM %s@%s:%s IDENTIFIED BY %s DATA DIRECTORY = %s REQUIRE SSL",
        ("u", "127.0.0.9", 3307, "pw", "/clone/c1"))
    # The seeding clone (over the recipient's own data) is unchanged: unfenced first, no directory.
    seeding = MysqlDialect().clone_from("127.0.0.9", 3306, "u", "pw", "/tls/ca.crt")
    assert seeding[0] == Statement("SET GLOBAL super_read_only = OFF")
    assert seeding[-1].sql == "CLONE INSTANCE FROM %s@%s:%s IDENTIFIED BY %s REQUIRE SSL"


def test_the_plugin_is_installed_only_when_missing() -> None:
    dialect = MysqlDialect()
    missing = clone_plan(dialect, DONOR, installed=False, data_directory="/clone/c1")
    assert missing[0] == dialect.install_clone
    assert missing[1:] == clone_plan(dialect, DONOR, installed=True, data_directory="/clone/c1")
    assert dialect.install_clone not in clone_plan(dialect, DONOR, installed=True)


BEFORE = ("binlog.000007", 4711, "uuid-a:1-40")


def test_the_position_is_clone_status_when_it_has_one_else_the_donor_before_the_clone() -> None:
    # What MySQL 9.7 leaves in clone_status after a clone into a DATA DIRECTORY: nothing.
    empty = {"STATE": "Completed", "BINLOG_FILE": "", "BINLOG_POSITION": 0, "GTID_EXECUTED": ""}
    assert clone_position(empty, BEFORE) == BEFORE
    assert clone_position(None, BEFORE) == BEFORE  # performance_schema off or unreadable
    no_gtid = {"BINLOG_FILE": "binlog.000007", "BINLOG_POSITION": 5000, "GTID_EXECUTED": ""}
    assert clone_position(no_gtid, BEFORE) == BEFORE
    filled = {"BINLOG_FILE": "binlog.000007", "BINLOG_POSITION": 5000,
              "GTID_EXECUTED": "uuid-a:1-41,\nuuid-b:1-3"}
    assert clone_position(filled, BEFORE) == ("binlog.000007", 5000, "uuid-a:1-41, uuid-b:1-3")


def test_binlog_position_of_show_binary_log_status() -> None:
    row = {"File": "binlog.000002", "Position": 157, "Executed_Gtid_Set": "u:1-5,\nv:1-2"}
    assert binlog_position(row) == ("binlog.000002", 157, "u:1-5, v:1-2")
    assert binlog_position(None) == (None, None, "")  # binary log off


def test_the_tar_of_a_clone_leaves_out_what_must_not_travel(tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    (clone / "shop").mkdir(parents=True)
    (clone / "#clone").mkdir()
    files = ("ibdata1", "auto.cnf", "mysqld-auto.cnf", "shop/orders.ibd", "shop/auto.cnf",
             "#clone/#view_status")
    for name in files:
        (clone / name).write_bytes(name.encode())
    command = clone_tar_command(PhysicalTools(), clone)
    assert command[:3] == ["tar", "-C", str(clone)] and command[-3:] == ["-cf", "-", "."]
    out = subprocess.run(command, capture_output=True, check=True, env=child_env()).stdout
    with tarfile.open(fileobj=io.BytesIO(out)) as archive:
        names = {name.removeprefix("./") for name in archive.getnames() if archive.getmember(name).isfile()}
    # Only the top-level files are the server's own; a nested name is kept.
    assert names == {"ibdata1", "shop/orders.ibd", "shop/auto.cnf", "#clone/#view_status"}


def test_the_clone_directory_must_be_new_and_absolute(tmp_path: Path) -> None:
    recipient = Instance("127.0.0.1", Login("root", "pw"), Flavor.MYSQL)
    assert _clone_target(recipient, tmp_path / "c1", None) == tmp_path / "c1"
    assert _clone_target(None, None, tmp_path / "scratch") == tmp_path / "scratch"
    with pytest.raises(PhysicalBackupFailed, match="exists"):
        _clone_target(recipient, tmp_path, None)  # never removed afterwards: it was there before
    with pytest.raises(PhysicalBackupFailed, match="absolute"):
        _clone_target(recipient, Path("relative/c1"), None)
    with pytest.raises(PhysicalBackupFailed, match="recipient"):
        _clone_target(recipient, None, tmp_path / "scratch")
    with pytest.raises(PhysicalBackupFailed, match="scratch"):
        _clone_target(None, None, None)


def test_the_recipient_login_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    recipient = recipient_from_env({}, "127.0.0.1", 3307)
    assert (recipient.host, recipient.port, recipient.login, recipient.flavor) == (
        "127.0.0.1", 3307, Login("root", ""), Flavor.MYSQL)
    env = {"RECIPIENT_USER": "cloner", "RECIPIENT_PASSWORD": "pw2"}
    assert recipient_from_env(env, "h", 3306).login == Login("cloner", "pw2")
    monkeypatch.setenv("RECIPIENT_PASSWORD", "pw2")
    assert "RECIPIENT_PASSWORD" not in child_env()  # the tools (tar, zstd) never see it


def test_the_cli_stops_the_recipient_even_when_the_backup_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stopped: list[Instance] = []
    monkeypatch.setattr(cli, "stop_recipient", stopped.append)
    argv = ["backup", "--cluster", "c", "--name", "b1", "--method", "physical",
            "--recipient-host", "127.0.0.9", "--recipient-port", "3307", "--clone-dir", str(tmp_path / "c1"),
            "--shutdown-recipient"]
    env = {"RECIPIENT_PASSWORD": "pw2"}  # no storage configured: fails before any copy
    assert main(argv, env=env) == EXIT_USAGE
    assert [(r.host, r.port, r.login) for r in stopped] == [("127.0.0.9", 3307, Login("root", "pw2"))]
    assert json.loads(capsys.readouterr().out)["result"] == "Failed"
    stopped.clear()
    storage = {"BACKUP_STORAGE": json.dumps({"pvc": {"claimName": "b"}}), "BACKUP_PVC_ROOT": str(tmp_path)}
    without_dir = [a for a in argv if a not in ("--clone-dir", str(tmp_path / "c1"))]
    assert main(without_dir, env={**env, **storage}) == EXIT_USAGE  # a recipient needs --clone-dir
    assert len(stopped) == 1
    stopped.clear()
    assert main([a for a in argv if a != "--shutdown-recipient"], env=env) == EXIT_USAGE
    assert stopped == []  # only when asked
