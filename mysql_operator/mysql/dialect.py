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
    # Transactions received from the source (relay log), applied or not: what a failover candidate
    # really holds (MySQL Retrieved_Gtid_Set, MariaDB Gtid_IO_Pos).
    received_gtids: str = ""


@dataclass(frozen=True)
class SourceTls:
    """How a replica's connection to its source is secured: TLS with the CA file at `ca_path` (as the
    replica's mysqld sees it), and the source's name checked against its certificate when
    `verify_identity` (only when the source host is a name; an IP is never in the certificate)."""

    ca_path: str
    verify_identity: bool


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


_VARIABLE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_SIZE = re.compile(r"^([0-9]+)([KMGT])$", re.IGNORECASE)
_SIZE_FACTORS = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
_BOOLEANS = {"ON": 1, "TRUE": 1, "YES": 1, "OFF": 0, "FALSE": 0, "NO": 0}


def variable_name(key: str) -> str:
    """A my.cnf key as a system variable name (`-` folded to `_`); refuses anything else."""
    name = key.replace("-", "_").lower()
    if not _VARIABLE.match(name):
        raise ValueError(f"not a variable name: {key!r}")
    return name


def variable_value(value: str) -> int | float | str:
    """A my.cnf value as SET accepts it: numbers and sizes (64M) as numbers, booleans as 1/0."""
    text = value.strip()
    if re.fullmatch(r"-?[0-9]+", text):
        return int(text)
    if re.fullmatch(r"-?[0-9]+\.[0-9]+", text):
        return float(text)
    size = _SIZE.match(text)
    if size:
        return int(size.group(1)) * _SIZE_FACTORS[size.group(2).upper()]
    if text.upper() in _BOOLEANS:
        return _BOOLEANS[text.upper()]
    return text


def same_value(wanted: str, running: Any) -> bool:
    """Whether a running variable already has the my.cnf value (1/ON, 64M/67108864, 1.0/1.000000)."""
    want = variable_value(wanted)
    have: Any = running
    if isinstance(have, bytes):
        have = have.decode()
    if isinstance(have, str):
        have = variable_value(have)
    if isinstance(want, int | float) and isinstance(have, int | float):
        return float(want) == float(have)
    return str(want).lower() == str(have).lower()


