"""The command the backup and restore Jobs run: `python -m mysql_operator backup|restore|... [options]`.

Connection details and secrets come from the environment, never from the command line:
  DB_HOST, DB_PORT (3306), DB_USER, DB_PASSWORD, DB_FLAVOR (mysql | mariadb)
Physical backups (`backup --method physical`, `unpack`, `roll-forward`) run next to the data files.
  BACKUP_STORAGE       storage as JSON, the wire form of BackupStorage ({"pvc": {...}} or {"s3": {...}})
  BACKUP_STORAGE_FILE  ... or a file holding that JSON
  BACKUP_PVC_ROOT      where the PVC is mounted (default /backup); the storage is <root>/<pvc.path>
  AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY   the S3 credentials (from the credentialsSecret)
  RECIPIENT_USER (root), RECIPIENT_PASSWORD   MySQL physical backup through a recipient
                       (--recipient-host): the login of the throwaway mysqld that clones the donor

Progress goes to stderr; the result, one JSON object, to stdout, and without the full manifest to
--termination-log when given (for `backup`: {"result": "Completed", "status": <MysqlBackup status>}).
Exit codes: 0 done; 1 failed (the backup is not complete / nothing archived); 2 bad usage or
configuration; 3 backup missing or corrupt (nothing changed); 4 restore refused: target not empty,
wrong flavor, point in time not covered (nothing changed); 5 restore failed part way (discard the target).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from mysql_operator.api.backup import BackupStorage, parse_rfc3339
from mysql_operator.backup.binlogs import archive_binlogs
from mysql_operator.backup.catalog import read_manifest, scan
from mysql_operator.backup.commands import Instance
from mysql_operator.backup.manifest import BackupCorrupt, BackupError, BackupNotFound
from mysql_operator.backup.physical import (
    COMPRESSIONS,
    DEFAULT_PREPARE_MEMORY,
    ZSTD,
    PhysicalRestoreFailed,
    stop_recipient,
    take_physical_backup,
    unpack_physical,
)
from mysql_operator.backup.physical_restore import (
    AccountsMissing,
    accounts_from_env,
    drop_identity,
    finish_restore,
    wait_answering,
    write_init_sql,
)
from mysql_operator.backup.restore import (
    DEFAULT_LOAD_THREADS,
    MAX_LOAD_THREADS,
    RestoreFailed,
    RestoreRefused,
    restore,
    roll_forward,
)
from mysql_operator.backup.retention import apply_retention
from mysql_operator.backup.storage import DirectoryStorage, S3Location, S3Storage, Storage, StorageError
from mysql_operator.backup.take import take_backup
from mysql_operator.conventions import MYSQL_PORT, Flavor
from mysql_operator.mysql.session import Login, MysqlError

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_BAD_BACKUP = 3
EXIT_REFUSED = 4
EXIT_PARTIAL_RESTORE = 5
DEFAULT_PVC_ROOT = "/backup"
RECIPIENT_START_SECONDS = 600.0  # a fresh server's first start initialises its data directory

log = logging.getLogger("mysql_operator.backup")


class ConfigError(Exception):
    """The environment does not describe a usable instance or storage."""


def _require(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "")
    if not value:
        raise ConfigError(f"environment variable {name} is not set")
    return value


def instance_from_env(env: Mapping[str, str]) -> Instance:
    """The instance described by DB_* variables."""
    try:
        flavor = Flavor(env.get("DB_FLAVOR", Flavor.MYSQL.value))
        port = int(env.get("DB_PORT", str(MYSQL_PORT)))
    except ValueError as error:
        raise ConfigError(f"DB_FLAVOR or DB_PORT: {error}") from None
    return Instance(
        host=_require(env, "DB_HOST"),
        port=port,
        login=Login(_require(env, "DB_USER"), env.get("DB_PASSWORD", "")),
        flavor=flavor,
        name=env.get("DB_INSTANCE_NAME", ""),
        ssl_ca=env.get("DB_SSL_CA", ""),
    )


def recipient_from_env(env: Mapping[str, str], host: str, port: int) -> Instance:
    """The recipient mysqld of a MySQL physical backup at `host`:`port`, logged in as
    RECIPIENT_USER (default root) with RECIPIENT_PASSWORD."""
    return Instance(
        host=host,
        port=port,
        login=Login(env.get("RECIPIENT_USER") or "root", env.get("RECIPIENT_PASSWORD", "")),
        flavor=Flavor.MYSQL,
        name=f"recipient {host}:{port}",
    )


def storage_from_env(env: Mapping[str, str]) -> Storage:
    """The storage described by BACKUP_STORAGE (or BACKUP_STORAGE_FILE) and the S3 credentials."""
    text = env.get("BACKUP_STORAGE", "")
    if not text and env.get("BACKUP_STORAGE_FILE"):
        try:
            text = Path(env["BACKUP_STORAGE_FILE"]).read_text()
        except OSError as error:
            raise ConfigError(f"BACKUP_STORAGE_FILE: {error}") from None
    if not text:
        raise ConfigError("neither BACKUP_STORAGE nor BACKUP_STORAGE_FILE is set")
    try:
        config = BackupStorage.model_validate(json.loads(text))
    except (ValueError, ValidationError) as error:
        raise ConfigError(f"storage configuration: {str(error).splitlines()[0]}") from None
    if config.pvc is not None:
        root = Path(env.get("BACKUP_PVC_ROOT", DEFAULT_PVC_ROOT))
        return DirectoryStorage(root / config.pvc.path if config.pvc.path else root)
    assert config.s3 is not None
    s3 = config.s3
    return S3Storage(
        S3Location(
            endpoint=s3.endpoint,
            bucket=s3.bucket,
            prefix=s3.prefix,
            region=s3.region,
            access_key_id=_require(env, "AWS_ACCESS_KEY_ID"),
            secret_access_key=_require(env, "AWS_SECRET_ACCESS_KEY"),
            force_path_style=s3.force_path_style,
        )
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mysql_operator", description=__doc__.split("\n")[0])
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--termination-log", help="also write the result JSON (or the error) here")
    commands = parser.add_subparsers(dest="command", required=True)

    take = commands.add_parser("backup", parents=[common], help="take a backup (dump + manifest)")
    take.add_argument("--cluster", required=True)
    take.add_argument("--name", required=True, help="backup name (the MysqlBackup's name)")
    take.add_argument("--binlog-source", help="binlogs/<source>/ of this instance; default server-<id>")
    take.add_argument("--compress-level", type=int, default=1, choices=range(1, 10))
    take.add_argument("--method", choices=["logical", "physical"], default="logical",
                      help="physical: the data files (runs next to them: --datadir / --scratch)")
    take.add_argument("--datadir", type=Path, help="physical, MariaDB: the instance's data directory")
    take.add_argument("--scratch", type=Path,
                      help="physical, MySQL: where the donor's CLONE LOCAL writes (must not exist)")
    take.add_argument("--recipient-host",
                      help="physical, MySQL: a throwaway mysqld that clones the donor into --clone-dir "
                           "(login: RECIPIENT_USER, RECIPIENT_PASSWORD)")
    take.add_argument("--recipient-port", type=int, default=MYSQL_PORT)
    take.add_argument("--clone-dir", type=Path,
                      help="physical, MySQL: where the recipient writes the clone (must not exist; "
                           "read and removed here)")
    take.add_argument("--donor-ssl-ca", default="",
                      help="physical, MySQL: the donor's CA file as the recipient mysqld sees it "
                           "(default DB_SSL_CA)")
    take.add_argument("--shutdown-recipient", action="store_true",
                      help="physical, MySQL: SHUTDOWN the recipient afterwards (success or failure)")
    take.add_argument("--compression", choices=COMPRESSIONS, default=ZSTD,
                      help="physical: zstd (at --compress-level, every core) or none")

    archive = commands.add_parser(
        "archive-binlogs", parents=[common], help="copy closed binlog files to storage"
    )
    archive.add_argument("--binlog-source", help="default server-<server_id>")

    back = commands.add_parser("restore", parents=[common], help="restore a backup into the empty instance")
    back.add_argument("--backup", required=True, help="location (backups/<name>) or name")
    back.add_argument("--point-in-time", help="RFC 3339 time to roll forward to with archived binlogs")
    back.add_argument("--threads", type=int, default=DEFAULT_LOAD_THREADS,
                      choices=range(1, MAX_LOAD_THREADS + 1), metavar=f"1..{MAX_LOAD_THREADS}",
                      help="sessions loading the rows at once (triggers and events follow the rows); 1: "
                           "the dump as one stream")

    unpack = commands.add_parser(
        "unpack", parents=[common], help="physical restore: put a backup's files into an empty data directory"
    )
    unpack.add_argument("--backup", required=True, help="location (backups/<name>) or name")
    unpack.add_argument("--datadir", type=Path, required=True, help="the stopped instance's data directory")
    unpack.add_argument("--prepare-memory", type=int, default=DEFAULT_PREPARE_MEMORY,
                        help="MariaDB: bytes of buffer pool for applying the copied redo")
    unpack.add_argument("--init-sql", type=Path,
                        help="also write here the init file giving the accounts of RESET_ACCOUNTS their "
                             "passwords (the copy holds the source cluster's)")

    finish = commands.add_parser(
        "restore-physical", parents=[common],
        help="wait for the server started on an unpacked copy, roll it forward, shut it down",
    )
    finish.add_argument("--backup", required=True, help="location (backups/<name>) or name")
    finish.add_argument("--point-in-time", help="RFC 3339 time to roll forward to with archived binlogs")
    finish.add_argument("--shutdown", action="store_true",
                        help="SHUTDOWN the server afterwards (success or failure): its Job pod completes")

    forward = commands.add_parser(
        "roll-forward", parents=[common], help="replay archived binlogs into the unpacked, started instance"
    )
    forward.add_argument("--backup", required=True, help="location (backups/<name>) or name")
    forward.add_argument("--point-in-time", required=True, help="RFC 3339 time to roll forward to")

    keep = commands.add_parser(
        "retention", parents=[common], help="delete all but the newest N complete backups"
    )
    keep.add_argument("--keep", type=int, required=True)
    keep.add_argument(
        "--spare",
        action="append",
        default=[],
        help="a backup a restore still reads: not deleted (repeatable)",
    )

    commands.add_parser(
        "list", parents=[common], help="list complete backups, leftovers and archived binlogs"
    )
    return parser


def _run(args: argparse.Namespace, env: Mapping[str, str]) -> dict[str, Any]:
    storage = storage_from_env(env)

    def progress(message: str) -> None:
        log.info("%s", message)

    if args.command == "backup" and args.method == "physical":
        if args.recipient_host and not args.clone_dir:
            raise ConfigError("--recipient-host needs --clone-dir")
        recipient = _recipient(args, env)
        if recipient is not None:  # in a Job it starts beside us, initialising its data directory
            wait_answering(recipient, RECIPIENT_START_SECONDS)
        manifest = take_physical_backup(
            instance_from_env(env), storage, cluster=args.cluster, name=args.name, datadir=args.datadir,
            scratch=args.scratch, recipient=recipient, clone_dir=args.clone_dir,
            donor_ssl_ca=args.donor_ssl_ca, binlog_source=args.binlog_source, compression=args.compression,
            compress_level=args.compress_level,
        )
        return {
            "result": "Completed",
            "status": manifest.status_fields(),
            "manifest": manifest.model_dump(by_alias=True, mode="json"),
        }
    if args.command == "unpack":
        manifest = read_manifest(storage, args.backup)
        if manifest.method != "physical":
            raise RestoreRefused(f"backup {manifest.name} is a logical dump, not physical: restore it with "
                                 "restoreFrom.method logical (the default)")
        flavor = env.get("DB_FLAVOR")
        if flavor and manifest.flavor != flavor:
            raise RestoreRefused(f"backup {manifest.name} is of a {manifest.flavor} server, the target runs "
                                 f"{flavor}")
        accounts = accounts_from_env(env) if args.init_sql else []
        unpack_physical(storage, manifest, args.datadir, prepare_memory=args.prepare_memory)
        dropped = drop_identity(args.datadir)
        if args.init_sql:
            write_init_sql(args.init_sql, accounts)
        return {"result": "Unpacked", "backup": manifest.name, "datadir": str(args.datadir),
                "dropped": dropped, "accounts": len(accounts)}
    if args.command == "restore-physical":
        point = _point_in_time(args)
        manifest = read_manifest(storage, args.backup)
        replayed = finish_restore(instance_from_env(env), storage, manifest, point)
        return {"result": "Restored", "backup": manifest.name, "pointInTime": args.point_in_time,
                "replayed": replayed}
    if args.command == "roll-forward":
        until = _point_in_time(args)
        assert until is not None  # required by the parser
        manifest = read_manifest(storage, args.backup)
        replayed = roll_forward(instance_from_env(env), storage, manifest, until)
        return {"result": "RolledForward", "backup": manifest.name, "pointInTime": args.point_in_time,
                "replayed": replayed}
    if args.command == "backup":
        manifest = take_backup(
            instance_from_env(env),
            storage,
            cluster=args.cluster,
            name=args.name,
            binlog_source=args.binlog_source,
            progress=progress,
            compress_level=args.compress_level,
        )
        return {
            "result": "Completed",
            "status": manifest.status_fields(),
            "manifest": manifest.model_dump(by_alias=True, mode="json"),
        }
    if args.command == "archive-binlogs":
        archived = archive_binlogs(
            instance_from_env(env), storage, source=args.binlog_source, progress=progress
        )
        return {
            "result": "Archived",
            "source": archived.source,
            "copied": archived.copied,
            "skipped": archived.skipped,
        }
    if args.command == "restore":
        point = _point_in_time(args)

        def step(name: str, message: str) -> None:
            log.info("[%s] %s", name, message)

        result = restore(instance_from_env(env), storage, args.backup, point_in_time=point, progress=step,
                         threads=args.threads)
        return {
            "result": "Restored",
            "backup": result.manifest.name,
            "pointInTime": args.point_in_time,
            "replayed": result.replayed,
        }
    if args.command == "retention":
        plan = apply_retention(storage, args.keep, args.spare)
        return {
            "result": "Pruned",
            "kept": plan.keep,
            "spared": plan.spared,
            "deleted": plan.delete_backups,
            "deletedLeftovers": plan.delete_leftovers,
            "deletedObjects": len(plan.delete_keys),
        }
    catalog = scan(storage)
    return {
        "complete": [m.model_dump(by_alias=True, mode="json") for m in catalog.complete],
        "incomplete": [leftover.name for leftover in catalog.leftovers],
        "corrupt": catalog.corrupt,
        "binlogs": {source: [b.file for b in files] for source, files in catalog.binlogs.items()},
    }


def _point_in_time(args: argparse.Namespace) -> datetime | None:
    """--point-in-time as a time (None when not given); a malformed one is a usage error."""
    try:
        return parse_rfc3339(args.point_in_time) if args.point_in_time else None
    except ValueError as error:
        raise ConfigError(str(error)) from None


def _recipient(args: argparse.Namespace, env: Mapping[str, str]) -> Instance | None:
    if args.command != "backup" or not args.recipient_host:
        return None
    return recipient_from_env(env, args.recipient_host, args.recipient_port)


def _exit_code(error: Exception) -> int:
    if isinstance(error, ConfigError | AccountsMissing):
        return EXIT_USAGE
    if isinstance(error, BackupNotFound | BackupCorrupt):
        return EXIT_BAD_BACKUP
    if isinstance(error, RestoreRefused):
        return EXIT_REFUSED
    if isinstance(error, RestoreFailed | PhysicalRestoreFailed):
        return EXIT_PARTIAL_RESTORE
    return EXIT_FAILED


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    """Run one backup command; returns the exit code."""
    environment = os.environ if env is None else env
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")
    try:
        args = _parser().parse_args(list(argv) if argv is not None else None)
    except SystemExit as exit_:
        return EXIT_USAGE if exit_.code else EXIT_OK
    try:
        result = _run(args, environment)
        code = EXIT_OK
    except (ConfigError, BackupError, StorageError, MysqlError, ValueError) as error:
        code = _exit_code(error)
        result = {"result": "Failed", "error": type(error).__name__, "message": str(error)}
        log.error("%s: %s", type(error).__name__, error)
    finally:
        # Whatever happened (a bad storage configuration too), the recipient container must end, or
        # the Job's pod never completes.
        recipient = _recipient(args, environment)
        if recipient is not None and args.shutdown_recipient:
            stop_recipient(recipient)
        if args.command == "restore-physical" and args.shutdown:
            with contextlib.suppress(ConfigError, KeyError, ValueError):
                stop_recipient(instance_from_env(environment))
    text = json.dumps(result)
    print(text, flush=True)
    if args.termination_log:
        try:
            # kubelet keeps at most 4096 bytes: the compact part only
            compact = json.dumps({k: v for k, v in result.items() if k != "manifest"})
            Path(args.termination_log).write_text(compact[:4000])
        except OSError as error:
            log.warning("cannot write %s: %s", args.termination_log, error)
    return code


if __name__ == "__main__":
    sys.exit(main())
