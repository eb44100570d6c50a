"""Seeding: give an instance a consistent copy of a donor's data and GTID history, then it can replicate.

MariaDB: the target is wiped over SQL (user databases dropped, replication and GTID history reset),
then a logical snapshot of the donor (`mariadb-dump --single-transaction --master-data=1 --gtid`) is
piped into `mariadb` on the target, both run by the operator over TCP, with the binary log off for
the load so the copy creates no transaction of the target's own. The dump ends with
`SET GLOBAL gtid_slave_pos=<donor position>`, so the target asks the primary for exactly what follows.
MySQL: `CLONE INSTANCE FROM` the donor (the clone plugin copies the data directory and
`gtid_executed`; the target restarts itself afterwards).

Passwords reach the tools through 0600 option files only (never argv, environment or logs).
"""

from __future__ import annotations

import logging
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from mysql_operator.backup.commands import Instance, Tools, child_env, defaults_file
from mysql_operator.conventions import MYSQL_PORT, Flavor
from mysql_operator.mysql import gtid
from mysql_operator.mysql.dialect import Dialect, MysqlDialect
from mysql_operator.mysql.session import (
    InstanceUnreachable,
    Login,
    MysqlError,
    Session,
    SqlError,
    Statement,
    redact,
)

log = logging.getLogger(__name__)

SYSTEM_DATABASES = frozenset({"mysql", "information_schema", "performance_schema", "sys"})
_STDERR_TAIL = 2000


class SeedError(MysqlError):
    """Copying the donor's data to the target failed; the text never carries a password."""


@dataclass(frozen=True)
class SeedEndpoint:
    """An instance taking part in a seed, reached as root over TCP."""

    host: str
    login: Login
    port: int = MYSQL_PORT
    ca_pem: str = ""  # the cluster's CA bundle: the tools connect over TLS and verify the chain


def user_databases(session: Session, dialect: Dialect) -> list[str]:
    """Every schema but the server's own."""
    names = [str(row["name"]) for row in session.query(dialect.databases_query)]
    return sorted(n for n in names if n.lower() not in SYSTEM_DATABASES)


def wipe(session: Session, dialect: Dialect) -> list[str]:
    """Drop the user databases and forget replication and GTID history, unlogged (root session).

    Returns the databases dropped. The server's own schemas (users, grants) stay: the donor's copy
    replaces them on load.
    """
    databases = user_databases(session, dialect)
    session.execute(dialect.disable_binlog_for_session, *dialect.fence())
    session.execute(*dialect.wipe(databases))
    return databases


def dump_command(defaults: Path) -> list[str]:
    """MariaDB: a consistent snapshot of every database with the donor's GTID position applied at the end."""
    return [
        Tools.for_flavor(Flavor.MARIADB).dump,
        f"--defaults-extra-file={defaults}",  # must come first
        "--all-databases",
        "--single-transaction",
        "--quick",
        "--master-data=1",
        "--gtid",
        "--routines",
        "--events",
        "--triggers",
        "--hex-blob",
        "--flush-privileges",
        "--default-character-set=utf8mb4",
        "--max-allowed-packet=1G",
        # The target's replication state table is its own; the dump's SET gtid_slave_pos fills it.
        "--ignore-table=mysql.gtid_slave_pos",
    ]


def load_command(defaults: Path) -> list[str]:
    """MariaDB: the client that loads the dump into the target with the binary log off."""
    return [
        Tools.for_flavor(Flavor.MARIADB).client,
        f"--defaults-extra-file={defaults}",
        "--batch",
        "--binary-mode",
        "--default-character-set=utf8mb4",
        "--max-allowed-packet=1G",
        "--init-command=SET SESSION sql_log_bin=0",
    ]


def _tail(path: Path, secrets: tuple[str, ...]) -> str:
    text = path.read_text(errors="replace")[-_STDERR_TAIL:].strip() if path.exists() else ""
    return redact(text, secrets)


def stream_dump(donor: SeedEndpoint, target: SeedEndpoint, timeout: float) -> float:
    """MariaDB: pipe a dump of `donor` into `target` (bounded by `timeout`); returns seconds taken.

    Raises SeedError with the tools' redacted error output.
    """
    started = time.monotonic()
    secrets = (donor.login.password, target.login.password)
    with tempfile.TemporaryDirectory(prefix="mysqlop-seed-") as work:
        ca_file = ""
        if donor.ca_pem:  # the tools verify both servers' chains against the cluster's CA
            ca_file = str(Path(work) / "ca.crt")
            Path(ca_file).write_text(donor.ca_pem)
        source = Instance(donor.host, donor.login, Flavor.MARIADB, donor.port, ssl_ca=ca_file)
        sink = Instance(target.host, target.login, Flavor.MARIADB, target.port, ssl_ca=ca_file)
        return _stream(source, sink, work, started, timeout, secrets)


