"""Take a backup: a consistent logical dump, gzip-compressed and streamed to storage, manifest last."""

from __future__ import annotations

import hashlib
import logging
import subprocess
import tempfile
import zlib
from collections.abc import Callable
from typing import IO

from mysql_operator.backup.commands import (
    SYSTEM_DATABASES,
    Instance,
    Tools,
    child_env,
    defaults_file,
    dump_command,
)
from mysql_operator.backup.manifest import (
    BackupError,
    Manifest,
    check_name,
    dump_key,
    manifest_key,
    parse_dump_position,
    rfc3339,
    utc_now,
)
from mysql_operator.backup.storage import CHUNK_SIZE, Storage
from mysql_operator.mysql.session import MysqlError, Statement, open_session, redact

log = logging.getLogger(__name__)

Progress = Callable[[str], None]
# Head and tail of the uncompressed dump kept to read the position comments from.
_KEEP = 256 << 10
_PROGRESS_EVERY = 256 << 20
_DUMP_TRAILER = b"-- Dump completed"


class DumpFailed(BackupError):
    """The dump tool failed or was killed; nothing was recorded as a backup."""


def _silent(message: str) -> None:
    log.info("%s", message)


def default_binlog_source(server_id: int) -> str:
    return f"server-{server_id}"


class DumpStream:
    """A readable stream of the gzip-compressed output of a dump process, hashed and counted.

    At the end of the output it checks how the process ended and raises DumpFailed instead of
    signalling end-of-stream when the dump did not finish: storage then discards the object.
    """

    def __init__(
        self,
        process: subprocess.Popen[bytes],
        stderr: IO[bytes],
        secrets: tuple[str, ...],
        level: int,
        progress: Progress,
    ) -> None:
        assert process.stdout is not None
        self._process = process
        self._out = process.stdout
        self._stderr = stderr
        self._secrets = secrets
        self._compressor = zlib.compressobj(level, zlib.DEFLATED, 31)  # 31: gzip container
        self._pending = bytearray()
        self._done = False
        self._progress = progress
        self._next_report = _PROGRESS_EVERY
        self.sha256 = hashlib.sha256()
        self.size = 0
        self.uncompressed_size = 0
        self.head = bytearray()
        self.tail = b""

    def read(self, size: int = -1) -> bytes:
        wanted = CHUNK_SIZE if size is None or size < 0 else size
        while len(self._pending) < wanted and not self._done:
            chunk = self._out.read(CHUNK_SIZE)
            if chunk:
                self._take(chunk)
            else:
                self._finish()
        out = bytes(self._pending[:wanted])
        del self._pending[:wanted]
        self.sha256.update(out)
        self.size += len(out)
        return out

    def _take(self, chunk: bytes) -> None:
        self.uncompressed_size += len(chunk)
        if len(self.head) < _KEEP:
            self.head += chunk[: _KEEP - len(self.head)]
        self.tail = (self.tail + chunk)[-_KEEP:]
        self._pending += self._compressor.compress(chunk)
        if self.uncompressed_size >= self._next_report:
            self._progress(f"dumped {self.uncompressed_size >> 20} MiB")
            self._next_report += _PROGRESS_EVERY

    def _finish(self) -> None:
        code = self._process.wait()
        if code != 0 or _DUMP_TRAILER not in self.tail[-4096:]:
            self._stderr.seek(0)
            detail = redact(self._stderr.read().decode(errors="replace").strip()[-1500:], self._secrets)
            how = f"exited with {code}" if code >= 0 else f"was killed by signal {-code}"
            if code == 0:
                how = "ended without its completion trailer"
            raise DumpFailed(f"dump {how}: {detail or 'no error output'}")
        self._pending += self._compressor.flush()
        self._done = True


def _databases(instance: Instance) -> tuple[list[str], str, int, bool]:
    """User databases, server version, server_id, whether the binlog is on."""
    with open_session(instance.host, instance.login, port=instance.port, tls=instance.tls()) as session:
        rows = session.query(Statement("SELECT SCHEMA_NAME AS name FROM information_schema.SCHEMATA"))
        info = session.query_one(
            Statement("SELECT VERSION() AS version, @@server_id AS server_id, @@log_bin AS log_bin")
        )
    assert info is not None
    names = sorted(str(r["name"]) for r in rows if str(r["name"]).lower() not in SYSTEM_DATABASES)
    return names, str(info["version"]), int(info["server_id"]), str(info["log_bin"]) in ("1", "ON")


def take_backup(
    instance: Instance,
    storage: Storage,
    *,
    cluster: str,
    name: str,
    binlog_source: str | None = None,
    tools: Tools | None = None,
    progress: Progress | None = None,
    compress_level: int = 1,
) -> Manifest:
    """Dump every user database of `instance` into `storage` as backup `name`; returns its manifest.

    The dump is one consistent snapshot (--single-transaction) recording its binlog file/position
    and GTID position. Its bytes are compressed and streamed to storage as they come. The manifest
    is written last: if anything fails before, no complete backup exists and the error propagates
    (DumpFailed, StorageError, MysqlError).
    `binlog_source` names the binlogs/<source>/ directory that `archive_binlogs` fills from the
    same instance; default `server-<server_id>`.
    """
    check_name(name)
    report = progress or _silent
    tools = tools or Tools.for_flavor(instance.flavor)
    started = utc_now()
    try:
        databases, version, server_id, binlog_on = _databases(instance)
    except MysqlError as error:
        raise DumpFailed(f"cannot read {instance.label}: {error}") from None
    report(f"dumping {len(databases)} database(s) from {instance.label} ({version})")
    key = dump_key(name)
    secrets = (instance.login.password,)
    with (
        defaults_file(instance) as defaults,
        tempfile.TemporaryFile() as stderr,
    ):
        command = dump_command(tools, instance.flavor, defaults, databases)
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=stderr, stdin=subprocess.DEVNULL, env=child_env()
        )
        stream = DumpStream(process, stderr, secrets, compress_level, report)
        try:
            storage.put(key, stream)
        finally:
            if process.poll() is None:
                process.kill()
            process.wait()
            assert process.stdout is not None
            process.stdout.close()
    position = parse_dump_position(stream.head.decode(errors="replace"), stream.tail.decode(errors="replace"))
    if binlog_on and position.binlog_file is None:
        storage.delete(key)
        raise DumpFailed("the dump did not record a binlog position")
    manifest = Manifest(
        name=name,
        cluster=cluster,
        flavor=instance.flavor,
        server_version=version,
        instance=instance.label,
        started_at=rfc3339(started),
        finished_at=rfc3339(utc_now()),
        databases=databases,
        gtid_position=position.gtid_position,
        binlog_file=position.binlog_file,
        binlog_position=position.binlog_position,
        binlog_source=(binlog_source or default_binlog_source(server_id)) if binlog_on else None,
        dump_key=key,
        size=stream.size,
        uncompressed_size=stream.uncompressed_size,
        sha256=stream.sha256.hexdigest(),
    )
    storage.put_bytes(manifest_key(name), manifest.to_json())
    report(
        f"backup {name} complete: {stream.size} bytes ({stream.uncompressed_size} uncompressed), "
        f"binlog {position.binlog_file}:{position.binlog_position}, gtid {position.gtid_position or '-'}"
    )
    return manifest
