"""Archive closed binlog files to storage, the raw material of a point-in-time restore."""

from __future__ import annotations

import hashlib
import json
import subprocess
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from mysql_operator.backup.catalog import ArchivedBinlog, binlog_key, scan, sidecar_key
from mysql_operator.backup.commands import Instance, Tools, binlog_fetch_command, child_env, defaults_file
from mysql_operator.backup.manifest import BackupError, binlog_sequence, rfc3339, utc_now
from mysql_operator.backup.storage import CHUNK_SIZE, Storage
from mysql_operator.backup.take import Progress, _silent, default_binlog_source
from mysql_operator.mysql.session import MysqlError, Statement, open_session, redact

FETCH_TIMEOUT = 3600.0


class ArchiveFailed(BackupError):
    """Binlogs could not be read from the server or written to storage."""


class BinlogConflict(ArchiveFailed):
    """The archive already has a different file of that name for this source (a rebuilt server?)."""


@dataclass
class ArchiveResult:
    source: str
    copied: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    closed_at: datetime | None = None


def _closed_binlogs(instance: Instance) -> tuple[list[tuple[str, int]], int]:
    """Flush the binlog, then every file but the new current one with its size; and the server_id."""
    with open_session(instance.host, instance.login, port=instance.port, tls=instance.tls()) as session:
        session.execute(Statement("FLUSH BINARY LOGS"))
        rows = session.query(Statement("SHOW BINARY LOGS"))
        info = session.query_one(Statement("SELECT @@server_id AS server_id"))
    assert info is not None
    files = [(str(r["Log_name"]), int(r["File_size"])) for r in rows]
    files.sort(key=lambda f: binlog_sequence(f[0])[1])
    return files[:-1], int(info["server_id"])


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as source:
        while chunk := source.read(CHUNK_SIZE):
            digest.update(chunk)
    return digest.hexdigest()


def archive_binlogs(
    instance: Instance,
    storage: Storage,
    *,
    source: str | None = None,
    tools: Tools | None = None,
    progress: Progress | None = None,
) -> ArchiveResult:
    """Copy the closed binlog files of `instance` to `binlogs/<source>/` in storage.

    FLUSH BINARY LOGS closes the current file; every file but the new current one is fetched as it
    is (`--read-from-remote-server --raw`), checked against the size the server reports, stored, and
    then recorded in a sidecar (size, sha256, when it was closed). Idempotent: files already
    archived with the same size are skipped, and so are files older than the oldest archived one
    (retention pruned them). `source` defaults to `server-<server_id>`, as in `take_backup`.
    """
    report = progress or _silent
    tools = tools or Tools.for_flavor(instance.flavor)
    # Events stamped before this second are in files closed by the flush below.
    closed_at = utc_now().replace(microsecond=0)
    try:
        closed, server_id = _closed_binlogs(instance)
    except MysqlError as error:
        raise ArchiveFailed(f"cannot list binlogs of {instance.label}: {error}") from None
    source = source or default_binlog_source(server_id)
    archived: dict[str, ArchivedBinlog] = {b.file: b for b in scan(storage).binlogs.get(source, [])}
    oldest = min((b.sequence for b in archived.values()), default=None)
    result = ArchiveResult(source=source, closed_at=closed_at)
    secrets = (instance.login.password,)
    with (
        tempfile.TemporaryDirectory(prefix="mysqlop-binlogs-") as work,
        defaults_file(instance, work) as defaults,
    ):
        for file, size in closed:
            known = archived.get(file)
            if known is not None:
                if known.size != size:
                    raise BinlogConflict(
                        f"{binlog_key(source, file)} holds {known.size} bytes but {instance.label} has "
                        f"{size}: another server's binlog under the same source name"
                    )
                result.skipped.append(file)
                continue
            if oldest is not None and binlog_sequence(file)[1] < oldest:
                result.skipped.append(file)
                continue
            local = Path(work) / file
            command = binlog_fetch_command(tools, defaults, file, Path(work))
            run = subprocess.run(
                command, capture_output=True, env=child_env(), timeout=FETCH_TIMEOUT, check=False
            )
            if run.returncode != 0 or not local.exists():
                detail = redact(run.stderr.decode(errors="replace").strip()[-1000:], secrets)
                raise ArchiveFailed(f"fetching {file} from {instance.label} failed: {detail}")
            fetched = local.stat().st_size
            if fetched != size:
                raise ArchiveFailed(f"fetched {file} has {fetched} bytes, the server reports {size}")
            digest = _sha256(local)
            with open(local, "rb") as data:
                storage.put(binlog_key(source, file), data)
            record = {"file": file, "size": size, "sha256": digest, "closedAt": rfc3339(closed_at)}
            storage.put_bytes(sidecar_key(source, file), json.dumps(record).encode())
            local.unlink()
            result.copied.append(file)
            report(f"archived {file} ({size} bytes) to {binlog_key(source, file)}")
    if not result.copied:
        report(f"binlogs of {source}: nothing new ({len(result.skipped)} already archived)")
    return result
