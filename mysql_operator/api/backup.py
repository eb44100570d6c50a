"""The backup API: the MysqlCluster `backup` and `restoreFrom` sections and the MysqlBackup kind.

Same habits as `models.py`: pydantic is the source of the CRD schema, every rule the schema can
express is carried into it (patterns, ranges, CEL) and checked again by the models.
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import ConfigDict, Field, field_validator, model_validator

from mysql_operator.api.base import _Model, cel

BACKUP_KIND = "MysqlBackup"
BACKUP_PLURAL = "mysqlbackups"
BACKUP_SINGULAR = "mysqlbackup"
BACKUP_SHORT_NAMES = ["mysqlbackup", "mbk"]

# Keys of the Secret named by `s3.credentialsSecret`.
KEY_S3_ACCESS_KEY_ID = "access-key-id"
KEY_S3_SECRET_ACCESS_KEY = "secret-access-key"

# Five cron fields (minute hour day-of-month month day-of-week) of digits, names, * , - /,
# or one of the @macros. The evaluator (mysql_operator.backup.cron) checks ranges.
_CRON_FIELD = r"[0-9A-Za-z*,/-]+"
CRON_PATTERN = (
    r"^((@(yearly|annually|monthly|weekly|daily|midnight|hourly))|"
    rf"({_CRON_FIELD}\s+{_CRON_FIELD}\s+{_CRON_FIELD}\s+{_CRON_FIELD}\s+{_CRON_FIELD}))$"
)
# Schedules that can never fire, in the forms people write them: the 30th/31st of February, or the
# 31st of 30-day months, with day-of-week unrestricted. The model refuses every never-firing one.
_NEVER_FIRES = (
    r"^\s*\S+\s+\S+\s+(30|31)(,(30|31))*\s+(2|(?i:feb))\s+\*\s*$",
    r"^\s*\S+\s+\S+\s+31\s+(4|6|9|11|(?i:apr|jun|sep|nov))(,(4|6|9|11|(?i:apr|jun|sep|nov)))*\s+\*\s*$",
)
TIME_ZONE_PATTERN = r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$"
NAME_PATTERN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
# RFC 3339 with a mandatory offset, as Kubernetes date-time fields are.
RFC3339_PATTERN = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})$"
)
PREFIX_PATTERN = r"^([A-Za-z0-9!_.*'()-]+(/[A-Za-z0-9!_.*'()-]+)*)?$"
PATH_PATTERN = r"^([A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*)?$"


class BackupMethod(StrEnum):
    """How a backup is taken: SQL statements, or the data files themselves."""

    LOGICAL = "logical"
    PHYSICAL = "physical"


METHOD_DESCRIPTION = (
    "logical: an SQL dump (mariadb-dump / mysqldump), restored statement by statement; works across "
    "versions. physical: the data files (MariaDB: mariadb-backup, run next to the instance's volume; "
    "MySQL: the clone plugin into a throwaway server of the same image), restored at the speed of the "
    "disk into a new cluster's first instance before it starts; the restoring server must be the same "
    "version."
)


def parse_rfc3339(value: str) -> datetime:
    """An RFC 3339 time (offset required) as an aware datetime."""
    if not re.fullmatch(RFC3339_PATTERN, value):
        raise ValueError(f"not an RFC 3339 time with an offset: {value!r}")
    return datetime.fromisoformat(value.replace("z", "Z").replace("t", "T"))


class PvcVolume(_Model):
    """A PersistentVolumeClaim mounted into the backup Job."""

    claim_name: str = Field(
        description="Name of an existing PVC in the cluster's namespace.", pattern=NAME_PATTERN
    )
    path: str = Field(
        default="",
        description="Directory inside the volume; default: its root.",
        pattern=PATH_PATTERN,
        max_length=512,
    )

    @field_validator("path")
    @classmethod
    def _no_parent(cls, value: str) -> str:
        if ".." in value.split("/"):
            raise ValueError("path may not contain '..'")
        return value


class S3Bucket(_Model):
    """An S3-compatible bucket."""

    endpoint: str = Field(
        description="URL of the S3 endpoint, e.g. https://s3.eu-west-1.amazonaws.com.",
        pattern=r"^https?://[^\s/]+(/[^\s]*)?$",
        max_length=512,
    )
    bucket: str = Field(description="Bucket name.", pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
    prefix: str = Field(
        default="",
        description="Key prefix of every object (no leading or trailing '/').",
        pattern=PREFIX_PATTERN,
    )
    region: str = Field(
        default="us-east-1", description="Region of the bucket.", pattern=r"^[a-z0-9-]{1,64}$"
    )
    credentials_secret: str = Field(
        description=f"Secret with keys {KEY_S3_ACCESS_KEY_ID} and {KEY_S3_SECRET_ACCESS_KEY}.",
        pattern=NAME_PATTERN,
        max_length=253,
    )
    force_path_style: bool = Field(
        default=True, description="Address the bucket as <endpoint>/<bucket> (most non-AWS servers need it)."
    )


class BackupStorage(_Model):
    """Where backups go: exactly one of `pvc` or `s3`."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel("has(self.pvc) != has(self.s3)", "storage needs exactly one of pvc or s3"),
            ]
        }
    )
    pvc: PvcVolume | None = None
    s3: S3Bucket | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> BackupStorage:
        if (self.pvc is None) == (self.s3 is None):
            raise ValueError("storage needs exactly one of pvc or s3")
        return self


