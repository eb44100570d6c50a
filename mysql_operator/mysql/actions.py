"""Replication actions on one instance, each through an open session. Every wait is bounded."""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Callable

from mysql_operator.conventions import OPERATOR_USER, REPLICATION_USER, ROOT_USER, SCHEMA_WORK_LOCK
from mysql_operator.mysql import gtid
from mysql_operator.mysql.dialect import Dialect, SourceTls
from mysql_operator.mysql.session import Login, Session, SqlError, Statement

log = logging.getLogger(__name__)

# The fence waits at most this long for the global read lock, so it never hangs behind commits.
FENCE_LOCK_WAIT_SECONDS = 5

# Server-internal "users" whose connections are never killed on fence.
_SPARED_USERS = (REPLICATION_USER, OPERATOR_USER, "system user", "event_scheduler", "")


def wait_until(check: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Poll `check` until it is true or `timeout` seconds passed; whether it became true."""
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def _replica_row(session: Session, dialect: Dialect) -> dict[str, object] | None:
    return session.query_one(dialect.replica_status_query)


def stop_replica(session: Session, dialect: Dialect) -> None:
    """Stop both replication threads (a no-op on an instance that is no replica)."""
    session.execute(dialect.stop_replica)


def stop_io_thread(session: Session, dialect: Dialect) -> None:
    """Stop receiving from the source; applying what was received goes on."""
    if _replica_row(session, dialect) is not None:
        session.execute(dialect.stop_io_thread)


def start_replica(session: Session, dialect: Dialect) -> None:
    session.execute(dialect.start_replica)


def relay_log_applied(session: Session, dialect: Dialect) -> bool:
    """Whether everything received from the source has been applied (True on a non-replica)."""
    row = _replica_row(session, dialect)
    return row is None or dialect.parse_replica_status(row).relay_log_applied


def wait_relay_log_applied(session: Session, dialect: Dialect, timeout: float) -> bool:
    """Wait (bounded) until the relay log is applied; whether it was."""
    return wait_until(lambda: relay_log_applied(session, dialect), timeout)


def executed_gtids(session: Session, dialect: Dialect) -> str:
    return dialect.gtid_from_row(session.query_one(dialect.gtid_query) or {})


def wait_for_gtids(session: Session, dialect: Dialect, target: str, timeout: float) -> bool:
    """Wait (bounded) until this instance has executed every transaction of `target`."""
    return wait_until(
        lambda: gtid.includes(dialect.flavor, executed_gtids(session, dialect), target), timeout
    )


def fence(session: Session, dialect: Dialect, *, kill_clients: bool = True, bind_root: bool = True) -> int:
    """Make the instance refuse writes, bounded in time; returns the number of connections ended.

    Client connections are ended BEFORE the read-only switch: in semi-sync mode a commit waiting for
    an acknowledgement holds the commit lock the switch needs, and the switch would wait for it
    forever; ended, its transaction was never acknowledged to the client. They are ended again
    after, for those that connected in between (and on MariaDB, where `read_only` does not bind
    holders of READ_ONLY ADMIN such as root, ending them is what stops their writes). New client
    sessions are refused meanwhile (MySQL's offline_mode). Semi-sync is never turned off while a
    client could hear an OK: only to release commits whose clients were already ended (MySQL keeps
    a killed session waiting for its acknowledgement, holding the commit lock).

    Who can still write on a fenced MariaDB instance: only the operator's own user, which keeps
    READ_ONLY ADMIN (it unfences, and creates users unlogged on read-only replicas) and whose
    password only the operator uses. Root (localhost only) loses it for the fence; the application
    user, MysqlUser users, the backup and exporter users never hold it."""
    session.execute(Statement("SET SESSION lock_wait_timeout=%s", (FENCE_LOCK_WAIT_SECONDS,)))
    if bind_root:
        _fence_bypass(session, dialect, grant=False)
    if kill_clients:
        session.execute(*dialect.fence_gate(closed=True))  # no new client session from here on
    try:
        killed = end_client_connections(session, dialect) if kill_clients else 0
        if kill_clients:
            release_killed_ack_waiters(session, dialect)
        session.execute(*dialect.fence())
        if kill_clients:
            killed += end_client_connections(session, dialect)
    finally:
        if kill_clients:
            session.execute(*dialect.fence_gate(closed=False))
    return killed


def release_killed_ack_waiters(session: Session, dialect: Dialect) -> bool:
    """Let commits whose sessions were killed while waiting for a semi-sync acknowledgement finish
    locally, so the fence can take the commit lock. Safe only here: their clients are disconnected
    (never told OK) and the gate refuses new sessions, so nobody is acknowledged a write that no
    replica has; the instance is being fenced, and a deposed primary's extra transactions are
    discarded on rejoin. Returns whether any was released."""
    query = dialect.killed_ack_waiters_query
    if query is None:
        return False
    row = session.query_one(query) or {}
    if not int(row.get("n") or 0):
        return False
    session.execute(*dialect.disable_semi_sync_source())
    return True


def _fence_bypass(session: Session, dialect: Dialect, *, grant: bool) -> None:
    """Take (or give back) the fence bypass of every account of root, unlogged (it must never become
    a transaction of its own); best effort: the fence goes on without it. Root is created on
    localhost only; an instance initialised earlier may also have root@'%'."""
    change = dialect.restore_fence_bypass if grant else dialect.revoke_fence_bypass
    if not change(ROOT_USER, "localhost"):
        return  # the flavor's fence binds every user
    try:
        hosts = sorted({str(row["host"]) for row in session.query(dialect.users_query)
                        if str(row["user"]) == ROOT_USER})
        statements = [statement for host in hosts for statement in change(ROOT_USER, host)]
        if statements:
            session.execute(dialect.disable_binlog_for_session, *statements)
    except SqlError as error:
        log.warning("fence bypass of %s unchanged: %s", ROOT_USER, error)
    finally:
        session.execute(Statement("SET SESSION sql_log_bin=1"))


def restore_fence_bypass(session: Session, dialect: Dialect) -> None:
    """Root may write on a read-only instance again (someone in the pod administering it as root
    needs it); done when an instance becomes a replica or the primary."""
    _fence_bypass(session, dialect, grant=True)


def end_client_connections(session: Session, dialect: Dialect) -> int:
    """KILL every client connection but the operator's and replication's, and the operator's own
    schema session (it holds SCHEMA_WORK_LOCK; its user writes through MariaDB's read_only, so it
    must not outlive the fence); how many were ended."""
    ids = [int(row["id"]) for row in session.query(dialect.client_connections_query(_SPARED_USERS))]
    holder = session.query_one(dialect.lock_holder_query(SCHEMA_WORK_LOCK)) or {}
    if holder.get("id") is not None and int(holder["id"]) != int(holder.get("own") or 0):
        ids.append(int(holder["id"]))
    killed = 0
    for connection_id in ids:
        try:
            session.execute(dialect.kill_connection(connection_id))
            killed += 1
        except SqlError:  # the connection ended by itself meanwhile
            pass
    return killed


def unfence(session: Session, dialect: Dialect) -> None:
    session.execute(*dialect.unfence())


def disable_semi_sync_source(session: Session, dialect: Dialect) -> None:
    session.execute(*dialect.disable_semi_sync_source())


def enable_semi_sync_source(session: Session, dialect: Dialect) -> None:
    """Lossless semi-sync on the source (AFTER_SYNC, no timeout fallback).

    Only call once a replica acknowledges: with no replica every write would block.
    """
    _install_semi_sync(session, dialect)
    session.execute(*dialect.enable_semi_sync_source())


def _install_semi_sync(session: Session, dialect: Dialect) -> None:
    installed = {str(row["PLUGIN_NAME"]) for row in session.query(dialect.plugins_query)}
    session.execute(*dialect.install_semi_sync(installed))


def configure_replica(
    session: Session,
    dialect: Dialect,
    *,
    source_host: str,
    source_port: int,
    replication: Login,
    semi_sync: bool,
    tls: bool = False,
) -> None:
    """Make the instance a read-only replica of the source (GTID auto-positioning) and start it.

    With `tls` the replica connects over TLS when its own server has a CA configured (see
    `source_tls`)."""
    session.execute(*dialect.fence())
    restore_fence_bypass(session, dialect)
    stop_replica(session, dialect)
    if semi_sync:
        _install_semi_sync(session, dialect)
        disable_semi_sync_source(session, dialect)
        session.execute(*dialect.enable_semi_sync_replica())
    session.execute(*dialect.prepare_replica_position(executed_gtids(session, dialect)))
    session.execute(
        dialect.change_source(source_host, source_port, replication.user, replication.password,
                              source_tls(session, dialect, source_host) if tls else None)
    )
    start_replica(session, dialect)


def source_tls(session: Session, dialect: Dialect, source_host: str) -> SourceTls | None:
    """TLS for this replica's connection to `source_host`: the CA file this replica's own server was
    started with (every instance mounts the same bundle), the source's name verified when it is a
    name. None while the server has no CA configured (it has not restarted with TLS yet)."""
    row = session.query_one(dialect.ssl_ca_query) or {}
    ca_path = str(row.get("ssl_ca") or "")
    if not ca_path:
        return None
    try:
        ipaddress.ip_address(source_host)
        by_name = False
    except ValueError:
        by_name = True
    return SourceTls(ca_path=ca_path, verify_identity=by_name)


def promote(session: Session, dialect: Dialect, *, semi_sync: bool = False) -> None:
    """Turn a replica (or a fenced primary) into the writable primary. In semi-sync mode the source
    side is on before the first write is accepted (writes wait until a replica acknowledges)."""
    stop_replica(session, dialect)
    session.execute(dialect.reset_replica_all)
    if semi_sync:
        enable_semi_sync_source(session, dialect)
    unfence(session, dialect)
    restore_fence_bypass(session, dialect)
