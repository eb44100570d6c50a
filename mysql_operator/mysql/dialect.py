"""Flavor-specific SQL behind one interface: MySQL 8.4 and MariaDB 10.11.

Statements are (sql, args) pairs; values (hosts, users, passwords) always travel as args so that the
SQL text itself never contains a password and quoting is pymysql's job.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from mysql_operator.conventions import Flavor
from mysql_operator.mysql import gtid
from mysql_operator.mysql.session import Statement

# Semi-sync must never silently fall back to async: wait (almost) forever for an acknowledgement.
SEMI_SYNC_TIMEOUT_MS = 4_294_967_295

_IDENTIFIER = re.compile(r"^[A-Za-z0-9_$]{1,64}$")


@dataclass(frozen=True)
class ReplicaStatus:
    """The part of SHOW REPLICA/SLAVE STATUS the operator decides on."""

    source_host: str
    source_port: int
    io_running: bool
    sql_running: bool
    seconds_behind: int | None
    last_io_error: str
    last_sql_error: str
    relay_log_applied: bool


@dataclass(frozen=True)
class SemiSyncState:
    """Semi-sync variables and status of one instance."""

    source_enabled: bool = False
    source_active: bool = False
    source_clients: int = 0
    replica_enabled: bool = False
    replica_active: bool = False


def quote_identifier(name: str) -> str:
    """A backtick-quoted schema name; refuses anything but plain identifiers."""
    if not _IDENTIFIER.match(name):
        raise ValueError(f"not a plain identifier: {name!r}")
    return f"`{name}`"


def _on(value: Any) -> bool:
    return str(value).upper() in {"1", "ON", "YES", "TRUE"}


def _text(value: Any) -> str:
    return "" if value is None else str(value)


class Dialect(ABC):
    """The SQL of one flavor. Get one with `dialect_for(flavor)`."""

    flavor: Flavor

    # Identity and state -------------------------------------------------------------------------
    server_query = Statement("SELECT @@server_id AS server_id, @@server_uuid AS server_uuid")
    disable_binlog_for_session = Statement("SET SESSION sql_log_bin=0")

    read_only_query: Statement

    gtid_query: Statement

    @abstractmethod
    def gtid_from_row(self, row: dict[str, Any]) -> str:
        """The instance's executed GTIDs (see gtid module docstring) from `gtid_query`'s row."""

    # Replication --------------------------------------------------------------------------------
    @abstractmethod
    def change_source(self, host: str, port: int, user: str, password: str) -> Statement: ...

    @abstractmethod
    def prepare_replica_position(self, gtid_executed: str) -> list[Statement]:
        """Statements run before change_source so the replica asks for what it really has."""

    start_replica: Statement

    stop_replica: Statement

    start_io_thread: Statement

    stop_io_thread: Statement

    reset_replica_all: Statement

    replica_status_query: Statement

    @abstractmethod
    def parse_replica_status(self, row: dict[str, Any]) -> ReplicaStatus: ...

    # Fencing ------------------------------------------------------------------------------------
    @abstractmethod
    def fence(self) -> list[Statement]:
        """Make the instance refuse writes."""

    @abstractmethod
    def unfence(self) -> list[Statement]:
        """Make the instance writable."""

    # Semi-sync ----------------------------------------------------------------------------------
    semi_sync_status_query = Statement("SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync%%'")
    semi_sync_variables_query = Statement("SHOW GLOBAL VARIABLES LIKE 'rpl_semi_sync%%'")
    plugins_query = Statement(
        "SELECT PLUGIN_NAME FROM information_schema.PLUGINS WHERE PLUGIN_NAME LIKE 'rpl_semi_sync%%'"
    )

    @abstractmethod
    def install_semi_sync(self, installed: set[str]) -> list[Statement]:
        """Statements that load the semi-sync plugins not yet in `installed`."""

    @abstractmethod
    def enable_semi_sync_source(self) -> list[Statement]: ...

    @abstractmethod
    def disable_semi_sync_source(self) -> list[Statement]: ...

    @abstractmethod
    def enable_semi_sync_replica(self) -> list[Statement]: ...

    @abstractmethod
    def parse_semi_sync(self, variables: dict[str, str], status: dict[str, str]) -> SemiSyncState: ...

    # Users --------------------------------------------------------------------------------------
    users_query = Statement("SELECT User AS user, Host AS host FROM mysql.user")
    databases_query = Statement("SELECT SCHEMA_NAME AS name FROM information_schema.SCHEMATA")

    def create_user(self, user: str, password: str) -> Statement:
        return Statement("CREATE USER IF NOT EXISTS %s@'%%' IDENTIFIED BY %s", (user, password))

    def grant_replication(self, user: str) -> Statement:
        return Statement("GRANT REPLICATION SLAVE ON *.* TO %s@'%%'", (user,))

    @abstractmethod
    def grant_operator(self, user: str) -> list[Statement]: ...

    def create_database(self, name: str) -> Statement:
        return Statement(f"CREATE DATABASE IF NOT EXISTS {quote_identifier(name)}")

    def grant_application(self, user: str, database: str) -> Statement:
        return Statement(f"GRANT ALL PRIVILEGES ON {quote_identifier(database)}.* TO %s@'%%'", (user,))

    # Connections --------------------------------------------------------------------------------
    def client_connections_query(self, spared_users: tuple[str, ...]) -> Statement:
        """Ids of client connections other than ours and those of `spared_users`."""
        marks = ", ".join(["%s"] * len(spared_users))
        return Statement(
            "SELECT ID AS id FROM information_schema.PROCESSLIST "
            f"WHERE ID <> CONNECTION_ID() AND USER NOT IN ({marks}) AND COMMAND NOT IN "
            "('Binlog Dump', 'Binlog Dump GTID', 'Daemon', 'Slave_IO', 'Slave_SQL', 'Slave_worker')",
            spared_users,
        )

    def kill_connection(self, connection_id: int) -> Statement:
        return Statement("KILL CONNECTION %s", (int(connection_id),))


class MysqlDialect(Dialect):
    """MySQL 8.4: REPLICA/SOURCE vocabulary, GTID auto-positioning, super_read_only."""

    flavor = Flavor.MYSQL

    read_only_query = Statement(
        "SELECT @@global.read_only AS read_only, @@global.super_read_only AS super_read_only"
    )
    gtid_query = Statement("SELECT @@global.gtid_executed AS gtid_executed")
    start_replica = Statement("START REPLICA")
    stop_replica = Statement("STOP REPLICA")
    start_io_thread = Statement("START REPLICA IO_THREAD")
    stop_io_thread = Statement("STOP REPLICA IO_THREAD")
    reset_replica_all = Statement("RESET REPLICA ALL")
    replica_status_query = Statement("SHOW REPLICA STATUS")

    def gtid_from_row(self, row: dict[str, Any]) -> str:
        return gtid.format_mysql(gtid.parse_mysql(_text(row.get("gtid_executed"))))

    def change_source(self, host: str, port: int, user: str, password: str) -> Statement:
        return Statement(
            "CHANGE REPLICATION SOURCE TO SOURCE_HOST=%s, SOURCE_PORT=%s, SOURCE_USER=%s, "
            "SOURCE_PASSWORD=%s, SOURCE_AUTO_POSITION=1, GET_SOURCE_PUBLIC_KEY=1, "
            "SOURCE_CONNECT_RETRY=1, SOURCE_RETRY_COUNT=86400",
            (host, int(port), user, password),
        )

    def prepare_replica_position(self, gtid_executed: str) -> list[Statement]:
        return []  # auto-positioning sends @@gtid_executed itself

    def parse_replica_status(self, row: dict[str, Any]) -> ReplicaStatus:
        retrieved = _text(row.get("Retrieved_Gtid_Set"))
        executed = _text(row.get("Executed_Gtid_Set"))
        behind = row.get("Seconds_Behind_Source")
        return ReplicaStatus(
            source_host=_text(row.get("Source_Host")),
            source_port=int(row.get("Source_Port") or 0),
            io_running=_text(row.get("Replica_IO_Running")) == "Yes",
            sql_running=_text(row.get("Replica_SQL_Running")) == "Yes",
            seconds_behind=None if behind is None else int(behind),
            last_io_error=_text(row.get("Last_IO_Error")),
            last_sql_error=_text(row.get("Last_SQL_Error")),
            relay_log_applied=gtid.includes(Flavor.MYSQL, executed, retrieved),
        )

    def fence(self) -> list[Statement]:
        return [Statement("SET GLOBAL super_read_only=ON")]

    def unfence(self) -> list[Statement]:
        return [Statement("SET GLOBAL super_read_only=OFF"), Statement("SET GLOBAL read_only=OFF")]

    def install_semi_sync(self, installed: set[str]) -> list[Statement]:
        plugins = {
            "rpl_semi_sync_source": "semisync_source.so",
            "rpl_semi_sync_replica": "semisync_replica.so",
        }
        return [
            Statement(f"INSTALL PLUGIN {name} SONAME '{library}'")
            for name, library in plugins.items()
            if name not in installed
        ]

    def enable_semi_sync_source(self) -> list[Statement]:
        return [
            Statement("SET GLOBAL rpl_semi_sync_source_wait_point='AFTER_SYNC'"),
            Statement("SET GLOBAL rpl_semi_sync_source_timeout=%s", (SEMI_SYNC_TIMEOUT_MS,)),
            Statement("SET GLOBAL rpl_semi_sync_source_wait_no_replica=ON"),
            Statement("SET GLOBAL rpl_semi_sync_source_enabled=ON"),
        ]

    def disable_semi_sync_source(self) -> list[Statement]:
        return [Statement("SET GLOBAL rpl_semi_sync_source_enabled=OFF")]

    def enable_semi_sync_replica(self) -> list[Statement]:
        return [Statement("SET GLOBAL rpl_semi_sync_replica_enabled=ON")]

    def parse_semi_sync(self, variables: dict[str, str], status: dict[str, str]) -> SemiSyncState:
        return SemiSyncState(
            source_enabled=_on(variables.get("rpl_semi_sync_source_enabled")),
            source_active=_on(status.get("Rpl_semi_sync_source_status")),
            source_clients=int(status.get("Rpl_semi_sync_source_clients") or 0),
            replica_enabled=_on(variables.get("rpl_semi_sync_replica_enabled")),
            replica_active=_on(status.get("Rpl_semi_sync_replica_status")),
        )

    def grant_operator(self, user: str) -> list[Statement]:
        return [
            Statement(
                "GRANT PROCESS, RELOAD, REPLICATION CLIENT ON *.* TO %s@'%%'",
                (user,),
            ),
            Statement(
                "GRANT REPLICATION_SLAVE_ADMIN, SYSTEM_VARIABLES_ADMIN, CONNECTION_ADMIN, BINLOG_ADMIN "
                "ON *.* TO %s@'%%'",
                (user,),
            ),
            Statement("GRANT INSERT, DELETE ON mysql.plugin TO %s@'%%'", (user,)),
        ]


class MariadbDialect(Dialect):
    """MariaDB 10.11: MASTER/SLAVE vocabulary, GTID slave_pos, read_only."""

    flavor = Flavor.MARIADB

    read_only_query = Statement("SELECT @@global.read_only AS read_only, 0 AS super_read_only")
    server_query = Statement("SELECT @@server_id AS server_id, '' AS server_uuid")
    gtid_query = Statement(
        "SELECT @@global.gtid_binlog_state AS gtid_binlog_state, "
        "@@global.gtid_slave_pos AS gtid_slave_pos, @@global.gtid_current_pos AS gtid_current_pos"
    )
    start_replica = Statement("START SLAVE")
    stop_replica = Statement("STOP SLAVE")
    start_io_thread = Statement("START SLAVE IO_THREAD")
    stop_io_thread = Statement("STOP SLAVE IO_THREAD")
    reset_replica_all = Statement("RESET SLAVE ALL")
    replica_status_query = Statement("SHOW SLAVE STATUS")

    def gtid_from_row(self, row: dict[str, Any]) -> str:
        return gtid.merge_mariadb(
            _text(row.get("gtid_binlog_state")),
            _text(row.get("gtid_slave_pos")),
            _text(row.get("gtid_current_pos")),
        )

    def change_source(self, host: str, port: int, user: str, password: str) -> Statement:
        return Statement(
            "CHANGE MASTER TO MASTER_HOST=%s, MASTER_PORT=%s, MASTER_USER=%s, MASTER_PASSWORD=%s, "
            "MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1",
            (host, int(port), user, password),
        )

    def prepare_replica_position(self, gtid_executed: str) -> list[Statement]:
        # A former primary's gtid_slave_pos is stale (its own writes are only in its binlog):
        # ask the new source for everything after what this instance really executed.
        return [Statement("SET GLOBAL gtid_slave_pos=%s", (gtid.position(Flavor.MARIADB, gtid_executed),))]

    def parse_replica_status(self, row: dict[str, Any]) -> ReplicaStatus:
        behind = row.get("Seconds_Behind_Master")
        applied = _text(row.get("Master_Log_File")) == _text(row.get("Relay_Master_Log_File")) and int(
            row.get("Read_Master_Log_Pos") or 0
        ) == int(row.get("Exec_Master_Log_Pos") or 0)
        return ReplicaStatus(
            source_host=_text(row.get("Master_Host")),
            source_port=int(row.get("Master_Port") or 0),
            io_running=_text(row.get("Slave_IO_Running")) == "Yes",
            sql_running=_text(row.get("Slave_SQL_Running")) == "Yes",
            seconds_behind=None if behind is None else int(behind),
            last_io_error=_text(row.get("Last_IO_Error")),
            last_sql_error=_text(row.get("Last_SQL_Error")),
            relay_log_applied=applied,
        )

    def fence(self) -> list[Statement]:
        return [Statement("SET GLOBAL read_only=ON")]

    def unfence(self) -> list[Statement]:
        return [Statement("SET GLOBAL read_only=OFF")]

    def install_semi_sync(self, installed: set[str]) -> list[Statement]:
        return []  # built into the server since 10.3

    def enable_semi_sync_source(self) -> list[Statement]:
        return [
            Statement("SET GLOBAL rpl_semi_sync_master_wait_point='AFTER_SYNC'"),
            Statement("SET GLOBAL rpl_semi_sync_master_timeout=%s", (SEMI_SYNC_TIMEOUT_MS,)),
            Statement("SET GLOBAL rpl_semi_sync_master_wait_no_slave=ON"),
            Statement("SET GLOBAL rpl_semi_sync_master_enabled=ON"),
        ]

    def disable_semi_sync_source(self) -> list[Statement]:
        return [Statement("SET GLOBAL rpl_semi_sync_master_enabled=OFF")]

    def enable_semi_sync_replica(self) -> list[Statement]:
        return [Statement("SET GLOBAL rpl_semi_sync_slave_enabled=ON")]

    def parse_semi_sync(self, variables: dict[str, str], status: dict[str, str]) -> SemiSyncState:
        return SemiSyncState(
            source_enabled=_on(variables.get("rpl_semi_sync_master_enabled")),
            source_active=_on(status.get("Rpl_semi_sync_master_status")),
            source_clients=int(status.get("Rpl_semi_sync_master_clients") or 0),
            replica_enabled=_on(variables.get("rpl_semi_sync_slave_enabled")),
            replica_active=_on(status.get("Rpl_semi_sync_slave_status")),
        )

    def grant_operator(self, user: str) -> list[Statement]:
        return [
            Statement(
                "GRANT PROCESS, RELOAD, BINLOG ADMIN, BINLOG MONITOR, REPLICATION MASTER ADMIN, "
                "REPLICATION SLAVE ADMIN, SLAVE MONITOR, READ_ONLY ADMIN, CONNECTION ADMIN "
                "ON *.* TO %s@'%%'",
                (user,),
            )
        ]


_DIALECTS: dict[Flavor, Dialect] = {Flavor.MYSQL: MysqlDialect(), Flavor.MARIADB: MariadbDialect()}


def dialect_for(flavor: Flavor) -> Dialect:
    """The SQL dialect of a flavor."""
    return _DIALECTS[Flavor(flavor)]