def _cel_string(text: str) -> str:
    """A CEL string literal of `text` (regular expressions keep their backslashes)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


class BackupSchedule(_Model):
    """Scheduled backups of a cluster, taken by the operator itself (no CronJob per cluster)."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    " && ".join(f"!self.schedule.matches({_cel_string(p)})" for p in _NEVER_FIRES),
                    "backup.schedule never fires: that day of month does not exist in the months given",
                    fieldPath=".schedule",
                )
            ]
        }
    )
    schedule: str = Field(
        default="0 3 * * *",
        description="Cron expression (5 fields, standard cron semantics: day of month OR day of week "
        "when both are restricted) or @daily/@hourly/...; when to take a backup. A schedule that "
        "never fires is refused.",
        pattern=CRON_PATTERN,
        max_length=128,
    )
    time_zone: str | None = Field(
        default=None,
        description="IANA time zone the schedule is read in (e.g. Europe/Berlin); default UTC.",
        pattern=TIME_ZONE_PATTERN,
        max_length=64,
    )
    retention: int = Field(default=7, ge=1, le=1000, description="How many complete backups to keep.")
    storage: BackupStorage = Field(description="Where backups and archived binlogs go.")
    method: BackupMethod = Field(default=BackupMethod.LOGICAL, description=METHOD_DESCRIPTION)
    binlog_archive_interval_seconds: int = Field(
        default=300,
        ge=10,
        le=86400,
        description="How often binlogs are archived: the most data a point-in-time restore can lose.",
    )

    @model_validator(mode="after")
    def _valid_cron(self) -> BackupSchedule:
        from mysql_operator.backup.cron import CronSchedule  # the evaluator owns the full grammar

        try:
            CronSchedule.parse(self.schedule, self.time_zone)
        except ValueError as error:
            raise ValueError(f"backup.schedule: {error}") from None
        return self


