"""The users the operator creates, idempotently and only when missing, with least grants.

Where each write happens, and why:
- The replication and operator users are created on EVERY instance with `sql_log_bin=0`. Every
  instance needs them before it replicates (the operator logs in as its user to attach it; a replica
  needs the replication user the moment it is promoted), and a write logged on a replica would be an
  errant GTID transaction that later blocks its promotion or rejoin.
- The application database and user are created on the PRIMARY only, logged, so they replicate with
  the data they guard and every GTID history stays one line.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from mysql_operator.conventions import (
    BACKUP_USER,
    EXPORTER_USER,
    KEY_APP_DATABASE,
    KEY_APP_PASSWORD,
    KEY_APP_USER,
    KEY_BACKUP_PASSWORD,
    KEY_EXPORTER_PASSWORD,
    KEY_OPERATOR_PASSWORD,
    KEY_REPLICATION_PASSWORD,
    KEY_ROOT_PASSWORD,
    OPERATOR_USER,
    REPLICATION_USER,
    REQUIRED_SECRET_KEYS,
    ROOT_USER,
    Flavor,
)
from mysql_operator.mysql.dialect import Dialect
from mysql_operator.mysql.session import Login, Session, Statement


@dataclass(frozen=True)
class ManagedAccount:
    """An account whose password comes from the credentials Secret (`user_key`: the name does too)."""

    user: str
    host: str
    password_key: str
    user_key: str = ""


# Every account the operator's Secret holds a password for. A physical restore re-passwords those of
# them the copied data holds: they carry the source cluster's passwords (backup/accounts.py).
MANAGED_ACCOUNTS = (
    ManagedAccount(ROOT_USER, "localhost", KEY_ROOT_PASSWORD),
    ManagedAccount(OPERATOR_USER, "%", KEY_OPERATOR_PASSWORD),
    ManagedAccount(REPLICATION_USER, "%", KEY_REPLICATION_PASSWORD),
    ManagedAccount(BACKUP_USER, "%", KEY_BACKUP_PASSWORD),
    ManagedAccount(EXPORTER_USER, "%", KEY_EXPORTER_PASSWORD),
    ManagedAccount("", "%", KEY_APP_PASSWORD, KEY_APP_USER),
)


class CredentialsError(ValueError):
    """The credentials Secret lacks a key the operator needs."""


@dataclass(frozen=True)
class ClusterCredentials:
    """Passwords from the credentials Secret; none of them shows in repr()."""

    root_password: str = field(repr=False)
    replication_password: str = field(repr=False)
    operator_password: str = field(repr=False)
    app_user: str = ""
    app_password: str = field(default="", repr=False)
    app_database: str = ""

    @classmethod
    def from_secret(cls, data: Mapping[str, str]) -> ClusterCredentials:
        """From the decoded Secret data (keys as in conventions.KEY_*)."""
        absent = [key for key in REQUIRED_SECRET_KEYS if not data.get(key)]
        if absent:
            raise CredentialsError(f"credentials lack {', '.join(absent)}")
        return cls(
            root_password=data[KEY_ROOT_PASSWORD],
            replication_password=data[KEY_REPLICATION_PASSWORD],
            operator_password=data[KEY_OPERATOR_PASSWORD],
            app_user=data.get(KEY_APP_USER, ""),
            app_password=data.get(KEY_APP_PASSWORD, ""),
            app_database=data.get(KEY_APP_DATABASE, ""),
        )

    @property
    def root(self) -> Login:
        return Login(ROOT_USER, self.root_password)

    @property
    def operator(self) -> Login:
        return Login(OPERATOR_USER, self.operator_password)

    @property
    def replication(self) -> Login:
        return Login(REPLICATION_USER, self.replication_password)

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every password, for scrubbing error texts."""
        return (self.root_password, self.replication_password, self.operator_password, self.app_password)


# The operator's user administers every instance (users, replication, seeding, live configuration,
# MysqlDatabase/MysqlUser) so that root never has to be reachable from the network. On MariaDB it
# keeps READ_ONLY ADMIN through a fence: it unfences, and creates users unlogged on read-only
# replicas; the fence ends every other client's session and takes root's bypass (mysql/actions.py).
# The image's first start grants these (resources/config.py, the initdb script); an instance that
# lacks the user (initialised before, with root@'%') gets it here, as root.
ADMIN_PRIVILEGES: dict[Flavor, tuple[str, ...]] = {
    Flavor.MYSQL: ("ALL PRIVILEGES",),
    # READ_ONLY ADMIN: not in ALL PRIVILEGES on every 10.11+
    Flavor.MARIADB: ("ALL PRIVILEGES", "READ_ONLY ADMIN"),
}


def admin_grants(flavor: Flavor, user: str) -> list[Statement]:
    """The operator user's grants (with GRANT OPTION: it creates the other users)."""
    return [
        Statement(f"GRANT {privilege} ON *.* TO %s@'%%' WITH GRANT OPTION", (user,))
        for privilege in ADMIN_PRIVILEGES[Flavor(flavor)]
    ]


def _existing_users(session: Session, dialect: Dialect) -> set[str]:
    return {str(row["user"]) for row in session.query(dialect.users_query) if str(row["host"]) == "%"}


