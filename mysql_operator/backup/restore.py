"""Restore a backup into an empty instance, optionally rolled forward to a point in time.

Everything that can be checked is checked before the target is touched: the manifest, the dump's
sha256, the flavor, the binlogs needed for the point in time (present, contiguous, intact, covering
that time), and that the target holds no user database. Only then is the dump loaded and the
binlogs replayed.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import logging
import queue
import re
import shutil
import subprocess
import tempfile
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from mysql_operator.backup.catalog import ArchivedBinlog, read_manifest, scan
from mysql_operator.backup.commands import (
    SYSTEM_DATABASES,
    Instance,
    Tools,
    binlog_replay_command,
    child_env,
    defaults_file,
    load_command,
)
from mysql_operator.backup.dumpsplit import DumpSplitter, Phase
from mysql_operator.backup.manifest import BackupCorrupt, BackupError, Manifest, binlog_sequence, rfc3339
from mysql_operator.backup.physical import gtid_replay_command
from mysql_operator.backup.storage import CHUNK_SIZE, Storage
from mysql_operator.conventions import Flavor
from mysql_operator.mysql.session import MysqlError, Statement, open_session, redact

log = logging.getLogger(__name__)

# Lines of mariadb-binlog output that would replay a transaction under its original GTID. Dropped,
# so the restored server gives replayed transactions GTIDs of its own, after those of the load:
# with gtid_strict_mode an older original sequence number would be refused.
_MARIADB_GTID_LINE = re.compile(
    rb"^/\*M?!100001 SET @@session\.(gtid_seq_no|gtid_domain_id|server_id)=\d+\*/"
)
# Sessions loading a dump's rows at once (dumpsplit.py); 1 loads the dump as one stream.
DEFAULT_LOAD_THREADS = 4
MAX_LOAD_THREADS = 16
_POLL = 0.2  # seconds between checks of a failed loader while waiting on the work queue


class RestoreStep:
    VERIFYING = "Verifying"
    FETCHING_BINLOGS = "FetchingBinlogs"
    LOADING_DUMP = "LoadingDump"
    REPLAYING_BINLOGS = "ReplayingBinlogs"
    DONE = "Done"


StepReport = Callable[[str, str], None]


class RestoreRefused(BackupError):
    """The restore did not start: the target is unsuitable. Nothing was changed."""


class TargetNotEmpty(RestoreRefused):
    """The target already holds user databases."""


class PointInTimeUnavailable(RestoreRefused):
    """The archived binlogs cannot bring the backup to the requested time."""


class RestoreFailed(BackupError):
    """Loading or replaying failed part way: the target holds partial data and must be discarded."""


@dataclass
class RestoreResult:
    manifest: Manifest
    point_in_time: datetime | None = None
    replayed: list[str] = field(default_factory=list)


def _quiet(step: str, message: str) -> None:
    del step, message


def _verify_dump(storage: Storage, manifest: Manifest) -> None:
    digest = hashlib.sha256()
    size = 0
    with storage.open(manifest.dump_key) as stream:
        while chunk := stream.read(CHUNK_SIZE):
            digest.update(chunk)
            size += len(chunk)
    if size != manifest.size or digest.hexdigest() != manifest.sha256:
        raise BackupCorrupt(
            f"backup {manifest.name}: the dump does not match its manifest (size {size} vs {manifest.size}, "
            f"sha256 {digest.hexdigest()[:12]}... vs {manifest.sha256[:12]}...): refusing to restore it"
        )


def plan_binlogs(
    manifest: Manifest, archived: list[ArchivedBinlog], point_in_time: datetime
) -> list[ArchivedBinlog]:
    """The archived files to replay from the dump's position to `point_in_time` (pure).

    Raises PointInTimeUnavailable when the time is before the backup, when a file is missing from
    the chain, or when the archive stops before that time.
    """
    if manifest.binlog_file is None or manifest.binlog_position is None or not manifest.binlog_source:
        raise PointInTimeUnavailable(
            f"backup {manifest.name} has no binlog position (binlog off at the source)"
        )
    if point_in_time < manifest.started.replace(microsecond=0):
        raise PointInTimeUnavailable(
            f"{rfc3339(point_in_time)} is before backup {manifest.name} started ({manifest.started_at})"
        )
    first = binlog_sequence(manifest.binlog_file)[1]
    chain: list[ArchivedBinlog] = []
    expected = first
    for binlog in archived:
        if binlog.sequence < first:
            continue
        if binlog.sequence != expected:
            break
        chain.append(binlog)
        expected += 1
        if binlog.closed_at >= point_in_time:
            return chain
    last = chain[-1].closed_at if chain else None
    reason = f"binlogs are archived up to {rfc3339(last)}" if last else "no archived binlog from there"
    missing = f"; {manifest.binlog_file[: -len(str(first))]}{expected} is missing" if chain else ""
    raise PointInTimeUnavailable(
        f"cannot restore to {rfc3339(point_in_time)}: the chain starts at {manifest.binlog_file} "
        f"(binlogs/{manifest.binlog_source}/) and {reason}{missing}"
    )


def _fetch_binlogs(storage: Storage, files: list[ArchivedBinlog], into: Path) -> list[Path]:
    paths = []
    for binlog in files:
        path = into / binlog.file
        digest = hashlib.sha256()
        with storage.open(binlog.key) as source, open(path, "wb") as out:
            while chunk := source.read(CHUNK_SIZE):
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != binlog.sha256:
            raise BackupCorrupt(f"archived binlog {binlog.key} does not match its recorded sha256")
        paths.append(path)
    return paths


def _user_databases(instance: Instance) -> list[str]:
    with open_session(instance.host, instance.login, port=instance.port, tls=instance.tls()) as session:
        rows = session.query(Statement("SELECT SCHEMA_NAME AS name FROM information_schema.SCHEMATA"))
    return sorted(str(r["name"]) for r in rows if str(r["name"]).lower() not in SYSTEM_DATABASES)


def _pump(process: subprocess.Popen[bytes], feed: Callable[[IO[bytes]], None]) -> None:
    """Write into the process's stdin; a closed pipe means the process died (its exit code tells why)."""
    assert process.stdin is not None
    try:
        feed(process.stdin)
    except BrokenPipeError:
        pass
    finally:
        with contextlib.suppress(BrokenPipeError):
            process.stdin.close()


