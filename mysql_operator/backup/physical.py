"""Physical backups: the data files themselves, streamed to storage, restored by putting them back.

Why: a logical dump is re-executed statement by statement on restore (every row inserted again,
every index rebuilt); a physical copy comes back at the speed of the disk. Both flavors take it hot,
without stopping writes:
- MariaDB: `mariadb-backup --backup --stream=mbstream` (InnoDB pages and redo copied while the
  server runs, a short BACKUP STAGE block for non-InnoDB tables); restore = `mbstream -x` into the
  empty data directory + `mariadb-backup --prepare` (applies the copied redo).
- MySQL: the clone plugin the server ships (a consistent, ready-to-start data directory, no
  prepare step), streamed as a tar and removed. Percona XtraBackup would do too, but nothing in
  Debian packages it for MySQL 9.7, and CLONE is the server's own, version-matched tool.

mariadb-backup runs next to the data: it reads the data directory. MySQL's clone lands in one of two
places, both directories that must not exist yet:
- a recipient's (`recipient`, `clone_dir`): a throwaway mysqld of the same version next to this
  process (the backup Job's second container) runs `CLONE INSTANCE FROM <donor> DATA DIRECTORY`,
  pulling the donor's data over the network into a directory both share, and keeps its own data.
  This is what works in Kubernetes: an instance's data directory is its whole volume, MySQL refuses
  a clone target inside it (3632) and a Job sees no other directory of the donor's pod.
- the donor's own (`scratch`): `CLONE LOCAL DATA DIRECTORY`, for the CLI next to a server whose
  file system has room outside its data directory.
The stream is compressed by `zstd` (level 1, on every core: a pipe between two C processes; gzip in
one Python thread was the slowest step of a physical backup by far, about 8x slower than the copy
itself), hashed (sha256, checked again on every restore) and stored like a logical dump; the manifest
records `method: physical`, the archive format, the compression and the binlog position the copy is
consistent with, so a restore rolls forward with the archived binlogs exactly as a logical one does
(backup.restore.roll_forward). A restore is the same pipeline backwards: storage -> sha256 -> zstd -d
-> mbstream/tar -x straight into the data directory (no staging copy, nothing to copy or move back).
Backups compressed with gzip by earlier versions restore too.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
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
from mysql_operator.mysql.dialect import MysqlDialect
from mysql_operator.mysql.seed import SeedEndpoint, recipient_clone_statements
from mysql_operator.mysql.session import (
    InstanceUnreachable,
    MysqlError,
    Session,
    SqlError,
    Statement,
    Timeouts,
    open_session,
    redact,
)

log = logging.getLogger(__name__)

MBSTREAM = "mbstream"
TAR = "tar"
ZSTD = "zstd"
GZIP = "gzip"  # physical backups of earlier versions: restored, no longer written
NO_COMPRESSION = "none"
COMPRESSIONS = (ZSTD, NO_COMPRESSION)  # what a physical backup can be taken with
_SUFFIX = {ZSTD: ".zst", GZIP: ".gz", NO_COMPRESSION: ""}
# Pipes between the copy tool, the compressor and us: 1 MiB instead of Linux's 64 KiB, so each side
# moves a megabyte per wake-up (the kernel caps it at /proc/sys/fs/pipe-max-size; best effort).
PIPE_SIZE = 1 << 20
# Memory for applying the copied redo (mariadb-backup --prepare): its default is 100 MiB, which
# makes a large redo evict and re-read pages; the restored server is not running yet, so its
# buffer pool's memory is free.
DEFAULT_PREPARE_MEMORY = 1 << 30
# A CLONE statement returns when the copy is complete: minutes to hours for a large instance (the
# Job's deadline bounds it), so its session waits that long for the answer.
CLONE_TIMEOUTS = Timeouts(connect=10.0, read=12 * 3600.0, write=60.0)
# Files of a data directory that must not travel to another server: auto.cnf (its server_uuid; a
# restored server makes its own) and mysqld-auto.cnf (its SET PERSIST settings). MySQL 9.7's clone
# copies neither; excluded from the tar all the same, so a version that did cannot carry them.
CLONE_EXCLUDED = ("auto.cnf", "mysqld-auto.cnf")
CLONE_STATUS_QUERY = Statement(
    "SELECT STATE, BINLOG_FILE, BINLOG_POSITION, GTID_EXECUTED FROM performance_schema.clone_status"
)
_MARIADB_POSITION = re.compile(
    r"MySQL binlog position: filename '([^']*)', position '(\d+)'(?:, GTID of the last change '([^']*)')?"
)


# mariadb-backup reads the server's own InnoDB files and redo: it must be of the server's release
# series (major.minor; a newer patch level is fine). `mariadb-backup --version` says which it is.
_TOOL_SERIES = re.compile(r"based on MariaDB server (\d+)\.(\d+)\.")
_SERVER_SERIES = re.compile(r"^(\d+)\.(\d+)\.")
TOOL_VERSION_TIMEOUT = 30.0


def tool_series_mismatch(tool_version: str, server_version: str) -> str:
    """Why this mariadb-backup cannot copy this server ("" when it can, or when either version is
    unreadable: the tool's own checks then stand) (pure)."""
    tool, server = _TOOL_SERIES.search(tool_version), _SERVER_SERIES.match(server_version)
    if tool is None or server is None or tool.groups() == server.groups():
        return ""
    return (f"mariadb-backup of MariaDB {'.'.join(tool.groups())} cannot copy a MariaDB "
            f"{'.'.join(server.groups())} server ({server_version}): the backup tool must be of the "
            "server's release series; use logical backups, or an operator image whose mariadb-backup "
            "matches")


class PhysicalBackupFailed(BackupError):
    """The copy tool failed; nothing was recorded as a backup."""


class PhysicalRestoreFailed(BackupError):
    """Unpacking or preparing failed: the data directory holds partial files and must be discarded."""


def data_key(name: str, archive: str, compression: str = ZSTD) -> str:
    """Where the data of physical backup `name` is stored."""
    return f"{location_of(name)}/data.{archive}{_SUFFIX[compression]}"


@dataclass(frozen=True)
class PhysicalTools:
    """The binaries a physical backup runs (MariaDB's; MySQL's CLONE is SQL plus tar), and zstd."""

    backup: str = "mariadb-backup"
    mbstream: str = "mbstream"
    tar: str = "tar"
    zstd: str = "zstd"
    gzip: str = "gzip"


def compress_command(tools: PhysicalTools, compression: str, level: int) -> list[str] | None:
    """The filter between the copy tool and storage (pure); None: the stream is stored as it is.
    zstd -T0: one worker per core (the copy tools themselves mostly wait on the disk)."""
    if compression == NO_COMPRESSION:
        return None
    if compression == ZSTD:
        return [tools.zstd, f"-{int(level)}", "-T0", "-q", "-c"]
    raise PhysicalBackupFailed(f"unknown compression {compression!r} (one of {', '.join(COMPRESSIONS)})")


def decompress_command(tools: PhysicalTools, compression: str) -> list[str] | None:
    """The filter between storage and the extractor (pure); None: stored uncompressed."""
    if compression == NO_COMPRESSION:
        return None
    if compression == ZSTD:
        return [tools.zstd, "-d", "-q", "-c"]
    if compression == GZIP:
        return [tools.gzip, "-d", "-c"]
    raise PhysicalRestoreFailed(f"unknown compression {compression!r}")


def clone_tar_command(tools: PhysicalTools, directory: Path) -> list[str]:
    """The tar of a finished clone in `directory`, to stdout (pure): everything but CLONE_EXCLUDED."""
    excluded = [f"--exclude=./{name}" for name in CLONE_EXCLUDED]
    return [tools.tar, "-C", str(directory), "--anchored", *excluded, "-cf", "-", "."]


def extract_command(tools: PhysicalTools, archive: str, datadir: Path) -> list[str]:
    """What unpacks the archive into the empty data directory, from stdin (pure)."""
    if archive == MBSTREAM:
        return [tools.mbstream, "-x", "-C", str(datadir)]
    return [tools.tar, "-C", str(datadir), "-xf", "-"]


def prepare_command(tools: PhysicalTools, datadir: Path, memory: int) -> list[str]:
    """mariadb-backup --prepare of an unpacked copy (pure): applies the redo copied with it."""
    return [tools.backup, "--prepare", f"--target-dir={datadir}", f"--use-memory={int(memory)}"]


def _widen(pipe: IO[bytes] | None) -> None:
    if pipe is None:
        return
    with contextlib.suppress(OSError):  # above pipe-max-size or not a pipe: the default stays
        fcntl.fcntl(pipe.fileno(), fcntl.F_SETPIPE_SZ, PIPE_SIZE)


class _Pump(threading.Thread):
    """Moves a process's stdout into another's stdin with splice(2) (no copy through Python),
    counting the bytes: the copy tool's output into the compressor."""

    def __init__(self, source: IO[bytes], target: IO[bytes]) -> None:
        super().__init__(daemon=True)
        self._source, self._target = source, target
        self.moved = 0
        self.error: OSError | None = None

    def run(self) -> None:
        try:
            while moved := os.splice(self._source.fileno(), self._target.fileno(), PIPE_SIZE):
                self.moved += moved
        except OSError as error:  # EPIPE: the compressor died; its exit code says why
            self.error = error
        finally:
            with contextlib.suppress(OSError):
                self._target.close()


class _StoredStream:
    """A readable stream of what a copy tool writes, compressed by a filter process (or not),
    hashed and counted. At the end it checks every process's exit code and raises instead of ending
    cleanly when one failed, so storage discards the partial object."""

    def __init__(self, producer: subprocess.Popen[bytes], filter_: subprocess.Popen[bytes] | None,
                 pump: _Pump | None, stderr: IO[bytes], what: str, secrets: tuple[str, ...]) -> None:
        self._producer, self._filter, self._pump = producer, filter_, pump
        out = filter_.stdout if filter_ is not None else producer.stdout
        assert out is not None
        self._out, self._stderr, self._what, self._secrets = out, stderr, what, secrets
        self._done = False
        self.sha256 = hashlib.sha256()
        self.size = 0
        self._direct = 0

    @property
    def uncompressed_size(self) -> int:
        return self._pump.moved if self._pump is not None else self._direct

    def read(self, size: int = -1) -> bytes:
        if self._done:
            return b""
        chunk = self._out.read(CHUNK_SIZE if size is None or size < 0 else size)
        if not chunk:
            self._finish()
            return b""
        self.sha256.update(chunk)
        self.size += len(chunk)
        if self._pump is None:
            self._direct += len(chunk)
        return chunk

    def _finish(self) -> None:
        filter_code = self._filter.wait() if self._filter is not None else 0
        if self._pump is not None:
            self._pump.join()
        filter_failed = filter_code != 0 or (self._pump is not None and self._pump.error is not None)
        if filter_failed and self._producer.poll() is None:
            self._producer.kill()  # nobody reads its output any more: it would block forever
        code = self._producer.wait()
        if filter_failed:
            raise PhysicalBackupFailed(f"compressing the output of {self._what} failed (exit {filter_code}, "
                                       f"{self._pump.error if self._pump else ''}): {self.errors()}")
        if code != 0:
            raise PhysicalBackupFailed(f"{self._what} exited with {code}: {self.errors()}")
        self._done = True

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


def _tool_version(tool: str) -> str:
    """`<tool> --version`'s output; "" when it cannot say (the copy then finds out for itself)."""
    try:
        done = subprocess.run([tool, "--version"], capture_output=True, timeout=TOOL_VERSION_TIMEOUT,
                              check=False, env=child_env(), stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as error:
        log.warning("cannot read the version of %s: %s", tool, error)
        return ""
    return (done.stdout + done.stderr).decode(errors="replace")


def _kill(*processes: subprocess.Popen[bytes] | None) -> None:
    for process in processes:
        if process is not None and process.poll() is None:
            process.kill()
        if process is not None:
            process.wait()


def _stream(storage: Storage, key: str, command: list[str], compressor: list[str] | None, what: str,
            secrets: tuple[str, ...], cwd: Path | None = None) -> tuple[_StoredStream, str]:
    """Run `command` | `compressor`, storing the result at `key`; returns the stream and the tool's
    stderr (read for the binlog position)."""
    with tempfile.TemporaryFile() as stderr:
        producer = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr, stdin=subprocess.DEVNULL,
                                    env=child_env(), cwd=cwd)
        filter_: subprocess.Popen[bytes] | None = None
        pump: _Pump | None = None
        try:
            _widen(producer.stdout)
            if compressor is not None:
                filter_ = subprocess.Popen(compressor, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                           stderr=stderr, env=child_env())
                _widen(filter_.stdin)
                _widen(filter_.stdout)
                assert producer.stdout is not None and filter_.stdin is not None
                pump = _Pump(producer.stdout, filter_.stdin)
                pump.start()
            stream = _StoredStream(producer, filter_, pump, stderr, what, secrets)
            storage.put(key, stream)
        finally:
            _kill(producer, filter_)
            if pump is not None:
                pump.join()
            for pipe in (producer.stdout, filter_.stdout if filter_ else None):
                if pipe is not None:
                    pipe.close()
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
    recipient: Instance | None = None,
    clone_dir: Path | None = None,
    donor_ssl_ca: str = "",
    binlog_source: str | None = None,
    tools: PhysicalTools | None = None,
    compression: str = ZSTD,
    compress_level: int = 1,
    timings: dict[str, float] | None = None,
) -> Manifest:
    """Copy the data files of `instance` into `storage` as backup `name`; returns its manifest.

    MariaDB needs `datadir` (the instance's data directory, readable here). MySQL needs either
    `recipient` and `clone_dir` (a throwaway mysqld that clones `instance` into `clone_dir`, a path
    it creates and this process reads; see _clone_remote; `donor_ssl_ca`: the CA file as the
    recipient mysqld sees it, default `instance.ssl_ca`), or `scratch` (a path the donor mysqld
    creates with CLONE LOCAL, on the file system of the tar that streams it). Either is removed
    afterwards, and must not exist before. `compression`: zstd (at `compress_level`) or none (a
    fast link to a storage that has room). The manifest is written last: a failure leaves no complete backup.
    `timings`, when given, receives the seconds of each step (clone, stream, manifest).
    Raises PhysicalBackupFailed, StorageError.
    """
    check_name(name)
    tools = tools or PhysicalTools()
    compressor = compress_command(tools, compression, compress_level)
    steps: dict[str, float] = {} if timings is None else timings
    started = utc_now()
    try:
        source = _source(instance)
    except MysqlError as error:
        raise PhysicalBackupFailed(f"cannot read {instance.label}: {error}") from None
    secrets = (instance.login.password, recipient.login.password if recipient is not None else "")
    if Flavor(instance.flavor) == Flavor.MARIADB:
        if datadir is None:
            raise PhysicalBackupFailed("a MariaDB physical backup needs the instance's data directory")
        mismatch = tool_series_mismatch(_tool_version(tools.backup), source.version)
        if mismatch:
            raise PhysicalBackupFailed(mismatch)
        archive = MBSTREAM
        key = data_key(name, archive, compression)
        work = Path(tempfile.mkdtemp(prefix="mysqlop-mbackup-"))
        try:
            with defaults_file(instance, str(work)) as defaults, _timed(steps, "stream"):
                command = [tools.backup, f"--defaults-extra-file={defaults}", "--backup", "--stream=mbstream",
                           f"--datadir={datadir}", f"--target-dir={work / 'target'}"]
                stream, errors = _stream(storage, key, command, compressor, "mariadb-backup", secrets)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        found = _MARIADB_POSITION.findall(errors)
        binlog_file, position, gtid = (None, None, "")
        if found:
            binlog_file, position, gtid = found[-1][0], int(found[-1][1]), found[-1][2]
    else:
        copy = _clone_target(recipient, clone_dir, scratch)
        archive = TAR
        key = data_key(name, archive, compression)
        try:
            with _timed(steps, "clone"):
                if recipient is not None:
                    binlog_file, position, gtid = _clone_remote(instance, recipient, copy,
                                                                donor_ssl_ca or instance.ssl_ca)
                else:
                    binlog_file, position, gtid = _clone_local(instance, copy)
            with _timed(steps, "stream"):
                stream, _ = _stream(storage, key, clone_tar_command(tools, copy), compressor,
                                    "tar of the clone", secrets)
        finally:
            shutil.rmtree(copy, ignore_errors=True)
            if copy.exists():
                log.warning("could not remove the clone in %s: remove it before the next backup", copy)
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
        compression=compression,
        method="physical",
        archive=archive,
    )
    with _timed(steps, "manifest"):
        storage.put_bytes(manifest_key(name), manifest.to_json())
    log.info("physical backup %s complete: %d bytes (%d uncompressed, %s), binlog %s:%s; steps %s", name,
             stream.size, stream.uncompressed_size, compression, binlog_file, position, _steps_text(steps))
    return manifest


