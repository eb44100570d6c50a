"""The restore side of physical backups inside a Job (resources/physical_jobs.py says how it runs).

The copied data directory holds the SOURCE cluster's accounts with the source's passwords; the new
cluster's operator only knows its own Secret. So the unpack step also writes an init file (into a
memory-only directory of the Job's pod, never onto the volume) that the first start of the copied
server runs: every account of the operator's Secret that exists in the copy gets the new password,
with the binary log off for those statements (they are this instance's own, not history to
replicate). Then the restore command logs in with the new operator password, rolls the copy forward
with the archived binlogs, and shuts the server down so instance 0 can start on the volume.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

from mysql_operator.backup.commands import Instance
from mysql_operator.backup.manifest import Manifest
from mysql_operator.backup.restore import roll_forward
from mysql_operator.backup.storage import Storage
from mysql_operator.mysql.dialect import dialect_for
from mysql_operator.mysql.session import MysqlError, Statement, Timeouts, open_session

log = logging.getLogger(__name__)

ENV_ACCOUNTS = "RESET_ACCOUNTS"
START_TIMEOUT_SECONDS = 1800.0  # a large copy's crash recovery on first start (MariaDB: prepared already)
_POLL_SECONDS = 1.0
# Files a copy must not bring to a new server: its identity (MySQL's server_uuid: a new server makes
# its own) and settings persisted on the source (SET PERSIST, e.g. super_read_only of a replica).
NOT_CARRIED = ("auto.cnf", "mysqld-auto.cnf")


class AccountsMissing(ValueError):
    """RESET_ACCOUNTS does not say which passwords to set."""


def sql_string(value: str) -> str:
    """A string literal for an init file: backslash escapes, one line (init_sql sets the session's
    sql_mode first, so a configured NO_BACKSLASH_ESCAPES cannot change how it reads)."""
    escaped = value.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n").replace("\r", "\\r")
    return f"'{escaped}'"


def accounts_from_env(env: Mapping[str, str]) -> list[tuple[str, str, str]]:
    """(user, host, password) of each account RESET_ACCOUNTS names whose variables are set (pure).
    RESET_ACCOUNTS: JSON [[user, host, password variable, user variable], ...]; the user variable,
    when not empty, holds the name (the application user's name is in the Secret too)."""
    text = env.get(ENV_ACCOUNTS)
    if not text:
        raise AccountsMissing(f"{ENV_ACCOUNTS} is not set: which accounts get which password?")
    accounts: list[tuple[str, str, str]] = []
    for user, host, password_var, user_var in json.loads(text):
        name = env.get(user_var, "") if user_var else user
        password = env.get(password_var, "")
        if name and password:
            accounts.append((str(name), str(host), password))
    return accounts


def init_sql(accounts: list[tuple[str, str, str]]) -> str:
    """The init file: one statement per line (the server reads it line by line), unlogged. The
    session's sql_mode is reset first: under a configured NO_BACKSLASH_ESCAPES a password holding a
    quote would end its literal early, and the failed statement could reach the server's log."""
    lines = ["SET SESSION sql_mode='';", "SET SESSION sql_log_bin=0;"]
    for user, host, password in accounts:
        lines.append(f"ALTER USER IF EXISTS {sql_string(user)}@{sql_string(host)} "
                     f"IDENTIFIED BY {sql_string(password)};")
    return "\n".join(lines) + "\n"


def write_init_sql(path: Path, accounts: list[tuple[str, str, str]]) -> None:
    """Write the init file readable by its owner only (the server runs as the same user)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(init_sql(accounts))


def drop_identity(datadir: Path) -> list[str]:
    """Remove the source's identity and persisted settings from an unpacked copy; returns what went."""
    removed = []
    for name in NOT_CARRIED:
        path = datadir / name
        if path.exists():
            path.unlink()
            removed.append(name)
    return removed


def wait_answering(instance: Instance, timeout: float = START_TIMEOUT_SECONDS) -> None:
    """Until `instance` accepts its login (the server beside us is still starting). Raises the last
    error after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with open_session(instance.host, instance.login, port=instance.port, tls=instance.tls(),
                              timeouts=Timeouts(connect=2.0, read=10.0)) as session:
                session.query_one(Statement("SELECT 1 AS one"))
                return
        except MysqlError as error:
            if time.monotonic() >= deadline:
                raise
            log.info("waiting for %s to answer: %s", instance.label, error)
            time.sleep(_POLL_SECONDS)


def forget_replication(instance: Instance) -> None:
    """The copy of a replica still names the source cluster's primary as its source: drop that
    (the server was started with replication off), so the restored instance is nobody's replica."""
    dialect = dialect_for(instance.flavor)
    with open_session(instance.host, instance.login, port=instance.port, tls=instance.tls(),
                      timeouts=Timeouts(connect=2.0, read=60.0)) as session:
        session.execute(dialect.stop_replica, dialect.reset_replica_all)


def finish_restore(instance: Instance, storage: Storage, manifest: Manifest,
                   point_in_time: datetime | None) -> list[str]:
    """Wait for the copied server, roll it forward to `point_in_time` when given; returns the binlog
    files replayed."""
    wait_answering(instance)
    forget_replication(instance)
    if point_in_time is None:
        return []
    return roll_forward(instance, storage, manifest, point_in_time)