def _run_loader(
    command: list[str], feed: Callable[[IO[bytes]], None], secrets: tuple[str, ...], what: str
) -> None:
    with tempfile.TemporaryFile() as stderr:
        process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=stderr, env=child_env()
        )
        try:
            _pump(process, feed)
            code = process.wait()
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        if code != 0:
            stderr.seek(0)
            detail = redact(stderr.read().decode(errors="replace").strip()[-1500:], secrets)
            raise RestoreFailed(f"{what} failed (exit {code}): {detail}")


def _load_dump(storage: Storage, manifest: Manifest, command: list[str], secrets: tuple[str, ...]) -> None:
    digest = hashlib.sha256()

    def feed(target: IO[bytes]) -> None:
        decompressor = zlib.decompressobj(31)
        with storage.open(manifest.dump_key) as source:
            while chunk := source.read(CHUNK_SIZE):
                digest.update(chunk)
                target.write(decompressor.decompress(chunk))
            target.write(decompressor.flush())

    _run_loader(command, feed, secrets, f"loading backup {manifest.name}")
    if digest.hexdigest() != manifest.sha256:
        raise RestoreFailed(f"backup {manifest.name} changed while it was loaded (sha256 mismatch)")


class _Hashing:
    """A readable stream that hashes what passes through it."""

    def __init__(self, source: IO[bytes]) -> None:
        self._source = source
        self.sha256 = hashlib.sha256()

    def read(self, size: int = -1, /) -> bytes:
        chunk = self._source.read(size)
        self.sha256.update(chunk)
        return chunk

    def seek(self, offset: int, /) -> int:
        raise OSError("a backup stream is read once, from the start")


@contextlib.contextmanager
def _dump_lines(storage: Storage, manifest: Manifest) -> Iterator[Iterator[bytes]]:
    """The lines of the decompressed dump; at the end, its sha256 is checked against the manifest."""
    with storage.open(manifest.dump_key) as source:
        hashing = _Hashing(source)
        with gzip.GzipFile(fileobj=hashing, mode="rb") as lines:
            yield iter(lines)
            lines.read()  # to the end, so that every byte is hashed
    if hashing.sha256.hexdigest() != manifest.sha256:
        raise RestoreFailed(f"backup {manifest.name} changed while it was loaded (sha256 mismatch)")


