"""The MysqlDatabase and MysqlUser kinds: databases and users (with their grants) as objects.

Grants are part of the MysqlUser (`spec.grants`), not a kind of their own: a grant means nothing
without its user, one object per login keeps its password, host and privileges in one place that
is reconciled in one pass (created, re-passworded, grants added and revoked together), and RBAC
stays simple (whoever may edit a MysqlUser decides what it may do). Privileges are the
database-level ones only (an enum): no global privilege (SUPER, FILE, PROCESS, CREATE USER, ...)
can be handed out through the API, and the system schemas are off limits, so no managed user can
read password hashes or step on the operator's own users.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import ConfigDict, Field, field_validator, model_validator

from mysql_operator.api.base import _Model, cel
from mysql_operator.api.crd import build_crd

DATABASE_KIND = "MysqlDatabase"
DATABASE_PLURAL = "mysqldatabases"
USER_KIND = "MysqlUser"
USER_PLURAL = "mysqlusers"

NAME_PATTERN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
# Database names: letters, digits, `_`, `$` and `-` (quoted with backticks everywhere; `_` is escaped
# in GRANT, where it is a wildcard).
DATABASE_PATTERN = r"^[A-Za-z0-9_$-]{1,64}$"
TABLE_PATTERN = r"^(\*|[A-Za-z0-9_$-]{1,64})$"
USER_PATTERN = r"^[A-Za-z0-9_.-]{1,32}$"
# A host as MySQL matches it: a name or address, `%`/`_` wildcards, or address/netmask.
HOST_PATTERN = r"^([A-Za-z0-9%_.:-]{1,255}|[0-9.]{7,15}/[0-9.]{7,15})$"
CHARSET_PATTERN = r"^[a-z0-9_]{1,32}$"
SYSTEM_SCHEMAS = ("mysql", "sys", "performance_schema", "information_schema")
_CEL_SYSTEM = "[" + ", ".join(f"'{s}'" for s in SYSTEM_SCHEMAS) + "]"


class RetentionPolicy(StrEnum):
    """What deleting the object does to what it created on the server."""

    KEEP = "Keep"
    DELETE = "Delete"


class Privilege(StrEnum):
    """Database-level privileges (both flavors)."""

    ALL = "ALL PRIVILEGES"
    SELECT = "SELECT"
    INSERT = "INSERT"
    UPDATE = "UPDATE"
    DELETE = "DELETE"
    CREATE = "CREATE"
    DROP = "DROP"
    ALTER = "ALTER"
    INDEX = "INDEX"
    REFERENCES = "REFERENCES"
    CREATE_TEMPORARY_TABLES = "CREATE TEMPORARY TABLES"
    LOCK_TABLES = "LOCK TABLES"
    EXECUTE = "EXECUTE"
    CREATE_VIEW = "CREATE VIEW"
    SHOW_VIEW = "SHOW VIEW"
    CREATE_ROUTINE = "CREATE ROUTINE"
    ALTER_ROUTINE = "ALTER ROUTINE"
    EVENT = "EVENT"
    TRIGGER = "TRIGGER"


_IMMUTABLE_CLUSTER = cel("self.cluster == oldSelf.cluster", "cluster is immutable", fieldPath=".cluster")
_RETENTION = Field(
    default=RetentionPolicy.KEEP,
    description="Keep (default): deleting this object leaves the database/user on the server. Delete: "
    "it is dropped (the object then carries a finalizer until the operator has dropped it).",
)


def _not_system(name: str) -> str:
    if name.lower() in SYSTEM_SCHEMAS:
        raise ValueError(f"{name!r} is a system schema: not managed through this API")
    return name


class MysqlDatabaseSpec(_Model):
    """A database on a MysqlCluster, created on its primary (and so replicated to every instance)."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _IMMUTABLE_CLUSTER,
                cel(
                    "self.name == oldSelf.name",
                    "name is immutable (create another object)",
                    fieldPath=".name",
                ),
                cel(
                    "!(self.name.lowerAscii() in " + _CEL_SYSTEM + ")",
                    "name may not be a system schema",
                    fieldPath=".name",
                ),
            ]
        }
    )
    cluster: str = Field(
        description="Name of the MysqlCluster (same namespace).", pattern=NAME_PATTERN, max_length=253
    )
    name: str = Field(
        description="Name of the database on the server.", pattern=DATABASE_PATTERN, max_length=64
    )
    character_set: str = Field(
        default="utf8mb4", pattern=CHARSET_PATTERN, max_length=32, description="Default character set."
    )
    collation: str | None = Field(
        default=None, pattern=CHARSET_PATTERN, max_length=32, description="Default collation."
    )
    retention_policy: RetentionPolicy = _RETENTION

    @field_validator("name")
    @classmethod
    def _not_system_schema(cls, value: str) -> str:
        return _not_system(value)