class RestoreFrom(_Model):
    """Where a new cluster's data comes from; read only when the cluster is created."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "has(self.backup) != has(self.location)",
                    "restoreFrom needs exactly one of backup or location",
                ),
                cel(
                    "!has(self.location) || has(self.storage)",
                    "restoreFrom.location needs restoreFrom.storage",
                    fieldPath=".storage",
                ),
                cel(
                    "!has(self.method) || has(self.location)",
                    "restoreFrom.method goes with location (a MysqlBackup records its own method)",
                    fieldPath=".method",
                ),
            ]
        }
    )
    backup: str | None = Field(
        default=None, description="Name of a MysqlBackup in the same namespace.", pattern=NAME_PATTERN
    )
    location: str | None = Field(
        default=None,
        description="Location of a backup in `storage` (as in a MysqlBackup's status.location).",
        pattern=PATH_PATTERN,
        max_length=512,
    )
    storage: BackupStorage | None = Field(default=None, description="Storage holding `location`.")
    method: BackupMethod | None = Field(
        default=None,
        description="How the backup at `location` was taken (default logical); a MysqlBackup says it "
        "itself. Checked against the backup's manifest.",
    )
    point_in_time: str | None = Field(
        default=None,
        description="Replay archived binlogs up to this RFC 3339 time (whole seconds: transactions "
        "stamped before that second are restored).",
        pattern=RFC3339_PATTERN,
    )

    @model_validator(mode="after")
    def _one_source(self) -> RestoreFrom:
        if (self.backup is None) == (self.location is None):
            raise ValueError("restoreFrom needs exactly one of backup or location")
        if self.location is not None and self.storage is None:
            raise ValueError("restoreFrom.location needs restoreFrom.storage")
        if self.method is not None and self.location is None:
            raise ValueError("restoreFrom.method goes with location (a MysqlBackup records its own method)")
        if self.point_in_time is not None:
            parse_rfc3339(self.point_in_time)
        return self


class MysqlBackupSpec(_Model):
    """One backup of a cluster."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [cel("self == oldSelf", "a MysqlBackup's spec is immutable")]
        }
    )
    cluster: str = Field(description="Name of the MysqlCluster to back up.", pattern=NAME_PATTERN)
    storage: BackupStorage | None = Field(
        default=None, description="Where to put it; default: the cluster's backup.storage."
    )
    method: BackupMethod | None = Field(
        default=None, description="Default: the cluster's backup.method, else logical. " + METHOD_DESCRIPTION
    )


class BackupPhase(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    COMPLETED = "Completed"
    FAILED = "Failed"


class MysqlBackupStatus(_Model):
    model_config = ConfigDict(extra="allow")

    phase: BackupPhase = BackupPhase.PENDING
    start_time: str | None = None
    completion_time: str | None = None
    size: int | None = Field(default=None, ge=0, description="Bytes stored (compressed dump).")
    size_human: str | None = Field(default=None, description="`size` for people, e.g. 1.2GiB.")
    location: str | None = Field(default=None, description="Where the backup is inside its storage.")
    gtid_position: str | None = None
    binlog_file: str | None = None
    binlog_position: int | None = None
    instance: str | None = Field(default=None, description="The instance the dump was taken from.")
    method: BackupMethod | None = Field(default=None, description="logical or physical.")
    message: str | None = None
    observed_generation: int | None = None


def human_size(size: int) -> str:
    """Bytes as kubectl shows quantities: 512B, 3.4KiB, 1.2GiB."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value)}{unit}" if unit == "B" else f"{value:.1f}{unit}"
        value /= 1024
    raise AssertionError("unreachable")


def backup_printer_columns() -> list[dict[str, Any]]:
    return [
        {"name": "Cluster", "type": "string", "jsonPath": ".spec.cluster"},
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
        {"name": "Size", "type": "string", "jsonPath": ".status.sizeHuman"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        {"name": "Method", "type": "string", "jsonPath": ".status.method", "priority": 1},
        {"name": "Location", "type": "string", "jsonPath": ".status.location", "priority": 1},
        {"name": "Message", "type": "string", "jsonPath": ".status.message", "priority": 1},
    ]


def mysqlbackup_crd() -> dict[str, Any]:
    """The MysqlBackup CustomResourceDefinition as a dict."""
    from mysql_operator.api.crd import build_crd  # crd imports models, which imports this module

    return build_crd(
        kind=BACKUP_KIND,
        plural=BACKUP_PLURAL,
        singular=BACKUP_SINGULAR,
        short_names=list(BACKUP_SHORT_NAMES),
        # not the category "mysql": that word is MysqlCluster's short name, and a category with two
        # kinds makes `kubectl get mysql <name>` ambiguous
        categories=["all"],
        description="One backup of a MysqlCluster, taken by mysql-operator.",
        spec_model=MysqlBackupSpec,
        status_model=MysqlBackupStatus,
        columns=backup_printer_columns(),
    )