class _Loader:
    """One client session fed from a thread: the dump's session settings, then statements from a
    shared queue, each preceded by its `USE` line when the database changes."""

    def __init__(self, command: list[str], preamble: bytes, work: queue.Queue[tuple[bytes, bytes] | None],
                 failed: threading.Event, stderr: IO[bytes]) -> None:
        self.stderr = stderr
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                        stderr=self.stderr, env=child_env())
        self._preamble = preamble
        self._work = work
        self._failed = failed
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        assert self.process.stdin is not None
        target = self.process.stdin
        use = b""
        try:
            target.write(self._preamble)
            while not self._failed.is_set():
                try:
                    item = self._work.get(timeout=_POLL)
                except queue.Empty:
                    continue
                if item is None:
                    break
                if item[0] != use:
                    use = item[0]
                    target.write(use)
                target.write(item[1])
        except OSError:  # the client died (its exit code and error output tell why)
            self._failed.set()
        finally:
            with contextlib.suppress(OSError):
                target.close()

    def finish(self) -> tuple[int, str]:
        self.thread.join()
        code = self.process.wait()
        self.stderr.seek(0)
        return code, self.stderr.read().decode(errors="replace").strip()[-1500:]

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()


def _put(work: queue.Queue[tuple[bytes, bytes] | None], item: tuple[bytes, bytes] | None,
         failed: threading.Event) -> None:
    while not failed.is_set():
        try:
            work.put(item, timeout=_POLL)
            return
        except queue.Full:
            continue


def _load_rows(storage: Storage, manifest: Manifest, command: list[str], preamble: bytes, threads: int,
               secrets: tuple[str, ...]) -> int:
    """Phase DATA: every INSERT of the dump, spread over `threads` sessions. Returns the statements."""
    work: queue.Queue[tuple[bytes, bytes] | None] = queue.Queue(maxsize=threads * 2)
    failed = threading.Event()
    with contextlib.ExitStack() as files:
        loaders: list[_Loader] = []
        try:
            for _ in range(threads):
                stderr = files.enter_context(tempfile.TemporaryFile())
                loaders.append(_Loader(command, preamble, work, failed, stderr))
        except OSError as error:
            failed.set()
            for loader in loaders:
                loader.kill()
                loader.finish()
            raise RestoreFailed(f"cannot start {command[0]}: {error}") from None
        return _feed_rows(storage, manifest, work, failed, loaders, secrets)


class _SessionStopped(Exception):
    """A row session stopped: reading the rest of the dump is pointless (its exit code says why)."""


def _feed_rows(storage: Storage, manifest: Manifest, work: queue.Queue[tuple[bytes, bytes] | None],
               failed: threading.Event, loaders: list[_Loader], secrets: tuple[str, ...]) -> int:
    statements = 0
    try:
        with _dump_lines(storage, manifest) as lines:
            for piece in DumpSplitter().split(lines):
                if piece.phase is Phase.DATA:
                    _put(work, (piece.use, piece.text), failed)
                    statements += 1
                if failed.is_set():
                    raise _SessionStopped
        for _ in loaders:
            _put(work, None, failed)
    except _SessionStopped:
        pass  # the failed session's exit code and error output are reported below
    except BaseException:
        failed.set()
        raise
    finally:
        if failed.is_set():
            for loader in loaders:
                loader.kill()
        outcomes = [loader.finish() for loader in loaders]
    for code, detail in outcomes:
        if code != 0:
            raise RestoreFailed(f"loading the rows of backup {manifest.name} failed (exit {code}): "
                                f"{redact(detail, secrets)}")
    if failed.is_set():
        raise RestoreFailed(f"loading the rows of backup {manifest.name} failed: a session stopped")
    return statements


def _load_dump_parallel(storage: Storage, manifest: Manifest, command: list[str], threads: int,
                        secrets: tuple[str, ...]) -> None:
    """Load the dump in three phases (dumpsplit.py): the schema in one session, the rows in
    `threads` sessions at once, then the triggers and events in one session. The dump is read twice
    (schema, rows); its sha256 is checked each time."""
    with tempfile.SpooledTemporaryFile(max_size=16 << 20) as deferred:
        _load_phases(storage, manifest, command, threads, secrets, deferred)


