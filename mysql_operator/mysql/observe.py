"""What one instance looks like right now, as a frozen typed value."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mysql_operator.mysql import gtid
from mysql_operator.mysql.dialect import Dialect, ReplicaStatus, SemiSyncState
from mysql_operator.mysql.session import (
    AccessDenied,
    InstanceUnreachable,
    Login,
    MysqlError,
    Session,
    SqlError,
    Timeouts,
    open_session,
)
from mysql_operator.tls.client import ClientTls


@dataclass(frozen=True)
class InstanceObservation:
    """One instance as observed. `gtid_executed` is flavor-specific text (see the gtid module).

    `reachable` is false when the instance could not be read; `busy` then says the server answered
    (an SQL error such as 1040 too many connections, or a query that outlived the read timeout after
    the login): it is alive, never a reason to fail over. `received_gtids` is the executed set plus
    what sits in the relay log unapplied.
    """

    ordinal: int
    host: str
    reachable: bool
    error: str = ""
    login_refused: bool = False
    busy: bool = False
    server_id: int | None = None
    server_uuid: str = ""
    read_only: bool = True
    super_read_only: bool = False
    gtid_executed: str = ""
    replica_configured: bool = False
    io_running: bool = False
    sql_running: bool = False
    source_host: str = ""
    seconds_behind: int | None = None
    last_io_error: str = ""
    last_sql_error: str = ""
    relay_log_applied: bool = True
    received_gtids: str = ""
    semi_sync: SemiSyncState = field(default_factory=SemiSyncState)

    @property
    def alive(self) -> bool:
        """Answering, though perhaps too busy to be read: not a failover reason."""
        return self.reachable or self.busy

    @property
    def received(self) -> str:
        """Every transaction this instance holds, applied or still in its relay log."""
        return self.received_gtids or self.gtid_executed

    @property
    def writable(self) -> bool:
        """Reachable and accepting writes from applications."""
        return self.reachable and not self.read_only and not self.super_read_only

    @property
    def origin(self) -> str:
        """The id this server stamps on the transactions it writes (MySQL uuid, MariaDB server_id)."""
        return self.server_uuid or ("" if self.server_id is None else str(self.server_id))

    @property
    def replicating(self) -> bool:
        return self.replica_configured and self.io_running and self.sql_running


def unreachable(
    ordinal: int, host: str, error: MysqlError, *, logged_in: bool = False
) -> InstanceObservation:
    """The observation of an instance that could not be asked. An SQL error (the server answered)
    or a timeout after the login (a slow query) marks it busy, not gone."""
    return InstanceObservation(
        ordinal=ordinal,
        host=host,
        reachable=False,
        error=str(error),
        login_refused=isinstance(error, AccessDenied),
        busy=isinstance(error, SqlError) or (logged_in and isinstance(error, InstanceUnreachable)),
    )


def _name_values(rows: list[dict[str, Any]]) -> dict[str, str]:
    return {str(row["Variable_name"]): str(row["Value"]) for row in rows}


def read_semi_sync(session: Session, dialect: Dialect) -> SemiSyncState:
    """The semi-sync variables and status of the instance."""
    variables = _name_values(session.query(dialect.semi_sync_variables_query))
    status = _name_values(session.query(dialect.semi_sync_status_query))
    return dialect.parse_semi_sync(variables, status)


def read_observation(session: Session, dialect: Dialect, ordinal: int) -> InstanceObservation:
    """Observe through an open session. Raises MysqlError."""
    server = session.query_one(dialect.server_query) or {}
    flags = session.query_one(dialect.read_only_query) or {}
    gtids = dialect.gtid_from_row(session.query_one(dialect.gtid_query) or {})
    row = session.query_one(dialect.replica_status_query)
    replica: ReplicaStatus | None = dialect.parse_replica_status(row) if row else None
    received = (
        gtid.union(dialect.flavor, [gtids, replica.received_gtids])
        if replica is not None and replica.received_gtids else gtids
    )
    return InstanceObservation(
        ordinal=ordinal,
        host=session.host,
        reachable=True,
        server_id=int(server["server_id"]) if server.get("server_id") is not None else None,
        server_uuid=str(server.get("server_uuid") or ""),
        read_only=bool(int(flags.get("read_only") or 0)),
        super_read_only=bool(int(flags.get("super_read_only") or 0)),
        gtid_executed=gtids,
        replica_configured=replica is not None,
        io_running=replica.io_running if replica else False,
        sql_running=replica.sql_running if replica else False,
        source_host=replica.source_host if replica else "",
        seconds_behind=replica.seconds_behind if replica else None,
        last_io_error=replica.last_io_error if replica else "",
        last_sql_error=replica.last_sql_error if replica else "",
        relay_log_applied=replica.relay_log_applied if replica else True,
        received_gtids=received,
        semi_sync=read_semi_sync(session, dialect),
    )


def observe_instance(
    ordinal: int,
    host: str,
    login: Login,
    dialect: Dialect,
    *,
    port: int = 3306,
    timeouts: Timeouts | None = None,
    tls: ClientTls | None = None,
) -> InstanceObservation:
    """Connect to an instance and observe it; never raises for an unreachable instance."""
    logged_in = False
    try:
        with open_session(host, login, port=port, timeouts=timeouts, tls=tls) as session:
            logged_in = True
            return read_observation(session, dialect, ordinal)
    except MysqlError as error:
        if logged_in and isinstance(error, InstanceUnreachable):
            # A statement outlived the read timeout: slow (busy) or stalled since the login? A busy
            # server still greets a new connection at once; a stalled one says nothing.
            logged_in = _greets(host, login, port, timeouts or Timeouts(), tls)
        return unreachable(ordinal, host, error, logged_in=logged_in)


def _greets(host: str, login: Login, port: int, timeouts: Timeouts, tls: ClientTls | None) -> bool:
    """Whether the server completes a fresh handshake within the connect timeout."""
    try:
        with open_session(host, login, port=port, timeouts=timeouts, tls=tls):
            return True
    except InstanceUnreachable:
        return False
    except MysqlError:
        return True  # it answered (too many connections, a refused login): alive
