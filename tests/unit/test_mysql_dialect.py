"""The exact SQL each flavor runs; MySQL 8.4 is covered here since no MySQL server runs in tests."""

from __future__ import annotations

import contextlib
import socket
import threading
import time

import pytest

from mysql_operator.conventions import Flavor
from mysql_operator.mysql.dialect import (
    SEMI_SYNC_TIMEOUT_MS,
    SemiSyncState,
    dialect_for,
    quote_identifier,
)
from mysql_operator.mysql.session import (
    REDACTED,
    InstanceUnreachable,
    Login,
    Statement,
    Timeouts,
    open_session,
    redact,
)
from mysql_operator.mysql.users import ClusterCredentials, CredentialsError

MYSQL = dialect_for(Flavor.MYSQL)
MARIADB = dialect_for(Flavor.MARIADB)


def test_mysql_84_points_a_replica_with_auto_position_and_public_key() -> None:
    statement = MYSQL.change_source("127.0.9.5", 3306, "mysqlop_repl", "s3cret")
    assert statement == Statement(
        "CHANGE REPLICATION SOURCE TO SOURCE_HOST=%s, SOURCE_PORT=%s, SOURCE_USER=%s, "
        "SOURCE_PASSWORD=%s, SOURCE_AUTO_POSITION=1, GET_SOURCE_PUBLIC_KEY=1, "
        "SOURCE_CONNECT_RETRY=1, SOURCE_RETRY_COUNT=86400",
        ("127.0.9.5", 3306, "mysqlop_repl", "s3cret"),
    )
    assert "s3cret" not in statement.sql
    assert MYSQL.prepare_replica_position("x:1") == []


def test_mariadb_points_a_replica_with_slave_pos_and_fast_retry() -> None:
    statement = MARIADB.change_source("127.0.20.1", 3306, "mysqlop_repl", "s3cret")
    assert statement == Statement(
        "CHANGE MASTER TO MASTER_HOST=%s, MASTER_PORT=%s, MASTER_USER=%s, MASTER_PASSWORD=%s, "
        "MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1",
        ("127.0.20.1", 3306, "mysqlop_repl", "s3cret"),
    )
    # A former primary asks from what it really executed, not from a stale gtid_slave_pos.
    assert MARIADB.prepare_replica_position("0-10-100,0-11-150") == [
        Statement("SET GLOBAL gtid_slave_pos=%s", ("0-11-150",))
    ]


@pytest.mark.parametrize(
    ("dialect", "expected"),
    [
        (MYSQL, ["START REPLICA", "STOP REPLICA", "START REPLICA IO_THREAD", "STOP REPLICA IO_THREAD",
                 "RESET REPLICA ALL", "SHOW REPLICA STATUS"]),
        (MARIADB, ["START SLAVE", "STOP SLAVE", "START SLAVE IO_THREAD", "STOP SLAVE IO_THREAD",
                   "RESET SLAVE ALL", "SHOW SLAVE STATUS"]),
    ],
)
def test_replication_control_statements(dialect: object, expected: list[str]) -> None:
    d = MYSQL if dialect is MYSQL else MARIADB
    got = [d.start_replica, d.stop_replica, d.start_io_thread, d.stop_io_thread, d.reset_replica_all,
           d.replica_status_query]
    assert [s.sql for s in got] == expected


def test_fencing_uses_super_read_only_on_mysql_and_read_only_on_mariadb() -> None:
    assert [s.sql for s in MYSQL.fence()] == [
        "SET GLOBAL super_read_only=ON"]
    assert [s.sql for s in MYSQL.unfence()] == [
        "SET GLOBAL super_read_only=OFF", "SET GLOBAL read_only=OFF"]
    assert [s.sql for s in MARIADB.fence()] == [
        "SET GLOBAL read_only=ON"]
    assert [s.sql for s in MARIADB.unfence()] == [
        "SET GLOBAL read_only=OFF"]
    assert "super_read_only" in MYSQL.read_only_query.sql
    assert MARIADB.read_only_query.sql == "SELECT @@global.read_only AS read_only, 0 AS super_read_only"


def test_gtid_reads_per_flavor() -> None:
    assert MYSQL.gtid_query.sql == "SELECT @@global.gtid_executed AS gtid_executed"
    assert MYSQL.gtid_from_row({"gtid_executed": "3E11FA47-71CA-11E1-9E33-C80AA9429562:1-5,\n"}) == (
        "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5"
    )
    assert "gtid_binlog_state" in MARIADB.gtid_query.sql and "gtid_slave_pos" in MARIADB.gtid_query.sql
    assert "gtid_current_pos" in MARIADB.gtid_query.sql
    row = {"gtid_binlog_state": "0-10-100,0-11-150", "gtid_slave_pos": "0-10-90", "gtid_current_pos": ""}
    assert MARIADB.gtid_from_row(row) == "0-10-100,0-11-150"