@contextlib.contextmanager
def _timed(steps: dict[str, float], step: str) -> Iterator[None]:
    began = time.monotonic()
    try:
        yield
    finally:
        steps[step] = steps.get(step, 0.0) + time.monotonic() - began


def _steps_text(steps: dict[str, float]) -> str:
    return ", ".join(f"{step} {seconds:.1f}s" for step, seconds in steps.items())


Position = tuple[str | None, int | None, str]  # binlog file, position, GTID set


def _clone_target(recipient: Instance | None, clone_dir: Path | None, scratch: Path | None) -> Path:
    """Where the clone goes: `clone_dir` with a recipient, else `scratch`. It must not exist: it is
    removed afterwards, and must never be something that was there before."""
    target = clone_dir if recipient is not None else scratch
    if target is None:
        raise PhysicalBackupFailed("a MySQL physical backup needs a recipient and its clone directory, "
                                   "or a scratch directory for CLONE LOCAL")
    if not target.is_absolute():
        raise PhysicalBackupFailed(f"the clone directory {target} must be an absolute path")
    if target.exists():
        raise PhysicalBackupFailed(f"the clone directory {target} exists: it must not (it is removed after)")
    return target


def binlog_position(status: dict[str, object] | None) -> Position:
    """The position of a SHOW BINARY LOG STATUS row (pure); none when the binary log is off."""
    if status is None:
        return None, None, ""
    gtid = " ".join(str(status.get("Executed_Gtid_Set") or "").split())
    return str(status["File"]), int(str(status["Position"])), gtid