def _load_phases(storage: Storage, manifest: Manifest, command: list[str], threads: int,
                 secrets: tuple[str, ...], deferred: IO[bytes]) -> None:
    splitter = DumpSplitter()
    rows = 0

    def schema(target: IO[bytes]) -> None:
        nonlocal rows
        use = b""
        with _dump_lines(storage, manifest) as lines:
            for piece in splitter.split(lines):
                if piece.phase is Phase.SCHEMA:
                    target.write(piece.text)
                elif piece.phase is Phase.DEFERRED:
                    if piece.use != use:
                        use = piece.use
                        deferred.write(use)
                    deferred.write(piece.text)
                else:
                    rows += 1

    _run_loader(command, schema, secrets, f"loading the schema of backup {manifest.name}")
    preamble = b"".join(splitter.preamble)
    log.info("backup %s: schema loaded; %d INSERT statements to load in %d sessions", manifest.name, rows,
             threads)
    if rows:
        began = time.monotonic()
        _load_rows(storage, manifest, command, preamble, threads, secrets)
        log.info("backup %s: rows loaded in %.1fs", manifest.name, time.monotonic() - began)
    if deferred.tell():
        what = f"creating the triggers and events of backup {manifest.name}"
        log.info("%s", what)

        def objects(target: IO[bytes]) -> None:
            target.write(preamble)
            deferred.seek(0)
            shutil.copyfileobj(deferred, target)

        _run_loader(command, objects, secrets, what)


def _replay(
    replay_command: list[str], load: list[str], flavor_is_mariadb: bool, secrets: tuple[str, ...]
) -> None:
    with tempfile.TemporaryFile() as binlog_errors:
        reader = subprocess.Popen(
            replay_command,
            stdout=subprocess.PIPE,
            stderr=binlog_errors,
            stdin=subprocess.DEVNULL,
            env=child_env(),
        )
        assert reader.stdout is not None
        source = reader.stdout

        def feed(target: IO[bytes]) -> None:
            for line in source:
                if flavor_is_mariadb and line.startswith(b"/*") and _MARIADB_GTID_LINE.match(line):
                    continue
                target.write(line)

        try:
            _run_loader(load, feed, secrets, "replaying binlogs")
        finally:
            if reader.poll() is None:
                reader.kill()
            code = reader.wait()
            source.close()
        if code != 0:
            binlog_errors.seek(0)
            detail = binlog_errors.read().decode(errors="replace").strip()[-1500:]
            raise RestoreFailed(f"reading archived binlogs failed (exit {code}): {detail}")


