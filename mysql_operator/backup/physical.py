"""Physical backups: the data files themselves, streamed to storage, restored by putting them back.

Why: a logical dump is re-executed statement by statement on restore (every row inserted again,
every index rebuilt); a physical copy comes back at the speed of the disk. Both flavors take it hot,
without stopping writes:
- MariaDB: `mariadb-backup --backup --stream=mbstream` (InnoDB pages and redo copied while the
  server runs, a short BACKUP STAGE block for non-InnoDB tables); restore = `mbstream -x` into the
  empty data directory + `mariadb-backup --prepare` (applies the copied redo).
- MySQL: `CLONE LOCAL DATA DIRECTORY` (the clone plugin the server ships: a consistent,
  ready-to-start data directory on the donor's own file system, no prepare step), streamed as a tar
  and removed. Percona XtraBackup would do too, but nothing in Debian packages it for MySQL 9.7,
  and CLONE is the server's own, version-matched tool.

Both run next to the data: mariadb-backup reads the data directory; CLONE LOCAL writes where the
donor mysqld can write (`scratch`, a directory on the instance's volume that must not exist yet).
The stream is gzip-compressed, hashed (sha256, checked again on every restore) and stored like a
logical dump; the manifest records `method: physical`, the archive format and the binlog position
the copy is consistent with, so a restore rolls forward with the archived binlogs exactly as a
logical one does (backup.restore.roll_forward).
"""

from __future__ import annotations

import hashlib
import logging
import re
import shutil
import subprocess
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from mysql_operator.backup.commands import SYSTEM_DATABASES, Instance, child_env, defaults_file
from mysql_operator.backup.manifest import (
    BackupCorrupt,
    BackupError,
    Manifest,
    check_name,
    location_of,
    manifest_key,
    rfc3339,
    utc_now,
)
from mysql_operator.backup.storage import CHUNK_SIZE, Storage
from mysql_operator.conventions import Flavor
from mysql_operator.mysql.session import MysqlError, Statement, open_session, redact

log = logging.getLogger(__name__)

MBSTREAM = "mbstream"
TAR = "tar"
_MARIADB_POSITION = re.compile(
    r"MySQL binlog position: filename '([^']*)', position '(\d+)'(?:, GTID of the last change '([^']*)')?"
)


class PhysicalBackupFailed(BackupError):
    """The copy tool failed; nothing was recorded as a backup."""


class PhysicalRestoreFailed(BackupError):
    """Unpacking or preparing failed: the data directory holds partial files and must be discarded."""


def data_key(name: str, archive: str) -> str:
    """Where the data of physical backup `name` is stored."""
    return f"{location_of(name)}/data.{archive}.gz"


@dataclass(frozen=True)
class PhysicalTools:
    """The binaries a physical backup runs (MariaDB's; MySQL's CLONE is SQL plus tar)."""

    backup: str = "mariadb-backup"
    mbstream: str = "mbstream"
    tar: str = "tar"


class _CompressedOutput:
    """A readable stream of a process's stdout, gzip-compressed, hashed and counted. At the end it
    checks the process's exit code and raises instead of ending cleanly when the tool failed, so
    storage discards the partial object."""

    def __init__(self, process: subprocess.Popen[bytes], stderr: IO[bytes], what: str,
                 secrets: tuple[str, ...], level: int) -> None:
        assert process.stdout is not None
        self._process, self._out, self._stderr = process, process.stdout, stderr
        self._what, self._secrets = what, secrets
        self._compressor = zlib.compressobj(level, zlib.DEFLATED, 31)
        self._pending = bytearray()
        self._done = False
        self.sha256 = hashlib.sha256()
        self.size = 0
        self.uncompressed_size = 0

    def read(self, size: int = -1) -> bytes:
        wanted = CHUNK_SIZE if size is None or size < 0 else size
        while len(self._pending) < wanted and not self._done:
            chunk = self._out.read(CHUNK_SIZE)
            if chunk:
                self.uncompressed_size += len(chunk)
                self._pending += self._compressor.compress(chunk)
                continue
            code = self._process.wait()
            if code != 0:
                raise PhysicalBackupFailed(f"{self._what} exited with {code}: {self.errors()}")
            self._pending += self._compressor.flush()
            self._done = True
        out = bytes(self._pending[:wanted])
        del self._pending[:wanted]
        self.sha256.update(out)
        self.size += len(out)
        return out

    def errors(self) -> str:
        self._stderr.seek(0)
        text = self._stderr.read().decode(errors="replace").strip()
        return redact(text[-1500:], self._secrets) or "no error output"