def clone_position(clone_status: dict[str, object] | None, before: Position) -> Position:
    """The position a remote clone is consistent with (pure): performance_schema.clone_status's when
    it has one (file, position and GTID set), else `before`, the donor's read right before the clone.

    MySQL 9.7 fills those columns only when a recipient restarts into the clone (they are read from
    the recovered data); a clone into a DATA DIRECTORY leaves them empty (BINLOG_FILE '',
    BINLOG_POSITION 0, GTID_EXECUTED ''), so `before` is what a backup records today: a lower
    bound. Both restore alike: roll_forward starts at the position and skips, by GTID, whatever the
    restored data already holds (gtid_replay_command)."""
    row = clone_status or {}
    file, gtid = str(row.get("BINLOG_FILE") or ""), " ".join(str(row.get("GTID_EXECUTED") or "").split())
    offset = int(str(row.get("BINLOG_POSITION") or 0))
    if file and offset and gtid:
        return file, offset, gtid
    return before


def _donor_position(instance: Instance) -> Position:
    with open_session(instance.host, instance.login, port=instance.port, tls=instance.tls()) as session:
        return binlog_position(session.query_one(Statement("SHOW BINARY LOG STATUS")))


def _clone_local(instance: Instance, scratch: Path) -> Position:
    """CLONE LOCAL DATA DIRECTORY into `scratch`. Returns the binlog file, position and GTID set
    read right before the clone: a lower bound of the point the copy is consistent with (a local
    clone reports no position). The roll forward starts there and skips, by GTID, whatever the copy
    already holds (`gtid_replay_command`)."""
    try:
        with open_session(instance.host, instance.login, port=instance.port, tls=instance.tls(),
                          timeouts=CLONE_TIMEOUTS) as session:
            row = session.query_one(Statement("SHOW BINARY LOG STATUS"))
            session.execute(Statement("CLONE LOCAL DATA DIRECTORY = %s", (str(scratch),)))
    except MysqlError as error:
        raise PhysicalBackupFailed(f"CLONE LOCAL on {instance.label}: {error}") from None
    return binlog_position(row)