def restore(
    instance: Instance,
    storage: Storage,
    location: str,
    *,
    point_in_time: datetime | None = None,
    tools: Tools | None = None,
    progress: StepReport | None = None,
    threads: int = DEFAULT_LOAD_THREADS,
) -> RestoreResult:
    """Restore backup `location` (`backups/<name>` or `<name>`) into the empty `instance`.

    With `point_in_time`, archived binlogs are replayed from the dump's position up to (not
    including) that second. `progress(step, message)` hears each RestoreStep. `threads` sessions
    load the rows at once (1: the dump is loaded as one stream, as the client would).
    Raises BackupNotFound / BackupCorrupt / RestoreRefused (nothing changed on the target) or
    RestoreFailed (the target holds partial data).
    """
    report = progress or _quiet
    tools = tools or Tools.for_flavor(instance.flavor)
    secrets = (instance.login.password,)
    if point_in_time is not None:
        point_in_time = point_in_time.astimezone(UTC).replace(microsecond=0)

    report(RestoreStep.VERIFYING, f"checking backup {location} in {storage.describe()}")
    manifest = read_manifest(storage, location)
    if manifest.method == "physical":
        raise RestoreRefused(
            f"backup {manifest.name} is physical: restore it with restoreFrom.method physical (it is "
            "unpacked into the new instance's volume before its server starts)"
        )
    if manifest.flavor != instance.flavor:
        raise RestoreRefused(
            f"backup {manifest.name} is of a {manifest.flavor} server, the target runs {instance.flavor}"
        )
    _verify_dump(storage, manifest)
    plan: list[ArchivedBinlog] = []
    if point_in_time is not None:
        archived = scan(storage).binlogs.get(manifest.binlog_source or "", [])
        plan = plan_binlogs(manifest, archived, point_in_time)
    try:
        present = _user_databases(instance)
    except MysqlError as error:
        raise RestoreRefused(f"cannot reach the restore target {instance.label}: {error}") from None
    if present:
        raise TargetNotEmpty(
            f"{instance.label} is not empty (databases: {', '.join(present)}); restore needs a new instance"
        )

    result = RestoreResult(manifest=manifest, point_in_time=point_in_time)
    work = Path(tempfile.mkdtemp(prefix="mysqlop-restore-"))
    try:
        files: list[Path] = []
        if plan:
            report(RestoreStep.FETCHING_BINLOGS, f"fetching {len(plan)} archived binlog file(s)")
            files = _fetch_binlogs(storage, plan, work)
        with defaults_file(instance, str(work)) as defaults:
            report(
                RestoreStep.LOADING_DUMP,
                f"loading backup {manifest.name} ({manifest.uncompressed_size} bytes of SQL, "
                f"taken {manifest.finished_at} from {manifest.instance}; rows in {threads} session(s))",
            )
            load = load_command(tools, defaults)
            if threads > 1:
                _load_dump_parallel(storage, manifest, load, min(threads, MAX_LOAD_THREADS), secrets)
            else:
                _load_dump(storage, manifest, load, secrets)
            if plan:
                assert point_in_time is not None and manifest.binlog_position is not None
                stop = point_in_time.strftime("%Y-%m-%d %H:%M:%S")
                report(
                    RestoreStep.REPLAYING_BINLOGS,
                    f"replaying {plan[0].file}:{manifest.binlog_position} .. {plan[-1].file} "
                    f"up to {rfc3339(point_in_time)}",
                )
                command = binlog_replay_command(tools, instance.flavor, files, manifest.binlog_position, stop)
                _replay(command, load, instance.flavor == Flavor.MARIADB, secrets)
                result.replayed = [b.file for b in plan]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report(
        RestoreStep.DONE,
        f"restored {manifest.name}" + (f" to {rfc3339(point_in_time)}" if point_in_time else ""),
    )
    return result


def _gtid_executed(instance: Instance) -> str:
    try:
        with open_session(instance.host, instance.login, port=instance.port, tls=instance.tls()) as session:
            row = session.query_one(Statement("SELECT @@GLOBAL.gtid_executed AS gtids"))
    except MysqlError as error:
        raise RestoreFailed(f"cannot read the restored instance's GTIDs: {error}") from None
    return " ".join(str((row or {}).get("gtids") or "").split())


def roll_forward(
    instance: Instance,
    storage: Storage,
    manifest: Manifest,
    point_in_time: datetime,
    *,
    tools: Tools | None = None,
    progress: StepReport | None = None,
) -> list[str]:
    """Replay the archived binlogs of `manifest`'s source from its position up to `point_in_time`
    into `instance`, which already holds the backup (a physical restore, started). Returns the
    binlog files replayed. Raises PointInTimeUnavailable (nothing replayed) or RestoreFailed."""
    report = progress or _quiet
    tools = tools or Tools.for_flavor(instance.flavor)
    point_in_time = point_in_time.astimezone(UTC).replace(microsecond=0)
    archived = scan(storage).binlogs.get(manifest.binlog_source or "", [])
    plan = plan_binlogs(manifest, archived, point_in_time)
    if not plan:
        return []
    assert manifest.binlog_position is not None
    work = Path(tempfile.mkdtemp(prefix="mysqlop-rollforward-"))
    try:
        report(RestoreStep.FETCHING_BINLOGS, f"fetching {len(plan)} archived binlog file(s)")
        files = _fetch_binlogs(storage, plan, work)
        with defaults_file(instance, str(work)) as defaults:
            stop = point_in_time.strftime("%Y-%m-%d %H:%M:%S")
            report(RestoreStep.REPLAYING_BINLOGS, f"replaying {plan[0].file}:{manifest.binlog_position} .. "
                                                  f"{plan[-1].file} up to {rfc3339(point_in_time)}")
            if manifest.method == "physical" and instance.flavor == Flavor.MYSQL:
                command = gtid_replay_command(tools.binlog, files, manifest.binlog_position, stop,
                                              _gtid_executed(instance))
            else:
                command = binlog_replay_command(tools, instance.flavor, files, manifest.binlog_position, stop)
            _replay(command, load_command(tools, defaults), instance.flavor == Flavor.MARIADB,
                    (instance.login.password,))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return [b.file for b in plan]