def _stream(
    source: Instance, sink: Instance, work: str, started: float, timeout: float, secrets: tuple[str, ...]
) -> float:
    """Pipe mariadb-dump of `source` into mariadb on `sink` (both through option files in `work`)."""
    with (
        defaults_file(source, work) as source_defaults,
        defaults_file(sink, work) as sink_defaults,
    ):
        dump_err, load_err = Path(work) / "dump.err", Path(work) / "load.err"
        with dump_err.open("wb") as dump_log, load_err.open("wb") as load_log:
            dump = subprocess.Popen(
                dump_command(source_defaults), stdout=subprocess.PIPE, stderr=dump_log, env=child_env()
            )
            assert dump.stdout is not None
            try:
                load = subprocess.Popen(
                    load_command(sink_defaults), stdin=dump.stdout, stdout=subprocess.DEVNULL,
                    stderr=load_log, env=child_env(),
                )
            except OSError:
                dump.kill()
                dump.wait()
                raise
            dump.stdout.close()  # the loader holds the read end now
            deadline = started + timeout
            codes: list[int | None] = [None, None]
            try:
                for index, process in enumerate((load, dump)):
                    codes[index] = process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                for process in (dump, load):
                    process.kill()
                    process.wait()
                raise SeedError(
                    f"copy from {source.host} to {sink.host} took longer than {timeout:.0f}s"
                ) from None
        load_code, dump_code = codes
        if dump_code != 0:
            raise SeedError(f"dump of {source.host} failed ({dump_code}): {_tail(dump_err, secrets)}")
        if load_code != 0:
            raise SeedError(f"load into {sink.host} failed ({load_code}): {_tail(load_err, secrets)}")
    return time.monotonic() - started


BINLOG_STATE_QUERY = Statement("SELECT @@global.gtid_binlog_state AS state")
SLAVE_POS_QUERY = Statement("SELECT @@global.gtid_slave_pos AS pos")


def donor_binlog_state(session: Session) -> str:
    """MariaDB: the donor's per-(domain, server) history, read before its snapshot is taken."""
    row = session.query_one(BINLOG_STATE_QUERY) or {}
    return str(row.get("state") or "")


def restore_binlog_state(session: Session, donor_state: str) -> str:
    """MariaDB: after the load, give the target the donor's whole GTID history, not only the
    position: a switchover or failover checks containment per (domain, server_id), and a position
    names one server per domain. The donor's state read before the snapshot holds only transactions
    the snapshot has; the position adds the last one. Needs an empty binary log (the load was
    unlogged). Returns the state set."""
    position = str((session.query_one(SLAVE_POS_QUERY) or {}).get("pos") or "")
    state = gtid.merge_mariadb(donor_state, position)
    session.execute(Statement("SET SESSION sql_log_bin=0"), Statement("RESET MASTER"),
                    Statement("SET GLOBAL gtid_binlog_state = %s", (state,)))
    return state


# "Restart server failed (mysqld is not managed by supervisor process)": the copy is complete and
# mysqld shuts down to load it; with no mysqld_safe/systemd around it (a container's mysqld is PID 1),
# the container exits and the kubelet starts it again.
CLONE_DONE_RESTART_BY_CONTAINER = 3707


def clone(session: Session, dialect: Dialect, donor: SeedEndpoint, tls: bool = False) -> None:
    """MySQL: copy the donor's data directory into this instance with the clone plugin.

    The recipient restarts when the clone is done (itself under a supervisor, else through its
    container's restart), so a lost connection or error 3707 at the end is success.
    With `tls` the copy is TLS, verified with the recipient's own CA file (when it has one).
    """
    if not isinstance(dialect, MysqlDialect):
        raise SeedError("CLONE INSTANCE is MySQL only")
    statements = clone_statements(session, dialect, donor, tls)
    try:
        session.execute(*statements)
    except InstanceUnreachable:
        log.info("instance %s restarts after the clone", session.host)
    except SqlError as error:
        if error.code != CLONE_DONE_RESTART_BY_CONTAINER:
            raise
        log.info("instance %s: clone complete; mysqld stops and its container restarts it", session.host)


def clone_statements(
    session: Session, dialect: MysqlDialect, donor: SeedEndpoint, tls: bool = False
) -> list[Statement]:
    """The recipient's statements: load the plugin if missing, accept the donor, clone. With `tls`
    the donor is verified with the recipient's own CA file (its ssl_ca), when it has one."""
    ca_path = str((session.query_one(dialect.ssl_ca_query) or {}).get("ssl_ca") or "") if tls else ""
    return recipient_clone_statements(session, dialect, donor, ca_path)


def recipient_clone_statements(
    session: Session, dialect: MysqlDialect, donor: SeedEndpoint, ca_path: str = "", data_directory: str = ""
) -> list[Statement]:
    """The recipient's statements for a clone of `donor`: the plugin installed when missing, then
    `MysqlDialect.clone_from` (TLS verified with `ca_path`, a file the recipient mysqld reads; into
    `data_directory` when given, keeping the recipient's own data)."""
    installed = session.query_one(dialect.clone_plugin_query) is not None
    return clone_plan(dialect, donor, installed, ca_path, data_directory)


def clone_plan(
    dialect: MysqlDialect, donor: SeedEndpoint, installed: bool, ca_path: str = "", data_directory: str = ""
) -> list[Statement]:
    """What a recipient runs to clone `donor` (pure): INSTALL PLUGIN unless `installed`, then the clone."""
    statements = [] if installed else [dialect.install_clone]
    return statements + dialect.clone_from(
        donor.host, donor.port, donor.login.user, donor.login.password, ca_path, data_directory
    )


def prepare_clone_donor(session: Session, dialect: MysqlDialect) -> None:
    """MySQL: the donor needs the clone plugin loaded too."""
    if session.query_one(dialect.clone_plugin_query) is None:
        session.execute(dialect.install_clone)