class SecretKeyRef(_Model):
    name: str = Field(description="Secret in the same namespace.", pattern=NAME_PATTERN, max_length=253)
    key: str = Field(description="Key holding the password.", pattern=r"^[-._a-zA-Z0-9]{1,253}$")


class Grant(_Model):
    """Privileges on one database (all its tables, or one)."""

    privileges: list[Privilege] = Field(min_length=1, max_length=len(Privilege), description="Privileges.")
    database: str = Field(
        description="Database the privileges are on.", pattern=DATABASE_PATTERN, max_length=64
    )
    table: str = Field(
        default="*", description="A table of it, or * for all.", pattern=TABLE_PATTERN, max_length=64
    )
    with_grant_option: bool = Field(default=False, description="May pass these privileges on.")

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "!(self.database.lowerAscii() in " + _CEL_SYSTEM + ")",
                    "grants on system schemas are not allowed",
                    fieldPath=".database",
                )
            ]
        }
    )

    @field_validator("database")
    @classmethod
    def _not_system_schema(cls, value: str) -> str:
        return _not_system(value)

    @field_validator("privileges")
    @classmethod
    def _unique(cls, value: list[Privilege]) -> list[Privilege]:
        if len(set(value)) != len(value):
            raise ValueError("privileges are listed twice")
        return value


class MysqlUserSpec(_Model):
    """A user on a MysqlCluster with its grants, created on its primary (replicated)."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _IMMUTABLE_CLUSTER,
                cel(
                    "self.user == oldSelf.user",
                    "user is immutable (create another object)",
                    fieldPath=".user",
                ),
                cel(
                    "self.host == oldSelf.host",
                    "host is immutable (create another object)",
                    fieldPath=".host",
                ),
                cel(
                    "self.user.lowerAscii() != 'root' && !self.user.lowerAscii().startsWith('mysqlop_')",
                    "user is reserved for the operator (root, mysqlop_*)",
                    fieldPath=".user",
                ),
            ]
        }
    )
    cluster: str = Field(
        description="Name of the MysqlCluster (same namespace).", pattern=NAME_PATTERN, max_length=253
    )
    user: str = Field(description="User name on the server.", pattern=USER_PATTERN, max_length=32)
    host: str = Field(
        default="%",
        description="Host part of the account: a name or address, % and _ wildcards, or address/netmask.",
        pattern=HOST_PATTERN,
        max_length=255,
    )
    password_secret_ref: SecretKeyRef = Field(
        description="Where the password is (never in the spec); a change of the Secret re-passwords the user."
    )
    grants: list[Grant] = Field(default_factory=list, max_length=64, description="What the user may do.")
    max_user_connections: int = Field(default=0, ge=0, le=100000, description="0: no limit.")
    retention_policy: RetentionPolicy = _RETENTION

    @field_validator("user")
    @classmethod
    def _not_operator_user(cls, value: str) -> str:
        if value.lower() == "root" or value.lower().startswith("mysqlop_"):
            raise ValueError(f"user {value!r} is reserved for the operator")
        return value

    @model_validator(mode="after")
    def _distinct_grants(self) -> MysqlUserSpec:
        targets = [(g.database, g.table) for g in self.grants]
        if len(set(targets)) != len(targets):
            raise ValueError("grants: one entry per database and table")
        return self


class SchemaStatus(_Model):
    model_config = ConfigDict(extra="allow")

    cluster: str | None = Field(default=None, description="The MysqlCluster this belongs to.")
    ready: bool = False
    conditions: list[dict[str, Any]] = Field(default_factory=list)
    message: str | None = None
    observed_generation: int | None = None


def _columns(name_path: str, name_title: str) -> list[dict[str, Any]]:
    return [
        {"name": "Cluster", "type": "string", "jsonPath": ".spec.cluster"},
        {"name": name_title, "type": "string", "jsonPath": name_path},
        {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
        {"name": "Retention", "type": "string", "jsonPath": ".spec.retentionPolicy"},
        {"name": "Message", "type": "string", "jsonPath": ".status.message", "priority": 1},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]


def mysqldatabase_crd() -> dict[str, Any]:
    return build_crd(
        kind=DATABASE_KIND,
        plural=DATABASE_PLURAL,
        singular="mysqldatabase",
        short_names=["mdb"],
        categories=[],
        description="A database on a MysqlCluster, managed by mysql-operator.",
        spec_model=MysqlDatabaseSpec,
        status_model=SchemaStatus,
        columns=_columns(".spec.name", "Database"),
    )


def mysqluser_crd() -> dict[str, Any]:
    return build_crd(
        kind=USER_KIND,
        plural=USER_PLURAL,
        singular="mysqluser",
        short_names=["muser"],
        categories=[],
        description="A user (with its grants) on a MysqlCluster, managed by mysql-operator.",
        spec_model=MysqlUserSpec,
        status_model=SchemaStatus,
        columns=_columns(".spec.user", "User"),
    )
