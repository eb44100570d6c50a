"""What a storage holds: complete backups (with a manifest), leftovers of unfinished ones, binlogs."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime

from mysql_operator.backup.manifest import (
    BACKUPS_PREFIX,
    BINLOGS_PREFIX,
    MANIFEST_NAME,
    BackupCorrupt,
    BackupNotFound,
    Manifest,
    binlog_sequence,
    manifest_key,
    name_of,
    parse_time,
)
from mysql_operator.backup.storage import DirectoryStorage, ObjectMissing, Storage, StoredObject

SIDECAR_SUFFIX = ".json"


@dataclass(frozen=True)
class Leftover:
    """Objects of a backup that never got its manifest (died half way, or still running)."""

    name: str
    keys: tuple[str, ...]
    modified: datetime | None


@dataclass(frozen=True)
class ArchivedBinlog:
    """One binlog file whose copy finished (its sidecar was written after it)."""

    source: str
    file: str
    size: int
    sha256: str
    closed_at: datetime

    @property
    def key(self) -> str:
        return binlog_key(self.source, self.file)

    @property
    def sequence(self) -> int:
        return binlog_sequence(self.file)[1]


@dataclass
class Catalog:
    complete: list[Manifest] = field(default_factory=list)  # oldest first
    leftovers: list[Leftover] = field(default_factory=list)
    corrupt: list[str] = field(default_factory=list)  # names whose manifest does not parse
    binlogs: dict[str, list[ArchivedBinlog]] = field(default_factory=dict)  # by source, in order
    stray_binlog_keys: list[str] = field(default_factory=list)  # copies without a sidecar


def binlog_key(source: str, file: str) -> str:
    return f"{BINLOGS_PREFIX}{source}/{file}"


def sidecar_key(source: str, file: str) -> str:
    return binlog_key(source, file) + SIDECAR_SUFFIX


def read_manifest(storage: Storage, location: str) -> Manifest:
    """The manifest of the backup at `location` (or named so); BackupNotFound when there is none."""
    name = name_of(location)
    key = manifest_key(name)
    try:
        data = storage.get_bytes(key)
    except ObjectMissing:
        raise BackupNotFound(
            f"no complete backup {name!r} in {storage.describe()} (no {key}: missing, or it never finished)"
        ) from None
    manifest = Manifest.from_json(data, f"{key} in {storage.describe()}")
    if manifest.name != name:
        raise BackupCorrupt(f"{key} describes backup {manifest.name!r}, not {name!r}")
    return manifest


def scan(storage: Storage) -> Catalog:
    """Everything in a storage, sorted out."""
    catalog = Catalog()
    groups: dict[str, list[StoredObject]] = {}
    objects = storage.list(BACKUPS_PREFIX)
    if isinstance(storage, DirectoryStorage):
        objects += storage.list_partial(BACKUPS_PREFIX)
    for item in objects:
        name = item.key.removeprefix(BACKUPS_PREFIX).split("/", 1)[0]
        groups.setdefault(name, []).append(item)
    for name, items in sorted(groups.items()):
        if any(item.key.endswith(f"/{MANIFEST_NAME}") for item in items):
            try:
                catalog.complete.append(read_manifest(storage, name))
            except (BackupCorrupt, BackupNotFound, ValueError):
                catalog.corrupt.append(name)
            continue
        times = [item.modified for item in items if item.modified is not None]
        catalog.leftovers.append(
            Leftover(name, tuple(item.key for item in items), max(times) if times else None)
        )
    catalog.complete.sort(key=lambda m: (m.finished, m.name))
    _scan_binlogs(storage, catalog)
    return catalog


def _scan_binlogs(storage: Storage, catalog: Catalog) -> None:
    objects = {item.key: item for item in storage.list(BINLOGS_PREFIX)}
    for key, item in objects.items():
        if key.endswith(SIDECAR_SUFFIX):
            continue
        sidecar = objects.get(key + SIDECAR_SUFFIX)
        parts = key.removeprefix(BINLOGS_PREFIX).split("/")
        if len(parts) != 2 or sidecar is None:
            catalog.stray_binlog_keys.append(key)
            continue
        source, file = parts
        try:
            record = json.loads(storage.get_bytes(sidecar.key))
            archived = ArchivedBinlog(
                source=source,
                file=file,
                size=int(record["size"]),
                sha256=str(record["sha256"]),
                closed_at=parse_time(str(record["closedAt"])),
            )
            binlog_sequence(file)
        except (ObjectMissing, ValueError, KeyError, TypeError):
            catalog.stray_binlog_keys.append(key)
            continue
        if archived.size != item.size:
            catalog.stray_binlog_keys.append(key)
            continue
        catalog.binlogs.setdefault(source, []).append(archived)
    for files in catalog.binlogs.values():
        files.sort(key=lambda b: b.sequence)


def list_backups(storage: Storage) -> list[Manifest]:
    """Complete backups, oldest first. Backups without a manifest are not listed."""
    return scan(storage).complete