def test_mysql_84_semi_sync_uses_source_and_replica_plugins_lossless() -> None:
    assert [s.sql for s in MYSQL.install_semi_sync(set())] == [
        "INSTALL PLUGIN rpl_semi_sync_source SONAME 'semisync_source.so'",
        "INSTALL PLUGIN rpl_semi_sync_replica SONAME 'semisync_replica.so'",
    ]
    assert MYSQL.install_semi_sync({"rpl_semi_sync_source", "rpl_semi_sync_replica"}) == []
    assert MYSQL.enable_semi_sync_source() == [
        Statement("SET GLOBAL rpl_semi_sync_source_wait_point='AFTER_SYNC'"),
        Statement("SET GLOBAL rpl_semi_sync_source_timeout=%s", (SEMI_SYNC_TIMEOUT_MS,)),
        Statement("SET GLOBAL rpl_semi_sync_source_wait_no_replica=ON"),
        Statement("SET GLOBAL rpl_semi_sync_source_enabled=ON"),
    ]
    assert [s.sql for s in MYSQL.enable_semi_sync_replica()] == [
        "SET GLOBAL rpl_semi_sync_replica_enabled=ON"]
    assert [s.sql for s in MYSQL.disable_semi_sync_source()] == [
        "SET GLOBAL rpl_semi_sync_source_enabled=OFF"]


def test_mariadb_semi_sync_is_built_in_with_master_and_slave_names() -> None:
    assert MARIADB.install_semi_sync(set()) == []
    assert MARIADB.enable_semi_sync_source() == [
        Statement("SET GLOBAL rpl_semi_sync_master_wait_point='AFTER_SYNC'"),
        Statement("SET GLOBAL rpl_semi_sync_master_timeout=%s", (SEMI_SYNC_TIMEOUT_MS,)),
        Statement("SET GLOBAL rpl_semi_sync_master_wait_no_slave=ON"),
        Statement("SET GLOBAL rpl_semi_sync_master_enabled=ON"),
    ]
    assert [s.sql for s in MARIADB.enable_semi_sync_replica()] == [
        "SET GLOBAL rpl_semi_sync_slave_enabled=ON"]
    # Long enough that it never silently degrades to async (about 49 days).
    assert SEMI_SYNC_TIMEOUT_MS >= 30 * 24 * 3600 * 1000


def test_semi_sync_state_parses_each_flavor() -> None:
    assert MYSQL.parse_semi_sync(
        {"rpl_semi_sync_source_enabled": "ON", "rpl_semi_sync_replica_enabled": "OFF"},
        {"Rpl_semi_sync_source_status": "ON", "Rpl_semi_sync_source_clients": "2"},
    ) == SemiSyncState(True, True, 2, False, False)
    assert MARIADB.parse_semi_sync(
        {"rpl_semi_sync_master_enabled": "OFF", "rpl_semi_sync_slave_enabled": "ON"},
        {"Rpl_semi_sync_slave_status": "ON", "Rpl_semi_sync_master_clients": "0"},
    ) == SemiSyncState(False, False, 0, True, True)


def test_mysql_84_replica_status_relay_log_applied_by_gtid_sets() -> None:
    uuid = "3e11fa47-71ca-11e1-9e33-c80aa9429562"
    row = {
        "Source_Host": "127.0.9.5", "Source_Port": 3306, "Replica_IO_Running": "No",
        "Replica_SQL_Running": "Yes", "Seconds_Behind_Source": None, "Last_IO_Error": "",
        "Last_SQL_Error": "", "Retrieved_Gtid_Set": f"{uuid}:1-10", "Executed_Gtid_Set": f"{uuid}:1-9",
    }
    status = MYSQL.parse_replica_status(row)
    assert (status.source_host, status.io_running, status.sql_running) == ("127.0.9.5", False, True)
    assert not status.relay_log_applied
    assert MYSQL.parse_replica_status({**row, "Executed_Gtid_Set": f"{uuid}:1-10"}).relay_log_applied


def test_mariadb_slave_status_relay_log_applied_by_positions() -> None:
    row = {
        "Master_Host": "127.0.20.1", "Master_Port": 3306, "Slave_IO_Running": "Yes",
        "Slave_SQL_Running": "Yes", "Seconds_Behind_Master": 3, "Last_IO_Error": "",
        "Last_SQL_Error": "", "Master_Log_File": "mysql-bin.000002", "Read_Master_Log_Pos": 900,
        "Relay_Master_Log_File": "mysql-bin.000002", "Exec_Master_Log_Pos": 800,
    }
    status = MARIADB.parse_replica_status(row)
    assert status.seconds_behind == 3 and status.io_running and not status.relay_log_applied
    assert MARIADB.parse_replica_status({**row, "Exec_Master_Log_Pos": 900}).relay_log_applied
    assert not MARIADB.parse_replica_status(
        {**row, "Relay_Master_Log_File": "mysql-bin.000001", "Exec_Master_Log_Pos": 900}
    ).relay_log_applied