def _clone_remote(donor: Instance, recipient: Instance, clone_dir: Path, ca_path: str) -> Position:
    """The recipient clones `donor` into `clone_dir` (CLONE INSTANCE ... DATA DIRECTORY: it keeps
    running on its own data), logging in to the donor as the donor's login (the backup user, which
    needs BACKUP_ADMIN there). With `ca_path` (a CA file the recipient mysqld reads) the copy is
    TLS and the donor's certificate is verified. Returns the position the copy is consistent with
    (clone_position: the donor's, read right before the clone, as long as clone_status has none)."""
    try:
        before = _donor_position(donor)
    except MysqlError as error:
        raise PhysicalBackupFailed(f"cannot read the binlog position of {donor.label}: {error}") from None
    endpoint = SeedEndpoint(donor.host, donor.login, donor.port)
    try:
        with open_session(recipient.host, recipient.login, port=recipient.port, tls=recipient.tls(),
                          timeouts=CLONE_TIMEOUTS, secrets=(donor.login.password,)) as session:
            session.execute(*recipient_clone_statements(session, MysqlDialect(), endpoint, ca_path,
                                                        str(clone_dir)))
            status = _clone_status(session)
    except MysqlError as error:
        raise PhysicalBackupFailed(f"clone of {donor.label} by {recipient.label} into {clone_dir}: "
                                   f"{error}") from None
    return clone_position(status, before)