def ensure_system_users(session: Session, dialect: Dialect, credentials: ClusterCredentials) -> list[str]:
    """Create the missing replication and operator users, unlogged. Needs a session of the operator's
    user (or, on an instance initialised before the image created that user, of root).

    Returns the names of the users created.
    """
    existing = _existing_users(session, dialect)
    wanted: list[tuple[str, str, list[Statement]]] = [
        (REPLICATION_USER, credentials.replication_password, [dialect.grant_replication(REPLICATION_USER)]),
        (OPERATOR_USER, credentials.operator_password, admin_grants(dialect.flavor, OPERATOR_USER)),
    ]
    created: list[str] = []
    session.execute(dialect.disable_binlog_for_session)
    try:
        for user, password, grants in wanted:
            if user in existing:
                continue
            session.execute(dialect.create_user(user, password), *grants)
            created.append(user)
    finally:
        session.execute(Statement("SET SESSION sql_log_bin=1"))
    return created


def ensure_application(session: Session, dialect: Dialect, credentials: ClusterCredentials) -> list[str]:
    """Create the missing application database and user on the primary, logged so it replicates.

    Needs a session of the operator's user. Returns what was created (e.g. ["database shop", "user app"]).
    """
    created: list[str] = []
    database = credentials.app_database
    if database:
        names = {str(row["name"]) for row in session.query(dialect.databases_query)}
        if database not in names:
            session.execute(dialect.create_database(database))
            created.append(f"database {database}")
    user = credentials.app_user
    if user and credentials.app_password and user not in _existing_users(session, dialect):
        statements = [dialect.create_user(user, credentials.app_password)]
        if database:
            statements.append(dialect.grant_application(user, database))
        session.execute(*statements)
        created.append(f"user {user}")
    return created


# What a consistent dump with its binlog position, and fetching binlogs, need; nothing that writes.
# MySQL: BACKUP_ADMIN, which a clone donor needs (the physical backup: it takes the backup lock).
BACKUP_GRANTS = {
    Flavor.MARIADB: "SELECT, SHOW VIEW, TRIGGER, EVENT, LOCK TABLES, RELOAD, PROCESS, BINLOG MONITOR, "
    "REPLICATION SLAVE",
    Flavor.MYSQL: "SELECT, SHOW VIEW, TRIGGER, EVENT, LOCK TABLES, RELOAD, PROCESS, REPLICATION CLIENT, "
    "REPLICATION SLAVE, BACKUP_ADMIN",
}


# The privilege a physical backup needs beyond a dump's, which backup users of earlier versions lack:
# a MySQL clone donor's BACKUP_ADMIN; mariadb-backup's PROCESS (it reads the InnoDB status).
PHYSICAL_BACKUP_PRIVILEGE = {Flavor.MYSQL: "BACKUP_ADMIN", Flavor.MARIADB: "PROCESS"}


def has_physical_backup_grant(session: Session, flavor: Flavor) -> bool:
    """Whether the session's own user holds PHYSICAL_BACKUP_PRIVILEGE."""
    wanted = PHYSICAL_BACKUP_PRIVILEGE[Flavor(flavor)]
    rows = session.query(Statement("SHOW GRANTS"))
    return any(wanted in str(value) for row in rows for value in row.values())


def ensure_exporter_user(session: Session, dialect: Dialect, password: str, *, logged: bool = False) -> None:
    """Create (or re-password) the mysqld_exporter user with read-only grants, unlogged. Needs root.

    Unlogged for the same reason as the system users: every instance gets it, replicas included.
    `logged=True` is for the primary when a replica refuses the unlogged write (MySQL's
    super_read_only binds the operator's user too): the user then reaches it through replication."""
    if not logged:
        session.execute(dialect.disable_binlog_for_session)
    try:
        session.execute(
            dialect.create_user(EXPORTER_USER, password),
            Statement("ALTER USER %s@'%%' IDENTIFIED BY %s", (EXPORTER_USER, password)),
            dialect.grant_exporter(EXPORTER_USER),
        )
    finally:
        session.execute(Statement("SET SESSION sql_log_bin=1"))


def ensure_backup_user(session: Session, dialect: Dialect, password: str, *, logged: bool = False) -> None:
    """Create (or re-password) the backup user with its read-only grants. Needs root.

    Unlogged by default, like the system users: the instance a backup is taken from is often a
    replica, where a logged write would be an errant transaction. `logged=True` is for the primary
    when a replica refuses the unlogged write (MySQL's super_read_only binds root too): the user then
    reaches every instance through replication.
    """
    if not logged:
        session.execute(dialect.disable_binlog_for_session)
    try:
        session.execute(
            dialect.create_user(BACKUP_USER, password),
            Statement("ALTER USER %s@'%%' IDENTIFIED BY %s", (BACKUP_USER, password)),
            Statement(f"GRANT {BACKUP_GRANTS[dialect.flavor]} ON *.* TO %s@'%%'", (BACKUP_USER,)),
        )
    finally:
        if not logged:
            session.execute(Statement("SET SESSION sql_log_bin=1"))
