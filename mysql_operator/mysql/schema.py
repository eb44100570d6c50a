"""SQL of MysqlDatabase and MysqlUser: databases, users and grants, run on the primary as the operator.

Everything here is logged (the binary log is on), so it replicates to every instance and each GTID
history stays one line: created once on the primary, a database or user survives any failover.
Identifiers are always backtick-quoted; a database name in a database-level GRANT also has its `_`
and `%` escaped, since there they are wildcards (`shop_1` would otherwise also match `shopx1`).
User, host and password go as parameters, never into the SQL text. Both flavors speak the same
SQL for these statements; where they differ, the difference lives here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from mysql_operator.api.schema import Grant, MysqlDatabaseSpec, MysqlUserSpec
from mysql_operator.conventions import SCHEMA_WORK_LOCK
from mysql_operator.mysql.dialect import Dialect, quote_any_identifier
from mysql_operator.mysql.session import Session, SqlError, Statement


def grant_database_name(name: str) -> str:
    """A database name as a database-level GRANT reads it literally: `_` and `%` escaped, quoted."""
    return quote_any_identifier(name.replace("\\", "\\\\").replace("_", "\\_").replace("%", "\\%"))


def grant_target(grant: Grant) -> str:
    """`db`.* (wildcards escaped) or `db`.`table` (table-level names are literal)."""
    if grant.table == "*":
        return f"{grant_database_name(grant.database)}.*"
    return f"{quote_any_identifier(grant.database)}.{quote_any_identifier(grant.table)}"


@dataclass(frozen=True)
class GrantKey:
    """One grant as applied: what was granted where; kept in status to revoke what goes away."""

    target: str
    privileges: tuple[str, ...]
    grant_option: bool

    def text(self) -> str:
        option = " WITH GRANT OPTION" if self.grant_option else ""
        return f"{', '.join(self.privileges)} ON {self.target}{option}"


def grant_keys(grants: Iterable[Grant]) -> list[GrantKey]:
    return [
        GrantKey(grant_target(g), tuple(sorted(p.value for p in g.privileges)), g.with_grant_option)
        for g in grants
    ]


def take_schema_lock(session: Session, dialect: Dialect, wait_seconds: int = 5) -> bool:
    """Hold SCHEMA_WORK_LOCK for the session (one schema session per server at a time), so that a
    fence of this server ends it; whether it was granted in time."""
    row = session.query_one(dialect.take_lock(SCHEMA_WORK_LOCK, wait_seconds))
    return row is not None and row.get("got") is not None and int(row["got"]) == 1


def is_read_only(session: Session) -> bool:
    """Whether the server refuses ordinary writes: a replica, or a fenced old primary. The operator's
    user writes through MariaDB's read_only (it holds READ_ONLY ADMIN), so schema work checks this
    first and never leaves a transaction on an instance that is not the serving primary."""
    row = session.query_one(Statement("SELECT @@GLOBAL.read_only AS ro"))
    return row is None or bool(int(row["ro"]))


# ---- databases -------------------------------------------------------------------------------------


def database_exists(session: Session, name: str) -> bool:
    row = session.query_one(
        Statement(
            "SELECT SCHEMA_NAME AS name FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", (name,)
        )
    )
    return row is not None


def create_database(spec: MysqlDatabaseSpec) -> list[Statement]:
    """CREATE DATABASE IF NOT EXISTS, then ALTER to the wanted character set (and collation)."""
    name = quote_any_identifier(spec.name)
    options = f" CHARACTER SET {spec.character_set}" + (
        f" COLLATE {spec.collation}" if spec.collation else ""
    )
    return [
        Statement(f"CREATE DATABASE IF NOT EXISTS {name}{options}"),
        Statement(f"ALTER DATABASE {name}{options}"),
    ]


def drop_database(name: str) -> Statement:
    return Statement(f"DROP DATABASE IF EXISTS {quote_any_identifier(name)}")


# ---- users -------------------------------------------------------------------------------------------


def user_exists(session: Session, user: str, host: str) -> bool:
    row = session.query_one(
        Statement("SELECT User FROM mysql.user WHERE User = %s AND Host = %s", (user, host))
    )
    return row is not None


def create_user(spec: MysqlUserSpec, password: str) -> Statement:
    return Statement(
        "CREATE USER IF NOT EXISTS %s@%s IDENTIFIED BY %s WITH MAX_USER_CONNECTIONS %s",
        (spec.user, spec.host, password, spec.max_user_connections),
    )


def alter_user(spec: MysqlUserSpec, password: str) -> Statement:
    """A new password and limits, for an existing user."""
    return Statement(
        "ALTER USER %s@%s IDENTIFIED BY %s WITH MAX_USER_CONNECTIONS %s",
        (spec.user, spec.host, password, spec.max_user_connections),
    )


def drop_user(user: str, host: str) -> Statement:
    return Statement("DROP USER IF EXISTS %s@%s", (user, host))


def revoke_statements(
    user: str, host: str, applied: Sequence[GrantKey], wanted: Sequence[GrantKey]
) -> list[Statement]:
    """Revoke what was applied and is no longer wanted (a grant whose privileges changed included)."""
    statements = []
    for key in applied:
        if key not in wanted:
            revoke = ", ".join([*key.privileges, *(["GRANT OPTION"] if key.grant_option else [])])
            target = key.target.replace("%", "%%")
            statements.append(Statement(f"REVOKE {revoke} ON {target} FROM %s@%s", (user, host)))
    return statements


def grant_statements(user: str, host: str, wanted: Sequence[GrantKey]) -> list[Statement]:
    """GRANT what is wanted (idempotent: granting a held privilege changes nothing)."""
    return [Statement(f"GRANT {key.text().replace('%', '%%')} TO %s@%s", (user, host)) for key in wanted]


# "There is no such grant defined": revoking what someone already revoked by hand is done already.
NO_SUCH_GRANT = (1141, 1147)


def apply_grants(
    session: Session, user: str, host: str, applied: Sequence[GrantKey], wanted: Sequence[GrantKey]
) -> None:
    """Bring the user's managed grants from `applied` to `wanted`."""
    for statement in revoke_statements(user, host, applied, wanted):
        try:
            session.execute(statement)
        except SqlError as error:
            if error.code not in NO_SUCH_GRANT:
                raise
    session.execute(*grant_statements(user, host, wanted))
