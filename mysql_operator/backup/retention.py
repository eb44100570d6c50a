"""Retention: keep the newest N complete backups; delete the rest, leftovers, and unneeded binlogs."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

from mysql_operator.backup.catalog import Catalog, scan, sidecar_key
from mysql_operator.backup.manifest import binlog_sequence, location_of
from mysql_operator.backup.storage import Storage


@dataclass
class RetentionPlan:
    keep: list[str] = field(default_factory=list)  # backup names, oldest first
    spared: list[str] = field(default_factory=list)  # older than the newest N, kept for a restore
    delete_backups: list[str] = field(default_factory=list)
    delete_leftovers: list[str] = field(default_factory=list)
    delete_keys: list[str] = field(default_factory=list)  # every object to delete, backups' first


def plan_retention(
    catalog: Catalog, keep: int, all_keys: list[str], spare: Collection[str] = ()
) -> RetentionPlan:
    """What to delete so that the newest `keep` complete backups remain (pure).

    Backups named in `spare` (a restore still reads them) stay too, with the binlogs after them: a
    restore started from a backup must not lose it, or the binlogs it replays, half way.

    - complete backups beyond the newest `keep`: all their objects, the manifest first, so an
      interrupted deletion leaves an incomplete backup, never a manifest without its dump;
    - leftovers of unfinished backups last written before the newest complete one finished (a
      newer leftover may be a backup running now);
    - archived binlogs of a source older than the oldest kept backup's binlog file of that source.
      Sources no kept backup starts from are left alone.
    """
    if keep < 1:
        raise ValueError("retention keeps at least one backup")
    plan = RetentionPlan()
    complete = catalog.complete  # oldest first
    kept = list(complete[-keep:])
    plan.keep = [m.name for m in kept]
    newest = complete[-1].finished if complete else None
    for manifest in complete[:-keep]:
        if manifest.name in spare:
            plan.spared.append(manifest.name)
            kept.append(manifest)
            continue
        plan.delete_backups.append(manifest.name)
        prefix = location_of(manifest.name) + "/"
        keys = sorted(
            (k for k in all_keys if k.startswith(prefix)), key=lambda k: not k.endswith("manifest.json")
        )
        plan.delete_keys.extend(keys)
    for leftover in catalog.leftovers:
        if newest is not None and leftover.modified is not None and leftover.modified < newest:
            plan.delete_leftovers.append(leftover.name)
            plan.delete_keys.extend(leftover.keys)
    oldest_needed: dict[str, int] = {}
    for manifest in kept:
        if manifest.binlog_source and manifest.binlog_file:
            sequence = binlog_sequence(manifest.binlog_file)[1]
            current = oldest_needed.get(manifest.binlog_source)
            oldest_needed[manifest.binlog_source] = sequence if current is None else min(current, sequence)
    for source, binlogs in sorted(catalog.binlogs.items()):
        if source not in oldest_needed:
            continue
        for binlog in binlogs:
            if binlog.sequence < oldest_needed[source]:
                # the sidecar first: without it the file is no longer an archived binlog
                plan.delete_keys += [sidecar_key(source, binlog.file), binlog.key]
    return plan


def apply_retention(storage: Storage, keep: int, spare: Collection[str] = ()) -> RetentionPlan:
    """Delete what `plan_retention` chose from `storage`; returns the plan."""
    catalog = scan(storage)
    all_keys = [o.key for o in storage.list("backups/")]
    plan = plan_retention(catalog, keep, all_keys, spare)
    for key in plan.delete_keys:
        storage.delete(key)
    return plan