@dataclass(frozen=True)
class _Source:
    version: str
    server_id: int
    binlog_on: bool
    databases: list[str]


def _source(instance: Instance) -> _Source:
    with open_session(instance.host, instance.login, port=instance.port, tls=instance.tls()) as session:
        rows = session.query(Statement("SELECT SCHEMA_NAME AS name FROM information_schema.SCHEMATA"))
        info = session.query_one(
            Statement("SELECT VERSION() AS version, @@server_id AS server_id, @@log_bin AS log_bin")
        )
    assert info is not None
    names = sorted(str(r["name"]) for r in rows if str(r["name"]).lower() not in SYSTEM_DATABASES)
    return _Source(str(info["version"]), int(info["server_id"]), str(info["log_bin"]) in ("1", "ON"), names)


def _stream(storage: Storage, key: str, command: list[str], what: str, secrets: tuple[str, ...],
            level: int, cwd: Path | None = None) -> tuple[_CompressedOutput, str]:
    """Run `command`, storing its compressed stdout at `key`; returns the stream and the tool's stderr."""
    with tempfile.TemporaryFile() as stderr:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr, stdin=subprocess.DEVNULL,
                                   env=child_env(), cwd=cwd)
        stream = _CompressedOutput(process, stderr, what, secrets, level)
        try:
            storage.put(key, stream)
        finally:
            if process.poll() is None:
                process.kill()
            process.wait()
            assert process.stdout is not None
            process.stdout.close()
        stderr.seek(0)
        return stream, stderr.read().decode(errors="replace")


def take_physical_backup(
    instance: Instance,
    storage: Storage,
    *,
    cluster: str,
    name: str,
    datadir: Path | None = None,
    scratch: Path | None = None,
    binlog_source: str | None = None,
    tools: PhysicalTools | None = None,
    compress_level: int = 1,
) -> Manifest:
    """Copy the data files of `instance` into `storage` as backup `name`; returns its manifest.

    MariaDB needs `datadir` (the instance's data directory, readable here); MySQL needs `scratch`
    (a path the donor mysqld can create, on the same file system as the tar that streams it; it is
    removed afterwards). The manifest is written last: a failure leaves no complete backup.
    Raises PhysicalBackupFailed, StorageError.
    """
    check_name(name)
    tools = tools or PhysicalTools()
    started = utc_now()
    try:
        source = _source(instance)
    except MysqlError as error:
        raise PhysicalBackupFailed(f"cannot read {instance.label}: {error}") from None
    secrets = (instance.login.password,)
    if Flavor(instance.flavor) == Flavor.MARIADB:
        if datadir is None:
            raise PhysicalBackupFailed("a MariaDB physical backup needs the instance's data directory")
        archive = MBSTREAM
        key = data_key(name, archive)
        work = Path(tempfile.mkdtemp(prefix="mysqlop-mbackup-"))
        try:
            with defaults_file(instance, str(work)) as defaults:
                command = [tools.backup, f"--defaults-extra-file={defaults}", "--backup", "--stream=mbstream",
                           f"--datadir={datadir}", f"--target-dir={work / 'target'}"]
                stream, errors = _stream(storage, key, command, "mariadb-backup", secrets, compress_level)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        found = _MARIADB_POSITION.findall(errors)
        binlog_file, position, gtid = (None, None, "")
        if found:
            binlog_file, position, gtid = found[-1][0], int(found[-1][1]), found[-1][2]
    else:
        if scratch is None:
            raise PhysicalBackupFailed("a MySQL physical backup needs a scratch directory for CLONE LOCAL")
        archive = TAR
        key = data_key(name, archive)
        try:
            binlog_file, position, gtid = _clone_local(instance, scratch)
            command = [tools.tar, "-C", str(scratch), "-cf", "-", "."]
            stream, _ = _stream(storage, key, command, "tar of the clone", secrets, compress_level)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    if source.binlog_on and binlog_file is None:
        storage.delete(key)
        raise PhysicalBackupFailed("the copy did not record a binlog position")
    manifest = Manifest(
        name=name,
        cluster=cluster,
        flavor=instance.flavor,
        server_version=source.version,
        instance=instance.label,
        started_at=rfc3339(started),
        finished_at=rfc3339(utc_now()),
        databases=source.databases,
        gtid_position=gtid,
        binlog_file=binlog_file,
        binlog_position=position,
        binlog_source=(binlog_source or f"server-{source.server_id}") if source.binlog_on else None,
        dump_key=key,
        size=stream.size,
        uncompressed_size=stream.uncompressed_size,
        sha256=stream.sha256.hexdigest(),
        method="physical",
        archive=archive,
    )
    storage.put_bytes(manifest_key(name), manifest.to_json())
    log.info("physical backup %s complete: %d bytes (%d uncompressed), binlog %s:%s", name, stream.size,
             stream.uncompressed_size, binlog_file, position)
    return manifest