def _clone_status(session: Session) -> dict[str, object] | None:
    """The recipient's clone_status row; None when unreadable (the position then comes from the
    donor: a missing row must not fail a finished copy)."""
    try:
        return session.query_one(CLONE_STATUS_QUERY)
    except SqlError as error:
        log.warning("performance_schema.clone_status unreadable on %s: %s", session.host, error)
        return None


def stop_recipient(recipient: Instance) -> None:
    """Ask the recipient mysqld to shut down (SHUTDOWN), so a Job pod whose other container it is
    completes. Best effort: a failure is logged, never raised (the backup's outcome stands)."""
    try:
        tls = recipient.tls()
        with open_session(recipient.host, recipient.login, port=recipient.port, tls=tls) as session:
            session.execute(Statement("SHUTDOWN"))
    except InstanceUnreachable as error:
        log.info("recipient %s gone after SHUTDOWN (%s)", recipient.label, error)
    except MysqlError as error:
        log.warning("cannot stop the recipient %s: %s", recipient.label, error)
    else:
        log.info("recipient %s shutting down", recipient.label)


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
    storage: Storage,
    manifest: Manifest,
    datadir: Path,
    *,
    tools: PhysicalTools | None = None,
    prepare_memory: int = DEFAULT_PREPARE_MEMORY,
    timings: dict[str, float] | None = None,
) -> None:
    """Put physical backup `manifest` into the empty data directory `datadir` (its server stopped),
    ready to start: the stored bytes stream through sha256 -> decompressor -> extractor straight
    into `datadir`, and must match the manifest's sha256. MariaDB's copy is then prepared (its redo
    applied, with `prepare_memory` bytes of buffer pool). `timings`, when given, receives the
    seconds of each step (unpack: fetch, check, decompress, extract; prepare).
    Raises BackupCorrupt (the stored data does not match), PhysicalRestoreFailed."""
    tools = tools or PhysicalTools()
    steps: dict[str, float] = {} if timings is None else timings
    if manifest.method != "physical" or manifest.archive not in (MBSTREAM, TAR):
        raise PhysicalRestoreFailed(f"backup {manifest.name} is not a physical backup")
    if manifest.archive == MBSTREAM:  # the copy is prepared by the tool: it must read its format
        mismatch = tool_series_mismatch(_tool_version(tools.backup), manifest.server_version)
        if mismatch:
            raise PhysicalRestoreFailed(f"backup {manifest.name}: {mismatch}")
    datadir.mkdir(parents=True, exist_ok=True)
    if any(datadir.iterdir()):
        raise PhysicalRestoreFailed(f"{datadir} is not empty: a physical restore needs an empty one")
    decompressor = decompress_command(tools, manifest.compression)
    with _timed(steps, "unpack"):
        _unpack(storage, manifest, extract_command(tools, manifest.archive, datadir), decompressor)
    if manifest.archive == MBSTREAM:
        with _timed(steps, "prepare"):
            prepared = subprocess.run(prepare_command(tools, datadir, prepare_memory), capture_output=True,
                                      env=child_env(), timeout=3600, check=False)
        if prepared.returncode != 0:
            raise PhysicalRestoreFailed(f"mariadb-backup --prepare failed: "
                                        f"{prepared.stderr.decode(errors='replace')[-1500:]}")
    log.info("physical backup %s unpacked into %s: %s", manifest.name, datadir, _steps_text(steps))