def quote_any_identifier(name: str) -> str:
    """A backtick-quoted name of an existing object, whatever its characters (for DROP)."""
    if not name or len(name) > 64 or "\0" in name:
        raise ValueError(f"not an identifier: {name!r}")
    return "`" + name.replace("`", "``") + "`"


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
    def change_source(
        self, host: str, port: int, user: str, password: str, tls: SourceTls | None = None
    ) -> Statement: ...

    # The CA file this server was started with (empty: no TLS configured), and the statements that
    # make it serve the certificate files anew without a restart.
    ssl_ca_query = Statement("SELECT @@global.ssl_ca AS ssl_ca")
    served_certificate_query = Statement("SHOW GLOBAL STATUS LIKE 'Ssl_server_not_after'")
    reload_tls: Statement

    @abstractmethod
    def change_source_tls(self, tls: SourceTls | None) -> Statement:
        """Only the TLS part of a replica's source configuration (the replica must be stopped)."""

    @abstractmethod
    def prepare_replica_position(self, gtid_executed: str) -> list[Statement]:
        """Statements run before change_source so the replica asks for what it really has."""

    start_replica: Statement

    stop_replica: Statement
    skip_replica_start: str  # the server option that keeps replication from starting by itself

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

    def revoke_fence_bypass(self, user: str, host: str) -> list[Statement]:
        """Statements (run unlogged, by the operator) that make the fence bind `user`@`host` too."""
        return []  # MySQL: super_read_only binds every user

    def fence_gate(self, closed: bool) -> list[Statement]:
        """Refuse (closed) or allow again new client sessions while a fence is being put up."""
        return []

    # Sessions killed while their commit waits for a semi-sync acknowledgement; MySQL keeps them
    # waiting (holding the commit lock the fence needs) though their clients are gone. None: this
    # flavor releases a killed waiter by itself.
    killed_ack_waiters_query: Statement | None = None

    def restore_fence_bypass(self, user: str, host: str) -> list[Statement]:
        """Give `user`@`host` back what `revoke_fence_bypass` took (the instance serves again)."""
        return []

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
    def grant_exporter(self, user: str) -> Statement:
        """What mysqld_exporter reads: process list, replication and binlog status, schemas."""

    def create_database(self, name: str) -> Statement:
        return Statement(f"CREATE DATABASE IF NOT EXISTS {quote_identifier(name)}")

    def grant_application(self, user: str, database: str) -> Statement:
        # In a grant's database name `_` is a wildcard (`%` cannot pass quote_identifier): escaped,
        # `shop_db` grants shop_db only, not shopXdb.
        pattern = quote_identifier(database).replace("_", "\\_")
        return Statement(f"GRANT ALL PRIVILEGES ON {pattern}.* TO %s@'%%'", (user,))

    # Seeding and live configuration ----------------------------------------------------------------
    @abstractmethod
    def wipe(self, databases: list[str]) -> list[Statement]:
        """Forget replication, drop `databases` and reset the GTID history (root session).

        Run with the binary log off for the session: nothing of it may become a transaction."""

    def set_variable(self, key: str, value: str) -> Statement:
        """Apply one configuration key to the running server (SET GLOBAL, or SET PERSIST for MySQL)."""
        return Statement(f"SET {self.set_scope} {variable_name(key)} = %s", (variable_value(value),))

    set_scope = "GLOBAL"

    def variables_query(self, keys: list[str]) -> Statement:
        """One row with the running value of each key, under the key's folded name."""
        columns = ", ".join(f"@@GLOBAL.{variable_name(k)} AS {variable_name(k)}" for k in keys)
        return Statement(f"SELECT {columns}")

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

    def lock_holder_query(self, name: str) -> Statement:
        """The connection holding the named lock `name` (NULL when free), unless it is ours."""
        return Statement("SELECT IS_USED_LOCK(%s) AS id, CONNECTION_ID() AS own", (name,))

    def take_lock(self, name: str, wait_seconds: int) -> Statement:
        return Statement("SELECT GET_LOCK(%s, %s) AS got", (name, int(wait_seconds)))


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
    skip_replica_start = "--skip-replica-start"

    def gtid_from_row(self, row: dict[str, Any]) -> str:
        return gtid.format_mysql(gtid.parse_mysql(_text(row.get("gtid_executed"))))

    reload_tls = Statement("ALTER INSTANCE RELOAD TLS")

    def change_source(
        self, host: str, port: int, user: str, password: str, tls: SourceTls | None = None
    ) -> Statement:
        secure = ("", ()) if tls is None else (
            ", SOURCE_SSL=1, SOURCE_SSL_CA=%s, SOURCE_SSL_VERIFY_SERVER_CERT=%s",
            (tls.ca_path, 1 if tls.verify_identity else 0),
        )
        return Statement(
            "CHANGE REPLICATION SOURCE TO SOURCE_HOST=%s, SOURCE_PORT=%s, SOURCE_USER=%s, "
            "SOURCE_PASSWORD=%s, SOURCE_AUTO_POSITION=1, GET_SOURCE_PUBLIC_KEY=1, "
            "SOURCE_CONNECT_RETRY=1, SOURCE_RETRY_COUNT=86400" + secure[0],
            (host, int(port), user, password, *secure[1]),
        )

    def change_source_tls(self, tls: SourceTls | None) -> Statement:
        if tls is None:
            return Statement(
                "CHANGE REPLICATION SOURCE TO SOURCE_SSL=0, SOURCE_SSL_CA='', SOURCE_SSL_VERIFY_SERVER_CERT=0"
            )
        return Statement(
            "CHANGE REPLICATION SOURCE TO SOURCE_SSL=1, SOURCE_SSL_CA=%s, SOURCE_SSL_VERIFY_SERVER_CERT=%s",
            (tls.ca_path, 1 if tls.verify_identity else 0),
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
            received_gtids=retrieved,
        )

    def fence(self) -> list[Statement]:
        return [Statement("SET GLOBAL super_read_only=ON")]

    def fence_gate(self, closed: bool) -> list[Statement]:
        return [Statement(f"SET GLOBAL offline_mode={'ON' if closed else 'OFF'}")]

    killed_ack_waiters_query = Statement(
        "SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST "
        "WHERE COMMAND = 'Killed' AND STATE LIKE 'Waiting for semi-sync ACK%%'"
    )

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

    set_scope = "PERSIST"

    def wipe(self, databases: list[str]) -> list[Statement]:
        return [
            Statement("STOP REPLICA"),
            Statement("RESET REPLICA ALL"),
            *(Statement(f"DROP DATABASE IF EXISTS {quote_any_identifier(d)}") for d in databases),
            Statement("RESET BINARY LOGS AND GTIDS"),
        ]

    clone_plugin_query = Statement(
        "SELECT PLUGIN_NAME FROM information_schema.PLUGINS WHERE PLUGIN_NAME = 'clone'"
    )
    install_clone = Statement("INSTALL PLUGIN clone SONAME 'mysql_clone.so'")

    def clone_from(
        self, donor_host: str, donor_port: int, login_user: str, password: str, ca_path: str = "",
        data_directory: str = "",
    ) -> list[Statement]:
        """On the recipient: accept the donor, then copy its whole data directory. With `ca_path`
        the copy travels over TLS and the donor's certificate must be signed by that CA.

        Without `data_directory` the copy replaces the recipient's own data and the server restarts
        by itself at the end, so the session is lost (that is expected). With it the copy lands in
        that new directory (it must not exist; the recipient mysqld creates it) and the recipient
        keeps running on its own data, untouched: a physical backup's clone."""
        secure = [Statement("SET GLOBAL clone_ssl_ca = %s", (ca_path,))] if ca_path else []
        if data_directory and not ca_path:
            # A recipient may serve several backups: no CA of an earlier one may linger (a global).
            secure = [Statement("SET GLOBAL clone_ssl_ca = ''")]
        # A fenced recipient (an errant replica, a deposed primary) has super_read_only on, which a
        # replacing CLONE refuses (1290). read_only stays on, and the copy replaces every row anyway.
        # A clone into a directory of its own writes none of the recipient's data: left as it is.
        unfence = [] if data_directory else [Statement("SET GLOBAL super_read_only = OFF")]
        args: tuple[object, ...] = (login_user, donor_host, int(donor_port), password)
        sql = "CLONE INSTANCE FROM %s@%s:%s IDENTIFIED BY %s"
        if data_directory:
            sql, args = sql + " DATA DIRECTORY = %s", (*args, data_directory)
        return [
            *unfence,
            Statement("SET GLOBAL clone_valid_donor_list = %s", (f"{donor_host}:{int(donor_port)}",)),
            *secure,
            Statement(sql + (" REQUIRE SSL" if ca_path else ""), args),
        ]

    def grant_exporter(self, user: str) -> Statement:
        return Statement("GRANT PROCESS, REPLICATION CLIENT, SELECT ON *.* TO %s@'%%'", (user,))


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
    skip_replica_start = "--skip-slave-start"

    def gtid_from_row(self, row: dict[str, Any]) -> str:
        return gtid.merge_mariadb(
            _text(row.get("gtid_binlog_state")),
            _text(row.get("gtid_slave_pos")),
            _text(row.get("gtid_current_pos")),
        )

    reload_tls = Statement("FLUSH SSL")

    def change_source(
        self, host: str, port: int, user: str, password: str, tls: SourceTls | None = None
    ) -> Statement:
        secure = ("", ()) if tls is None else (
            ", MASTER_SSL=1, MASTER_SSL_CA=%s, MASTER_SSL_VERIFY_SERVER_CERT=%s",
            (tls.ca_path, 1 if tls.verify_identity else 0),
        )
        return Statement(
            "CHANGE MASTER TO MASTER_HOST=%s, MASTER_PORT=%s, MASTER_USER=%s, MASTER_PASSWORD=%s, "
            "MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1" + secure[0],
            (host, int(port), user, password, *secure[1]),
        )

    def change_source_tls(self, tls: SourceTls | None) -> Statement:
        if tls is None:
            return Statement(
                "CHANGE MASTER TO MASTER_SSL=0, MASTER_SSL_CA='', MASTER_SSL_VERIFY_SERVER_CERT=0"
            )
        return Statement(
            "CHANGE MASTER TO MASTER_SSL=1, MASTER_SSL_CA=%s, MASTER_SSL_VERIFY_SERVER_CERT=%s",
            (tls.ca_path, 1 if tls.verify_identity else 0),
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
            received_gtids=_text(row.get("Gtid_IO_Pos")),
        )

    def fence(self) -> list[Statement]:
        return [Statement("SET GLOBAL read_only=ON")]

    def unfence(self) -> list[Statement]:
        return [Statement("SET GLOBAL read_only=OFF")]

    # read_only does not bind READ_ONLY ADMIN (root has it through ALL PRIVILEGES): while an old
    # primary is fenced, root loses it, so new root sessions cannot write either (MDEV-29596).
    def revoke_fence_bypass(self, user: str, host: str) -> list[Statement]:
        return [Statement("REVOKE READ_ONLY ADMIN ON *.* FROM %s@%s", (user, host))]

    def restore_fence_bypass(self, user: str, host: str) -> list[Statement]:
        return [Statement("GRANT READ_ONLY ADMIN ON *.* TO %s@%s", (user, host))]

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

    def wipe(self, databases: list[str]) -> list[Statement]:
        return [
            Statement("STOP SLAVE"),
            Statement("RESET SLAVE ALL"),
            *(Statement(f"DROP DATABASE IF EXISTS {quote_any_identifier(d)}") for d in databases),
            Statement("RESET MASTER"),
            Statement("SET GLOBAL gtid_slave_pos = ''"),
        ]

    def grant_exporter(self, user: str) -> Statement:
        return Statement("GRANT PROCESS, BINLOG MONITOR, SLAVE MONITOR, SELECT ON *.* TO %s@'%%'", (user,))


_DIALECTS: dict[Flavor, Dialect] = {Flavor.MYSQL: MysqlDialect(), Flavor.MARIADB: MariadbDialect()}


def dialect_for(flavor: Flavor) -> Dialect:
    """The SQL dialect of a flavor."""
    return _DIALECTS[Flavor(flavor)]