def _clone_local(instance: Instance, scratch: Path) -> tuple[str | None, int | None, str]:
    """CLONE LOCAL DATA DIRECTORY into `scratch`. Returns the binlog file, position and GTID set
    read right before the clone: a lower bound of the point the copy is consistent with (a local
    clone reports no position). The roll forward starts there and skips, by GTID, whatever the copy
    already holds (`gtid_replay_command`)."""
    try:
        with open_session(instance.host, instance.login, port=instance.port, tls=instance.tls()) as session:
            row = session.query_one(Statement("SHOW BINARY LOG STATUS"))
            session.execute(Statement("CLONE LOCAL DATA DIRECTORY = %s", (str(scratch),)))
    except MysqlError as error:
        raise PhysicalBackupFailed(f"CLONE LOCAL on {instance.label}: {error}") from None
    if row is None:
        return None, None, ""
    gtid = " ".join(str(row.get("Executed_Gtid_Set") or "").split())
    return str(row["File"]), int(row["Position"]), gtid


def gtid_replay_command(
    binlog_tool: str, files: list[Path], start_position: int, stop_datetime: str, exclude_gtids: str
) -> list[str]:
    """MySQL: SQL of archived binlogs from a position up to a time, keeping the transactions' own
    GTIDs and leaving out those the restored data already holds (`exclude_gtids`, its
    gtid_executed): a physical copy is consistent at a point only known as a GTID set."""
    command = [binlog_tool, "--no-defaults", f"--start-position={int(start_position)}",
               f"--stop-datetime={stop_datetime}"]
    if exclude_gtids:
        command.append(f"--exclude-gtids={exclude_gtids}")
    return [*command, *(str(f) for f in files)]


def unpack_physical(
    storage: Storage, manifest: Manifest, datadir: Path, *, tools: PhysicalTools | None = None
) -> None:
    """Put physical backup `manifest` into the empty data directory `datadir` (its server stopped),
    ready to start: the stored bytes are checked against the manifest's sha256 as they stream.
    Raises BackupCorrupt (the stored data does not match), PhysicalRestoreFailed."""
    tools = tools or PhysicalTools()
    if manifest.method != "physical" or manifest.archive not in (MBSTREAM, TAR):
        raise PhysicalRestoreFailed(f"backup {manifest.name} is not a physical backup")
    datadir.mkdir(parents=True, exist_ok=True)
    if any(datadir.iterdir()):
        raise PhysicalRestoreFailed(f"{datadir} is not empty: a physical restore needs an empty one")
    if manifest.archive == MBSTREAM:
        command = [tools.mbstream, "-x", "-C", str(datadir)]
    else:
        command = [tools.tar, "-C", str(datadir), "-xf", "-"]
    digest = hashlib.sha256()
    with tempfile.TemporaryFile() as stderr:
        process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=stderr,
                                   env=child_env())
        assert process.stdin is not None
        try:
            decompressor = zlib.decompressobj(31)
            with storage.open(manifest.dump_key) as source:
                while chunk := source.read(CHUNK_SIZE):
                    digest.update(chunk)
                    process.stdin.write(decompressor.decompress(chunk))
                process.stdin.write(decompressor.flush())
            process.stdin.close()
            code = process.wait()
        except BrokenPipeError:
            code = process.wait()
        except zlib.error as error:
            raise BackupCorrupt(f"backup {manifest.name}: the stored data is not intact ({error})") from None
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        if code != 0:
            stderr.seek(0)
            raise PhysicalRestoreFailed(f"unpacking {manifest.name} failed (exit {code}): "
                                        f"{stderr.read().decode(errors='replace')[-1500:]}")
    if digest.hexdigest() != manifest.sha256:
        raise BackupCorrupt(f"backup {manifest.name}: the stored data does not match its manifest's sha256")
    if manifest.archive == MBSTREAM:
        prepared = subprocess.run([tools.backup, "--prepare", f"--target-dir={datadir}"],
                                  capture_output=True, env=child_env(), timeout=3600)
        if prepared.returncode != 0:
            raise PhysicalRestoreFailed(f"mariadb-backup --prepare failed: "
                                        f"{prepared.stderr.decode(errors='replace')[-1500:]}")