def test_users_get_least_grants_per_flavor() -> None:
    assert MYSQL.create_user("app", "pw") == Statement(
        "CREATE USER IF NOT EXISTS %s@'%%' IDENTIFIED BY %s", ("app", "pw")
    )
    assert MARIADB.grant_replication("mysqlop_repl") == Statement(
        "GRANT REPLICATION SLAVE ON *.* TO %s@'%%'", ("mysqlop_repl",)
    )
    assert MARIADB.grant_application("app", "shop") == Statement(
        "GRANT ALL PRIVILEGES ON `shop`.* TO %s@'%%'", ("app",)
    )
    assert MYSQL.create_database("shop").sql == "CREATE DATABASE IF NOT EXISTS `shop`"


@pytest.mark.parametrize("name", ["x`; DROP DATABASE mysql; --", "", "a b", "a" * 65])
def test_database_names_must_be_plain_identifiers(name: str) -> None:
    with pytest.raises(ValueError):
        quote_identifier(name)


def test_fence_kills_client_connections_but_spares_replication_threads() -> None:
    statement = MARIADB.client_connections_query(("mysqlop_repl", "mysqlop_admin"))
    assert "CONNECTION_ID()" in statement.sql and "Binlog Dump" in statement.sql
    assert statement.args == ("mysqlop_repl", "mysqlop_admin")
    assert MYSQL.kill_connection(42) == Statement("KILL CONNECTION %s", (42,))


def test_passwords_are_redacted_and_never_in_repr() -> None:
    assert redact("denied for pw123 here", ["pw123", ""]) == f"denied for {REDACTED} here"
    creds = ClusterCredentials.from_secret(
        {"root-password": "rootpw1", "replication-password": "replpw1", "operator-password": "oppw1"}
    )
    assert "rootpw1" not in repr(creds) and "oppw1" not in repr(creds.operator)
    with pytest.raises(CredentialsError, match="operator-password"):
        ClusterCredentials.from_secret({"root-password": "a", "replication-password": "b"})


def test_unreachable_instance_raises_our_error_without_the_password() -> None:
    # Nothing listens on this loopback port: the connection is refused at once.
    with pytest.raises(InstanceUnreachable) as caught, open_session(
        "127.0.20.250", Login("root", "hunter2-secret"), port=1, timeouts=Timeouts(connect=1)
    ):
        pass
    assert "hunter2-secret" not in str(caught.value)


def _serve_once(reply: bytes) -> tuple[int, threading.Thread]:
    """A loopback listener that answers one connection with `reply` and closes it."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(10)

    def serve() -> None:
        with listener, contextlib.suppress(OSError):
            connection, _ = listener.accept()
            with connection:
                connection.sendall(reply)
                time.sleep(0.2)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return listener.getsockname()[1], thread


@pytest.mark.parametrize(
    "greeting",
    [
        b"\x05\x00\x00\x00garbage",  # a packet that is no handshake
        b"\x01\x00\x00\x00\xff",  # a truncated error packet
        b"\x20\x00\x00\x00\x0a9.7.4\x00" + b"\x00" * 27,  # a handshake cut short
    ],
)
def test_any_failure_to_open_a_session_is_an_unreachable_instance(greeting: bytes) -> None:
    port, server = _serve_once(greeting)
    with pytest.raises(InstanceUnreachable) as caught, open_session(
        "127.0.0.1", Login("root", "hunter2-secret"), port=port, timeouts=Timeouts(connect=2, read=2)
    ):
        pass
    server.join(10)
    assert "hunter2-secret" not in str(caught.value)


def test_mysql_fence_releases_only_killed_ack_waiters_behind_a_closed_gate() -> None:
    # Defect 5 on MySQL: a killed session keeps waiting for its semi-sync acknowledgement and holds
    # the commit lock; the fence closes the gate (offline_mode) and looks for exactly those sessions.
    mysql, mariadb = dialect_for(Flavor.MYSQL), dialect_for(Flavor.MARIADB)
    assert [s.sql for s in mysql.fence_gate(closed=True)] == ["SET GLOBAL offline_mode=ON"]
    assert [s.sql for s in mysql.fence_gate(closed=False)] == ["SET GLOBAL offline_mode=OFF"]
    query = mysql.killed_ack_waiters_query
    assert query is not None and "COMMAND = 'Killed'" in query.sql and "semi-sync ACK" in query.sql
    assert mariadb.fence_gate(closed=True) == [] and mariadb.killed_ack_waiters_query is None
