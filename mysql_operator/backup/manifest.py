"""What a finished backup is: its manifest (written last), the keys of its objects, its dump position."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mysql_operator.conventions import Flavor

FORMAT_VERSION = 1
BACKUPS_PREFIX = "backups/"
BINLOGS_PREFIX = "binlogs/"
DUMP_NAME = "dump.sql.gz"
MANIFEST_NAME = "manifest.json"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,252}$")


class BackupError(Exception):
    """Base of the errors of the backup package; texts never carry a password."""


class BackupNotFound(BackupError):
    """No complete backup at that location (missing, or its manifest was never written)."""


class BackupCorrupt(BackupError):
    """A backup whose manifest or dump does not check out (unreadable manifest, sha256 mismatch)."""


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise ValueError(f"invalid backup name {name!r}: letters, digits, '.', '_', '-' only")
    return name


def location_of(name: str) -> str:
    """Where backup `name` lives inside its storage (what MysqlBackup status.location shows)."""
    return f"{BACKUPS_PREFIX}{check_name(name)}"


def name_of(location: str) -> str:
    """The backup name of a location (accepts `backups/<name>` or a bare name)."""
    name = location.strip("/").removeprefix(BACKUPS_PREFIX)
    return check_name(name)


def dump_key(name: str) -> str:
    return f"{location_of(name)}/{DUMP_NAME}"


def manifest_key(name: str) -> str:
    return f"{location_of(name)}/{MANIFEST_NAME}"


def utc_now() -> datetime:
    return datetime.now(UTC)


def rfc3339(moment: datetime) -> str:
    """A UTC time as Kubernetes writes it, with milliseconds: 2026-11-25T15:16:30.123Z."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


class Manifest(BaseModel):
    """The record of one complete backup. Its presence is what makes a backup complete."""

    model_config = ConfigDict(
        populate_by_name=True,
        extra="ignore",
        frozen=True,
        alias_generator=lambda name: re.sub(r"_([a-z])", lambda m: m.group(1).upper(), name),
    )

    format_version: int = FORMAT_VERSION
    name: str
    cluster: str
    flavor: Flavor
    server_version: str
    instance: str = Field(description="The instance the dump was taken from.")
    started_at: str
    finished_at: str
    databases: list[str]
    gtid_position: str = ""
    binlog_file: str | None = None
    binlog_position: int | None = None
    binlog_source: str | None = Field(default=None, description="binlogs/<source>/ holds its binlogs.")
    dump_key: str
    size: int = Field(ge=0, description="Bytes of the stored (compressed) dump.")
    uncompressed_size: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="Of the stored (compressed) dump.")
    compression: str = "gzip"
    method: str = Field(default="logical", description="logical (a SQL dump) or physical (the data files).")
    archive: str | None = Field(default=None, description="Physical: the data's container, mbstream or tar.")

    @property
    def location(self) -> str:
        return location_of(self.name)

    @property
    def started(self) -> datetime:
        return parse_time(self.started_at)

    @property
    def finished(self) -> datetime:
        return parse_time(self.finished_at)

    def status_fields(self) -> dict[str, Any]:
        """The MysqlBackup status of this backup (camelCase, as the API shows it)."""
        from mysql_operator.api.backup import BackupMethod, BackupPhase, MysqlBackupStatus, human_size

        status = MysqlBackupStatus(
            phase=BackupPhase.COMPLETED,
            start_time=self.started_at,
            completion_time=self.finished_at,
            size=self.size,
            size_human=human_size(self.size),
            location=self.location,
            gtid_position=self.gtid_position or None,
            binlog_file=self.binlog_file,
            binlog_position=self.binlog_position,
            instance=self.instance,
            method=BackupMethod(self.method),
            message=f"{len(self.databases)} database(s), {human_size(self.uncompressed_size)} of "
                    + ("data files" if self.method == "physical" else "SQL"),
        )
        return status.wire()

    def to_json(self) -> bytes:
        return (json.dumps(self.model_dump(by_alias=True, mode="json"), indent=2) + "\n").encode()

    @classmethod
    def from_json(cls, data: bytes, where: str) -> Manifest:
        try:
            manifest = cls.model_validate(json.loads(data))
        except (ValueError, ValidationError) as error:
            raise BackupCorrupt(f"manifest {where} is unreadable: {_first_line(error)}") from None
        if manifest.format_version > FORMAT_VERSION:
            raise BackupCorrupt(
                f"manifest {where} has format {manifest.format_version}; this operator reads up to "
                f"{FORMAT_VERSION}"
            )
        return manifest


def _first_line(error: Exception) -> str:
    return str(error).splitlines()[0] if str(error) else type(error).__name__


@dataclass(frozen=True)
class DumpPosition:
    """Where the dump's snapshot sits in the binlog of the server it was taken on."""

    binlog_file: str | None
    binlog_position: int | None
    gtid_position: str


_BINLOG_COORDINATES = re.compile(
    r"^-- CHANGE (?:MASTER|REPLICATION SOURCE) TO (?:MASTER|SOURCE)_LOG_FILE='([^']+)', "
    r"(?:MASTER|SOURCE)_LOG_POS=(\d+);",
    re.MULTILINE,
)
_MARIADB_GTID = re.compile(r"^-- SET GLOBAL gtid_slave_pos='([^']*)';", re.MULTILINE)
_MYSQL_GTID = re.compile(r"^SET @@GLOBAL\.GTID_PURGED=(?:/\*!80000 '\+'\*/ )?'([^']*)';", re.MULTILINE)


def parse_dump_position(head: str, tail: str) -> DumpPosition:
    """The binlog coordinates and GTID position a dump records in comments (head) or at its end.

    mariadb-dump --gtid writes gtid_slave_pos at the end, mysqldump GTID_PURGED at the start.
    """
    text = head + "\n" + tail
    coordinates = _BINLOG_COORDINATES.search(text)
    gtid = _MARIADB_GTID.search(text) or _MYSQL_GTID.search(text)
    return DumpPosition(
        binlog_file=coordinates.group(1) if coordinates else None,
        binlog_position=int(coordinates.group(2)) if coordinates else None,
        gtid_position="".join(gtid.group(1).split()) if gtid else "",
    )


def binlog_sequence(file: str) -> tuple[str, int]:
    """`mysql-bin.000012` -> ("mysql-bin", 12): binlog files sort by their numeric extension."""
    base, _, number = file.rpartition(".")
    if not base or not number.isdigit():
        raise ValueError(f"not a binlog file name: {file!r}")
    return base, int(number)