def _unpack(storage: Storage, manifest: Manifest, extractor: list[str],
            decompressor: list[str] | None) -> None:
    """storage -> sha256 (here) -> decompressor -> extractor. The whole object is read and hashed
    even when a tool stops early, so a corrupt backup is reported as corrupt, not as a tool error."""
    digest = hashlib.sha256()
    with tempfile.TemporaryFile() as stderr:
        first: subprocess.Popen[bytes] | None = None
        last: subprocess.Popen[bytes] | None = None
        try:
            if decompressor is not None:
                first = subprocess.Popen(decompressor, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=stderr, env=child_env())
                _widen(first.stdin)
                _widen(first.stdout)
                last = subprocess.Popen(extractor, stdin=first.stdout, stdout=subprocess.DEVNULL,
                                        stderr=stderr, env=child_env())
                assert first.stdout is not None
                first.stdout.close()  # the extractor holds it: the decompressor sees EPIPE if it quits
            else:
                first = last = subprocess.Popen(extractor, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                                stderr=stderr, env=child_env())
                _widen(first.stdin)
            assert first.stdin is not None
            feeding = True
            with storage.open(manifest.dump_key) as source:
                while chunk := source.read(CHUNK_SIZE):
                    digest.update(chunk)
                    if feeding:
                        try:
                            first.stdin.write(chunk)
                        except BrokenPipeError:
                            feeding = False
            with contextlib.suppress(BrokenPipeError):
                first.stdin.close()
            codes = [first.wait(), last.wait()]
        except OSError as error:
            raise PhysicalRestoreFailed(f"unpacking {manifest.name} failed: {error}") from None
        finally:
            _kill(first, last)
        if digest.hexdigest() != manifest.sha256:
            raise BackupCorrupt(f"backup {manifest.name}: the stored data does not match its manifest's "
                                "sha256")
        if any(codes):
            stderr.seek(0)
            raise PhysicalRestoreFailed(f"unpacking {manifest.name} failed (exit {codes}): "
                                        f"{stderr.read().decode(errors='replace')[-1500:]}")
